"""``backend='gsplat'``: hand the rasterization to gsplat's CUDA kernels (optional dependency).

Only argument/meta conversion lives here; :func:`gsplat_kwargs` and
:func:`convert_gsplat_meta` are pure functions so they are tested without CUDA.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

INSTALL_HINT = ("backend='gsplat' needs the optional package gsplat and a CUDA device: "
                "`pip install gsplat` (built against your CUDA torch). "
                "Use backend='torch' or backend='cpu' on machines without CUDA.")


def gsplat_available() -> bool:
    """True when ``import gsplat`` succeeds."""
    try:
        import gsplat  # noqa: F401
    except Exception:  # a broken CUDA build raises more than ImportError
        return False
    return True


def gsplat_kwargs(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, *, sh_degree: int | None,
    near_plane: float, far_plane: float, backgrounds: Tensor | None, render_mode: str,
    tile_size: int, eps2d: float, radius_clip: float, rasterize_mode: str = 'classic',
    absgrad: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``gsplat.rasterization`` matching our numerics.

    Unpacked mode, pinhole camera; ``rasterize_mode`` ('classic' | 'antialiased') and
    ``absgrad`` (gsplat fills ``meta['means2d'].absgrad``) pass through. Our quats are
    normalised here (gsplat normalises too; this keeps the call independent of that).
    In depth-only modes backgrounds are dropped, as in our other backends.
    """
    if render_mode in ('D', 'ED'):
        backgrounds = None
    return dict(
        means=means, quats=torch.nn.functional.normalize(quats, dim=-1), scales=scales,
        opacities=opacities, colors=colors, viewmats=viewmats, Ks=Ks,
        width=int(width), height=int(height), near_plane=float(near_plane),
        far_plane=float(far_plane), radius_clip=float(radius_clip), eps2d=float(eps2d),
        sh_degree=sh_degree, packed=False, tile_size=int(tile_size), backgrounds=backgrounds,
        render_mode=render_mode, rasterize_mode=rasterize_mode, camera_model='pinhole',
        absgrad=bool(absgrad),
    )


def convert_gsplat_meta(meta: dict[str, Any], n_cameras: int, width: int, height: int,
                        tile_size: int) -> dict[str, Any]:
    """Map gsplat's meta onto our contract keys (radii ``[C, N]``, colors ``[C, N, D]``...).

    Recent gsplat returns per-axis radii ``[C, N, 2]``; they are reduced with ``max``.
    """
    radii = meta['radii']
    if radii.dim() == 3:
        radii = radii.max(dim=-1).values
    n = radii.shape[-1]
    opac = meta.get('opacities')
    if opac is not None and opac.dim() == 1:
        opac = opac.unsqueeze(0).expand(n_cameras, n)
    colors = meta.get('colors')
    if colors is not None and colors.dim() == 2:
        colors = colors.unsqueeze(0).expand(n_cameras, *colors.shape)
    out = dict(meta)
    out.update(radii=radii.to(torch.int32), means2d=meta['means2d'], depths=meta['depths'],
               conics=meta['conics'], opacities=opac, colors=colors, width=int(width),
               height=int(height), n_cameras=int(n_cameras), tile_size=int(tile_size),
               backend='gsplat')
    return out


def rasterization_gsplat(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, **options: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Run ``gsplat.rasterization`` and return ``(colors, alphas, meta)`` in our contract."""
    if means.device.type != 'cuda':
        raise RuntimeError(f'{INSTALL_HINT} (inputs are on {means.device})')
    try:
        import gsplat
    except Exception as err:
        raise ImportError(f'{INSTALL_HINT} Import failed: {err}') from err
    kwargs = gsplat_kwargs(means, quats, scales, opacities, colors, viewmats, Ks, width,
                           height, **options)
    render_colors, render_alphas, meta = gsplat.rasterization(**kwargs)
    meta = convert_gsplat_meta(meta, viewmats.shape[0], width, height, kwargs['tile_size'])
    meta['rasterize_mode'] = kwargs['rasterize_mode']
    if meta['means2d'].requires_grad:
        meta['means2d'].retain_grad()
    return render_colors, render_alphas, meta
