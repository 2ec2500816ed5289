"""torchrun with 2 CPU processes (gloo) equals one process with batch_size=2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def _worker_pids(parent: int) -> dict[int, int]:
    """``{rank: pid}`` of torchrun's worker processes (read from their environment)."""
    out = {}
    for child in Path('/proc').iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / 'stat').read_text()
            ppid = int(stat.rsplit(')', 1)[1].split()[1])
            env = (child / 'environ').read_bytes().split(b'\0')
        except (OSError, ValueError, IndexError):
            continue
        if ppid != parent:
            continue
        for item in env:
            if item.startswith(b'RANK='):
                out[int(item[5:])] = int(child.name)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path('/proc/self/environ').exists(), reason='needs /proc')
def test_signal_to_one_rank_stops_all_after_the_same_step_and_resumes(tmp_path):
    """SIGTERM reaching only rank 1 (e.g. a scheduler signalling one node): the request
    travels in the gradient all-reduce, every rank stops after the same step, rank 0 saves
    a checkpoint, and the run resumes from it."""
    work = tmp_path / 'dist'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--standalone', 'tools/train.py', 'configs/gaussian_splatting/demo.py',
           '--launcher', 'pytorch', '--work-dir', str(work), '--seed', '5',
           '--cfg-options', 'train_cfg.max_steps=100000', *SMALL,
           'default_hooks.logger.interval=5']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            logs = list(work.glob('*.log'))
            if logs and 'step 40/' in logs[0].read_text():
                break
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.2)
        else:
            raise AssertionError('training did not reach step 40')
        workers = _worker_pids(proc.pid)
        assert sorted(workers) == [0, 1], workers
        os.kill(workers[1], signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # torchrun reports the interrupted workers
    marker = work / 'last_checkpoint'
    assert marker.is_file(), out[-3000:]
    ckpt_path = Path(marker.read_text().strip())
    step = load_checkpoint(ckpt_path)['global_step']
    assert step >= 40 and ckpt_path.name == f'iter_{step}.pth'
    assert 'Interrupted at step' in list(work.glob('*.log'))[0].read_text()
    _torchrun(work, step + 10, ['--resume'])
    assert load_checkpoint(work / f'iter_{step + 10}.pth')['global_step'] == step + 10


def _broadcast_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from nerfreg.engine.dist import broadcast_
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        values = [torch.full((3,), float(rank + 1)), torch.arange(4) * (rank + 1),
                  torch.full((2, 2), 10.0 * (rank + 1))]
        broadcast_(values)
        torch.save(values, f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


def test_broadcast_gives_every_rank_rank_zeros_values(tmp_path):
    """Ranks start from rank 0's model (as DDP does), whatever their own initialisation."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    out = str(tmp_path / 'values')
    mp.spawn(_broadcast_worker, args=(2, port, out), nprocs=2, join=True)
    for rank in (0, 1):
        a, b, c = torch.load(f'{out}.{rank}')
        assert a.tolist() == [1.0] * 3 and b.tolist() == [0, 1, 2, 3]
        assert b.dtype == torch.int64 and c.tolist() == [[10.0, 10.0]] * 2
