"""Same seed, same steps, two rasterizer backends: held-out PSNR and per-step time.

Checks that the Numba ``cpu`` backend trains to the same quality as the pure-PyTorch
reference, and reports the whole trainer's step time next to the rasterizer-only time
(forward + backward of ``rasterization()`` on the final model and a training view).

    python benchmarks/compare_backends.py --steps 300 --downscale 8
    python benchmarks/compare_backends.py --steps 300 --seeds 0 1 2 3 4 5 6 7

With densification, two backends that agree to float32 rounding still take a different
path after the first near-tie clone/split decision flips, so one seed's PSNR difference is
a draw from the run-to-run spread; several seeds give the paired mean difference and its
standard error. ``--no-densify`` isolates the numerics (one run per seed is then enough).
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


def run(backend: str, seed: int, args, perturb: bool = False) -> dict:
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    cfg.merge_from_dict({
        'work_dir': f'{args.work_dir}/{backend}', 'renderer.backend': backend, 'seed': seed,
        'data.data_root': args.data_root, 'data.downscale': args.downscale,
        'train_cfg.max_steps': args.steps, 'train_cfg.val_interval': 0,
        'optimizer.strategy.cap_max': args.cap, 'default_hooks.checkpoint': None,
        'custom_hooks': []})
    if args.no_densify:
        cfg.merge_from_dict({'optimizer.strategy.refine_start': args.steps + 1,
                             'optimizer.strategy.reset_every': args.steps + 1})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.logger.setLevel('WARNING')
    if perturb:  # the control: initial means moved by one float32 ulp
        with torch.no_grad():
            means = trainer.model.params['means']
            means.copy_(torch.nextafter(means, torch.full_like(means, float('inf'))))
    trainer.train_step(trainer.data.next_train_batch())  # compile / warm up (not timed)
    trainer.global_step = 1
    t0 = time.perf_counter()
    trainer.train()
    step_ms = (time.perf_counter() - t0) / (args.steps - 1) * 1e3
    metrics = trainer.test()
    return dict(backend=backend, seed=seed, steps=args.steps,
                gaussians=trainer.model.num_gaussians,
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
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--control', action='store_true',
                        help='also train cpu from initial means moved by one ulp: the spread '
                             'any two runs that differ in float rounding show')
    args = parser.parse_args()
    torch.set_num_threads(2)
    diffs: dict[str, list[float]] = {'cpu - torch': [], 'cpu - cpu(+1 ulp)': []}
    for seed in args.seeds:
        cpu, ref = run('cpu', seed, args), run('torch', seed, args)
        print(json.dumps(cpu))
        print(json.dumps(ref))
        diffs['cpu - torch'].append(cpu['psnr'] - ref['psnr'])
        line = (f"seed {seed}: PSNR cpu - torch {diffs['cpu - torch'][-1]:+.3f} dB; trainer "
                f"step {cpu['trainer_step_ms']} vs {ref['trainer_step_ms']} ms")
        if args.control:
            ctl = run('cpu', seed, args, perturb=True)
            diffs['cpu - cpu(+1 ulp)'].append(cpu['psnr'] - ctl['psnr'])
            line += f"; control cpu - cpu(+1 ulp) {diffs['cpu - cpu(+1 ulp)'][-1]:+.3f} dB"
        print(line, flush=True)
    for name, values in diffs.items():
        if len(values) > 1:
            mean, sd = statistics.mean(values), statistics.stdev(values)
            print(f'{len(values)} seeds, {name}: mean {mean:+.3f} dB, sd {sd:.3f}, '
                  f'standard error {sd / len(values) ** 0.5:.3f} dB')


if __name__ == '__main__':
    main()
