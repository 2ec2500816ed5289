"""Training-time cost of ``ViewerHook``: no hook vs the hook with no browser vs the hook
with one headless Chromium connected (Debian ``chromium`` + ``chromium-driver``, driven
by selenium). Runs are interleaved in rounds, in one process; each measures the wall time
of steps ``--skip``..``--steps`` of the demo config.

    python benchmarks/bench_viewer_hook.py --steps 200 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mmengine.hooks import Hook

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests'))


class StepClock(Hook):
    """Times steps ``skip``..end; at step 1 optionally connects a browser to the viewer."""

    priority = 'VERY_LOW'

    def __init__(self, skip: int, browser_dir: Path | None = None) -> None:
        self.skip = skip
        self.browser_dir = browser_dir
        self.driver = None
        self.start = self.end = 0.0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.global_step == 1 and self.browser_dir is not None:
            from _viewer_utils import start_chromium
            hook = next(h for h in runner.hooks if type(h).__name__ == 'ViewerHook')
            self.driver = start_chromium(self.browser_dir)
            self.driver.get(hook.viewer.url)
            loop = hook.viewer.wait_for_client(60)
            assert loop is not None and loop.wait_for_frame(lambda r: True, 120) is not None
        if runner.global_step == self.skip:
            self.start = time.perf_counter()
        self.end = time.perf_counter()

    def after_run(self, runner) -> None:
        if self.driver is not None:
            self.driver.quit()


def run(kind: str, steps: int, skip: int, work: Path) -> float:
    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config
    cfg = load_config(REPO / 'configs/gaussian_splatting/demo.py',
                      {'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0})
    cfg.custom_hooks = []
    cfg.default_hooks.logger.interval = 10_000
    cfg.default_hooks.checkpoint.interval = 10_000
    cfg.default_hooks.checkpoint.save_last = False
    cfg.work_dir = str(work / kind)
    cfg.device = 'cpu'
    if kind != 'none':
        cfg.custom_imports = dict(imports=['nerfreg.engine.hooks.viewer_hook'])
        cfg.custom_hooks = [dict(type='ViewerHook', port=0)]
    trainer = DefaultTrainer.from_cfg(cfg)
    clock = StepClock(skip, work / f'profile-{kind}' if kind == 'browser' else None)
    trainer.register_hook(clock)
    trainer.train()
    return (clock.end - clock.start) / (steps - skip)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--skip', type=int, default=30, help='steps not timed (warm-up)')
    parser.add_argument('--rounds', type=int, default=2)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    per_step: dict[str, list[float]] = {'none': [], 'hook': [], 'browser': []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ['none', 'hook', 'browser'] if r % 2 == 0 else ['browser', 'hook', 'none']
            for kind in order:
                per_step[kind].append(run(kind, args.steps, args.skip, Path(tmp) / str(r)))
                print(kind, f'{1000 * per_step[kind][-1]:.1f} ms/step', file=sys.stderr)
    base = statistics.median(per_step['none'])
    result = {k: round(1000 * statistics.median(v), 2) for k, v in per_step.items()}
    result.update(
        overhead_no_browser_pct=round(100 * (statistics.median(per_step['hook']) / base - 1), 1),
        overhead_browser_pct=round(100 * (statistics.median(per_step['browser']) / base - 1), 1),
        rounds=args.rounds, steps=args.steps, skip=args.skip)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
