"""``nerfreg-process`` / ``tools/process_data.py``: photos or a video -> a trainable scene."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ProcessError
from .sfm import CAMERA_MODELS, MATCHERS

EPILOG = '''examples:
  nerfreg-process images photos/ --out scenes/mug
  nerfreg-process video walk.mp4 --out scenes/walk --num-frames 200 --max-size 1600
then train:  nerfreg-train configs/gaussian_splatting/colmap.py \\
                 --cfg-options data.data_root=scenes/mug
A rerun of the same command reuses the finished stages.'''


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument('--out', required=True, type=Path, metavar='SCENE',
                   help='output scene folder (created; gets images/, sparse/0/, report.json '
                        'and the work files in colmap/)')
    p.add_argument('--max-size', type=int, metavar='PX',
                   help='longest image side used for feature extraction (a smaller copy is '
                        'matched; training keeps the full-resolution originals). Default: '
                        "COLMAP's 3200")
    p.add_argument('--camera-model', default='SIMPLE_RADIAL', choices=CAMERA_MODELS,
                   help='COLMAP camera model, one shared by all images (default '
                        'SIMPLE_RADIAL; OPENCV for strong lens distortion)')
    p.add_argument('--per-image-camera', action='store_true',
                   help='one camera per image (photos from several cameras or zoom levels)')
    p.add_argument('--matcher', choices=MATCHERS,
                   help='pairs to match: exhaustive (default for photos), sequential (default '
                        'for video: neighbours in order), vocab (needs --vocab-tree)')
    p.add_argument('--vocab-tree', type=Path, metavar='FILE',
                   help='COLMAP vocabulary tree file, for --matcher vocab (or loop closure '
                        'with sequential); nerfreg never downloads one')
    p.add_argument('--num-threads', type=int, default=0,
                   help='CPU threads (default: all cores)')
    p.add_argument('--min-registered', type=float, default=0.5, metavar='FRACTION',
                   help='fail unless at least this fraction of the images registers '
                        '(default 0.5)')
    p.add_argument('--verbose', action='store_true', help="show COLMAP's own log")
    p.add_argument('--quiet', action='store_true', help='no progress display')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='nerfreg-process', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Turn photos or a video into a trainable COLMAP scene with pycolmap '
                    '(features, matching, incremental mapping, undistortion).', epilog=EPILOG)
    sub = parser.add_subparsers(dest='kind', required=True, metavar='{images,video}')
    images = sub.add_parser('images', help='a folder of photos',
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    images.add_argument('source', type=Path, metavar='DIR', help='folder of photos')
    _common(images)
    video = sub.add_parser('video', help='a video file',
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    video.add_argument('source', type=Path, metavar='FILE', help='video file (e.g. .mp4)')
    video.add_argument('--num-frames', type=int, default=150,
                       help='frames to keep: the sharpest of each of N equal windows of time '
                            '(default 150)')
    _common(video)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .pipeline import ProcessOptions, process
    opts = ProcessOptions(**{k: v for k, v in vars(args).items()})
    try:
        process(opts)
    except ProcessError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted; run the same command again to resume from the last finished '
              'stage.', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
