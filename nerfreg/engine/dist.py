"""Process-group set-up for ``--launcher pytorch|slurm`` and the collectives the trainer uses.

Rank, world size, barrier, broadcast, gathers and reductions are mmengine's
(``mmengine.dist``: no-ops when not distributed; use them directly elsewhere too); this
module adds what it lacks: the gloo set-up on CPU-only torch, coalesced broadcasts, and the
gradient all-reduce with the step's flags.

On CUDA this is mmengine's ``init_dist`` (NCCL). mmengine's initialiser always calls
``torch.cuda.set_device``, which a CPU-only torch build rejects, so on CPU the gloo group is
created here directly from the same environment variables torchrun / SLURM provide.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist
from mmengine.dist import (
    all_reduce,
    all_reduce_params,
    barrier,
    broadcast,
    get_rank,
    get_world_size,
    is_distributed,
)
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def _slurm_environment(port: int = 29500) -> None:
    """Translate SLURM's variables into torch's RANK/WORLD_SIZE/MASTER_ADDR/LOCAL_RANK."""
    nodes = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ.setdefault('MASTER_PORT', str(port))
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def init_distributed(launcher: str, device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group; returns (rank, world_size, device of this rank)."""
    if launcher in (None, 'none'):
        return 0, 1, device
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f"launcher={launcher!r} is not one of 'none', 'pytorch', 'slurm'.")
    if is_distributed():
        return get_rank(), get_world_size(), device
    if device.type == 'cuda':
        from mmengine.dist import init_dist
        init_dist(launcher, backend='nccl')
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
    else:
        if launcher == 'slurm':
            _slurm_environment()
        missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
                   if k not in os.environ]
        if missing:
            raise RuntimeError(
                f'--launcher {launcher} needs the environment variables {missing}; start the '
                'job with `torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch` '
                '(or tools/dist_train.sh).')
        dist.init_process_group('gloo')
        _share_cpu_threads()
    return get_rank(), get_world_size(), device


def _share_cpu_threads() -> None:
    """Split the cores among the local ranks (torch and Numba pools). Idle pool threads
    of one rank otherwise spin on cores another rank needs: 2 ranks on 2 cores ran ~10x
    slower with the default pools than with one thread each."""
    local = int(os.environ.get('LOCAL_WORLD_SIZE', os.environ.get('WORLD_SIZE', '1')))
    threads = max(1, (os.cpu_count() or 1) // max(local, 1))
    torch.set_num_threads(threads)
    if 'numba' not in sys.modules:  # the pool size is read when numba is imported
        os.environ.setdefault('NUMBA_NUM_THREADS', str(threads))
    else:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Average ``tensors`` in place across ranks with one coalesced all-reduce per dtype."""
    if tensors and is_distributed():
        all_reduce_params(tensors, coalesce=True, op='mean')


def sync_gradients(model: torch.nn.Module, finite: bool, stop: bool) -> tuple[bool, bool]:
    """Average the gradients of ``model`` over ranks with one coalesced all-reduce that
    also carries two flags; returns (every rank's loss was finite, some rank must stop)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flags = torch.tensor([0.0 if finite else 1.0, float(stop)],
                         device=params[0].device, dtype=params[0].grad.dtype)
    all_reduce_mean_([p.grad for p in params] + [flags])
    bad, stop_any = flags.tolist()
    return bad == 0.0, stop_any > 0


def broadcast_(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (one coalesced broadcast
    per dtype)."""
    if not tensors or not is_distributed():
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = _flatten_dense_tensors(group)
        broadcast(flat, src)
        for t, synced in zip(group, _unflatten_dense_tensors(flat, group)):
            t.copy_(synced)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor across ranks (returns it unchanged when not distributed)."""
    if is_distributed():
        values = values.clone()
        all_reduce(values, op='sum')
    return values


def shutdown_distributed(wait: bool = True) -> None:
    """Leave the process group cleanly (a gloo group left to interpreter teardown can
    abort a rank with 'terminate called without an active exception'). ``wait=False`` on
    error paths: a barrier would hang on a rank that has died."""
    if is_distributed():
        if wait:
            barrier()
        dist.destroy_process_group()


__all__ = ['all_reduce_mean_', 'all_reduce_sum', 'barrier', 'broadcast_', 'get_rank',
           'get_world_size', 'init_distributed', 'is_distributed', 'shutdown_distributed',
           'sync_gradients']
