"""Per-step overhead of DefaultTrainer + default hooks against a bare PyTorch loop.

Both run the same forward/backward/Adam step on a small MLP sized to take about
``--step-ms`` milliseconds; runs are interleaved and the ratio of medians is reported.

    python benchmarks/bench_trainer_overhead.py --steps 100 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.registry import DATASETS, MODELS, OPTIMIZERS, RENDERERS  # noqa: E402

DIM = 512


def make_batch(batch: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {'x': torch.randn(batch, DIM, generator=g), 'y': torch.randn(batch, DIM, generator=g)}


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(DIM, DIM), torch.nn.ReLU(),
                                       torch.nn.Linear(DIM, DIM), torch.nn.ReLU(),
                                       torch.nn.Linear(DIM, DIM))


@DATASETS.register_module(force=True)
class BenchData:
    def __init__(self, batch: int = 256, **kwargs) -> None:
        self.batch = make_batch(batch)
        self.dataset = None

    def next_train_batch(self) -> dict:
        return self.batch

    def iter_split(self, split: str):
        return iter(())

    def state_dict(self) -> dict:
        return {}


@RENDERERS.register_module(force=True)
class BenchRenderer:
    def __call__(self, render_inputs: dict, batch: dict) -> dict:
        return {'pred': render_inputs['net'](batch['x'])}

    def state_dict(self) -> dict:
        return {}


@MODELS.register_module(force=True)
class BenchModel(MLP):
    def forward(self, batch: dict) -> dict:
        return {'net': self.net}

    def get_loss_dict(self, render_results: dict, batch: dict) -> dict:
        return {'loss': torch.nn.functional.mse_loss(render_results['pred'], batch['y'])}

    def get_optimizer_dict(self, loss_dict, render_results, batch, step) -> dict:
        return {}


@OPTIMIZERS.register_module(force=True)
class BenchAdam:
    def __init__(self, model, scene_extent: float = 1.0, lr: float = 1e-4) -> None:
        self.optim = torch.optim.Adam(model.parameters(), lr=lr)
        self.param_groups = self.optim.param_groups

    def update_model(self) -> None:
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)

    def zero_grad(self) -> None:
        self.optim.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return self.optim.state_dict()


def bare_loop(steps: int, batch: int) -> float:
    torch.manual_seed(0)
    model = BenchModel()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = make_batch(batch)
    t0 = time.perf_counter()
    for _ in range(steps):
        pred = model.net(data['x'])
        loss = torch.nn.functional.mse_loss(pred, data['y'])
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / steps


def trainer_loop(steps: int, batch: int, work_dir: str) -> float:
    cfg = dict(
        work_dir=work_dir, device='cpu', seed=0,
        data=dict(type='BenchData', batch=batch), renderer=dict(type='BenchRenderer'),
        model=dict(type='BenchModel'), optimizer=dict(type='BenchAdam'),
        train_cfg=dict(max_steps=steps, val_interval=0),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=50, progress_bar=False),
                           checkpoint=dict(type='CheckpointHook', interval=0, save_last=False)))
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.logger.setLevel('WARNING')
    t0 = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - t0) / steps


def calibrate(step_ms: float) -> int:
    batch = 64
    while True:
        t = bare_loop(5, batch) * 1e3
        if t >= step_ms or batch >= 1 << 14:
            return batch
        batch = int(batch * max(1.2, step_ms / max(t, 1e-3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--step-ms', type=float, default=50.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    batch = calibrate(args.step_ms)
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            bare.append(bare_loop(args.steps, batch))
            ours.append(trainer_loop(args.steps, batch, f'{tmp}/run{i}'))
    mb, mo = statistics.median(bare), statistics.median(ours)
    result = {'batch': batch, 'steps': args.steps, 'repeats': args.repeats,
              'bare_ms': round(mb * 1e3, 2), 'trainer_ms': round(mo * 1e3, 2),
              'overhead_pct': round(100 * (mo - mb) / mb, 2)}
    print(f"bare loop {result['bare_ms']} ms/step, DefaultTrainer {result['trainer_ms']} "
          f"ms/step, overhead {result['overhead_pct']}% (median of {args.repeats})")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
