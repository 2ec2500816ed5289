#!/usr/bin/env python
"""Forward and forward+backward time and peak memory of the rasterization backends on CPU.

Backends: ours ``cpu`` (Numba kernel), ours ``torch`` (pure PyTorch) and the peer, gsplat's
pure-PyTorch reference pipeline (``../shared/bench/gsplat_ref_cpu.py``, run with its own
virtual environment's Python when that exists). Every measurement runs in a fresh process
(so its peak RSS is its own); the backends of one size are interleaved round by round and
every ratio is taken within one round, because the machine is shared and timings drift.

The scene replicates ``make_scene`` of the peer script: N Gaussians uniform in a unit cube
2.5 in front of an identity camera, random wxyz quaternions, log-scales of U(0.01, 0.05),
opacity logits of U(0.05, 0.95), SH degree 3 colours, focal 1.2 * W, L1 loss against a
random target, ``torch.set_num_threads(threads)``. Activations are inside the timed region,
as in the peer.

    python benchmarks/bench_rasterizer.py                     # 3 sizes, table + JSON
    python benchmarks/bench_rasterizer.py --sizes 10000x128 --rounds 1 --backends cpu,peer
    python benchmarks/bench_rasterizer.py --startup           # Numba compile / cache times
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PEER_SCRIPT = REPO.parent / 'shared' / 'bench' / 'gsplat_ref_cpu.py'
DEFAULT_PEER_PYTHON = Path('/tmp/venv-peer/bin/python')
SIZES = '10000x128,50000x256,100000x400'


def make_scene(n: int, width: int, height: int, seed: int = 0, fscale: float = 1.2):
    """The peer's scene (same generator calls in the same order, so the same numbers)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) - 0.5
    means[:, 2] += 2.5
    quats = torch.randn(n, 4, generator=g)
    log_scales = torch.log(torch.rand(n, 3, generator=g) * 0.04 + 0.01)
    logit_op = torch.logit(torch.rand(n, generator=g) * 0.9 + 0.05)
    feats = torch.randn(n, 16, 3, generator=g) * 0.1
    feats[:, 0] = (torch.rand(n, 3, generator=g) - 0.5) / 0.28209479177387814
    params = {k: v.requires_grad_(True) for k, v in dict(
        means=means, quats=quats, log_scales=log_scales, logit_op=logit_op,
        feats=feats).items()}
    f = fscale * width
    Ks = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])[None]
    viewmats = torch.eye(4)[None]
    target = torch.rand(1, height, width, 3, generator=g)
    return params, viewmats, Ks, target


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fused_cpu_rasterization(means, quats, scales, opacities, sh, viewmats, Ks, width, height,
                            sh_degree):
    """``rasterization(..., backend='cpu')`` for 'RGB' with the Numba projection and SH of
    ``nerfreg.ops.projection_cpu`` instead of the torch ones (same outputs)."""
    from nerfreg.ops.projection_cpu import project_gaussians_cpu, sh_colors_cpu
    from nerfreg.ops.rasterize_cpu import rasterize_to_pixels_cpu
    radii, means2d, depths, conics = project_gaussians_cpu(means, quats, scales, viewmats, Ks,
                                                           width, height)
    colors = sh_colors_cpu(sh_degree, means, sh, viewmats)
    opac = opacities.unsqueeze(0).expand(viewmats.shape[0], -1)
    img, alpha = rasterize_to_pixels_cpu(means2d, conics, colors, opac, depths, radii, width,
                                         height, 16, None)
    return img, alpha, dict(radii=radii, means2d=means2d)


