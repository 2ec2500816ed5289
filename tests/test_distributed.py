"""torchrun with 2 CPU processes (gloo) equals one process with batch_size=2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nerfreg.engine import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMALL = ['data.image_size=32', 'data.n_train=8', 'data.n_val=2', 'data.n_test=2',
         'data.num_points=400', 'train_cfg.val_interval=0',
         'optimizer.strategy.refine_start=10', 'optimizer.strategy.refine_every=10',
         'optimizer.strategy.reset_every=1000', 'default_hooks.checkpoint.interval=1000',
         'default_hooks.sync_check.interval=5', 'custom_hooks=[]']


def _run(cmd: list[str], work: Path, threads: int = 1) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc


def _torchrun(work: Path, steps: int, extra=()) -> subprocess.CompletedProcess:
    return _run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                 '--standalone', 'tools/train.py', 'configs/gaussian_splatting/demo.py',
                 '--launcher', 'pytorch', '--work-dir', str(work), '--seed', '5',
                 *extra, '--cfg-options', f'train_cfg.max_steps={steps}', *SMALL], work)


def _params(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)['model']
    return {k: v for k, v in state.items() if torch.is_tensor(v)}


def _state(ckpt: dict) -> dict[str, torch.Tensor]:
    """Parameters, Adam moments and densification statistics of a checkpoint."""
    out = {k: v for k, v in ckpt['model'].items() if torch.is_tensor(v)}
    optim = ckpt['optimizer']
    for group in optim['adam']['param_groups']:
        state = optim['adam']['state'][group['params'][0]]
        out.update({f'adam.{group["name"]}.{k}': v for k, v in state.items()
                    if torch.is_tensor(v)})
    out.update({f'strategy.{k}': v for k, v in optim['strategy'].items()
                if torch.is_tensor(v)})
    return out


@pytest.mark.slow
def test_two_processes_match_one_process_with_batch_two(tmp_path):
    dist_dir, single_dir = tmp_path / 'dist', tmp_path / 'single'
    _torchrun(dist_dir, 30)
    # the single process uses both cores: results must not depend on the thread count
    _run([sys.executable, 'tools/train.py', 'configs/gaussian_splatting/demo.py',
          '--work-dir', str(single_dir), '--seed', '5', '--cfg-options',
          'train_cfg.max_steps=40', 'data.batch_size=2', *SMALL,
          'default_hooks.checkpoint.interval=30'], single_dir, threads=2)

    # one set of logs and checkpoints, written by rank 0 only
    assert len(list(dist_dir.glob('*.log'))) == 1
    assert sorted(p.name for p in dist_dir.glob('*.pth')) == ['iter_30.pth']
    dist = _state(load_checkpoint(dist_dir / 'iter_30.pth'))
    single = _state(load_checkpoint(single_dir / 'iter_30.pth'))
    assert any(k.startswith('adam.means.') for k in dist)
    # densification ran (the count moved away from the 400 initial points) identically
    assert dist['params.means'].shape == single['params.means'].shape
    assert dist['params.means'].shape[0] != 400
    # Sequential view batching runs each view's forward/backward like a rank does and the
    # kernels do not depend on the thread count, so the raw parameters (quaternion norms
    # included), Adam's moments and the statistics agree to 1e-5 (in practice bit for bit).
    _assert_equal(dist, single)

    # Resume the distributed run from its checkpoint, mid-way between two densifications:
    # it holds the statistics summed over ranks, and the run continues as if uninterrupted.
    _torchrun(dist_dir, 40, ['--resume'])
    resumed = load_checkpoint(dist_dir / 'iter_40.pth')
    assert resumed['global_step'] == 40
    _assert_equal(_state(resumed), _state(load_checkpoint(single_dir / 'iter_40.pth')))


def _assert_equal(dist: dict[str, torch.Tensor], single: dict[str, torch.Tensor]) -> None:
    assert dist.keys() == single.keys()
    for key in dist:
        a, b = dist[key], single[key]
        assert a.shape == b.shape, key
        if a.is_floating_point():
            assert float((a.double() - b.double()).abs().max()) <= 1e-5, key
