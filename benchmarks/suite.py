"""Train one config per scene of the benchmark suite and score them in one table.

The suite is the scenes every default is judged on (never one scene alone): ``cup`` and
``helmet`` (COLMAP), ``fox`` (instant-ngp), ``mic`` (NeRF-synthetic) and the procedural
``demo`` scene. Each scene has its own config and overrides (``SCENES``; ``--config`` and
``--set`` / ``--scene-set`` change them). A run stops at ``--steps`` (the schedule is scaled
to it, as in ``fixed_steps.py``) or when the summed step time passes ``--seconds`` (start-up,
evaluation and first-run kernel compiles excluded, as in ``train_budget.py``), whichever
comes first. It scores the **val** views (held out of training; for tuning) unless
``--split test`` is given (report the test views once, after tuning). Prints one table
(scene, config, PSNR, SSIM, steps, Gaussians, train seconds, CPU model), appends one JSON
line per scene to ``--out`` and writes a small ``render | ground truth`` sheet of a few
scored views per scene to ``--sheets``.

    python benchmarks/suite.py --steps 3000 --out work_dirs/suite.jsonl --sheets docs/suite
    python benchmarks/suite.py --seconds 300 --scenes cup,helmet --split test
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixed_steps import emit_record, scale_schedule  # noqa: E402
from tune_on_val import parse_overrides  # noqa: E402

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.utils.compile_notice import CompileFreeTimer  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402
from nerfreg.visualization.images import fit_width, hconcat, to_uint8, vconcat  # noqa: E402

GS = 'configs/gaussian_splatting'
DATA = '../shared/data'
# scene -> (config, overrides, data folder that must exist or None)
SCENES: dict[str, tuple[str, dict, str | None]] = {
    'cup': (f'{GS}/colmap_short.py', {}, f'{DATA}/cup'),
    'helmet': (f'{GS}/colmap_short.py',
               {'data.dataset.data_root': f'{DATA}/helmet', 'data.dataset.downscale': 4},
               f'{DATA}/helmet'),
    'fox': (f'{GS}/ngp_short.py', {}, f'{DATA}/fox'),
    'mic': (f'{GS}/blender_short.py', {}, f'{DATA}/mic'),
    'demo': (f'{GS}/demo.py', {}, None),
}


def cpu_model() -> str:
    """The CPU's model name (``lscpu``), or what ``platform`` knows."""
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


class TimeBudgetHook(Hook):
    """Stops training once the summed step time (first-run kernel compiles excluded)
    reaches ``seconds`` (None: never)."""

    priority = 'LOWEST'

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.train_time = 0.0
        self._clock = CompileFreeTimer()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._clock.start()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.train_time += self._clock.elapsed()
        if self.seconds is not None and self.train_time >= self.seconds:
            runner.stop_training = True


def build_cfg(config: str, overrides: dict, steps: int | None, seed: int, work_dir: Path):
    """The config with ``overrides``, no periodic outputs and, with ``steps``, its
    schedule (``max_steps`` of the loop and of every param scheduler) scaled to it."""
    cfg = load_config(config)
    cfg.merge_from_dict({'train_cfg.val_interval': 0, 'custom_hooks': [], 'seed': seed,
                         'work_dir': str(work_dir), 'default_hooks.checkpoint': None,
                         'default_hooks.logger.interval': 250})
    if steps is not None:
        scale_schedule(cfg, steps)
    cfg.merge_from_dict(overrides)
    return cfg


@torch.no_grad()
def comparison_sheet(trainer, split: str, views: int, max_width: int) -> np.ndarray:
    """``render | ground truth`` rows of ``views`` evenly spaced views of ``split``."""
    model, data = trainer.model, trainer.data
    n = len(data.dataset.split(split))
    model.eval()
    rows = []
    for i in sorted({int(round(k)) for k in np.linspace(0, n - 1, min(views, n))}):
        batch = data.make_batch(split, torch.tensor([i]))
        results = trainer.renderer(model(batch), batch)
        target = (model.target_image(results, batch) if hasattr(model, 'target_image')
                  else batch['image'])
        name = batch['name'][0]
        rows.append(hconcat([to_uint8(results['rgb'][0]), to_uint8(target[0])],
                            [f'{name}: render', 'ground truth']))
    model.train()
    return fit_width(vconcat(rows), max_width)


