"""Cost of crash-safe checkpoints: nerfreg's atomic save against a plain ``torch.save``.

The payload is a Gaussian Splatting checkpoint of ``--gaussians`` Gaussians (SH degree 3)
with Adam state. Runs are interleaved; medians and their ratio are printed.

    python benchmarks/bench_checkpoint.py --gaussians 100000 --repeats 7
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

from nerfreg.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402


def payload(n: int) -> dict:
    shapes = {'means': (n, 3), 'scales': (n, 3), 'quats': (n, 4), 'opacities': (n,),
              'sh0': (n, 1, 3), 'shN': (n, 15, 3)}
    params = {k: torch.randn(s) for k, s in shapes.items()}
    adam = {k: {'exp_avg': torch.randn(s), 'exp_avg_sq': torch.rand(s)}
            for k, s in shapes.items()}
    return {'global_step': 1, 'model': params, 'optimizer': adam, 'meta': {'config': 'x'}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gaussians', type=int, default=100_000)
    parser.add_argument('--repeats', type=int, default=7)
    args = parser.parse_args()
    data = payload(args.gaussians)
    plain, atomic = [], []
    with tempfile.TemporaryDirectory(dir='.') as tmp:
        for i in range(args.repeats):
            t0 = time.perf_counter()
            torch.save(data, f'{tmp}/plain_{i}.pth')
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            save_checkpoint(data, f'{tmp}/atomic_{i}.pth')
            atomic.append(time.perf_counter() - t0)
        size = Path(f'{tmp}/atomic_0.pth').stat().st_size
        t0 = time.perf_counter()
        load_checkpoint(f'{tmp}/atomic_0.pth')
        load_s = time.perf_counter() - t0
    mp, ma = statistics.median(plain), statistics.median(atomic)
    result = {'gaussians': args.gaussians, 'size_mb': round(size / 2**20, 1),
              'plain_save_ms': round(mp * 1e3, 1), 'atomic_save_ms': round(ma * 1e3, 1),
              'ratio': round(ma / mp, 2), 'load_weights_only_ms': round(load_s * 1e3, 1)}
    print(f"{result['size_mb']} MB checkpoint: torch.save {result['plain_save_ms']} ms, atomic "
          f"(temp file + fsync + rename) {result['atomic_save_ms']} ms, ratio {result['ratio']}x")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
