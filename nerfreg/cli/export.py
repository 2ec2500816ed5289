"""``tools/export.py CONFIG CHECKPOINT --out scene.ply``: export trained Gaussians.

Formats: ``ply`` (the standard 3DGS layout read by the reference and most web viewers) and
``splat`` (antimatter15 web viewer). The format follows ``--out``'s suffix unless
``--format`` is given. Only the model is built (no dataset is read).
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
    parser.add_argument('--format', choices=['ply', 'splat'],
                        help='output format (default: from the suffix of --out, else ply)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys')
    return parser.parse_args(argv)


def build_model(cfg: Any, device: torch.device | str = 'cpu') -> torch.nn.Module:
    """The config's model (plugins and ``custom_imports`` loaded), empty, on ``device``."""
    import copy

    from ..registry import MODELS
    from ..utils import import_plugins
    from ..utils.plugins import import_custom_modules
    import_plugins()
    import_custom_modules(cfg.get('custom_imports'))
    if cfg.get('model') is None:
        raise KeyError('The config has no `model` section.')
    return MODELS.build(copy.deepcopy(dict(cfg.model))).to(device)


def load_model_for_inference(cfg: Any, checkpoint: str | Path,
                             device: torch.device | str = 'cpu',
                             unsafe_load: bool | None = None) -> tuple[torch.nn.Module, int]:
    """Build the config's model and load ``checkpoint`` (nerfreg ``.pth`` or 3DGS ``.ply``).

    Returns ``(model in eval mode, step)``. A PLY has no step: the model is set to its
    full SH degree and the step is 0.
    """
    model = build_model(cfg, device)
    path = Path(checkpoint)
    if path.suffix.lower() == '.ply':
        from ..exporters import load_ply_into_model
        load_ply_into_model(model, path)
        if hasattr(model, 'sh_degree_interval') and hasattr(model, 'set_step'):
            model.set_step(max(1, model.sh_degree_interval) * getattr(model, 'sh_degree', 3))
        step = 0
    else:
        from ..engine.checkpoint import load_checkpoint
        if unsafe_load is None:
            unsafe_load = bool(cfg.get('unsafe_load', False))
        ckpt = load_checkpoint(path, map_location='cpu', weights_only=not unsafe_load)
        model.load_state_dict(ckpt['model'])
        step = int(ckpt.get('global_step', 0))
    model.to(device)
    model.eval()
    return model, step


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        from ..exporters import EXPORT_FORMATS
        from ..utils.config import load_config
        cfg = load_config(args.config, args.cfg_options)
        out = Path(args.out)
        fmt = args.format or ('splat' if out.suffix.lower() == '.splat' else 'ply')
        model, step = load_model_for_inference(cfg, args.checkpoint, 'cpu')
        path = EXPORT_FORMATS[fmt](model, out)
        n = getattr(model, 'num_gaussians', None)
        size = path.stat().st_size / 2 ** 20
        print(f'Exported {n:,} Gaussians (step {step}) to {path} ({fmt}, {size:.2f} MiB)')
        return 0

    return run_with_clear_errors(run)


if __name__ == '__main__':
    sys.exit(main())
