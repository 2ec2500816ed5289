"""``nerfreg-process`` / ``tools/process_data.py``: photos or a video -> a trainable scene."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ProcessError
from .sfm import CAMERA_MODELS, MATCHERS, PLAIN_MATCHERS

EPILOG = '''examples:
  nerfreg-process images photos/ --out scenes/mug
  nerfreg-process video walk.mp4 --out scenes/walk --num-frames 200 --max-size 1600
then train:  nerfreg-train configs/gaussian_splatting/colmap.py \\
                 --cfg-options data.data_root=scenes/mug
A rerun of the same command reuses the finished stages.'''

TRIANGULATE_EPILOG = '''examples:
  nerfreg-process triangulate data/fox/transforms.json --max-size 1600
  nerfreg-process triangulate data/fox/transforms.json --out sparse/fox
then train with points and depth supervision:
  nerfreg-train configs/gaussian_splatting/ngp.py --cfg-options data.data_root=data/fox \\
      data.sparse_dir=<the folder printed> depth_loss.enabled=True
Without --out the model goes to the nerfreg cache ($NERFREG_CACHE_DIR or ~/.cache/nerfreg),
never into the data folder; a rerun with the same inputs reuses it.'''


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
    sub = parser.add_subparsers(dest='kind', required=True,
                                metavar='{images,video,triangulate}')
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
    _triangulate_parser(sub)
    return parser.parse_args(argv)


def _triangulate_parser(sub: argparse._SubParsersAction) -> None:
    tri = sub.add_parser(
        'triangulate', help='sparse points for a transforms.json capture (known poses)',
        description='Triangulate SfM points from the known poses and intrinsics of an '
                    'instant-ngp / nerfstudio transforms.json (SIFT features, matching, '
                    "pycolmap's known-pose triangulation) into a COLMAP sparse model in the "
                    "transforms' own frame, for NGPDataset(sparse_dir=...).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRIANGULATE_EPILOG)
    tri.add_argument('transforms', type=Path, metavar='FILE', help='transforms.json')
    tri.add_argument('--out', type=Path, metavar='DIR',
                     help='output model folder (default: in the nerfreg cache, keyed by the '
                          'inputs); must be new, empty or an earlier triangulation output')
    tri.add_argument('--max-size', type=int, metavar='PX',
                     help='longest image side used for feature extraction (positions are '
                          "in the original pixels). Default: COLMAP's 3200")
    tri.add_argument('--matcher', choices=PLAIN_MATCHERS, default='exhaustive',
                     help='pairs to match: exhaustive (default; fine up to a few hundred '
                          'frames) or sequential (neighbours in file order, for videos)')
    tri.add_argument('--num-threads', type=int, default=0,
                     help='CPU threads (default: all cores)')
    tri.add_argument('--cache-dir', type=Path, metavar='DIR',
                     help='cache root for the default output (default: $NERFREG_CACHE_DIR '
                          'or ~/.cache/nerfreg)')
    tri.add_argument('--verbose', action='store_true', help="show COLMAP's own log")
    tri.add_argument('--quiet', action='store_true', help='no progress display')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kwargs = {k: v for k, v in vars(args).items() if k != 'kind' or args.kind != 'triangulate'}
    try:
        if args.kind == 'triangulate':
            from .triangulate import TriangulateOptions, triangulate
            triangulate(TriangulateOptions(**kwargs))
        else:
            from .pipeline import ProcessOptions, process
            process(ProcessOptions(**kwargs))
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