def run_scene(scene: str, config: str, overrides: dict, args, cpu: str) -> dict:
    work_dir = args.work_dir / scene
    cfg = build_cfg(config, overrides, args.steps, args.seed, work_dir)
    trainer = DefaultTrainer.from_cfg(cfg)
    hook = TimeBudgetHook(args.seconds)
    trainer.register_hook(hook)
    trainer.train()
    metrics = trainer.test() if args.split == 'test' else trainer.validation()
    record = dict(
        scene=scene, config=config, overrides=overrides, split=args.split,
        views=len(trainer.data.dataset.split(args.split)), steps=trainer.global_step,
        budget_steps=args.steps, budget_seconds=args.seconds, seed=args.seed,
        gaussians=int(getattr(trainer.model, 'num_gaussians', 0)),
        psnr=round(float(metrics['psnr']), 4), ssim=round(float(metrics['ssim']), 4),
        train_seconds=round(hook.train_time, 3), cpu=cpu,
        threads=torch.get_num_threads(), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    if args.sheets is not None:
        args.sheets.mkdir(parents=True, exist_ok=True)
        sheet = comparison_sheet(trainer, args.split, args.sheet_views, args.sheet_width)
        path = args.sheets / f'{scene}_{args.split}.png'
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        record['sheet'] = str(path)
    if args.inspect is not None:  # every scored view, for looking at, not for committing
        args.inspect.mkdir(parents=True, exist_ok=True)
        n = len(trainer.data.dataset.split(args.split))
        sheet = comparison_sheet(trainer, args.split, min(n, args.inspect_views), 960)
        cv2.imwrite(str(args.inspect / f'{scene}_{args.split}_all.jpg'),
                    cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return record


def print_table(records: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title)
    for col in ('scene', 'config', 'split', 'PSNR', 'SSIM', 'steps', 'Gaussians',
                'train s', 'CPU'):
        table.add_column(col, justify='left' if col in ('scene', 'config', 'CPU') else 'right')
    for r in records:
        table.add_row(r['scene'], Path(r['config']).name, r['split'], f"{r['psnr']:.2f}",
                      f"{r['ssim']:.3f}", f"{r['steps']:,}", f"{r['gaussians']:,}",
                      f"{r['train_seconds']:.1f}", r['cpu'])
    Console(width=max(120, Console().width)).print(table)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--scenes', default=','.join(SCENES), help='comma-separated subset')
    ap.add_argument('--config', default=None, help='one config for every scene (else each '
                    "scene's own, see SCENES)")
    ap.add_argument('--steps', type=int, default=None, help='step budget (schedule scaled)')
    ap.add_argument('--seconds', type=float, default=None, help='training-time budget')
    ap.add_argument('--split', choices=('val', 'test'), default='val')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--set', nargs='*', default=[], help='overrides for every scene')
    ap.add_argument('--scene-set', action='append', default=[],
                    help='SCENE:key=value[,key=value...] overrides for one scene')
    ap.add_argument('--out', type=Path, default=None, help='JSON lines appended here')
    ap.add_argument('--sheets', type=Path, default=None, help='folder for comparison PNGs')
    ap.add_argument('--sheet-views', type=int, default=3)
    ap.add_argument('--sheet-width', type=int, default=400)
    ap.add_argument('--inspect', type=Path, default=None,
                    help='folder for a JPEG of up to --inspect-views scored views per scene '
                         '(to check every view for floaters; not for docs/)')
    ap.add_argument('--inspect-views', type=int, default=24)
    ap.add_argument('--work-dir', type=Path, default=Path('work_dirs/suite'))
    args = ap.parse_args(argv)
    if args.steps is None and args.seconds is None:
        ap.error('give a budget: --steps N and/or --seconds S')
    per_scene: dict[str, dict] = {}
    for spec in args.scene_set:
        name, _, rest = spec.partition(':')
        if name not in SCENES:
            ap.error(f'--scene-set {spec!r}: unknown scene {name!r}; scenes: {sorted(SCENES)}')
        per_scene.setdefault(name, {}).update(parse_overrides(rest.split(',')))
    scenes = [s for s in args.scenes.split(',') if s]
    unknown = [s for s in scenes if s not in SCENES]
    if unknown:
        ap.error(f'unknown scenes {unknown}; the suite has {sorted(SCENES)}')
    cpu = cpu_model()
    records = []
    for scene in scenes:
        config, overrides, needs = SCENES[scene]
        if needs is not None and not Path(needs).is_dir():
            print(f'suite: skipping {scene}: {needs} not found (run from the repo root, '
                  'with the shared data beside it)', flush=True)
            continue
        over = {**overrides, **parse_overrides(args.set), **per_scene.get(scene, {})}
        record = run_scene(scene, args.config or config, over, args, cpu)
        emit_record(record, args.out)
        records.append(record)
    budget = ' and '.join(x for x in (args.steps and f'{args.steps} steps',
                                      args.seconds and f'{args.seconds:g} s') if x)
    print_table(records, f'suite: {args.split} views, budget {budget}')
    return records


if __name__ == '__main__':
    main()
