"""Tile-based front-to-back alpha compositing in pure PyTorch (differentiable via autograd).

This is the reference implementation of ``rasterize_to_pixels`` (see docs/architecture.md).
Work is vectorised over batches of tiles: every tile gets its depth-sorted list of Gaussians
(padded to the longest list in the batch) and all its pixels are composited at once. Memory
per batch is about ``tiles x tile_pixels x max_list_length``, capped by ``chunk_elems``.

The early-stop rule "stop before the Gaussian whose ``T_next <= 1e-4``" is a mask on the
inclusive cumulative product of ``1 - alpha``: transmittance never increases, so a Gaussian
is composited iff its inclusive transmittance is still above the threshold.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4


def tile_intersections(means2d: Tensor, radii: Tensor, depths: Tensor, width: int,
                       height: int, tile_size: int) -> tuple[Tensor, Tensor, int, int]:
    """Gaussian/tile pairs sorted by (camera, tile, depth).

    A Gaussian touches tile ``(tx, ty)`` iff ``radii > 0`` and the open square
    ``(mean2d - radius, mean2d + radius)`` overlaps the tile's pixel range.

    Returns:
        ``tile_keys [M]`` (``camera * n_tiles + ty * tiles_x + tx``), ``gauss_ids [M]``
        (``camera * N + n``), ``tiles_x``, ``tiles_y``.
    """
    n_cams, n = radii.shape
    device = means2d.device
    tiles_x = math.ceil(width / tile_size)
    tiles_y = math.ceil(height / tile_size)
    with torch.no_grad():
        # depth order within every camera; ties keep index order
        order = torch.sort(depths.detach(), dim=1, stable=True).indices  # [C, N]
        flat_ids = (order + torch.arange(n_cams, device=device)[:, None] * n).reshape(-1)
        cam = flat_ids // n
        r = radii.reshape(-1)[flat_ids].to(means2d.dtype)
        m = means2d.detach().reshape(-1, 2)[flat_ids]
        x0 = torch.floor((m[:, 0] - r) / tile_size).clamp(0, tiles_x).long()
        x1 = torch.ceil((m[:, 0] + r) / tile_size).clamp(0, tiles_x).long()
        y0 = torch.floor((m[:, 1] - r) / tile_size).clamp(0, tiles_y).long()
        y1 = torch.ceil((m[:, 1] + r) / tile_size).clamp(0, tiles_y).long()
        w = x1 - x0
        counts = w * (y1 - y0)
        counts = torch.where(r > 0, counts, torch.zeros_like(counts))
        total = int(counts.sum())
        gauss_ids = torch.repeat_interleave(flat_ids, counts, output_size=total)
        src = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts,
                                      output_size=total)
        starts = torch.cumsum(counts, 0) - counts
        local = torch.arange(total, device=device) - starts[src]
        tx = x0[src] + local % w[src]
        ty = y0[src] + local // w[src]
        tile_keys = cam[src] * (tiles_x * tiles_y) + ty * tiles_x + tx
        # stable sort by tile keeps the depth order inside every tile
        perm = torch.sort(tile_keys, stable=True).indices
    return tile_keys[perm], gauss_ids[perm], tiles_x, tiles_y


class _AbsGradTap(torch.autograd.Function):
    """Identity on ``(dx, dy) [B, P, K]``; the gradient of ``sink [B, K, 2]`` is the sum over
    pixels of ``|d loss / d dx|, |d loss / d dy|`` (gsplat's ``absgrad``)."""

    @staticmethod
    def forward(ctx, dx: Tensor, dy: Tensor, sink: Tensor) -> tuple[Tensor, Tensor]:
        return dx.view_as(dx), dy.view_as(dy)

    @staticmethod
    def backward(ctx, g_dx: Tensor, g_dy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return g_dx, g_dy, torch.stack([g_dx.abs().sum(1), g_dy.abs().sum(1)], dim=-1)


def _composite(mu: Tensor, pix: Tensor, conic: Tensor, opac: Tensor, valid: Tensor,
               color: Tensor, sink: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Composite ``[B, K]`` depth-sorted Gaussians over ``[B, P]`` pixels.

    mu ``[B, K, 2]`` means; pix ``[B, P, 2]`` pixel centres; conic ``[B, K, 3]``;
    opac ``[B, K]``; valid ``[B, K]``; color ``[B, K, D]``.
    Returns accumulated colour ``[B, P, D]`` and final transmittance ``[B, P]``.
    """
    dx = mu[..., 0].unsqueeze(1) - pix[..., 0].unsqueeze(-1)  # [B, P, K]
    dy = mu[..., 1].unsqueeze(1) - pix[..., 1].unsqueeze(-1)
    if sink is not None:
        dx, dy = _AbsGradTap.apply(dx, dy, sink)
    ca, cb, cc = (conic[..., i].unsqueeze(1) for i in range(3))
    # exactly the contract's expression: other backends must take the same threshold decisions
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    alpha = torch.clamp_max(opac.unsqueeze(1) * torch.exp(-sigma), ALPHA_MAX)
    use = (sigma >= 0) & (alpha >= ALPHA_MIN) & valid.unsqueeze(1)
    alpha = torch.where(use, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - alpha  # >= 0.01, so the divisions below are safe
    t_incl = torch.cumprod(one_minus, dim=-1)  # T after each Gaussian
    # stop rule: T never increases, so "not yet stopped" == inclusive T above the threshold
    alive = t_incl.detach() > T_MIN
    weights = torch.where(alive, alpha * (t_incl / one_minus), torch.zeros_like(alpha))
    out = torch.bmm(weights, color)  # [B, P, D]
    # sum_i alpha_i T_i telescopes to 1 - T_final over the composited Gaussians
    return out, 1.0 - weights.sum(dim=-1)


def rasterize_to_pixels_torch(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,
    chunk_elems: int = 1 << 21,
    absgrad_sink: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Rasterize projected Gaussians (contract signature; see docs/architecture.md).

    Args:
        means2d ``[C, N, 2]``, conics ``[C, N, 3]``, colors ``[C, N, D]``, opacities ``[C, N]``,
        depths ``[C, N]`` (sort key only), radii ``[C, N]`` (0 = invisible),
        backgrounds ``[C, D]`` or None; ``chunk_elems`` bounds ``tiles*pixels*list_len``.
        ``absgrad_sink``: optional ``[C, N, 2]`` tensor requiring grad whose gradient becomes
        the per-pixel sum of ``|d loss / d means2d|`` (gsplat's ``absgrad``).
    Returns:
        ``colors [C, H, W, D]`` and ``alphas [C, H, W, 1]`` (= 1 - final transmittance).
    """
    n_cams, n = radii.shape
    d = colors.shape[-1]
    device, dtype = means2d.device, means2d.dtype
    recompute = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means2d, conics, colors, opacities))
    tile_keys, gauss_ids, tiles_x, tiles_y = tile_intersections(
        means2d, radii, depths, width, height, tile_size)
    n_tiles_total = n_cams * tiles_x * tiles_y
    n_pix = tile_size * tile_size

    means_f = means2d.reshape(-1, 2)
    conics_f = conics.reshape(-1, 3)
    colors_f = colors.reshape(-1, d)
    opac_f = opacities.reshape(-1)

    # pixel-centre offsets inside a tile, row-major
    py_loc, px_loc = torch.meshgrid(torch.arange(tile_size, device=device, dtype=dtype),
                                    torch.arange(tile_size, device=device, dtype=dtype),
                                    indexing='ij')
    px_loc, py_loc = px_loc.reshape(-1) + 0.5, py_loc.reshape(-1) + 0.5

    out_color = means2d.new_zeros(n_tiles_total, n_pix, d)
    out_t = means2d.new_ones(n_tiles_total, n_pix)
    if tile_keys.numel() > 0:
        with torch.no_grad():
            uniq, counts = torch.unique_consecutive(tile_keys, return_counts=True)
            starts = torch.cumsum(counts, 0) - counts
            by_len = torch.argsort(counts)  # batch tiles of similar list length
        counts_l, starts_l, uniq_l = counts[by_len], starts[by_len], uniq[by_len]
        counts_cpu = counts_l.tolist()
        i, n_busy = 0, len(counts_cpu)
        done_ids, done_color, done_t = [], [], []
        while i < n_busy:
            # grow the batch while tiles x pixels x longest list stays under the budget
            j = i + 1
            while j < n_busy and (j + 1 - i) * n_pix * counts_cpu[j] <= chunk_elems:
                j += 1
            k = counts_cpu[j - 1]
            with torch.no_grad():
                slot = torch.arange(k, device=device)
                valid = slot[None, :] < counts_l[i:j, None]  # [B, K]
                pos = (starts_l[i:j, None] + slot[None, :]).clamp_max(gauss_ids.numel() - 1)
                gid = torch.where(valid, gauss_ids[pos], torch.zeros_like(pos))
                tile = uniq_l[i:j] % (tiles_x * tiles_y)
                ox = (tile % tiles_x * tile_size).to(dtype)
                oy = (tile // tiles_x * tile_size).to(dtype)
                pix = torch.stack([(ox[:, None] + px_loc[None, :]),
                                   (oy[:, None] + py_loc[None, :])], dim=-1)  # [B, P, 2]
            args = (means_f[gid], pix, conics_f[gid], opac_f[gid], valid, colors_f[gid])
            if absgrad_sink is not None:
                args = args + (absgrad_sink.reshape(-1, 2)[gid],)
            if recompute:
                # keep only the small [B, K] inputs; the [B, P, K] temporaries are rebuilt
                # during backward, so memory does not grow with the number of batches
                col, t_fin = checkpoint(_composite, *args, use_reentrant=False)
            else:
                col, t_fin = _composite(*args)
            done_ids.append(uniq_l[i:j])
            done_color.append(col)
            done_t.append(t_fin)
            i = j
        ids = torch.cat(done_ids)
        out_color = out_color.index_copy(0, ids, torch.cat(done_color))
        out_t = out_t.index_copy(0, ids, torch.cat(done_t))

    def to_image(x: Tensor) -> Tensor:
        ch = x.shape[-1]
        x = x.reshape(n_cams, tiles_y, tiles_x, tile_size, tile_size, ch)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(n_cams, tiles_y * tile_size,
                                                 tiles_x * tile_size, ch)
        return x[:, :height, :width]

    img = to_image(out_color)
    t_img = to_image(out_t.unsqueeze(-1))
    if backgrounds is not None:
        img = img + t_img * backgrounds[:, None, None, :].to(dtype)
    return img, 1.0 - t_img
