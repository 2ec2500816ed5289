"""``nerfreg-test`` / ``tools/test.py``: render and score the test split of a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.config import DictAction

from .errors import run_with_clear_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='nerfreg-test', description='Render the test views of a trained checkpoint and '
                                         'score them.')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (iter_*.pth)')
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--out-dir', default=None,
                        help='where renders, ground truth, comparison.png and metrics.json go '
                             '(default: <work_dir>/test, or the TestOutputHook\'s out_dir)')
    parser.add_argument('--no-images', action='store_true',
                        help='write only metrics.json and the comparison sheet')
    return parser.parse_args(argv)


def ensure_test_output_hook(trainer, out_dir: str | None = None,
                            save_images: bool = True):
    """The trainer's ``TestOutputHook``, registered with defaults when the config lacks it."""
    from ..engine.hooks import TestOutputHook
    hook = next((h for h in trainer.hooks if isinstance(h, TestOutputHook)), None)
    if hook is None:
        hook = TestOutputHook()
        trainer.register_hook(hook)
    if out_dir:
        hook.out_dir = out_dir
    if not save_images:
        hook.save_images = False
    return hook


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        import json

        from ..engine import DefaultTrainer
        from ..utils.config import load_config
        cfg = load_config(args.config, args.cfg_options)
        cfg.work_dir = args.work_dir or cfg.get('work_dir') or str(
            Path('work_dirs') / Path(args.config).stem)
        if args.device:
            cfg.device = args.device
        cfg.resume = False
        cfg.load_from = None
        trainer = DefaultTrainer.from_cfg(cfg)
        hook = ensure_test_output_hook(trainer, args.out_dir, not args.no_images)
        hook.checkpoint = str(Path(args.checkpoint).resolve())
        if Path(args.checkpoint).suffix.lower() == '.ply':
            from ..exporters import load_ply_into_model
            load_ply_into_model(trainer.model, args.checkpoint)
            model = trainer.model
            if hasattr(model, 'set_step'):  # a PLY carries its full SH degree
                model.set_step(max(1, getattr(model, 'sh_degree_interval', 1))
                               * getattr(model, 'sh_degree', 3))
            metrics = trainer.test()
        else:
            metrics = trainer.test(args.checkpoint)
        print(json.dumps({'step': trainer.global_step, **metrics}))
        return 0

    return run_with_clear_errors(run)


if __name__ == '__main__':
    sys.exit(main())
