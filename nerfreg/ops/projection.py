"""EWA projection of 3D Gaussians to 2D image-space Gaussians (pure PyTorch, autograd)."""

from __future__ import annotations

import torch
from torch import Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from wxyz quaternions ``[..., 4]`` (normalised here)."""
    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = [
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariances ``R diag(s)^2 R^T`` ``[N, 3, 3]`` from wxyz quats and activated scales."""
    m = quat_to_rotmat(quats) * scales.unsqueeze(-2)  # R @ diag(s)
    return m @ m.transpose(-1, -2)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    calc_compensations: bool = False,
) -> tuple[Tensor, ...]:
    """Project N Gaussians into C pinhole cameras (EWA splatting).

    The Jacobian of the pinhole is evaluated at the camera-space mean with x/z and y/z clamped
    to the image extent widened by ``0.3 * tan(fov/2)`` on each side (1.3x the field of view
    for a centred principal point), as in 3DGS/gsplat. ``eps2d`` is added to the diagonal of
    the 2D covariance (low-pass filter). A Gaussian gets radius 0 (invisible) when its depth is
    not in ``(near_plane, far_plane)``, its 2D covariance is not invertible, its radius is
    ``<= radius_clip``, or its bounding square ``mean2d +- radius`` lies outside the image.

    Args:
        means: ``[N, 3]`` world positions. quats: ``[N, 4]`` wxyz. scales: ``[N, 3]`` activated.
        viewmats: ``[C, 4, 4]`` world-to-camera (OpenCV axes). Ks: ``[C, 3, 3]`` intrinsics.
    Returns:
        ``radii [C, N]`` int32 = ceil(3 sqrt(largest eigenvalue)), ``means2d [C, N, 2]`` (pixels),
        ``depths [C, N]`` (camera z), ``conics [C, N, 3]`` = (a, b, c) of the inverse covariance.
        ``means2d`` and ``conics`` are zero where the depth/covariance test fails.
        With ``calc_compensations`` also ``compensations [C, N]`` =
        ``sqrt(det(cov2d) / det(cov2d + eps2d I))`` (0 where that is undefined): the opacity
        factor of anti-aliased rendering (Mip-Splatting's 2D filter, gsplat's
        ``rasterize_mode='antialiased'``), which keeps a dilated Gaussian's integral.
    """
    rot = viewmats[:, :3, :3]  # [C, 3, 3]
    trans = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum('cij,nj->cni', rot, means) + trans[:, None, :]  # [C, N, 3]
    cov_w = covariance_3d(quats, scales)  # [N, 3, 3]
    cov_c = torch.einsum('cij,njk,clk->cnil', rot, cov_w, rot)  # [C, N, 3, 3]

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    x, y, z = means_c.unbind(-1)  # [C, N]
    valid_z = (z > near_plane) & (z < far_plane)
    z_safe = torch.where(valid_z, z, torch.ones_like(z))

    tan_x = 0.5 * width / fx
    tan_y = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_x
    lim_x_neg = cx / fx + 0.3 * tan_x
    lim_y_pos = (height - cy) / fy + 0.3 * tan_y
    lim_y_neg = cy / fy + 0.3 * tan_y
    u = torch.minimum(torch.maximum(x / z_safe, -lim_x_neg), lim_x_pos)
    v = torch.minimum(torch.maximum(y / z_safe, -lim_y_neg), lim_y_pos)

    zero = torch.zeros_like(z)
    jac = torch.stack([
        fx / z_safe, zero, -fx * u / z_safe,
        zero, fy / z_safe, -fy * v / z_safe,
    ], dim=-1).reshape(z.shape + (2, 3))  # [C, N, 2, 3]
    cov2d = jac @ cov_c @ jac.transpose(-1, -2)  # [C, N, 2, 2]
    a = cov2d[..., 0, 0] + eps2d
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    valid = valid_z & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    conics = torch.where(valid[..., None], conics, torch.zeros_like(conics))

    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)
    means2d = torch.where(valid[..., None], means2d, torch.zeros_like(means2d))

    with torch.no_grad():
        half_diff = 0.5 * (a - c)
        lam_max = 0.5 * (a + c) + torch.sqrt(half_diff * half_diff + b * b)
        radius = torch.ceil(3.0 * torch.sqrt(lam_max.clamp_min(0.0)))
        mx, my = means2d[..., 0], means2d[..., 1]
        on_screen = ((mx + radius > 0) & (mx - radius < width)
                     & (my + radius > 0) & (my - radius < height))
        keep = valid & on_screen & (radius > radius_clip)
        radii = torch.where(keep, radius, torch.zeros_like(radius)).to(torch.int32)
    if not calc_compensations:
        return radii, means2d, z, conics
    det0 = cov2d[..., 0, 0] * cov2d[..., 1, 1] - b * b
    ok = valid & (det0 > 0)
    ratio = torch.where(ok, det0, torch.ones_like(det0)) / det_safe
    comps = torch.where(ok, torch.sqrt(ratio), torch.zeros_like(ratio))
    return radii, means2d, z, conics, comps
