"""``nerfreg-test`` / ``tools/test.py``: render and score the test split of a checkpoint
(a wrapper over ``nerfreg.apis.init_model`` + ``evaluate``)."""

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        import json

        from ..apis import evaluate, init_model
        from ..utils.config import load_config
        cfg = load_config(args.config, args.cfg_options)
        work_dir = args.work_dir or cfg.get('work_dir') or str(
            Path('work_dirs') / Path(args.config).stem)
        loaded = init_model(cfg, args.checkpoint, args.device or 'auto')
        metrics = evaluate(loaded, 'test', work_dir=work_dir, write_outputs=True,
                           out_dir=args.out_dir, save_images=not args.no_images)
        print(json.dumps({'step': loaded.step, **metrics}))
        return 0

    return run_with_clear_errors(run)


if __name__ == '__main__':
    sys.exit(main())