def worker(backend: str, n: int, res: int, reps: int, threads: int) -> dict:
    """Time one of our backends in this process (1 warm-up, then ``reps`` passes)."""
    sys.path.insert(0, str(REPO))
    import torch

    from nerfreg.ops import rasterization
    if backend == 'cpu-fused':
        rasterization = fused_cpu_rasterization  # noqa: F811
    torch.set_num_threads(threads)
    params, viewmats, Ks, target = make_scene(n, res, res)
    rss_setup = _rss_mb()
    fwd, bwd, total, kernel = [], [], [], []
    n_vis = 0
    stats: dict = {}
    if backend.startswith('cpu'):
        from nerfreg.ops.rasterize_cpu import LAST_FORWARD_STATS as stats
    for r in range(reps + 1):
        for p in params.values():
            p.grad = None
        t0 = time.perf_counter()
        kw = {} if backend == 'cpu-fused' else dict(backend=backend)
        img, _, meta = rasterization(
            params['means'], params['quats'], torch.exp(params['log_scales']),
            torch.sigmoid(params['logit_op']), params['feats'], viewmats, Ks, res, res,
            sh_degree=3, **kw)
        loss = (img - target).abs().mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if r > 0:
            kernel.append((stats.get('kernel_s', 0.0), stats.get('kernel_cpu_s', 0.0)))
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            total.append(t2 - t0)
        else:
            n_vis = int((meta['radii'] > 0).sum())
            finite = all(bool(torch.isfinite(p.grad).all()) for p in params.values())
    ms = {k: round(statistics.median(v) * 1000, 1)
          for k, v in dict(fwd=fwd, bwd=bwd, fwdbwd=total).items()}
    arith = {}
    if stats and kernel:
        # the forward kernel's arithmetic: alpha evaluations per pixel, CPU ns per evaluation
        # (process CPU time of the kernel, all threads: robust to a loaded machine)
        k_s = statistics.median(k[0] for k in kernel)
        k_cpu = statistics.median(k[1] for k in kernel)
        n_eval = max(stats['alpha_evals'], 1)
        arith = dict(isects=stats['isects'], alpha_evals=stats['alpha_evals'],
                     evals_per_pixel=round(stats['alpha_evals'] / stats['pixels'], 1),
                     fwd_kernel_ms=round(k_s * 1e3, 2), fwd_kernel_cpu_ms=round(k_cpu * 1e3, 2),
                     cpu_ns_per_eval=round(k_cpu * 1e9 / n_eval, 2))
    return dict(impl=f'nerfreg-{backend}', N=n, res=res, reps=reps, threads=threads, ms=ms,
                arithmetic=arith,
                peak_rss_mb=round(_rss_mb(), 1), rss_after_setup_mb=round(rss_setup, 1),
                visible_gaussians=n_vis, grads_finite=finite, loss=round(float(loss.detach()), 5))


def _run_json(cmd: list[str], env: dict | None = None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f'{" ".join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}')
    return json.loads(lines[-1])


def run_backend(backend: str, n: int, res: int, reps: int, threads: int,
                peer_python: Path, peer_script: Path, env: dict) -> dict:
    if backend == 'peer':
        return _run_json([str(peer_python), str(peer_script), '--n', str(n), '--res', str(res),
                          '--reps', str(reps), '--threads', str(threads)], env)
    return _run_json([sys.executable, __file__, '--worker', backend, '--n', str(n),
                      '--res', str(res), '--reps', str(reps), '--threads', str(threads)], env)


_PEER_RENDER = """
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import gsplat_ref_cpu as P
torch.set_num_threads(int(sys.argv[5]))
n, res = int(sys.argv[2]), int(sys.argv[3])
params, viewmat, K, _ = P.make_scene(n, res, res)
with torch.no_grad():
    img, alpha = P.render(params, viewmat, K, res, res)[:2]
np.save(sys.argv[4], torch.cat([img, alpha], -1).numpy())
"""


