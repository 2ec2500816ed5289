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


# ----------------------------------------------------------------------------- MCMC moves
_MAX_COPIES = 51  # relocation ratios are clamped to this many copies (table size)


def _binomial_table(n_max: int = _MAX_COPIES) -> Tensor:
    """``C(i, k)`` for ``0 <= k <= i < n_max`` (float64, zero elsewhere)."""
    table = torch.zeros(n_max, n_max, dtype=torch.float64)
    for i in range(n_max):
        for k in range(i + 1):
            table[i, k] = math.comb(i, k)
    return table


_BINOMIALS = _binomial_table()


def relocation_correction(opacities: Tensor, scales: Tensor,
                          copies: Tensor) -> tuple[Tensor, Tensor]:
    """Opacity and scale of each of ``copies`` Gaussians replacing one (3DGS-MCMC, Eq. 9).

    ``N`` copies at the same place with opacity ``1 - (1 - o)^(1/N)`` have the same
    combined opacity as the original at its centre, and scales multiplied by
    ``o / sum_{i=1..N} sum_{k=0..i-1} C(i-1, k) (-1)^k o'^(k+1) / sqrt(k+1)`` keep the
    integral of the composited splat (Kheradmand et al. 2024). ``opacities [M]``
    (activated), ``scales [M, 3]`` (activated), ``copies [M]`` (>= 1, clamped to 51).
    Computed in float64, returned in the input dtype.
    """
    n = copies.clamp(1, _MAX_COPIES).to(torch.long)
    o = opacities.double()
    new_o = 1.0 - torch.pow(1.0 - o, 1.0 / n.double())
    binom = _BINOMIALS.to(o.device)
    k = torch.arange(_MAX_COPIES, device=o.device, dtype=torch.float64)
    sign = torch.where(k.long() % 2 == 0, 1.0, -1.0).double()
    powers = new_o[:, None] ** (k[None, :] + 1.0) / torch.sqrt(k + 1.0)  # [M, K]
    # inner[m, i] = sum_k C(i, k) (-1)^k o'^(k+1) / sqrt(k+1) for i = 0..K-1 (i.e. i-1 above)
    inner = (sign * powers) @ binom.T  # [M, K]
    upto = torch.arange(_MAX_COPIES, device=o.device)[None, :] < n[:, None]
    denom = torch.where(upto, inner, torch.zeros_like(inner)).sum(-1)
    factor = o / denom
    new_scales = scales.double() * factor[:, None]
    return new_o.to(opacities.dtype), new_scales.to(scales.dtype)


def _corrected_rows(params: MutableMapping[str, nn.Parameter], sampled: Tensor,
                    n: int, min_opacity: float) -> tuple[Tensor, Tensor]:
    """Logit opacities and log scales of the ``sampled`` rows once each is shared by
    ``1 + (times sampled)`` copies."""
    copies = torch.bincount(sampled, minlength=n)[sampled] + 1
    o = torch.sigmoid(params['opacities'][sampled].flatten())
    new_o, new_s = relocation_correction(o, torch.exp(params['scales'][sampled]), copies)
    eps = torch.finfo(new_o.dtype).eps
    new_o = new_o.clamp(min_opacity, 1.0 - eps)
    shape = params['opacities'].shape[1:]
    return torch.logit(new_o).reshape(-1, *shape), torch.log(new_s)


@torch.no_grad()
def relocate(params: MutableMapping[str, nn.Parameter], optimizer: torch.optim.Optimizer | None,
             state: MutableMapping | None, dead: Tensor, sampled: Tensor,
             min_opacity: float = 0.005) -> None:
    """Move the Gaussians selected by ``dead [N]`` onto the live ``sampled`` rows (one
    index per dead Gaussian, repeats allowed): every sampled Gaussian and its new copies
    get the corrected opacity and scale of :func:`relocation_correction`. Adam moments of
    the sampled and relocated rows restart at zero; N is unchanged."""
    dead_ids = torch.where(dead)[0]
    if len(dead_ids) != len(sampled):
        raise ValueError(f'relocate: {len(dead_ids)} dead Gaussians but {len(sampled)} '
                         'sampled targets')
    n = _num_rows(params)
    logit_o, log_s = _corrected_rows(params, sampled, n, min_opacity)
    touched = torch.cat([sampled, dead_ids])

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.clone()
        if name == 'opacities':
            p[sampled] = logit_o
        elif name == 'scales':
            p[sampled] = log_s
        p[dead_ids] = p[sampled]
        return p

    def state_fn(name: str, v: Tensor) -> Tensor:
        v = v.clone()
        v[touched] = 0
        return v

    update_params_and_optimizer(params, optimizer, param_fn, state_fn)
    _resize_state(state, lambda v: _copy_rows(v, dead_ids, sampled), n)


def _copy_rows(v: Tensor, dst: Tensor, src: Tensor) -> Tensor:
    v = v.clone()
    v[dst] = v[src]
    return v


@torch.no_grad()
def sample_add(params: MutableMapping[str, nn.Parameter],
               optimizer: torch.optim.Optimizer | None, state: MutableMapping | None,
               sampled: Tensor, min_opacity: float = 0.005) -> None:
    """Append one copy of each ``sampled`` row (repeats allowed), with the sampled rows
    and their copies given the corrected opacity and scale of
    :func:`relocation_correction`. New rows and the sampled rows start with zero Adam
    moments."""
    n = _num_rows(params)
    logit_o, log_s = _corrected_rows(params, sampled, n, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.clone()
        if name == 'opacities':
            p[sampled] = logit_o
        elif name == 'scales':
            p[sampled] = log_s
        return torch.cat([p, p[sampled]])

    def state_fn(name: str, v: Tensor) -> Tensor:
        v = v.clone()
        v[sampled] = 0
        return torch.cat([v, v.new_zeros((len(sampled), *v.shape[1:]))])

    update_params_and_optimizer(params, optimizer, param_fn, state_fn)
    _resize_state(state, lambda v: torch.cat([v, v[sampled]]), n)


@torch.no_grad()
def inject_noise(params: MutableMapping[str, nn.Parameter], scale: float,
                 generator: torch.Generator | None = None, k: float = 100.0,
                 threshold: float = 0.995) -> None:
    """SGLD position noise of 3DGS-MCMC, in place: ``means += scale * g(o) * Sigma @ eta``
    with ``eta ~ N(0, I)``, ``Sigma`` each Gaussian's covariance and
    ``g(o) = sigmoid(k ((1 - o) - threshold))`` (about 1 for nearly transparent Gaussians,
    about 0 for opaque ones). Adam state is untouched."""
    means = params['means']
    if scale == 0 or means.shape[0] == 0:
        return
    o = torch.sigmoid(params['opacities'].flatten())
    gate = torch.sigmoid(k * ((1.0 - o) - threshold))
    s = torch.exp(params['scales'])
    rot = _quat_to_rotmat(params['quats'])
    cov = (rot * (s * s)[:, None, :]) @ rot.transpose(-1, -2)
    eta = torch.randn(means.shape, device=means.device, dtype=means.dtype, generator=generator)
    means.data.add_(torch.einsum('nij,nj->ni', cov, eta) * (gate * scale)[:, None])
