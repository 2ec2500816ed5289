#!/usr/bin/env python
"""Where one Gaussian Splatting training step spends its time, and steps/s of two commits.

Scene: ``configs/gaussian_splatting/colmap_short.py`` on cup (downscale 4, 200x150),
started at step ``--start-step`` (SH degree 3, densification active, ``cap_max`` = N) from
``--n`` Gaussians (the SfM points, repeated with a small jitter up to N), warmed up for
``--warmup`` steps.

``breakdown`` (default) times, per step, in one process and for each backend
(``cpu`` = Numba rasterizer, ``torch`` = pure PyTorch reference): data, hooks, model forward
+ projection + SH (render forward minus the rasterizer), rasterizer forward and backward
(found with autograd hooks on its inputs and outputs, so it works for both backends), loss
forward and backward (the gradient of the loss w.r.t. the rendered image), the remaining
backward (projection, SH, activations), NaN guard, Adam, strategy. ``whole`` is the median
of plain trainer steps (data + hooks + ``train_step``) interleaved with the instrumented ones.

``compare`` runs ``steps`` mode (plain trainer steps only) in fresh processes with
``PYTHONPATH`` pointing at each code tree given, interleaved round by round, and reports
the steps/s ratio of every round:

    python benchmarks/bench_train_step.py                          # breakdown, cpu + torch
    python benchmarks/bench_train_step.py --backends cpu --steps 30
    git archive 38fd386 | tar -x -C /tmp/cpustep/base
    python benchmarks/bench_train_step.py compare --code /tmp/cpustep/base . --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = 'configs/gaussian_splatting/colmap_short.py'
PARTS = ('data', 'hooks', 'projection', 'raster_fwd', 'loss_fwd', 'loss_bwd', 'raster_bwd',
         'bwd_rest', 'nan_check', 'optimizer', 'strategy')


def build_trainer(backend: str, n: int, start_step: int, data_root: str, work_dir: str):
    """A trainer on cup ds4 with ``n`` Gaussians at ``start_step``."""
    import torch
    from mmengine.config import Config

    import nerfreg
    from nerfreg.engine import DefaultTrainer

    # the config of the code tree being measured (configs change with the code)
    code = Path(nerfreg.__file__).resolve().parents[1]
    cfg = Config.fromfile(str(code / CONFIG))
    cfg.work_dir = work_dir
    cfg.data.data_root = data_root
    cfg.renderer.backend = backend
    cfg.train_cfg.val_interval = 0
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**9)
    cfg.custom_hooks = []
    cfg.optimizer.strategy.cap_max = n
    cfg.device = 'cpu'
    trainer = DefaultTrainer.from_cfg(cfg)
    model = trainer.model
    scene = trainer.data.dataset
    g = torch.Generator().manual_seed(0)
    pts = torch.as_tensor(scene.points, dtype=torch.float32)
    rgb = torch.as_tensor(scene.points_rgb)
    rgb = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
    idx = torch.randint(0, len(pts), (n,), generator=g)
    idx[:len(pts)] = torch.arange(min(n, len(pts)))
    spread = pts.std(0).mean() * 0.01
    jitter = torch.randn(n, 3, generator=g) * spread
    jitter[:len(pts)] = 0
    model.init_from_points(pts[idx] + jitter, rgb[idx])
    model.set_step(start_step)
    trainer.optimizer = trainer.build_optimizer(cfg.optimizer)
    trainer.param_schedulers = trainer.build_param_schedulers(cfg.get('param_scheduler'))
    trainer.global_step = trainer._iter = start_step
    try:  # the trainer's one-line change: the one-reduction NaN/Inf check, where it exists
        from nerfreg.optim import non_finite_gradients
        trainer._non_finite_gradients = lambda: non_finite_gradients(
            trainer.model.named_parameters())
    except ImportError:
        pass
    trainer.call_hook('before_run')
    trainer.call_hook('before_train')
    trainer.call_hook('before_train_epoch')
    return trainer


def plain_step(trainer, cpu: list | None = None) -> float:
    """One step exactly as ``train_loop`` runs it; wall seconds (process CPU seconds, all
    threads, appended to ``cpu``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    trainer._iter = trainer.global_step
    batch = trainer.data.next_train_batch()
    trainer.call_hook('before_train_iter', batch_idx=trainer._iter, data_batch=batch)
    outputs = trainer.train_step(batch)
    trainer.global_step = trainer._iter + 1
    trainer.call_hook('after_train_iter', batch_idx=trainer._iter, data_batch=batch,
                      outputs=outputs)
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


class CallTimer:
    """Times the forward of a wrapped differentiable function and its backward (first
    gradient reaching an output to last gradient leaving one of its tensor inputs)."""

    def __init__(self) -> None:
        self.fwd = 0.0
        self.bwd_start: float | None = None
        self.bwd_end = 0.0
        self.handles: list = []  # hooks on leaves (parameters) outlive the step: removed

    def reset(self) -> None:
        self.fwd, self.bwd_start, self.bwd_end = 0.0, None, 0.0
        for h in self.handles:
            h.remove()
        self.handles = []

    @property
    def bwd(self) -> float:
        return 0.0 if self.bwd_start is None else self.bwd_end - self.bwd_start

    def _start(self, grad):
        if self.bwd_start is None:
            self.bwd_start = time.perf_counter()

    def _end(self, grad):
        self.bwd_end = max(self.bwd_end, time.perf_counter())

    def wrap(self, fn, end_inputs: tuple[int, ...] | None = None):
        """``end_inputs``: positions of the inputs whose gradient ends the backward (None:
        every tensor input, positional or keyword)."""
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.fwd += time.perf_counter() - t0
            flat = [t for o in out for t in (o.values() if isinstance(o, dict) else [o])]
            for t in flat:
                if getattr(t, 'requires_grad', False):
                    t.register_hook(self._start)
            ends = (list(args) + list(kwargs.values()) if end_inputs is None
                    else [args[i] for i in end_inputs])
            for t in ends:
                if getattr(t, 'requires_grad', False):
                    self.handles.append(t.register_hook(self._end))
            return out
        return timed


class RasterTimer(CallTimer):
    """The pixel rasterizer of both backends (``rasterize_to_pixels``); ``whole`` times the
    full ``rasterization()`` call (projection, SH, binning, compositing: the unit the peer
    benchmarks time) the same way."""

    def __init__(self) -> None:
        import importlib

        import nerfreg.ops
        super().__init__()
        R = importlib.import_module('nerfreg.ops.rasterization')
        self.whole = CallTimer()
        orig_loader = R.load_cpu_rasterizer
        orig_torch = R.rasterize_to_pixels_torch
        # the backward ends when the colours' gradient is complete: the hooks of means2d and
        # conics would wait for the projection node, which autograd runs after the SH one
        R.load_cpu_rasterizer = lambda: self.wrap(orig_loader(), (2,))
        R.rasterize_to_pixels_torch = self.wrap(orig_torch, (2,))
        nerfreg.ops.rasterization = self.whole.wrap(R.rasterization)

    def reset(self) -> None:
        super().reset()
        self.whole.reset()


def instrumented_step(trainer, timer: RasterTimer) -> dict[str, float]:
    """One training step cut into ``PARTS`` (seconds); same work as ``train_step``."""
    import torch
    ms: dict[str, float] = {}
    clock = time.perf_counter
    model, opt = trainer.model, trainer.optimizer
    trainer._iter = trainer.global_step
    t = clock()
    batch = trainer.data.next_train_batch()
    ms['data'] = clock() - t
    t = clock()
    trainer.call_hook('before_train_iter', batch_idx=trainer._iter, data_batch=batch)
    hooks = clock() - t
    timer.reset()
    t = clock()
    model.train()
    if 'step' not in batch:
        batch = dict(batch, step=trainer.global_step)
    render_results = trainer.renderer(model(batch), batch)
    ms['projection'] = clock() - t - timer.fwd
    ms['raster_fwd'] = timer.fwd
    t = clock()
    loss_dict = model.get_loss_dict(render_results, batch)
    loss = loss_dict['loss']
    finite = bool(torch.isfinite(loss))
    ms['loss_fwd'] = clock() - t
    t = clock()
    rgb = render_results['rgb']
    (g_rgb,) = torch.autograd.grad(loss, [rgb])
    ms['loss_bwd'] = clock() - t
    t = clock()
    rgb.backward(g_rgb)
    ms['raster_bwd'] = timer.bwd
    ms['bwd_rest'] = clock() - t - timer.bwd
    whole_fwd, whole_bwd = timer.whole.fwd, timer.whole.bwd
    t = clock()
    try:  # the one-reduction check (trainer one-line change), where it exists
        from nerfreg.optim import non_finite_gradients
        finite = finite and not non_finite_gradients(model.named_parameters())
    except ImportError:
        finite = finite and not trainer._non_finite_gradients()
    ms['nan_check'] = clock() - t
    assert finite, 'non-finite loss or gradient in the benchmark step'
    info = model.get_optimizer_dict(loss_dict, render_results, batch, trainer.global_step)
    t = clock()
    opt.step()
    opt.zero_grad(set_to_none=True)
    ms['optimizer'] = clock() - t
    t = clock()
    step = info.pop('step')
    info.setdefault('lr', opt.get_lr())
    opt.strategy.step_post_backward(model.params, opt.optimizer, opt.strategy_state, step, info)
    ms['strategy'] = clock() - t
    trainer.global_step = trainer._iter + 1
    t = clock()
    trainer.call_hook('after_train_iter', batch_idx=trainer._iter, data_batch=batch,
                      outputs={k: v.detach() for k, v in loss_dict.items()})
    ms['hooks'] = hooks + clock() - t
    ms['rasterization_fwd'], ms['rasterization_bwd'] = whole_fwd, whole_bwd
    return ms


def _setup(args) -> None:
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
    # Numba's OpenMP pool sets the process's OpenMP thread count (which torch reads) to
    # its own size at its first parallel kernel: both are sized before either starts
    os.environ['NUMBA_NUM_THREADS'] = os.environ['OMP_NUM_THREADS'] = str(args.threads)
    import torch
    torch.set_num_threads(args.threads)


def run_breakdown(args) -> dict:
    _setup(args)
    import torch

    import nerfreg
    out = dict(code=str(Path(nerfreg.__file__).resolve().parents[1]), N=args.n,
               threads=args.threads, steps=args.steps, backends={})
    timer = RasterTimer()
    with tempfile.TemporaryDirectory() as work:
        for backend in args.backends.split(','):
            torch.manual_seed(0)
            trainer = build_trainer(backend, args.n, args.start_step, args.data_root,
                                    os.path.join(work, backend))
            warm = args.warmup if backend == 'cpu' else min(args.warmup, 2)
            for _ in range(warm):
                plain_step(trainer)
            n_steps = args.steps if backend == 'cpu' else max(3, args.steps // 10)
            parts: dict[str, list[float]] = {
                k: [] for k in PARTS + ('rasterization_fwd', 'rasterization_bwd')}
            whole, whole_cpu = [], []
            for _ in range(n_steps):
                for k, v in instrumented_step(trainer, timer).items():
                    parts[k].append(v)
                whole.append(plain_step(trainer, whole_cpu))
            med = {k: statistics.median(v) * 1e3 for k, v in parts.items()}
            whole_r = med.pop('rasterization_fwd') + med.pop('rasterization_bwd')
            total = sum(med.values())
            raster = med['raster_fwd'] + med['raster_bwd']
            whole_ms = statistics.median(whole) * 1e3
            out['backends'][backend] = dict(
                ms={k: round(v, 2) for k, v in med.items()},
                fraction={k: round(v / total, 3) for k, v in med.items()},
                sum_ms=round(total, 2), whole_step_ms=round(whole_ms, 2),
                whole_step_cpu_ms=round(statistics.median(whole_cpu) * 1e3, 2),
                raster_fwdbwd_ms=round(raster, 2),
                whole_over_raster=round(whole_ms / raster, 2),
                rasterization_fwdbwd_ms=round(whole_r, 2),
                whole_over_rasterization=round(whole_ms / whole_r, 2),
                steps_per_s=round(1e3 / whole_ms, 2),
                gaussians=trainer.model.num_gaussians)
    return out


def run_steps(args) -> dict:
    _setup(args)
    import torch

    import nerfreg
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        trainer = build_trainer('cpu', args.n, args.start_step, args.data_root, work)
        for _ in range(args.warmup):
            plain_step(trainer)
        cpu: list[float] = []
        times = [plain_step(trainer, cpu) for _ in range(args.steps)]
    med = statistics.median(times)
    return dict(code=str(Path(nerfreg.__file__).resolve().parents[1]), N=args.n,
                steps=args.steps, median_step_ms=round(med * 1e3, 2),
                steps_per_s=round(1 / med, 2), mean_steps_per_s=round(len(times) / sum(times), 2),
                median_step_cpu_ms=round(statistics.median(cpu) * 1e3, 2),
                gaussians=trainer.model.num_gaussians)


def run_compare(args) -> dict:
    rounds = []
    for r in range(args.rounds):
        codes = args.code_trees if r % 2 == 0 else args.code_trees[::-1]
        res = {}
        for code in codes:
            code = str(Path(code).resolve())
            env = dict(os.environ, PYTHONPATH=code)
            cmd = [sys.executable, __file__, 'steps', '--code', code, '--n', str(args.n),
                   '--omp-wait-policy', args.omp_wait_policy,
                   '--steps', str(args.steps), '--warmup', str(args.warmup),
                   '--start-step', str(args.start_step), '--threads', str(args.threads),
                   '--data-root', args.data_root]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code)
            if proc.returncode != 0:
                raise RuntimeError(f'{code}: {proc.stderr[-3000:]}')
            res[code] = json.loads(proc.stdout.strip().splitlines()[-1])
        first, last = args.code_trees[0], args.code_trees[-1]
        sps = {c: res[str(Path(c).resolve())]['steps_per_s'] for c in (first, last)}
        cpu = {c: res[str(Path(c).resolve())]['median_step_cpu_ms'] for c in (first, last)}
        rounds.append(dict(results=res, ratio_last_over_first=round(sps[last] / sps[first], 2),
                           cpu_ratio_first_over_last=round(cpu[first] / cpu[last], 2)))
        print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    ratios = [r['ratio_last_over_first'] for r in rounds]
    cpu_ratios = [r['cpu_ratio_first_over_last'] for r in rounds]
    return dict(rounds=rounds, ratios=ratios, median_ratio=statistics.median(ratios),
                cpu_ratios=cpu_ratios, median_cpu_ratio=statistics.median(cpu_ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', nargs='?', default='breakdown',
                        choices=('breakdown', 'steps', 'compare'))
    parser.add_argument('--n', type=int, default=40_000)
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--start-step', type=int, default=1000)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--backends', default='cpu,torch')
    parser.add_argument('--data-root', default=str(REPO.parent / 'shared' / 'data' / 'cup'))
    parser.add_argument('--code', default=None, help='code tree to import nerfreg from')
    parser.add_argument('--code-trees', nargs='+', default=None,
                        help='compare: code trees, first = baseline')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--omp-wait-policy', default='default',
                        choices=('default', 'passive', 'active'),
                        help="OpenMP pool threads between kernels: 'default' = libgomp's "
                             "(spin a while, then sleep; what tools/train.py gets), 'passive' "
                             '(sleep at once: fairer to other jobs on a shared machine)')
    args = parser.parse_args()
    if args.omp_wait_policy != 'default':  # read when the OpenMP runtime starts
        os.environ['OMP_WAIT_POLICY'] = args.omp_wait_policy.upper()
    else:
        os.environ.pop('OMP_WAIT_POLICY', None)
    args.data_root = str(Path(args.data_root).resolve())
    if args.mode == 'compare':
        if not args.code_trees or len(args.code_trees) < 2:
            parser.error('compare needs --code-trees BASE NEW')
        result = run_compare(args)
    elif args.mode == 'steps':
        result = run_steps(args)
    else:
        result = run_breakdown(args)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
