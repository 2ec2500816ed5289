"""Public ``rasterization()``: projection + colours (SH) + per-backend pixel compositing."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from .projection import project_gaussians
from .rasterize_torch import rasterize_to_pixels_torch
from .sh import spherical_harmonics

RENDER_MODES = ('RGB', 'D', 'ED', 'RGB+D', 'RGB+ED')
BACKENDS = ('auto', 'torch', 'cpu', 'gsplat')
RASTERIZE_MODES = ('classic', 'antialiased')


def check_rasterize_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`RASTERIZE_MODES`, else a ValueError naming them."""
    if mode not in RASTERIZE_MODES:
        raise ValueError(f'rasterize_mode must be one of {RASTERIZE_MODES}, got {mode!r}')
    return mode


def load_cpu_rasterizer() -> Callable[..., tuple[Tensor, Tensor]]:
    """Import ``rasterize_to_pixels_cpu`` from ``nerfreg.ops.rasterize_cpu`` (Numba kernel).

    Raises:
        ImportError: with a readable message when the module or its dependencies are missing.
    """
    try:
        from .rasterize_cpu import rasterize_to_pixels_cpu
    except ImportError as err:
        raise ImportError(
            "backend='cpu' needs nerfreg.ops.rasterize_cpu (Numba kernel), which could not be "
            f"imported: {err}. Use backend='torch' (pure PyTorch) instead, or install numba."
        ) from err
    return rasterize_to_pixels_cpu


