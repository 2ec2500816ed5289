"""``nerfreg-view CONFIG CHECKPOINT`` / ``nerfreg-view scene.ply``: the web viewer."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='nerfreg-view', description='Explore a checkpoint or a 3DGS PLY in the browser.',
        epilog='Examples: nerfreg-view configs/gaussian_splatting/demo.py '
               'work_dirs/demo/iter_1500.pth   |   nerfreg-view scene.ply --port 8081')
    parser.add_argument('inputs', nargs='+', metavar='CONFIG CHECKPOINT | PLY',
                        help='a config and its checkpoint (.pth or .ply), or a bare 3DGS .ply')
    parser.add_argument('--host', default='127.0.0.1',
                        help='interface to listen on (default 127.0.0.1: this machine only)')
    parser.add_argument('--port', type=int, default=8080, help='port (default 8080)')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--max-side', type=int, default=640,
                        help='initial resolution cap (longer image side)')
    parser.add_argument('--fps', type=float, default=10.0,
                        help='frame rate aimed at while the camera moves (default 10)')
    parser.add_argument('--no-cameras', action='store_true',
                        help='do not load the dataset (no training-camera frustums)')
    parser.add_argument('--path-file', default='camera_path.json',
                        help='default file of the camera path editor')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys')
    args = parser.parse_args(argv)
    if len(args.inputs) > 2:
        parser.error('give CONFIG CHECKPOINT or a single PLY file')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .errors import run_with_clear_errors
    # SIGINT stops the viewer even when it was started with SIGINT ignored (a background job
    # of a non-interactive shell inherits that), as it stops training (engine/interrupt.py)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def run() -> int:
        from ..viewer.launch import start_viewer
        from ..viewer.loader import load_scene
        from ..viewer.server import import_viser
        import_viser()  # fail early, before loading anything
        if len(args.inputs) == 1:
            config, checkpoint = None, args.inputs[0]
            if Path(checkpoint).suffix.lower() != '.ply':
                raise ValueError(f'{checkpoint}: a single argument must be a 3DGS .ply; for a '
                                 'checkpoint give CONFIG CHECKPOINT')
        else:
            config, checkpoint = args.inputs
        scene = load_scene(config, checkpoint, args.device, args.cfg_options,
                           with_cameras=not args.no_cameras)
        viewer = start_viewer(scene, args.host, args.port, args.max_side, args.fps,
                              args.path_file)
        try:  # Ctrl-C is the normal way to stop, whenever it comes
            n = getattr(scene.model, 'num_gaussians', None)
            what = f'{n:,} Gaussians' if isinstance(n, int) else type(scene.model).__name__
            print(f'nerfreg viewer: {what} (step {scene.step}) at {viewer.url}  (Ctrl-C to '
                  'stop)', flush=True)
            viewer.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            viewer.close()
        print('Viewer stopped.', flush=True)
        return 0

    try:
        return run_with_clear_errors(run)
    except KeyboardInterrupt:  # before the server was up: nothing to close
        print('Interrupted.', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
