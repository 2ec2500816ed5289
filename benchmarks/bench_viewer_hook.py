"""Training-time cost of ``ViewerHook``, measured in one training run of the demo config
whose steps alternate, in blocks of ``--block`` steps, between three modes:

- ``none``: the hook inactive (as if it were not configured);
- ``hook``: the hook active, no browser connected;
- ``browser``: one headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven by
  selenium) connected and showing the live model.

Fine interleaving keeps the comparison fair on a loaded machine. The time of a step runs
from the end of the previous step's hooks to the end of its own (data, forward, backward,
update and the other hooks); connecting and disconnecting the browser between blocks is
not counted. Reported: median step time per mode and the overheads against ``none``.

    python benchmarks/bench_viewer_hook.py --block 8 --cycles 3
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

MODES = ('none', 'hook', 'browser')


class ModeClock(Hook):
    """Switches the mode every ``block`` steps (after ``skip``) and times each step."""

    priority = 'VERY_LOW'

    def __init__(self, skip: int, block: int, profile: Path) -> None:
        self.skip, self.block, self.profile = skip, block, profile
        self.times: dict[str, list[float]] = {m: [] for m in MODES}
        self.driver = None
        self.mode = 'hook'
        self._viewer = None
        self._end = None

    def _set_mode(self, hook, mode: str) -> None:
        if self.driver is None:
            from _viewer_utils import start_chromium
            self.driver = start_chromium(self.profile)
            self._viewer = hook.viewer
        hook.viewer = None if mode == 'none' else self._viewer
        if mode == 'browser':
            self.driver.get(self._viewer.url)
            loop = self._viewer.wait_for_client(60)
            assert loop is not None and loop.wait_for_frame(lambda r: True, 120) is not None
        elif self._viewer.num_clients:
            self.driver.get('about:blank')
            deadline = time.monotonic() + 30
            while self._viewer.num_clients and time.monotonic() < deadline:
                time.sleep(0.05)
        self.mode = mode

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        step = runner.global_step
        if self._end is not None and step > self.skip:
            self.times[self.mode].append(now - self._end)
        if step >= self.skip and (step - self.skip) % self.block == 0:
            hook = next(h for h in runner.hooks if type(h).__name__ == 'ViewerHook')
            cycle = (step - self.skip) // self.block
            self._set_mode(hook, MODES[(cycle + cycle // len(MODES)) % len(MODES)])
        self._end = time.perf_counter()

    def before_run(self, runner) -> None:
        pass

    def after_train(self, runner) -> None:
        hook = next(h for h in runner.hooks if type(h).__name__ == 'ViewerHook')
        hook.viewer = self._viewer
        if self.driver is not None:
            self.driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--block', type=int, default=8, help='steps per mode block')
    parser.add_argument('--cycles', type=int, default=3, help='cycles over the three modes')
    parser.add_argument('--skip', type=int, default=16, help='warm-up steps, not timed')
    args = parser.parse_args()
    import torch

    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config
    torch.set_num_threads(2)
    steps = args.skip + args.block * len(MODES) * args.cycles
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(REPO / 'configs/gaussian_splatting/demo.py',
                          {'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0})
        cfg.custom_hooks = [dict(type='ViewerHook', port=0)]
        cfg.custom_imports = dict(imports=['nerfreg.viewer.hook'])
        cfg.default_hooks.logger.interval = 10_000
        cfg.default_hooks.checkpoint.interval = 10_000
        cfg.default_hooks.checkpoint.save_last = False
        cfg.work_dir = str(Path(tmp) / 'work')
        cfg.device = 'cpu'
        trainer = DefaultTrainer.from_cfg(cfg)
        clock = ModeClock(args.skip, args.block, Path(tmp) / 'profile')
        trainer.register_hook(clock)
        trainer.train()
    med = {m: statistics.median(v) for m, v in clock.times.items()}
    result = {f'{m}_ms': round(1000 * med[m], 2) for m in MODES}
    result.update(
        overhead_no_browser_pct=round(100 * (med['hook'] / med['none'] - 1), 2),
        overhead_browser_pct=round(100 * (med['browser'] / med['none'] - 1), 2),
        steps_per_mode={m: len(v) for m, v in clock.times.items()}, block=args.block,
        cycles=args.cycles)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
