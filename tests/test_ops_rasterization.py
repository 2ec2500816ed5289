"""The torch rasterizer against an independent brute-force per-pixel reference, and gradients.

The reference is written from the contract in docs/architecture.md in float64 NumPy/SciPy:
projection per Gaussian with explicit matrices, SH through SciPy's complex harmonics,
then every Gaussian at every pixel in depth order, one Gaussian at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y

from nerfreg.ops import rasterization, rasterize_to_pixels_torch

# ----------------------------------------------------------------------------- reference


def ref_real_sh(degree: int, d: np.ndarray) -> np.ndarray:
    """Real SH (3DGS convention) from SciPy's complex harmonics (Condon-Shortley phase)."""
    d = d / np.linalg.norm(d)
    polar = math.acos(np.clip(d[2], -1.0, 1.0))
    azimuth = math.atan2(d[1], d[0])
    out = []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            y = complex(sph_harm_y(ell, abs(m), polar, azimuth))
            if m < 0:
                out.append(math.sqrt(2.0) * y.imag)
            elif m == 0:
                out.append(y.real)
            else:
                out.append(math.sqrt(2.0) * y.real)
    return np.array(out)


def ref_project(mean, quat, scale, viewmat, K, width, height, eps2d=0.3, near=0.01,
                far=1e10):
    """One Gaussian in one camera -> (radius, mean2d, depth, conic 2x2) per the contract."""
    rot = Rotation.from_quat(quat / np.linalg.norm(quat), scalar_first=True).as_matrix()
    cov = rot @ np.diag(scale ** 2) @ rot.T
    w_rot, w_t = viewmat[:3, :3], viewmat[:3, 3]
    p = w_rot @ mean + w_t
    cov_c = w_rot @ cov @ w_rot.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    z = p[2]
    if not (near < z < far):
        return 0, None, z, None
    # Jacobian evaluated at the mean clamped to 1.3x the FOV (off-centre principal point aware)
    tx, ty = 0.5 * width / fx, 0.5 * height / fy
    u = min(max(p[0] / z, -(cx / fx + 0.3 * tx)), (width - cx) / fx + 0.3 * tx)
    v = min(max(p[1] / z, -(cy / fy + 0.3 * ty)), (height - cy) / fy + 0.3 * ty)
    jac = np.array([[fx / z, 0.0, -fx * u / z], [0.0, fy / z, -fy * v / z]])
    cov2d = jac @ cov_c @ jac.T + eps2d * np.eye(2)
    if np.linalg.det(cov2d) <= 0:
        return 0, None, z, None
    mean2d = np.array([fx * p[0] / z + cx, fy * p[1] / z + cy])
    radius = math.ceil(3.0 * math.sqrt(np.linalg.eigvalsh(cov2d).max()))
    if (mean2d[0] + radius <= 0 or mean2d[0] - radius >= width or mean2d[1] + radius <= 0
            or mean2d[1] - radius >= height):
        return 0, None, z, None
    return radius, mean2d, z, np.linalg.inv(cov2d)