def check_images(n: int, res: int, threads: int, peer_python: Path, peer_script: Path,
                 env: dict, tol: float = 1e-4) -> dict:
    """Render the scene once with the peer and with ours (``cpu`` and ``cpu-fused``) and
    require the same image and alpha before anything is timed: mean absolute difference
    <= ``tol / 10`` and at most 1% of the values off by more than ``tol``. (A few pixels may
    differ by more: a Gaussian whose float32 transmittance lands on the other side of the
    1e-4 stop, or a depth tie, in one implementation but not the other.)"""
    import numpy as np
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'peer.npy'
        proc = subprocess.run([str(peer_python), '-c', _PEER_RENDER, str(peer_script.parent),
                               str(n), str(res), str(out), str(threads)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f'peer render failed:\n{proc.stderr[-2000:]}')
        peer = np.load(out)
    sys.path.insert(0, str(REPO))
    from nerfreg.ops import rasterization
    params, viewmats, Ks, _ = make_scene(n, res, res)
    diffs = {}
    with torch.no_grad():
        for name, fn in (('cpu', None), ('cpu-fused', fused_cpu_rasterization)):
            args = (params['means'], params['quats'], torch.exp(params['log_scales']),
                    torch.sigmoid(params['logit_op']), params['feats'], viewmats, Ks, res, res)
            img, alpha, _ = (fn(*args, sh_degree=3) if fn else
                             rasterization(*args, sh_degree=3, backend='cpu'))
            err = np.abs(torch.cat([img, alpha], -1).numpy() - peer)
            diffs[name] = dict(mean=float(err.mean()), max=float(err.max()),
                               frac_over_tol=float((err > tol).mean()))
    bad = {k: v for k, v in diffs.items() if v['mean'] > 0.1 * tol or v['frac_over_tol'] > 0.01}
    if bad:
        raise RuntimeError(f'{n} @ {res}x{res}: our image differs from the peer\'s ({bad}; '
                           f'tolerance {tol}); the timings would not compare the same work')
    return dict(abs_diff=diffs, tol=tol)


def startup_times(threads: int) -> dict:
    """Seconds to the first forward+backward (10k @ 128) in a fresh process: with an empty
    Numba cache (compilation) and again with the cache it left (cached start)."""
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ('first_run_compile_s', 'cached_start_s'):
            t0 = time.perf_counter()
            out = _run_json([sys.executable, __file__, '--worker', 'cpu', '--n', '10000',
                             '--res', '128', '--reps', '0', '--threads', str(threads),
                             '--first-call'], env=env)
            res[label] = out['first_call_s']
            res[label[:-2] + '_process_s'] = round(time.perf_counter() - t0, 2)
    return res


def first_call(threads: int) -> dict:
    """Import + first forward+backward of the cpu backend (what --startup measures)."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(REPO))
    import torch

    from nerfreg.ops import rasterization
    torch.set_num_threads(threads)
    params, viewmats, Ks, target = make_scene(10000, 128, 128)
    img, _, _ = rasterization(params['means'], params['quats'], torch.exp(params['log_scales']),
                              torch.sigmoid(params['logit_op']), params['feats'], viewmats, Ks,
                              128, 128, sh_degree=3, backend='cpu')
    (img - target).abs().mean().backward()
    return dict(first_call_s=round(time.perf_counter() - t0, 2))


def kernel_worker(n: int, res: int, reps: int) -> dict:
    """CPU time of the compositing kernels alone (forward, backward), one thread, on the
    peer's scene, with the ``nerfreg`` found on ``sys.path`` (``--kernels`` sets
    PYTHONPATH to each code tree). Counts come from this tree's forward counter."""
    import numba
    import numpy as np
    import torch

    from nerfreg.ops import composite_cpu as K
    from nerfreg.ops import rasterize_cpu as R
    from nerfreg.ops.projection_cpu import project_gaussians_cpu, sh_colors_cpu
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    params, viewmats, Ks, _ = make_scene(n, res, res)
    with torch.no_grad():
        radii, means2d, depths, conics = project_gaussians_cpu(
            params['means'], params['quats'], torch.exp(params['log_scales']), viewmats, Ks,
            res, res)
        colors = sh_colors_cpu(3, params['means'], params['feats'], viewmats)[0].numpy()
    f32 = np.float32
    consts = np.array([R.ALPHA_MIN, R.ALPHA_MAX, R.T_MIN, 0.5, 16], dtype=f32)
    binning = R._Binning(means2d[0].numpy(), conics[0].numpy(), colors,
                         torch.sigmoid(params['logit_op']).detach().numpy(), depths[0].numpy(),
                         radii[0].float().numpy(), consts, 1, n, res, res, 16)
    b = binning
    grid = (b.tile_off, b.isect_gid, b.rec, np.zeros((0, 3), f32), consts, 1, res, res,
            b.tiles_x, b.tiles_y, b.tile_order)
    rng = np.random.default_rng(0)
    g_color = rng.standard_normal((1, res, res, 3)).astype(f32) * 1e-3
    g_alpha = rng.standard_normal((1, res, res)).astype(f32) * 1e-3
    out_t, out_last = np.empty((1, res, res)), np.empty((1, res, res), dtype=np.int64)
    evals = np.zeros(b.tile_off.shape[0] - 1, dtype=np.int64)
    gi = np.empty((b.n_isects, 9), dtype=f32)
    if hasattr(R, 'compositing_kernels'):  # the kernels this tree's rasterizer would pick
        k_fwd, k_bwd = R.compositing_kernels(np.dtype(f32), 16, 3)
    else:
        k_fwd, k_bwd = K.composite_forward, K.composite_backward
    fwd, bwd = [], []
    for r in range(reps + 1):
        c0 = time.process_time()
        k_fwd(*grid, np.empty((1, res, res, 3), f32), np.empty((1, res, res), f32), out_t,
              out_last, evals)
        c1 = time.process_time()
        k_bwd(*grid, out_t, out_last, g_color, g_alpha, gi,
              np.empty((b.tile_off.shape[0] - 1, 3), f32))
        c2 = time.process_time()
        if r > 0:
            fwd.append(c1 - c0)
            bwd.append(c2 - c1)
    n_eval = int(evals.sum())
    f_ms, b_ms = statistics.median(fwd) * 1e3, statistics.median(bwd) * 1e3
    return dict(N=n, res=res, isects=b.n_isects, alpha_evals=n_eval,
                evals_per_pixel=round(n_eval / res ** 2, 1), fwd_cpu_ms=round(f_ms, 2),
                bwd_cpu_ms=round(b_ms, 2), fwd_ns_per_eval=round(f_ms * 1e6 / n_eval, 2),
                bwd_ns_per_eval=round(b_ms * 1e6 / n_eval, 2))


