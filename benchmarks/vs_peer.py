"""nerfreg against the peer 3DGS loop, back to back on one machine and one training budget.

For each seed the peer (``../shared/bench/gsplat_ref_train.py``: the 3DGS recipe on gsplat's
pure-PyTorch rasterizer) and nerfreg (``benchmarks/train_budget.py`` on a config) train for
the same wall-clock budget of training time (evaluation excluded, as both scripts count it),
alternating peer, nerfreg, peer, nerfreg, ... so that load from other jobs falls on both
(``--concurrent``: the two sides of a seed at the same time).
Both use the same scene, downscale and hold-out rule (every ``--test-every``-th image in
natural name order is test) and train on all the other views (nerfreg's ``val_every`` is set
to 0 so that its training views are the peer's). For a format the peer cannot read
(instant-ngp, Blender), ``--peer-scene`` gives it the same views and start points, written
as a COLMAP folder by ``benchmarks/peer_scene.py``. Prints mean and standard deviation over the
seeds of test PSNR / SSIM, steps and Gaussians, and appends every record to ``--out``.

The peer needs its own environment (see ../shared/bench/README.md); for example
``python3 -m venv --system-site-packages /tmp/venv-peer`` and
``/tmp/venv-peer/bin/pip install --no-deps gsplat==1.5.3 jaxtyping wadler_lindig``.

    python benchmarks/vs_peer.py --budget 120 --seeds 0,1,2 --out work_dirs/vs_peer.jsonl
    python benchmarks/peer_scene.py configs/gaussian_splatting/ngp_short.py \
        --out work_dirs/peer_scenes/fox
    python benchmarks/vs_peer.py --config configs/gaussian_splatting/ngp_short.py \
        --data-root ../shared/data/fox --peer-scene work_dirs/peer_scenes/fox --evals 120,300
    python benchmarks/vs_peer.py --evals 60,120,300,600 --seeds 0 \
        --data-root ../shared/data/helmet --out work_dirs/vs_peer_helmet.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER = REPO.parent / 'shared' / 'bench' / 'gsplat_ref_train.py'


def _records(path: Path, kind: str | None = None) -> list[dict]:
    if not path.is_file():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if kind is None or r.get('kind') == kind]


def peer_cmd(args, seed: int, out: Path) -> list[str]:
    data, downscale = ((args.peer_scene, 1) if args.peer_scene is not None
                       else (args.data_root, args.downscale))
    cmd = [args.peer_python, str(args.peer), '--data', str(data), '--downscale',
           str(downscale), '--test-every', str(args.test_every), '--budget',
           str(max(args.evals)), '--evals', ','.join(f'{e:g}' for e in args.evals),
           '--seed', str(seed), '--out', str(out),
           '--train-eval-n', '1']  # its default scores every training view too (slow)
    return cmd


def peer_rows(seed: int, out: Path) -> list[dict]:
    evs = [ev for ev in _records(out, 'eval') if ev['tag'] != 'init']
    return [dict(side='peer', seed=seed, budget_s=float(ev['tag'].rstrip('s'))
                 if ev['tag'] != 'end' else ev['train_s'], steps=ev['steps'],
                 gaussians=ev['n_gauss'], train_s=ev['train_s'], psnr=ev['test_psnr'],
                 ssim=ev['test_ssim']) for ev in evs]


def nerfreg_cmd(args, seed: int, out: Path, work_dir: Path) -> list[str]:
    cmd = [sys.executable, str(REPO / 'benchmarks' / 'train_budget.py'), args.config,
           '--evals', ','.join(f'{e:g}' for e in args.evals), '--out', str(out),
           '--work-dir', str(work_dir),
           '--cfg-options', f'data.data_root={args.data_root}', f'data.downscale={args.downscale}',
           f'data.holdout_every={args.test_every}', 'data.val_every=0', f'seed={seed}']
    return cmd


def nerfreg_rows(seed: int, out: Path) -> list[dict]:
    return [dict(side='nerfreg', seed=seed, budget_s=float(rec['budget_s'])
                 if rec['budget_s'] != 'end' else rec['train_s'], steps=rec['step'],
                 gaussians=rec['gaussians'], train_s=rec['train_s'], psnr=rec['psnr'],
                 ssim=rec['ssim']) for rec in _records(out)]


def summary(rows: list[dict], side: str) -> dict:
    mine = [r for r in rows if r['side'] == side]
    out = dict(side=side, runs=len(mine))
    for key in ('psnr', 'ssim', 'steps', 'gaussians'):
        vals = [float(r[key]) for r in mine]
        out[key] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--config', default='configs/gaussian_splatting/colmap_short.py')
    ap.add_argument('--data-root', type=Path, default=REPO.parent / 'shared' / 'data' / 'cup')
    ap.add_argument('--downscale', type=int, default=4)
    ap.add_argument('--test-every', type=int, default=8)
    ap.add_argument('--budget', type=float, default=120.0, help='training seconds per run')
    ap.add_argument('--evals', default=None,
                    help='comma-separated training-seconds checkpoints scored along one run '
                         'per side (a curve, e.g. 60,120,300,600); default: only --budget')
    ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--peer', type=Path, default=PEER)
    ap.add_argument('--peer-scene', type=Path, default=None,
                    help='for a scene the peer cannot read (instant-ngp, Blender): the COLMAP '
                         'folder benchmarks/peer_scene.py wrote for it (views already at '
                         'the training size, so the peer reads it at downscale 1)')
    ap.add_argument('--peer-python', default='/tmp/venv-peer/bin/python',
                    help='python of an environment with gsplat 1.5.3 (see the docstring)')
    ap.add_argument('--out', type=Path, default=REPO / 'work_dirs' / 'vs_peer.jsonl')
    ap.add_argument('--summarize', type=Path, default=None,
                    help='only print the table of the rows in this JSON-lines file')
    ap.add_argument('--concurrent', action='store_true',
                    help='run the two sides of a seed at the same time instead of one after '
                         'the other (a heavily loaded machine: both see the same load)')
    args = ap.parse_args()
    if args.summarize is not None:
        print_table(_records(args.summarize))
        return
    if not args.peer.is_file():
        raise SystemExit(f'peer loop {args.peer} not found (../shared/bench beside the repo)')
    if not Path(args.peer_python).is_file():
        raise SystemExit(f'--peer-python {args.peer_python} does not exist: create the peer '
                         'environment as described at the top of benchmarks/vs_peer.py')
    args.evals = sorted(float(e) for e in (args.evals or f'{args.budget:g}').split(',') if e)
    args.data_root = args.data_root.resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix='vs_peer_') as tmp:
        tmp = Path(tmp)
        for seed in [int(s) for s in args.seeds.split(',')]:
            outs = {side: tmp / f'{side}_{seed}.jsonl' for side in ('peer', 'nerfreg')}
            cmds = dict(peer=peer_cmd(args, seed, outs['peer']),
                        nerfreg=nerfreg_cmd(args, seed, outs['nerfreg'], tmp / f'work_{seed}'))
            if args.concurrent:  # both sides at once: they see the same background load
                procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, cwd=REPO)
                         for c in cmds.values()]
                if any(p.wait() for p in procs):
                    raise SystemExit(f'a run of seed {seed} failed: {cmds}')
            else:
                for c in cmds.values():
                    subprocess.run(c, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
            for side, make in (('peer', peer_rows), ('nerfreg', nerfreg_rows)):
                for row in make(seed, outs[side]):
                    row.update(scene=args.data_root.name, downscale=args.downscale,
                               config=args.config, concurrent=args.concurrent)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    with open(args.out, 'a') as f:
                        f.write(json.dumps(row) + '\n')
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    first = rows[0]
    seeds = sorted({r['seed'] for r in rows})
    print(f"\n{first['scene']}, downscale {first['downscale']}, seeds {seeds} "
          '(mean +- standard deviation):')
    print('| training s | side | test PSNR | test SSIM | steps | Gaussians |')
    print('|---|---|---|---|---|---|')
    for budget in sorted({r['budget_s'] for r in rows}):
        for side in ('nerfreg', 'peer'):
            mine = [r for r in rows if r['budget_s'] == budget]
            if not any(r['side'] == side for r in mine):
                continue
            s = summary(mine, side)
            print(f"| {budget:g} | {side} | {s['psnr'][0]:.2f} +- {s['psnr'][1]:.2f} | "
                  f"{s['ssim'][0]:.3f} +- {s['ssim'][1]:.3f} | "
                  f"{s['steps'][0]:,.0f} +- {s['steps'][1]:,.0f} | "
                  f"{s['gaussians'][0]:,.0f} +- {s['gaussians'][1]:,.0f} |")


if __name__ == '__main__':
    main()
