"""Radiance-field speed: compiled CPU path (Numba) against the torch reference.

Same model, same rays, same occupancy grid, in one process, interleaved in rounds:
- training: ``--steps`` steps (march + field + composite + loss + backward + Adam; the
  median is kept) on a batch of ``--rays`` random training rays -> rays per second;
- rendering: one whole view at the dataset's resolution (no gradients) -> seconds.
The scene is ``--data`` (a Blender-format folder; mic at ``--downscale 2`` gives 400x400)
or, when absent, the procedural scene. ``--checkpoint`` loads a trained field (its grid
sets the samples per ray); otherwise the field is trained ``--warmup`` steps first.

    python benchmarks/bench_nerf.py --data ../shared/data/mic --downscale 2
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]


def _cfg(args) -> Config:
    cfg = Config.fromfile(str(REPO / 'configs' / 'nerf' / ('blender.py' if args.data
                                                           else 'demo.py')))
    cfg.merge_from_dict({'device': 'cpu', 'custom_hooks': [], 'work_dir': args.work_dir,
                         'default_hooks.checkpoint': None, 'data.rays_per_step': args.rays,
                         'train_cfg.val_interval': 0})
    if args.data:
        cfg.merge_from_dict({'data.data_root': args.data, 'data.downscale': args.downscale})
    return cfg


def _set_backend(model, backend: str) -> None:
    model.backend = backend
    model.field.backend = backend


def _train_step(trainer, batch, seed: int) -> float:
    torch.manual_seed(seed)  # same jitter and backgrounds for both backends
    t = time.perf_counter()
    out = trainer.renderer(trainer.model(batch), batch)
    loss = trainer.model.get_loss_dict(out, batch)['loss']
    loss.backward()
    trainer.optimizer.update_model(step=0)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', help='Blender-format scene (default: procedural scene)')
    parser.add_argument('--downscale', type=int, default=2)
    parser.add_argument('--rays', type=int, default=4096)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', type=int, default=3,
                        help='training steps per backend and round (their median is kept)')
    parser.add_argument('--warmup', type=int, default=100, help='training steps before timing')
    parser.add_argument('--checkpoint', help='trained field checkpoint (skips --warmup)')
    parser.add_argument('--no-render', action='store_true')
    parser.add_argument('--work-dir', default='/tmp/bench_nerf')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    from nerfreg.engine import DefaultTrainer
    trainer = DefaultTrainer(_cfg(args))
    if args.checkpoint:
        trainer.load_model(args.checkpoint, resume=False)
    else:
        trainer.max_steps = args.warmup
        trainer.val_interval = 0
        trainer.train()
    model = trainer.model
    state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(trainer.optimizer.state_dict())
    batch = trainer.data.next_train_batch()
    view = next(iter(trainer.data.iter_split('test')))
    rows = {b: dict(train=[], render=[]) for b in ('cpu', 'torch')}
    samples = None
    for r in range(args.rounds):
        order = ('cpu', 'torch') if r % 2 == 0 else ('torch', 'cpu')
        for backend in order:
            model.load_state_dict(state)
            trainer.optimizer.load_state_dict(opt_state)
            _set_backend(model, backend)
            model.train()
            rows[backend]['train'].append(statistics.median(
                _train_step(trainer, batch, r) for _ in range(args.steps)))
            if not args.no_render:
                model.eval()
                with torch.no_grad():
                    t = time.perf_counter()
                    out = trainer.renderer(model(view), view)
                    rows[backend]['render'].append(time.perf_counter() - t)
                    samples = out['meta']['n_samples']
    torch.manual_seed(0)
    _set_backend(model, 'cpu')
    model.train()
    with torch.no_grad():
        spr = trainer.renderer(model(batch), batch)['meta']['n_samples'] / args.rays
    res = {}
    for backend, v in rows.items():
        train = statistics.median(v['train'])
        res[backend] = dict(train_s=train, rays_per_s=args.rays / train,
                            render_s=statistics.median(v['render']) if v['render'] else None)
    ratios = [t / c for t, c in zip(rows['torch']['train'], rows['cpu']['train'])]
    res['train_speedup_median_of_rounds'] = statistics.median(ratios)
    if rows['cpu']['render']:
        res['render_speedup_median_of_rounds'] = statistics.median(
            t / c for t, c in zip(rows['torch']['render'], rows['cpu']['render']))
    res.update(rays=args.rays, samples_per_train_ray=spr, view=f"{view['width']}x"
               f"{view['height']}", view_samples=samples, threads=torch.get_num_threads(),
               rounds=args.rounds)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