def ref_render(means, quats, scales, opac, colors, viewmats, Ks, width, height, sh_degree,
               backgrounds, mode, tile_size, stats=None):
    """Brute force: every Gaussian at every pixel (vectorised over pixels), depth order."""
    n_cams = viewmats.shape[0]
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing='ij')
    tile_x0 = np.floor(xs / tile_size) * tile_size  # left edge of every pixel's tile
    tile_y0 = np.floor(ys / tile_size) * tile_size
    out_c, out_a = [], []
    for ci in range(n_cams):
        rot, t = viewmats[ci, :3, :3], viewmats[ci, :3, 3]
        center = -rot.T @ t
        projected = []
        for i in range(means.shape[0]):
            r, m2d, z, conic = ref_project(means[i], quats[i], scales[i], viewmats[ci],
                                           Ks[ci], width, height)
            if sh_degree is None:
                col = colors[i]
            else:
                basis = ref_real_sh(sh_degree, means[i] - center)
                col = np.maximum(basis @ colors[i, :len(basis)] + 0.5, 0.0)
            feats = []
            if mode in ('RGB', 'RGB+D', 'RGB+ED'):
                feats.append(col)
            if mode != 'RGB':
                feats.append([z])
            projected.append((z, i, r, m2d, conic, np.concatenate(feats)))
        projected.sort(key=lambda g: (g[0], g[1]))
        n_ch = projected[0][5].shape[0]
        acc = np.zeros((height, width, n_ch))
        trans = np.ones((height, width))
        done = np.zeros((height, width), dtype=bool)
        for _, i, r, m2d, conic, feat in projected:
            if r == 0:
                continue
            # the Gaussian is listed in a pixel's tile iff its open bbox overlaps that tile
            in_tile = ((tile_x0 < m2d[0] + r) & (tile_x0 + tile_size > m2d[0] - r)
                       & (tile_y0 < m2d[1] + r) & (tile_y0 + tile_size > m2d[1] - r))
            dx, dy = m2d[0] - xs, m2d[1] - ys
            sigma = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
            alpha = np.minimum(0.99, opac[i] * np.exp(-sigma))
            active = in_tile & ~done & (sigma >= 0) & (alpha >= 1.0 / 255.0)
            t_next = trans * (1.0 - alpha)
            stop = active & (t_next <= 1e-4)
            done |= stop
            go = active & ~stop
            acc[go] += (alpha * trans)[go][:, None] * feat[None, :]
            trans = np.where(go, t_next, trans)
        if stats is not None:
            stats['stopped'] = stats.get('stopped', 0) + int(done.sum())
        if backgrounds is not None and mode in ('RGB', 'RGB+D', 'RGB+ED'):
            bg = np.concatenate([backgrounds[ci], np.zeros(n_ch - backgrounds.shape[1])])
            acc += trans[..., None] * bg
        alpha_img = 1.0 - trans
        if mode in ('ED', 'RGB+ED'):
            acc[..., -1] = acc[..., -1] / np.maximum(alpha_img, 1e-10)
        out_c.append(acc)
        out_a.append(alpha_img[..., None])
    return np.stack(out_c), np.stack(out_a)


