"""``nerfreg-train`` / ``tools/train.py``: train a config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.config import DictAction

from .errors import run_with_clear_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='nerfreg-train', description='Train a differentiable renderer from a config file.',
        epilog='Example: python tools/train.py configs/gaussian_splatting/demo.py '
               '--cfg-options train_cfg.max_steps=500')
    parser.add_argument('config', help='path of a config file (e.g. configs/gaussian_splatting/'
                                       'demo.py)')
    parser.add_argument('--work-dir', help='where logs, checkpoints and outputs go (default: '
                                           'work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or with no value from the latest checkpoint '
                             'of the work dir')
    parser.add_argument('--resume-strict', action='store_true',
                        help='refuse to resume when the config differs from the checkpoint\'s')
    parser.add_argument('--load-from', metavar='CKPT',
                        help='initialise weights from CKPT and start at step 0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys, e.g. train_cfg.max_steps=100 '
                             'data.downscale=4 seed=1')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], help='compute device '
                        '(default from config, "auto" = CUDA if available)')
    parser.add_argument('--seed', type=int, help='random seed (overrides the config)')
    parser.add_argument('--viewer', nargs='?', const=8080, type=int, metavar='PORT',
                        help='watch training in the browser (web viewer on localhost:PORT, '
                             'default 8080; needs the viewer extra)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher for distributed training')
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    from ..utils.config import load_config
    cfg = load_config(args.config, args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = str(Path('work_dirs') / Path(args.config).stem)
    if args.device:
        cfg.device = args.device
    if args.seed is not None:
        cfg.seed = args.seed
    if args.load_from:
        cfg.load_from = args.load_from
    if args.resume == 'auto':
        cfg.resume = True
    elif args.resume:
        cfg.resume = args.resume
    cfg.launcher = args.launcher
    if args.viewer:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='ViewerHook', port=args.viewer)]
    if args.resume_strict:
        cfg.resume_strict = True
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        from ..engine import DefaultTrainer
        from ..engine.dist import shutdown_distributed
        from ..engine.errors import TrainingInterrupted
        try:
            DefaultTrainer.from_cfg(build_config(args)).train()
        except TrainingInterrupted:  # every rank stopped after the same step
            shutdown_distributed()
            raise
        except BaseException:
            shutdown_distributed(wait=False)
            raise
        shutdown_distributed()
        return 0

    return run_with_clear_errors(run)


if __name__ == '__main__':
    sys.exit(main())
