"""Cost of anti-aliased rendering on the Numba CPU backend, and of this change on classic.

Times forward + backward of ``rasterization(backend='cpu')`` (projection + compositing)
for three variants, interleaved round by round in one process so that machine load hits
them alike: the classic kernels of a baseline git revision (``--baseline``, loaded from
``git show`` into a temporary package), classic at HEAD, and anti-aliased at HEAD.
Prints the medians and the ratios the issue bounds (classic vs baseline <= 1.05,
anti-aliased vs classic <= 1.15).

    python benchmarks/bench_antialias.py --n 50000 --size 256 --rounds 9
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_baseline_ops(ref: str, into: Path):
    """``nerfreg.ops`` as of git revision ``ref``, imported as package ``_ops_<ref>``."""
    name = f'_ops_{ref[:10]}'
    pkg = into / name
    pkg.mkdir(parents=True)
    files = subprocess.run(['git', 'ls-tree', '--name-only', ref, 'nerfreg/ops/'], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split()
    for path in files:
        if path.endswith('.py'):
            text = subprocess.run(['git', 'show', f'{ref}:{path}'], cwd=REPO, check=True,
                                  capture_output=True, text=True).stdout
            (pkg / Path(path).name).write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module(f'{name}.rasterization')


def make_scene(n: int, size: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * 2 - 1
    means[:, 2] += 4.0
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.5 - 4.0)
    f = 1.2 * size
    return dict(means=means, quats=torch.randn(n, 4, generator=g), scales=scales,
                opacities=torch.rand(n, generator=g) * 0.9 + 0.05,
                colors=torch.rand(n, 3, generator=g), viewmats=torch.eye(4)[None],
                Ks=torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]]),
                width=size, height=size)


def step_time(rasterization, scene: dict, **kw) -> float:
    params = {k: scene[k].clone().requires_grad_(True)
              for k in ('means', 'quats', 'scales', 'opacities', 'colors')}
    t0 = time.perf_counter()
    img, alpha, _ = rasterization(**params, viewmats=scene['viewmats'], Ks=scene['Ks'],
                                  width=scene['width'], height=scene['height'], backend='cpu',
                                  **kw)
    (img.sum() + alpha.sum()).backward()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=50_000)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--rounds', type=int, default=9)
    parser.add_argument('--baseline', default='38fd386',
                        help='git revision whose classic kernels are the "before"')
    args = parser.parse_args()
    from nerfreg.ops.rasterization import rasterization
    scene = make_scene(args.n, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = load_baseline_ops(args.baseline, Path(tmp)).rasterization
        variants = {
            'classic_baseline': lambda: step_time(baseline, scene),
            'classic': lambda: step_time(rasterization, scene, rasterize_mode='classic'),
            'antialiased': lambda: step_time(rasterization, scene,
                                             rasterize_mode='antialiased'),
        }
        for fn in variants.values():  # compile / warm up
            fn()
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for key, fn in variants.items():
                times[key].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    result = dict(n=args.n, size=args.size, rounds=args.rounds, threads=torch.get_num_threads(),
                  median_s={k: round(v, 4) for k, v in med.items()},
                  classic_vs_baseline=round(med['classic'] / med['classic_baseline'], 3),
                  antialiased_vs_classic=round(med['antialiased'] / med['classic'], 3))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