# ----------------------------------------------------------------------------- scenes


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera OpenCV view matrix looking from eye to target (y down)."""
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.array([0.0, -1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd])
    vm = np.eye(4)
    vm[:3, :3] = rot
    vm[:3, 3] = -rot @ eye
    return vm


def random_scene(seed: int, n: int = 40, n_cams: int = 2, width: int = 37, height: int = 29,
                 sh_degree: int | None = None):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-1.0, 1.0, (n, 3))
    quats = rng.normal(size=(n, 4))
    scales = np.exp(rng.uniform(-3.0, -1.2, (n, 3)))
    opac = rng.uniform(0.3, 1.0, n)
    opac[: n // 4] = 1.0  # some saturate at alpha 0.99 and drive T to the stop threshold
    if sh_degree is None:
        colors = rng.uniform(0.0, 1.0, (n, 3))
    else:
        colors = rng.normal(scale=0.4, size=(n, 16, 3))
    viewmats, Ks = [], []
    for ci in range(n_cams):
        ang = 2 * math.pi * ci / n_cams + rng.uniform(-0.3, 0.3)
        eye = np.array([3.0 * math.sin(ang), rng.uniform(-0.8, 0.8), -3.0 * math.cos(ang)])
        viewmats.append(look_at(eye, rng.uniform(-0.2, 0.2, 3)))
        f = rng.uniform(25.0, 45.0)
        Ks.append(np.array([[f, 0.0, width / 2 + rng.uniform(-3, 3)],
                            [0.0, f * 1.05, height / 2 + rng.uniform(-3, 3)], [0, 0, 1.0]]))
    # one Gaussian behind the first camera, one far off-screen
    eye0 = -viewmats[0][:3, :3].T @ viewmats[0][:3, 3]
    means[-1] = eye0 - 0.5 * viewmats[0][2, :3]
    means[-2] = eye0 + 3.0 * viewmats[0][2, :3] + 50.0 * viewmats[0][0, :3]
    backgrounds = rng.uniform(0.0, 1.0, (n_cams, 3))
    return dict(means=means, quats=quats, scales=scales, opacities=opac, colors=colors,
                viewmats=np.stack(viewmats), Ks=np.stack(Ks), width=width, height=height,
                backgrounds=backgrounds)


def to_torch(scene: dict, dtype: torch.dtype = torch.float64) -> dict:
    return {k: torch.tensor(v, dtype=dtype) if isinstance(v, np.ndarray) else v
            for k, v in scene.items()}


def render_both(scene, sh_degree, with_bg, mode, tile_size=16, dtype=torch.float64,
                stats=None):
    ts = to_torch(scene, dtype)
    bg = ts['backgrounds'] if with_bg else None
    ours_c, ours_a, meta = rasterization(
        ts['means'], ts['quats'], ts['scales'], ts['opacities'], ts['colors'], ts['viewmats'],
        ts['Ks'], scene['width'], scene['height'], sh_degree=sh_degree, backgrounds=bg,
        render_mode=mode, backend='torch', tile_size=tile_size)
    ref_c, ref_a = ref_render(scene['means'], scene['quats'], scene['scales'],
                              scene['opacities'], scene['colors'], scene['viewmats'],
                              scene['Ks'], scene['width'], scene['height'], sh_degree,
                              scene['backgrounds'] if with_bg else None, mode, tile_size,
                              stats)
    return ours_c, ours_a, meta, ref_c, ref_a


# ----------------------------------------------------------------------------- tests

CASES = [  # seed, sh_degree, backgrounds, mode, tile_size
    (0, None, False, 'RGB', 16),
    (1, None, True, 'RGB', 16),
    (2, 0, True, 'RGB+D', 16),
    (3, 1, False, 'RGB+ED', 16),
    (4, 2, True, 'RGB', 8),
    (5, 3, True, 'RGB+ED', 16),
    (6, 3, False, 'D', 16),
    (7, None, True, 'ED', 8),
]


@pytest.mark.parametrize('seed,sh_degree,with_bg,mode,tile_size', CASES)
def test_torch_backend_matches_brute_force(seed, sh_degree, with_bg, mode, tile_size):
    scene = random_scene(seed, sh_degree=sh_degree)
    ours_c, ours_a, meta, ref_c, ref_a = render_both(scene, sh_degree, with_bg, mode,
                                                     tile_size)
    n_ch = {'RGB': 3, 'D': 1, 'ED': 1, 'RGB+D': 4, 'RGB+ED': 4}[mode]
    assert ours_c.shape == (2, scene['height'], scene['width'], n_ch)
    assert ours_a.shape == (2, scene['height'], scene['width'], 1)
    # the scene is not trivial: both covered and mostly empty pixels
    assert (ref_a > 0.5).mean() > 0.05 and (ref_a < 0.1).mean() > 0.05
    assert (meta['radii'] > 0).sum() > 20
    assert meta['radii'][0, -1] == 0 and meta['radii'][0, -2] == 0  # behind / off-screen
    np.testing.assert_allclose(ours_a.numpy(), ref_a, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours_c.numpy(), ref_c, atol=1e-5, rtol=1e-7)


def test_stop_rule_against_brute_force():
    """Opaque scene: many pixels stop early, and they stop at the same Gaussian."""
    scene = random_scene(0, n=60)
    scene['opacities'][:] = 1.0
    scene['scales'] *= 1.5
    stats = {}
    ours_c, ours_a, _, ref_c, ref_a = render_both(scene, None, True, 'RGB+D', stats=stats)
    assert stats['stopped'] > 50
    np.testing.assert_allclose(ours_a.numpy(), ref_a, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours_c.numpy(), ref_c, atol=1e-5, rtol=1e-7)


def test_stop_rule_by_hand():
    """Five alpha-0.95 Gaussians on one pixel: T = 0.05^k, so 0.05^3 = 1.25e-4 > 1e-4 is still
    composited and the 4th (T_next = 6.25e-6) stops the pixel before it contributes."""
    n = 5
    means2d = torch.full((1, n, 2), 0.5, dtype=torch.float64)  # pixel (0, 0) centre
    conics = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64).expand(1, n, 3)
    colors = torch.eye(n, dtype=torch.float64)[None]  # one channel per Gaussian
    opac = torch.full((1, n), 0.95, dtype=torch.float64)
    depths = torch.arange(n, 0, -1, dtype=torch.float64)[None]  # last Gaussian is in front
    radii = torch.full((1, n), 2, dtype=torch.int32)
    c, a = rasterize_to_pixels_torch(means2d, conics, colors, opac, depths, radii, 1, 1, 16)
    expected = torch.zeros(n, dtype=torch.float64)
    expected[n - 1], expected[n - 2], expected[n - 3] = 0.95, 0.95 * 0.05, 0.95 * 0.05 ** 2
    torch.testing.assert_close(c[0, 0, 0], expected)
    torch.testing.assert_close(a[0, 0, 0, 0], torch.tensor(1 - 0.05 ** 3, dtype=torch.float64))


def test_alpha_clamp_and_skip_rules_by_hand():
    """alpha = min(0.99, o exp(-sigma)); alpha < 1/255 is skipped (does not reduce T)."""
    means2d = torch.tensor([[[0.5, 0.5], [0.5, 0.5], [1.5, 0.5]]], dtype=torch.float64)
    conics = torch.tensor([[[1.0, 0.0, 1.0]] * 3], dtype=torch.float64)
    colors = torch.eye(3, dtype=torch.float64)[None]
    # front: faint (alpha 0.003 < 1/255 at its centre), then an opaque one (clamped to 0.99)
    opac = torch.tensor([[0.003, 1.0, 0.5]], dtype=torch.float64)
    depths = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    radii = torch.full((1, 3), 3, dtype=torch.int32)
    c, a = rasterize_to_pixels_torch(means2d, conics, colors, opac, depths, radii, 2, 1, 16)
    # pixel (0,0): faint skipped, opaque 0.99, third at dx=1: 0.5*exp(-0.5), T = 0.01
    third = 0.5 * math.exp(-0.5)
    torch.testing.assert_close(c[0, 0, 0], torch.tensor([0.0, 0.99, 0.01 * third],
                                                        dtype=torch.float64))
    torch.testing.assert_close(a[0, 0, 0, 0],
                               torch.tensor(1 - 0.01 * (1 - third), dtype=torch.float64))


def test_float32_matches_reference():
    scene = random_scene(11, sh_degree=3)
    ours_c, ours_a, _, ref_c, ref_a = render_both(scene, 3, True, 'RGB+D',
                                                  dtype=torch.float32)
    assert ours_c.dtype == torch.float32
    np.testing.assert_allclose(ours_a.numpy(), ref_a, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours_c.numpy(), ref_c, atol=1e-4, rtol=1e-4)


def test_small_chunks_give_identical_image():
    """Tile batching is an implementation detail: a tiny memory budget changes nothing."""
    ts = to_torch(random_scene(3))
    args = (ts['means'], ts['quats'], ts['scales'], ts['opacities'], ts['colors'],
            ts['viewmats'], ts['Ks'], 37, 29)
    _, _, meta = rasterization(*args, backend='torch')
    big = rasterize_to_pixels_torch(meta['means2d'], meta['conics'], meta['colors'],
                                    meta['opacities'], meta['depths'], meta['radii'], 37, 29,
                                    16, ts['backgrounds'])
    small = rasterize_to_pixels_torch(meta['means2d'], meta['conics'], meta['colors'],
                                      meta['opacities'], meta['depths'], meta['radii'], 37,
                                      29, 16, ts['backgrounds'], chunk_elems=1)
    torch.testing.assert_close(big[0], small[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(big[1], small[1], atol=1e-12, rtol=0)


def test_work_per_batch_is_bounded(monkeypatch):
    """Each vectorised batch holds tiles x tile_pixels x list_length <= chunk_elems elements
    (a single tile may exceed it), never C x H x W x N."""
    import nerfreg.ops.rasterize_torch as rt
    sizes = []
    real = rt._composite

    def spy(mu, pix, *rest):
        sizes.append((pix.shape[0], pix.shape[1], mu.shape[1]))
        return real(mu, pix, *rest)

    monkeypatch.setattr(rt, '_composite', spy)
    ts = to_torch(random_scene(1, n=80, width=64, height=48), torch.float32)
    _, _, meta = rasterization(ts['means'], ts['quats'], ts['scales'], ts['opacities'],
                               ts['colors'], ts['viewmats'], ts['Ks'], 64, 48,
                               backend='torch')
    sizes.clear()
    budget = 256 * 40
    rasterize_to_pixels_torch(meta['means2d'], meta['conics'], meta['colors'],
                              meta['opacities'], meta['depths'], meta['radii'], 64, 48, 16,
                              chunk_elems=budget)
    assert len(sizes) > 1
    assert all(b * p * k <= budget or b == 1 for b, p, k in sizes)
    assert max(k for _, _, k in sizes) < 80  # lists are per tile, not all Gaussians


def test_empty_scene_renders_background():
    means = torch.tensor([[0.0, 0.0, -5.0]])  # behind the camera
    vm = torch.eye(4)[None]
    K = torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]])
    bg = torch.tensor([[0.2, 0.4, 0.6]])
    c, a, meta = rasterization(means, torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3) * 0.1,
                               torch.ones(1), torch.ones(1, 3), vm, K, 16, 16,
                               backgrounds=bg, render_mode='RGB+ED', backend='torch')
    assert meta['radii'].sum() == 0
    torch.testing.assert_close(c[..., :3], bg[:, None, None, :].expand(1, 16, 16, 3))
    assert torch.all(c[..., 3] == 0)  # expected depth of an empty pixel: guarded, not NaN
    assert torch.all(a == 0)


def test_zero_gaussians():
    vm = torch.eye(4)[None].repeat(2, 1, 1)
    K = torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]]).repeat(2, 1, 1)
    means = torch.zeros(0, 3, requires_grad=True)
    c, a, meta = rasterization(means, torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0),
                               torch.zeros(0, 3), vm, K, 20, 10, backend='torch')
    assert c.shape == (2, 10, 20, 3) and torch.all(c == 0) and torch.all(a == 0)
    assert meta['radii'].shape == (2, 0)


def test_per_camera_colors():
    """colors [C, N, D] give each camera its own colours (same as rendering one by one)."""
    ts = to_torch(random_scene(4, n=15))
    per_cam = torch.stack([ts['colors'], 1.0 - ts['colors']])
    args = (ts['means'], ts['quats'], ts['scales'], ts['opacities'])
    c, _, _ = rasterization(*args, per_cam, ts['viewmats'], ts['Ks'], 37, 29, backend='torch')
    for ci in range(2):
        ci_only, _, _ = rasterization(*args, per_cam[ci], ts['viewmats'][ci:ci + 1],
                                      ts['Ks'][ci:ci + 1], 37, 29, backend='torch')
        torch.testing.assert_close(c[ci:ci + 1], ci_only)


def test_meta_contents_and_means2d_grad():
    ts = to_torch(random_scene(2, n=20), torch.float32)
    means = ts['means'].clone().requires_grad_(True)
    colors = ts['colors'].clone().requires_grad_(True)
    c, a, meta = rasterization(means, ts['quats'], ts['scales'], ts['opacities'], colors,
                               ts['viewmats'], ts['Ks'], 37, 29, render_mode='RGB+ED',
                               backend='torch')
    assert meta['means2d'].shape == (2, 20, 2) and meta['radii'].shape == (2, 20)
    assert meta['conics'].shape == (2, 20, 3) and meta['depths'].shape == (2, 20)
    assert meta['opacities'].shape == (2, 20) and meta['colors'].shape == (2, 20, 3)
    assert (meta['width'], meta['height'], meta['n_cameras'], meta['tile_size'],
            meta['backend']) == (37, 29, 2, 16, 'torch')
    assert not meta['means2d'].is_leaf
    (c.sum() + a.sum()).backward()
    g = meta['means2d'].grad
    assert g is not None and g.shape == (2, 20, 2)
    visible = meta['radii'] > 0
    assert torch.all(g[visible].abs().sum(-1) > 0)  # every visible Gaussian gets a gradient
    assert torch.all(g[~visible] == 0)
    assert means.grad is not None and torch.isfinite(means.grad).all()
    assert colors.grad.abs().sum() > 0


def test_no_grad_means2d_is_plain():
    ts = to_torch(random_scene(2, n=10), torch.float32)
    with torch.no_grad():
        _, _, meta = rasterization(ts['means'], ts['quats'], ts['scales'], ts['opacities'],
                                   ts['colors'], ts['viewmats'], ts['Ks'], 37, 29,
                                   backend='torch')
    assert not meta['means2d'].requires_grad


def test_bad_arguments_are_rejected():
    ts = to_torch(random_scene(0, n=5), torch.float32)
    args = (ts['means'], ts['quats'], ts['scales'], ts['opacities'], ts['colors'],
            ts['viewmats'], ts['Ks'], 37, 29)
    with pytest.raises(ValueError, match='render_mode'):
        rasterization(*args, render_mode='RGBD')
    with pytest.raises(ValueError, match='backend'):
        rasterization(*args, backend='vulkan')
    with pytest.raises(ValueError, match='SH coefficients'):
        rasterization(*args, sh_degree=1)
    with pytest.raises(ValueError, match='backgrounds must be'):
        rasterization(*args, backgrounds=torch.zeros(2, 4))


# ----------------------------------------------------------------------------- gradients


def tiny_scene(dtype=torch.float64) -> dict:
    """3 Gaussians at distinct depths in one 16x16 tile; opacities keep alpha < 0.99 and T
    far above 1e-4, so no pixel sits on a discontinuity of the compositing rules."""
    means = torch.tensor([[0.05, -0.02, 2.0], [-0.10, 0.06, 2.6], [0.12, 0.10, 3.2]],
                         dtype=dtype)
    quats = torch.tensor([[1.0, 0.2, -0.1, 0.3], [0.9, -0.3, 0.2, 0.1], [0.7, 0.1, 0.5, -0.2]],
                         dtype=dtype)
    scales = torch.tensor([[0.10, 0.05, 0.08], [0.07, 0.12, 0.05], [0.15, 0.09, 0.11]],
                          dtype=dtype)
    opacities = torch.tensor([0.55, 0.7, 0.8], dtype=dtype)
    colors = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.2, 0.3, 0.9]], dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    sh = 0.3 * torch.randn(3, 16, 3, generator=gen, dtype=dtype)
    vm = torch.eye(4, dtype=dtype)[None]
    vm[0, :3, 3] = torch.tensor([0.02, -0.01, 0.1], dtype=dtype)
    K = torch.tensor([[[30.0, 0, 8.2], [0, 31.0, 7.9], [0, 0, 1]]], dtype=dtype)
    bg = torch.tensor([[0.3, 0.5, 0.7]], dtype=dtype)
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
                sh=sh, viewmats=vm, Ks=K, backgrounds=bg)


def _check_grad(name: str, sh_degree: int | None = None, mode: str = 'RGB'):
    s = tiny_scene()

    def fn(x):
        p = dict(s)
        p[name] = x
        colors = p['sh'] if sh_degree is not None else p['colors']
        c, a, _ = rasterization(p['means'], p['quats'], p['scales'], p['opacities'], colors,
                                p['viewmats'], p['Ks'], 16, 16, sh_degree=sh_degree,
                                backgrounds=p['backgrounds'], render_mode=mode,
                                backend='torch')
        return torch.cat([c, a], dim=-1)

    x = s[name].clone().requires_grad_(True)
    # the scene really renders: alpha reaches > 0.5 somewhere
    assert fn(x)[..., -1].max() > 0.5
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize('name', ['colors', 'opacities', 'scales', 'quats', 'means',
                                  'backgrounds'])
def test_gradcheck_rgb(name):
    _check_grad(name)


@pytest.mark.parametrize('sh_degree', [1, 3])
def test_gradcheck_sh_coefficients(sh_degree):
    _check_grad('sh', sh_degree=sh_degree)


def test_gradcheck_means_with_sh_and_expected_depth():
    _check_grad('means', sh_degree=3, mode='RGB+ED')


def test_gradcheck_rasterize_to_pixels_inputs():
    """Directly on the contract's inputs (means2d, conics, colors, opacities)."""
    s = tiny_scene()
    with torch.no_grad():
        _, _, meta = rasterization(s['means'], s['quats'], s['scales'], s['opacities'],
                                   s['colors'], s['viewmats'], s['Ks'], 16, 16,
                                   backend='torch')
    inputs = tuple(meta[k].clone().requires_grad_(True)
                   for k in ('means2d', 'conics', 'colors', 'opacities'))

    def fn(m2d, con, col, op):
        return rasterize_to_pixels_torch(m2d, con, col, op, meta['depths'], meta['radii'],
                                         16, 16, 16, s['backgrounds'])

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4,
                                    fast_mode=True)