def compare_kernels(trees: list[str], sizes: str, reps: int, rounds: int, env: dict) -> list:
    """``kernel_worker`` of every code tree in fresh processes, interleaved round by round
    (the first tree alternates); ratios first tree / each tree within a round."""
    out = []
    for size in sizes.split(','):
        n, res = (int(v) for v in size.lower().split('x'))
        per_round = []
        for rnd in range(rounds):
            order = trees if rnd % 2 == 0 else trees[::-1]
            got = {}
            for tree in order:
                tenv = dict(env, PYTHONPATH=str(Path(tree).resolve()))
                got[tree] = _run_json([sys.executable, __file__, '--kernel-worker', '--n', str(n),
                                       '--res', str(res), '--reps', str(reps)], tenv)
                print(f'# {n} @ {res} round {rnd} {tree}: {got[tree]}', file=sys.stderr,
                      flush=True)
            base = got[trees[0]]
            per_round.append({t: dict(v, fwdbwd_speedup=round(
                (base['fwd_cpu_ms'] + base['bwd_cpu_ms']) / (v['fwd_cpu_ms'] + v['bwd_cpu_ms']),
                2)) for t, v in got.items()})
        out.append(dict(N=n, res=res, rounds=per_round))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', default=SIZES, help='comma-separated NxRES list')
    ap.add_argument('--backends', default='cpu,peer,cpu-fused,torch',
                    help='of cpu, cpu-fused (Numba projection + SH too), torch, peer')
    ap.add_argument('--omp-wait-policy', default='passive',
                    choices=['passive', 'active', 'inherit'],
                    help='OMP_WAIT_POLICY of every measured process (the same for all); passive '
                         'avoids spinning OpenMP threads on a machine shared with other jobs')
    ap.add_argument('--reps', type=int, default=5, help='timed passes per process (median)')
    ap.add_argument('--rounds', type=int, default=3, help='interleaved rounds per size')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--peer-python', type=Path, default=DEFAULT_PEER_PYTHON)
    ap.add_argument('--peer-script', type=Path, default=DEFAULT_PEER_SCRIPT)
    ap.add_argument('--torch-max-n', type=int, default=10 ** 9,
                    help='skip the torch backend above this many Gaussians')
    ap.add_argument('--json', type=Path, default=None, help='also write the results here')
    ap.add_argument('--startup', action='store_true', help='measure compile / cached start')
    ap.add_argument('--kernels', nargs='+', default=None, metavar='TREE',
                    help='compare the compositing kernels of these code trees (first = base): '
                         'single-thread CPU time and ns per alpha evaluation')
    ap.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--kernel-worker', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--first-call', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--n', type=int, default=10000, help=argparse.SUPPRESS)
    ap.add_argument('--res', type=int, default=128, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.kernel_worker:
        print(json.dumps(kernel_worker(a.n, a.res, a.reps)))
        return
    if a.worker:
        out = first_call(a.threads) if a.first_call else \
            worker(a.worker, a.n, a.res, a.reps, a.threads)
        print(json.dumps(out))
        return
    if a.startup:
        print(json.dumps(dict(startup=startup_times(a.threads))))
        return

    env = dict(os.environ)
    if a.omp_wait_policy != 'inherit':
        env['OMP_WAIT_POLICY'] = a.omp_wait_policy.upper()
    if a.kernels:
        print(json.dumps(dict(kernels=compare_kernels(a.kernels, a.sizes, a.reps, a.rounds, env))))
        return
    backends = [b for b in a.backends.split(',') if b]
    if 'peer' in backends and not (a.peer_python.exists() and a.peer_script.exists()):
        print(f'# peer skipped: {a.peer_python} or {a.peer_script} is missing '
              '(see ../shared/bench/README.md for the venv)', file=sys.stderr)
        backends.remove('peer')
    results = []
    for size in a.sizes.split(','):
        n, res = (int(v) for v in size.lower().split('x'))
        runs: dict[str, list[dict]] = {b: [] for b in backends}
        agree = None
        if 'peer' in backends:
            agree = check_images(n, res, a.threads, a.peer_python, a.peer_script, env)
            print(f'# {n} @ {res}x{res}: images agree with the peer ({agree})', file=sys.stderr,
                  flush=True)
        for rnd in range(a.rounds):
            order = backends if rnd % 2 == 0 else backends[::-1]  # alternate who goes first
            for b in order:
                if b == 'torch' and n > a.torch_max_n:
                    continue
                out = run_backend(b, n, res, a.reps, a.threads, a.peer_python, a.peer_script,
                                  env)
                runs[b].append(out)
                print(f'# {n} @ {res}x{res} round {rnd}: {b:5s} fwd {out["ms"]["fwd"]:8.1f} ms'
                      f'  fwd+bwd {out["ms"]["fwdbwd"]:8.1f} ms  peak {out["peak_rss_mb"]} MB',
                      file=sys.stderr, flush=True)
        entry = dict(N=n, res=res, reps=a.reps, rounds=a.rounds, threads=a.threads,
                     omp_wait_policy=a.omp_wait_policy, images_vs_peer=agree, backends={})
        for b, outs in runs.items():
            if not outs:
                continue
            entry['backends'][b] = dict(
                fwd_ms=statistics.median(o['ms']['fwd'] for o in outs),
                fwdbwd_ms=statistics.median(o['ms']['fwdbwd'] for o in outs),
                peak_rss_mb=max(o['peak_rss_mb'] for o in outs),
                arithmetic=outs[-1].get('arithmetic'),
                per_round_fwdbwd_ms=[o['ms']['fwdbwd'] for o in outs])
        # speed-up of each of our backends over the peer and over the torch backend, each
        # ratio from the same round
        for ours in ('cpu', 'cpu-fused'):
            for b in ('peer', 'torch'):
                if not runs.get(ours) or len(runs.get(b, [])) != len(runs[ours]):
                    continue
                ratios = [o['ms']['fwdbwd'] / c['ms']['fwdbwd']
                          for o, c in zip(runs[b], runs[ours])]
                fwd_ratios = [o['ms']['fwd'] / c['ms']['fwd'] for o, c in zip(runs[b], runs[ours])]
                entry[f'speedup_{ours}_vs_{b}'] = dict(
                    fwdbwd=round(statistics.median(ratios), 1),
                    fwdbwd_per_round=[round(r, 1) for r in ratios],
                    fwd=round(statistics.median(fwd_ratios), 1))
        results.append(entry)

    print(f'\n{"N":>7} {"image":>8} {"backend":>9} {"fwd ms":>9} {"fwd+bwd ms":>11} '
          f'{"peak MB":>8}  peer fwd+bwd / this (median of per-round ratios)')
    for e in results:
        for b, v in e['backends'].items():
            sp = e.get(f'speedup_{b}_vs_peer')
            tail = f'{sp["fwdbwd"]:.1f}x  (rounds {sp["fwdbwd_per_round"]})' if sp else ''
            print(f'{e["N"]:>7} {e["res"]:>4}x{e["res"]:<3} {b:>9} {v["fwd_ms"]:>9.1f} '
                  f'{v["fwdbwd_ms"]:>11.1f} {v["peak_rss_mb"]:>8.0f}  {tail}')
    doc = dict(benchmark='rasterizer', results=results)
    print(json.dumps(doc))
    if a.json:
        a.json.write_text(json.dumps(doc, indent=1) + '\n')


if __name__ == '__main__':
    main()
