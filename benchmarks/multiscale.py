"""Anti-aliased vs classic rendering across scales (Mip-Splatting's zoom-out test).

Trains a config once per ``--modes`` entry (``renderer.rasterize_mode``) at its own
resolution for a fixed number of steps (``fixed_steps.scaled_config``), then scores the
test views rendered at ``1/f`` of the training resolution for every ``--factors`` entry,
against the ground truth area-downsampled by ``f`` (mean of ``f x f`` pixel blocks;
intrinsics divided by ``f``; the last partial block row/column is cropped). One JSON line
per (mode, factor) goes to stdout and ``--out``.

    python benchmarks/multiscale.py configs/gaussian_splatting/colmap_short.py \
        --steps 1000 --factors 1,2,4 --out work_dirs/multiscale.jsonl

``--load-from MODE=CKPT`` scores a checkpoint of that mode (e.g. the final ``iter_N.pth`` of
a ``fixed_steps.py`` run of the same config, steps and seed, which trains the same
schedule) instead of training it again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixed_steps import emit_record, scaled_config  # noqa: E402

from nerfreg.engine import DefaultTrainer  # noqa: E402


def downsample_batch(batch: dict[str, Any], f: int) -> dict[str, Any]:
    """The view at ``1/f`` resolution: area-averaged images, intrinsics divided by ``f``."""
    if f == 1:
        return batch
    out = dict(batch)
    width, height = int(batch['width']) // f, int(batch['height']) // f

    def pool(x: torch.Tensor) -> torch.Tensor:
        x = x[:, :height * f, :width * f].permute(0, 3, 1, 2)
        return F.avg_pool2d(x, f).permute(0, 2, 3, 1).contiguous()

    out['image'] = pool(batch['image'])
    if batch.get('alpha') is not None:
        out['alpha'] = pool(batch['alpha'])
    ks = batch['Ks'].clone()
    ks[:, :2, :] /= f
    out.update(Ks=ks, width=width, height=height)
    return out


def train_downscale(cfg) -> int:
    """The dataset's downscale factor (nested ``data.dataset`` form or the flat one)."""
    data = cfg.data
    return int(data.get('dataset', {}).get('downscale', data.get('downscale', 1)) or 1)


@torch.no_grad()
def score_at_scale(trainer: DefaultTrainer, f: int, split: str = 'test') -> dict[str, float]:
    """Mean PSNR / SSIM of ``split`` rendered at ``1/f`` of the training resolution."""
    trainer.model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in trainer.data.iter_split(split):
        small = downsample_batch(batch, f)
        results = trainer.renderer(trainer.model(small), small)
        for key, value in trainer.model.get_metric_dict(results, small).items():
            sums[key] = sums.get(key, 0.0) + float(value.double().sum())
        count += int(small['viewmats'].shape[0])
    trainer.model.train()
    return {k: v / max(count, 1) for k, v in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--refine-stop-frac', type=float, default=None)
    parser.add_argument('--modes', default='classic,antialiased')
    parser.add_argument('--factors', default='1,2,4')
    parser.add_argument('--work-dir', default='work_dirs/multiscale')
    parser.add_argument('--out', type=Path, default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--load-from', nargs='+', action=DictAction, default={},
                        help='MODE=CKPT: score this checkpoint for MODE instead of training')
    args = parser.parse_args()
    factors = [int(f) for f in args.factors.split(',')]
    for mode in args.modes.split(','):
        options = dict(args.cfg_options or {}, **{'renderer.rasterize_mode': mode})
        cfg = scaled_config(args.config, args.steps, args.seed, f'{args.work_dir}/{mode}',
                            args.refine_stop_frac, options)
        trainer = DefaultTrainer.from_cfg(cfg)
        if mode in args.load_from:
            trainer.load_model(args.load_from[mode], resume=False)
        else:
            trainer.train()
        for f in factors:
            record = dict(config=args.config, steps=args.steps, seed=args.seed, mode=mode,
                          factor=f, downscale=train_downscale(cfg) * f,
                          options=args.cfg_options or {},
                          num_gaussians=trainer.model.num_gaussians,
                          **score_at_scale(trainer, f))
            emit_record(record, args.out)


if __name__ == '__main__':
    main()
