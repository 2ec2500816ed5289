"""Same seed, same steps, two rasterizer backends: held-out PSNR and per-step time.

Checks that the Numba ``cpu`` backend trains to the same quality as the pure-PyTorch
reference, and reports the whole trainer's step time next to the rasterizer-only time
(forward + backward of ``rasterization()`` on the final model and a training view).

    python benchmarks/compare_backends.py --steps 300 --downscale 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def raster_only_ms(trainer: DefaultTrainer, reps: int = 5) -> float:
    """Median forward+backward time of the renderer alone on one training view."""
    batch = trainer.data.next_train_batch()
    times = []
    for _ in range(reps + 1):
        inputs = trainer.model(batch)
        t0 = time.perf_counter()
        out = trainer.renderer(inputs, batch)
        out['rgb'].sum().backward()
        times.append(time.perf_counter() - t0)
        trainer.model.zero_grad(set_to_none=True)
    return statistics.median(times[1:]) * 1e3


def run(backend: str, args) -> dict:
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    cfg.merge_from_dict({
        'work_dir': f'{args.work_dir}/{backend}', 'renderer.backend': backend, 'seed': 0,
        'data.data_root': args.data_root, 'data.downscale': args.downscale,
        'train_cfg.max_steps': args.steps, 'train_cfg.val_interval': 0,
        'optimizer.strategy.cap_max': args.cap, 'default_hooks.checkpoint': None,
        'custom_hooks': []})
    if args.no_densify:
        cfg.merge_from_dict({'optimizer.strategy.refine_start': args.steps + 1,
                             'optimizer.strategy.reset_every': args.steps + 1})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.logger.setLevel('WARNING')
    trainer.train_step(trainer.data.next_train_batch())  # compile / warm up (not timed)
    trainer.global_step = 1
    t0 = time.perf_counter()
    trainer.train()
    step_ms = (time.perf_counter() - t0) / (args.steps - 1) * 1e3
    metrics = trainer.test()
    return dict(backend=backend, steps=args.steps, gaussians=trainer.model.num_gaussians,
                psnr=round(metrics['psnr'], 3), ssim=round(metrics['ssim'], 4),
                trainer_step_ms=round(step_ms, 1),
                raster_fwd_bwd_ms=round(raster_only_ms(trainer), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--downscale', type=int, default=8)
    parser.add_argument('--cap', type=int, default=20_000)
    parser.add_argument('--no-densify', action='store_true',
                        help='fixed structure: isolates the numerics from densify decisions')
    parser.add_argument('--data-root', default=str(REPO.parent / 'shared' / 'data' / 'cup'))
    parser.add_argument('--work-dir', default='work_dirs/compare_backends')
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = [run(b, args) for b in ('cpu', 'torch')]
    for r in results:
        print(json.dumps(r))
    print(f"PSNR difference cpu - torch: {results[0]['psnr'] - results[1]['psnr']:+.3f} dB; "
          f"trainer step {results[0]['trainer_step_ms']} vs {results[1]['trainer_step_ms']} ms")


if __name__ == '__main__':
    main()
