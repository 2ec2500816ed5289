"""Structure operations on Gaussian parameters that keep Adam state consistent.

``params`` is the model's ``nn.ParameterDict`` (attribute name -> ``[N, ...]`` parameter);
``optimizer`` is a ``torch.optim.Optimizer`` whose param groups carry ``group['name']``
equal to the attribute key and hold exactly that one parameter. Every operation replaces
the parameter with a new ``nn.Parameter`` (in the dict and in the group), rewrites the
per-row optimizer state (rows of new Gaussians start at zero, removed rows are dropped)
and keeps scalar state such as Adam's ``step``. Per-Gaussian strategy statistics in
``state`` (tensors whose first dimension is N) are resized alongside.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping

import torch
from torch import Tensor, nn

ParamFn = Callable[[str, Tensor], Tensor]
StateFn = Callable[[str, Tensor], Tensor]


def _num_rows(params: MutableMapping[str, nn.Parameter]) -> int:
    return next(iter(params.values())).shape[0]


@torch.no_grad()
def update_params_and_optimizer(params: MutableMapping[str, nn.Parameter],
                                optimizer: torch.optim.Optimizer | None,
                                param_fn: ParamFn, state_fn: StateFn,
                                names: list[str] | None = None) -> None:
    """Replace ``params[name]`` by ``param_fn(name, old)`` and every per-row optimizer
    state tensor ``v`` by ``state_fn(name, v)``; scalar state (``step``) is kept."""
    names = list(params.keys()) if names is None else names
    groups = {}
    if optimizer is not None:
        groups = {g.get('name'): g for g in optimizer.param_groups}
    for name in names:
        old = params[name]
        new = nn.Parameter(param_fn(name, old.data), requires_grad=old.requires_grad)
        params[name] = new
        group = groups.get(name)
        if group is None:
            continue
        if len(group['params']) != 1:
            raise ValueError(f"param group {name!r} must hold exactly one parameter")
        group_param = group['params'][0]
        state = optimizer.state.pop(group_param, None)
        group['params'][0] = new
        if state:
            for key, value in state.items():
                if (isinstance(value, Tensor) and value.dim() > 0
                        and value.shape[0] == old.shape[0] and key != 'step'):
                    state[key] = state_fn(name, value)
            optimizer.state[new] = state


def _resize_state(state: MutableMapping | None, fn: Callable[[Tensor], Tensor], n: int) -> None:
    if not state:
        return
    for key, value in list(state.items()):
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
            state[key] = fn(value)


@torch.no_grad()
def duplicate(params: MutableMapping[str, nn.Parameter], optimizer: torch.optim.Optimizer | None,
              state: MutableMapping | None, mask: Tensor) -> None:
    """Clone the Gaussians selected by ``mask [N]`` (appended at the end)."""
    sel = torch.where(mask)[0]
    n = _num_rows(params)

    def param_fn(name: str, p: Tensor) -> Tensor:
        return torch.cat([p, p[sel]])

    def state_fn(name: str, v: Tensor) -> Tensor:
        return torch.cat([v, v.new_zeros((len(sel), *v.shape[1:]))])

    update_params_and_optimizer(params, optimizer, param_fn, state_fn)
    _resize_state(state, lambda v: torch.cat([v, v[sel]]), n)


def _quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices ``[N, 3, 3]`` of (unnormalised) wxyz quaternions ``[N, 4]``."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


@torch.no_grad()
def split(params: MutableMapping[str, nn.Parameter], optimizer: torch.optim.Optimizer | None,
          state: MutableMapping | None, mask: Tensor, n_split: int = 2,
          scale_factor: float = 1.6, revised_opacity: bool = False,
          generator: torch.Generator | None = None) -> None:
    """Replace each Gaussian selected by ``mask`` with ``n_split`` children whose means
    are sampled from it and whose scales are divided by ``scale_factor`` (3DGS).

    The parents are removed; children are appended at the end. With
    ``revised_opacity`` the children's opacity is ``1 - sqrt(1 - o)`` (keeps the
    combined opacity, Bulo et al. 2024); otherwise the parent's opacity is copied.
    """
    sel = torch.where(mask)[0]
    rest = torch.where(~mask)[0]
    n = _num_rows(params)
    scales = torch.exp(params['scales'][sel])
    rotmats = _quat_to_rotmat(params['quats'][sel])
    noise = torch.randn((n_split, len(sel), 3), device=scales.device, dtype=scales.dtype,
                        generator=generator)
    offsets = torch.einsum('nij,nj,bnj->bni', rotmats, scales, noise)

    def param_fn(name: str, p: Tensor) -> Tensor:
        parent = p[sel]
        if name == 'means':
            child = (parent[None] + offsets).reshape(-1, *p.shape[1:])
        elif name == 'scales':
            child = (parent - math.log(scale_factor)).repeat(n_split, *[1] * (p.dim() - 1))
        elif name == 'opacities' and revised_opacity:
            o = torch.sigmoid(parent)
            o = (1.0 - torch.sqrt((1.0 - o).clamp_min(0))).clamp(1e-6, 1 - 1e-6)
            child = torch.logit(o).repeat(n_split, *[1] * (p.dim() - 1))
        else:
            child = parent.repeat(n_split, *[1] * (p.dim() - 1))
        return torch.cat([p[rest], child])

    def state_fn(name: str, v: Tensor) -> Tensor:
        return torch.cat([v[rest], v.new_zeros((n_split * len(sel), *v.shape[1:]))])

    update_params_and_optimizer(params, optimizer, param_fn, state_fn)
    _resize_state(state, lambda v: torch.cat(
        [v[rest], v[sel].repeat(n_split, *[1] * (v.dim() - 1))]), n)


@torch.no_grad()
def remove(params: MutableMapping[str, nn.Parameter], optimizer: torch.optim.Optimizer | None,
           state: MutableMapping | None, mask: Tensor) -> None:
    """Delete the Gaussians selected by ``mask [N]``."""
    keep = torch.where(~mask)[0]
    n = _num_rows(params)
    update_params_and_optimizer(params, optimizer, lambda name, p: p[keep],
                                lambda name, v: v[keep])
    _resize_state(state, lambda v: v[keep], n)


@torch.no_grad()
def reset_opacity(params: MutableMapping[str, nn.Parameter],
                  optimizer: torch.optim.Optimizer | None, value: float) -> None:
    """Clamp all opacities to at most ``value`` and zero their Adam moments."""
    logit = math.log(value / (1.0 - value))

    def param_fn(name: str, p: Tensor) -> Tensor:
        return p.clamp_max(logit)

    update_params_and_optimizer(params, optimizer, param_fn, lambda name, v: torch.zeros_like(v),
                                names=['opacities'])
