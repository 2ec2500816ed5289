"""``tools/export.py CONFIG CHECKPOINT --out scene.ply``: export trained Gaussians.

Formats are the ``EXPORTERS`` registry's: ``ply`` (the standard 3DGS layout read by the
reference and most web viewers), ``splat`` (antimatter15 web viewer), and any a plugin
registers. The format follows ``--out``'s suffix unless ``--format`` is given. Only the
model is built (no dataset is read). A wrapper over ``nerfreg.apis.export``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from mmengine.config import DictAction

from .errors import run_with_clear_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='nerfreg-export', description='Export the Gaussians of a checkpoint.',
        epilog='Example: python tools/export.py configs/gaussian_splatting/demo.py '
               'work_dirs/demo/iter_1500.pth --out scene.ply')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (iter_*.pth) or a 3DGS .ply')
    parser.add_argument('--out', required=True, help='output file (.ply or .splat)')
    parser.add_argument('--format',
                        help='output format: ply, splat or a plugin\'s (default: from the '
                             'suffix of --out, else ply)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys')
    return parser.parse_args(argv)


def load_model_for_inference(cfg: Any, checkpoint: str | Path,
                             device: torch.device | str = 'cpu',
                             unsafe_load: bool | None = None) -> tuple[torch.nn.Module, int]:
    """``(model in eval mode, step)`` of a checkpoint or PLY (see ``nerfreg.apis.init_model``)."""
    from ..apis import init_model
    loaded = init_model(cfg, checkpoint, device, unsafe_load=unsafe_load)
    return loaded.model, loaded.step


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        from ..apis import export, init_model
        loaded = init_model(args.config, args.checkpoint, 'cpu', cfg_options=args.cfg_options)
        path = export(loaded, args.out, args.format)
        n = getattr(loaded.model, 'num_gaussians', None)
        what = f'{n:,} Gaussians' if n is not None else type(loaded.model).__name__
        size = path.stat().st_size / 2 ** 20
        print(f'Exported {what} (step {loaded.step}) to {path} ({size:.2f} MiB)')
        return 0

    return run_with_clear_errors(run)


if __name__ == '__main__':
    sys.exit(main())
