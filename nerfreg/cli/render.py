"""``tools/render.py CONFIG CHECKPOINT --out video.mp4``: a fly-through video.

The camera path is derived from the training cameras (``nerfreg.cameras.paths``): an
``orbit`` around the point the cameras look at, a forward-facing ``spiral``, or
``interpolate`` through the training poses (slerp). Frames are written with OpenCV, H.264
(``avc1``) when this OpenCV build can encode it, else MPEG-4 Part 2 (``mp4v``). A wrapper
over ``nerfreg.apis.render_path``.
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction

from .errors import run_with_clear_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='nerfreg-render', description='Render a camera path of a checkpoint to a video.',
        epilog='Example: python tools/render.py configs/gaussian_splatting/demo.py '
               'work_dirs/demo/iter_1500.pth --out orbit.mp4 --path orbit --frames 120')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (iter_*.pth) or a 3DGS .ply')
    parser.add_argument('--out', default='render.mp4', help='output video (.mp4)')
    parser.add_argument('--path', choices=['orbit', 'spiral', 'interpolate'], default='orbit',
                        help='camera path (default: orbit)')
    parser.add_argument('--path-file', metavar='JSON',
                        help='a camera path exported by nerfreg-view (replaces --path, '
                             '--frames and --fps)')
    parser.add_argument('--frames', type=int, default=120, help='number of frames')
    parser.add_argument('--fps', type=float, default=30.0, help='frames per second')
    parser.add_argument('--resolution', metavar='WxH',
                        help='frame size (default: the first training camera\'s)')
    parser.add_argument('--depth', action='store_true',
                        help='also write a coloured depth video <out>_depth.mp4')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys')
    return parser.parse_args(argv)


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """``'640x480'`` -> ``(640, 480)``."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError as exc:
        raise ValueError(f'--resolution must look like 640x480, got {text!r}') from exc
    if w <= 0 or h <= 0:
        raise ValueError(f'--resolution must be positive, got {text!r}')
    return w, h


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        from ..apis import init_model, render_path
        resolution = parse_resolution(args.resolution)
        loaded = init_model(args.config, args.checkpoint, args.device or 'auto',
                            cfg_options=args.cfg_options)
        cameras, fps, frames, path = None, args.fps, args.frames, args.path
        if args.path_file:
            from ..viewer.path_file import read_camera_path
            cameras, fps = read_camera_path(args.path_file)
            frames, path = len(cameras), args.path_file
        summary = render_path(loaded, args.out, path, frames, fps, resolution=resolution,
                              depth=args.depth, cameras=cameras, progress=True)
        print(f'Rendered {summary["frames"]} frames ({summary["width"]}x{summary["height"]}, '
              f'{summary["path"]}, step {loaded.step}, codec {summary["codec"]}) to '
              f'{summary["out"]}'
              + (f'; depth to {summary["depth"]}' if summary['depth'] else ''))
        return 0

    return run_with_clear_errors(run)


if __name__ == '__main__':
    sys.exit(main())