def _cpu_available() -> bool:
    try:
        load_cpu_rasterizer()
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """Pick the concrete backend for ``backend='auto'`` (validates the others).

    'gsplat' for CUDA inputs when gsplat imports, else 'cpu' for CPU inputs when the Numba
    kernel imports, else 'torch'.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if backend != 'auto':
        return backend
    from .gsplat_backend import gsplat_available
    if device.type == 'cuda' and gsplat_available():
        return 'gsplat'
    if device.type == 'cpu' and _cpu_available():
        return 'cpu'
    return 'torch'


def _absgrad_sink(means2d: Tensor) -> Tensor:
    """A zero leaf whose gradient the rasterizers fill with ``sum |d loss / d means2d|``;
    a hook hands it to ``means2d.absgrad`` (where gsplat puts it)."""
    sink = torch.zeros_like(means2d, requires_grad=True)

    def _store(grad: Tensor) -> None:
        means2d.absgrad = grad

    sink.register_hook(_store)
    return sink


def _colors_per_camera(colors: Tensor, sh_degree: int | None, means: Tensor,
                       viewmats: Tensor) -> Tensor:
    """``[C, N, D]`` colours from ``[N, D]`` / ``[C, N, D]`` colours or ``[N, K, 3]`` SH."""
    n_cams, n = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        if colors.dim() == 2:
            return colors.unsqueeze(0).expand(n_cams, n, colors.shape[-1])
        if colors.dim() == 3 and colors.shape[:2] == (n_cams, n):
            return colors
        raise ValueError(f'colors must be [N, D] or [C, N, D] without sh_degree, got '
                         f'{tuple(colors.shape)}')
    if colors.dim() != 3 or colors.shape[0] != n or colors.shape[-1] != 3:
        raise ValueError(f'with sh_degree, colors must be SH coefficients [N, K, 3], got '
                         f'{tuple(colors.shape)}')
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    centers = -torch.einsum('cji,cj->ci', rot, trans)  # -R^T t, [C, 3]
    dirs = means.unsqueeze(0) - centers[:, None, :]  # [C, N, 3]
    raw = spherical_harmonics(sh_degree, dirs, colors.unsqueeze(0))
    return torch.clamp_min(raw + 0.5, 0.0)


def rasterization(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor | tuple[Tensor, Tensor],
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    backgrounds: Tensor | None = None,
    render_mode: str = 'RGB',
    backend: str = 'auto',
    tile_size: int = 16,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
    rasterize_mode: str = 'classic',
    absgrad: bool = False,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render N 3D Gaussians into C pinhole cameras (gsplat argument conventions).

    Args:
        means ``[N, 3]``; quats ``[N, 4]`` wxyz (normalised inside); scales ``[N, 3]`` and
        opacities ``[N]`` already activated; colors ``[N, D]`` (or ``[C, N, D]``), or SH
        coefficients ``[N, K, 3]`` with ``sh_degree`` (first ``(sh_degree+1)^2`` used), also
        as the pair ``(sh0 [N, 1, 3], sh_rest [N, K-1, 3])`` models store (the CPU kernels
        read the two in place; the other paths concatenate them);
        viewmats ``[C, 4, 4]`` world-to-camera (OpenCV); Ks ``[C, 3, 3]``; backgrounds
        ``[C, D]`` (colour channels only; ignored in 'D'/'ED'); render_mode one of
        ``RENDER_MODES``; backend one of ``BACKENDS``.
        rasterize_mode: 'classic', or 'antialiased' (Mip-Splatting's 2D filter as in gsplat:
        the ``eps2d`` dilation of every 2D covariance is compensated by multiplying the
        opacity by ``sqrt(det(cov2d) / det(cov2d + eps2d I))``; ``meta['opacities']``
        includes that factor).
        absgrad: also compute, in the backward pass, the per-pixel sum of
        ``|d loss / d means2d|`` into the attribute ``meta['means2d'].absgrad`` (gsplat's
        name), for absolute-gradient densification.
    Returns:
        ``render_colors [C, H, W, D(+1)]`` (depth last), ``render_alphas [C, H, W, 1]`` and
        ``meta`` (radii, means2d, depths, conics, opacities, colors, width, height,
        n_cameras, tile_size, backend).
    """
    if render_mode not in RENDER_MODES:
        raise ValueError(f'render_mode must be one of {RENDER_MODES}, got {render_mode!r}')
    if means.dim() != 2 or means.shape[-1] != 3:
        raise ValueError(f'means must be [N, 3], got {tuple(means.shape)}')
    if viewmats.dim() != 3 or Ks.dim() != 3 or viewmats.shape[0] != Ks.shape[0]:
        raise ValueError('viewmats must be [C, 4, 4] and Ks [C, 3, 3] with the same C, got '
                         f'{tuple(viewmats.shape)} and {tuple(Ks.shape)}')
    check_rasterize_mode(rasterize_mode)
    antialiased = rasterize_mode == 'antialiased'
    width, height, tile_size = int(width), int(height), int(tile_size)
    chosen = resolve_backend(backend, means.device)
    # The cpu backend also has fused Numba projection and SH kernels; they give no
    # gradients for the cameras, so the torch versions serve when those are needed.
    fused = chosen == 'cpu' and not (viewmats.requires_grad or Ks.requires_grad)
    if isinstance(colors, (tuple, list)):
        if sh_degree is None or len(colors) != 2:
            raise ValueError('colors given as a pair must be the SH coefficients (sh0, '
                             'sh_rest), with sh_degree')
        if not fused:
            colors = torch.cat(list(colors), dim=1)
    if chosen == 'gsplat':
        from .gsplat_backend import rasterization_gsplat
        return rasterization_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree=sh_degree, near_plane=near_plane, far_plane=far_plane,
            backgrounds=backgrounds, render_mode=render_mode, tile_size=tile_size,
            eps2d=eps2d, radius_clip=radius_clip, rasterize_mode=rasterize_mode,
            absgrad=absgrad)

    n_cams = viewmats.shape[0]
    if fused:
        from .projection_cpu import project_gaussians_cpu
        project = project_gaussians_cpu
    else:
        project = project_gaussians
    radii, means2d, depths, conics, *comps = project(
        means, quats, scales, viewmats, Ks, width, height, eps2d=eps2d,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
        calc_compensations=antialiased)
    sink = None
    if means2d.requires_grad:
        means2d.retain_grad()
        if absgrad:
            sink = _absgrad_sink(means2d)
    if fused and sh_degree is not None and (
            isinstance(colors, (tuple, list))
            or (colors.dim() == 3 and colors.shape[0] == means.shape[0])):
        from .sh_cpu import sh_colors_cpu
        cam_colors = sh_colors_cpu(sh_degree, means, colors, viewmats)
    else:
        cam_colors = _colors_per_camera(colors, sh_degree, means, viewmats)
    if backgrounds is not None and backgrounds.shape != (n_cams, cam_colors.shape[-1]):
        raise ValueError(f'backgrounds must be [C, D] = [{n_cams}, {cam_colors.shape[-1]}], '
                         f'got {tuple(backgrounds.shape)}')
    cam_opacities = opacities.unsqueeze(0).expand(n_cams, -1)
    if antialiased:
        cam_opacities = cam_opacities * comps[0]

    if render_mode in ('RGB', 'RGB+D', 'RGB+ED'):
        feats, bkgd = cam_colors, backgrounds
        if render_mode != 'RGB':
            feats = torch.cat([cam_colors, depths.unsqueeze(-1)], dim=-1)
            if backgrounds is not None:
                bkgd = torch.cat([backgrounds, backgrounds.new_zeros(n_cams, 1)], dim=-1)
    else:  # 'D' / 'ED'
        feats, bkgd = depths.unsqueeze(-1), None

    if chosen == 'cpu':
        raster = load_cpu_rasterizer()
    else:
        raster = rasterize_to_pixels_torch
    extra = {} if sink is None else {'absgrad_sink': sink}
    render_colors, render_alphas = raster(
        means2d, conics, feats, cam_opacities, depths, radii, width, height, tile_size, bkgd,
        **extra)

    if render_mode in ('ED', 'RGB+ED'):
        expected = render_colors[..., -1:] / render_alphas.clamp_min(1e-10)
        render_colors = torch.cat([render_colors[..., :-1], expected], dim=-1)

    meta = dict(radii=radii, means2d=means2d, depths=depths, conics=conics,
                opacities=cam_opacities, colors=cam_colors, width=width, height=height,
                n_cameras=n_cams, tile_size=tile_size, backend=chosen,
                rasterize_mode=rasterize_mode)
    return render_colors, render_alphas, meta
