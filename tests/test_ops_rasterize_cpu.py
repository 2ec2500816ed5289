"""The Numba CPU rasterizer (backend='cpu') against the torch backend and a brute-force loop.

Three independent checks: (1) a per-pixel Python loop written from the contract in
docs/architecture.md (every Gaussian of the tile, no culling), (2) the pure-PyTorch backend
(images to 1e-5, autograd gradients to 1e-4 relative, both at the rasterize level and
through the full ``rasterization()``), (3) float64 finite differences (gradcheck).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfreg.ops import rasterization
from nerfreg.ops.rasterize_cpu import depth_order, rasterize_to_pixels_cpu
from nerfreg.ops.rasterize_torch import rasterize_to_pixels_torch

# ------------------------------------------------------------------ brute-force reference


def brute_force(means2d, conics, colors, opac, depths, radii, width, height, tile_size,
                backgrounds=None):
    """Contract definition, one pixel at a time, in float64 Python."""
    m, con, col, op, dep, rad = (t.detach().double().numpy() for t in
                                 (means2d, conics, colors, opac, depths, radii))
    n_cams, n, n_ch = col.shape
    img = np.zeros((n_cams, height, width, n_ch))
    alphas = np.zeros((n_cams, height, width, 1))
    for ci in range(n_cams):
        order = sorted(range(n), key=lambda i: (dep[ci, i], i))
        for py in range(height):
            for px in range(width):
                tx, ty = px // tile_size, py // tile_size
                trans, acc = 1.0, np.zeros(n_ch)
                for g in order:
                    r = rad[ci, g]
                    if r <= 0:
                        continue
                    mx, my = m[ci, g]
                    if not (math.floor((mx - r) / tile_size) <= tx < math.ceil((mx + r) / tile_size)
                            and math.floor((my - r) / tile_size) <= ty
                            < math.ceil((my + r) / tile_size)):
                        continue
                    dx, dy = mx - (px + 0.5), my - (py + 0.5)
                    a, b, c = con[ci, g]
                    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                    if sigma < 0:
                        continue
                    alpha = min(0.99, op[ci, g] * math.exp(-sigma))
                    if alpha < 1.0 / 255.0:
                        continue
                    t_next = trans * (1.0 - alpha)
                    if t_next <= 1e-4:
                        break
                    acc += col[ci, g] * alpha * trans
                    trans = t_next
                if backgrounds is not None:
                    acc += trans * backgrounds[ci].detach().double().numpy()
                img[ci, py, px] = acc
                alphas[ci, py, px, 0] = 1.0 - trans
    return torch.from_numpy(img), torch.from_numpy(alphas)


# ------------------------------------------------------------------ random 2D scenes


def scene_2d(seed: int, n_cams: int = 2, n: int = 60, width: int = 41, height: int = 35,
             n_ch: int = 3, scale: float = 3.0, opacity: float = 1.0, invisible: float = 0.1,
             dtype: torch.dtype = torch.float32) -> dict:
    """Random projected Gaussians with positive-definite conics and contract radii."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.rand(n_cams, n, 2, generator=g, dtype=torch.float64)
    means2d = mean * torch.tensor([width + 10.0, height + 10.0], dtype=torch.float64) - 5.0
    root = torch.randn(n_cams, n, 2, 2, generator=g, dtype=torch.float64) * scale
    cov = root @ root.transpose(-1, -2) + 0.3 * torch.eye(2, dtype=torch.float64)
    inv = torch.linalg.inv(cov)
    conics = torch.stack([inv[..., 0, 0], inv[..., 0, 1], inv[..., 1, 1]], dim=-1)
    radii = torch.ceil(3.0 * torch.linalg.eigvalsh(cov)[..., -1].sqrt()).to(torch.int32)
    radii[torch.rand(n_cams, n, generator=g) < invisible] = 0
    return dict(
        means2d=means2d.to(dtype), conics=conics.to(dtype),
        colors=torch.rand(n_cams, n, n_ch, generator=g, dtype=torch.float64).to(dtype),
        opacities=(torch.rand(n_cams, n, generator=g, dtype=torch.float64) * opacity).to(dtype),
        depths=(torch.rand(n_cams, n, generator=g, dtype=torch.float64) + 1.0).to(dtype),
        radii=radii, width=width, height=height)


def assert_matches_brute_force(sc: dict, tile_size: int, atol: float) -> torch.Tensor:
    """The cpu backend's image and alpha of scene ``sc`` equal the brute-force reference
    within ``atol``; returns the alpha."""
    img, alpha, _ = rasterize(rasterize_to_pixels_cpu, sc, tile_size)
    ref_img, ref_alpha = brute_force(*(sc[k] for k in ('means2d', 'conics', 'colors',
                                                       'opacities', 'depths', 'radii')),
                                     sc['width'], sc['height'], tile_size)
    assert torch.allclose(img, ref_img, atol=atol, rtol=0)
    assert torch.allclose(alpha, ref_alpha, atol=atol, rtol=0)
    return alpha


def rasterize(fn, sc: dict, tile_size: int = 16, backgrounds=None, grad: bool = False):
    """Run a rasterize_to_pixels backend; with grad, also return input gradients of a
    random linear loss on colours and alphas."""
    inputs = {k: sc[k].clone().requires_grad_(grad)
              for k in ('means2d', 'conics', 'colors', 'opacities')}
    bg = None if backgrounds is None else backgrounds.clone().requires_grad_(grad)
    img, alpha = fn(inputs['means2d'], inputs['conics'], inputs['colors'],
                    inputs['opacities'], sc['depths'], sc['radii'], sc['width'],
                    sc['height'], tile_size, bg)
    if not grad:
        return img, alpha, None
    g = torch.Generator().manual_seed(123)
    w_img = torch.randn(img.shape, generator=g, dtype=torch.float64).to(img.dtype)
    w_alpha = torch.randn(alpha.shape, generator=g, dtype=torch.float64).to(img.dtype)
    ((img * w_img).sum() + (alpha * w_alpha).sum()).backward()
    grads = {k: v.grad for k, v in inputs.items()}
    if bg is not None:
        grads['backgrounds'] = bg.grad
    return img, alpha, grads


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 when both are zero)."""
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


# ------------------------------------------------------------------ tests: reference


@pytest.mark.parametrize('tile_size', [16, 8])
@pytest.mark.parametrize('seed,opacity,n_ch,with_bg', [
    (0, 1.0, 3, False), (1, 1.0, 4, True), (2, 0.5, 1, True), (3, 1.0, 3, True)])
def test_forward_matches_brute_force(seed, opacity, n_ch, with_bg, tile_size):
    sc = scene_2d(seed, n_cams=2, n=40, width=23, height=19, n_ch=n_ch, opacity=opacity,
                  dtype=torch.float64)
    bg = torch.rand(2, n_ch, dtype=torch.float64) if with_bg else None
    img, alpha, _ = rasterize(rasterize_to_pixels_cpu, sc, tile_size, bg)
    ref_img, ref_alpha = brute_force(sc['means2d'], sc['conics'], sc['colors'],
                                     sc['opacities'], sc['depths'], sc['radii'], sc['width'],
                                     sc['height'], tile_size, bg)
    assert img.shape == (2, 19, 23, n_ch) and alpha.shape == (2, 19, 23, 1)
    assert torch.allclose(img, ref_img, atol=1e-10, rtol=0)
    assert torch.allclose(alpha, ref_alpha, atol=1e-10, rtol=0)
    assert alpha.max() > 0.5  # the scene is not empty


def test_early_stop_against_brute_force():
    """Many opaque Gaussians: most pixels reach T <= 1e-4 and stop."""
    sc = scene_2d(7, n_cams=1, n=150, width=20, height=17, scale=6.0, opacity=1.0,
                  invisible=0.0, dtype=torch.float64)
    sc['opacities'] = sc['opacities'] * 0.1 + 0.89
    img, alpha, _ = rasterize(rasterize_to_pixels_cpu, sc, 16)
    ref_img, ref_alpha = brute_force(sc['means2d'], sc['conics'], sc['colors'],
                                     sc['opacities'], sc['depths'], sc['radii'], 20, 17, 16)
    assert (ref_alpha > 0.999).float().mean() > 0.5  # stopped: 1e-4 < T < 1e-3
    assert torch.allclose(img, ref_img, atol=1e-10, rtol=0)
    assert torch.allclose(alpha, ref_alpha, atol=1e-10, rtol=0)


def test_culling_keeps_faint_tails():
    """One wide, opaque Gaussian whose alpha >= 1/255 region is larger than its 3-sigma
    square: a pixel outside the square but inside its tiles still gets its colour, a pixel
    with alpha >= 1/255 in a tile it does not touch stays empty (the per-pixel definition)."""
    sc = dict(means2d=torch.tensor([[[19.3, 20.0]]], dtype=torch.float64),
              conics=torch.tensor([[[1 / 16, 0.0, 1 / 16]]], dtype=torch.float64),
              colors=torch.ones(1, 1, 3, dtype=torch.float64),
              opacities=torch.tensor([[0.99]], dtype=torch.float64),
              depths=torch.ones(1, 1, dtype=torch.float64),
              radii=torch.tensor([[12]], dtype=torch.int32), width=48, height=48)
    alpha = assert_matches_brute_force(sc, 16, atol=1e-12)
    # pixel 31 (centre 31.5) lies outside the square [7.3, 31.3], in tile 1: alpha ~ 0.0094
    assert alpha[0, 20, 31, 0] > 2 / 255
    # pixel 32 would get alpha 0.0043 > 1/255, but tile 2 is not in [floor(7.3/16), ceil(31.3/16))
    assert 0.99 * math.exp(-0.5 * 13.2 ** 2 / 16) > 1 / 255
    assert alpha[0, 20, 32, 0] == 0


def test_non_positive_definite_conics_and_faint_gaussians():
    """Indefinite conics (sigma < 0 somewhere) and opacities below 1/255 follow the skip
    rules (no ellipse bound exists for the first: every pixel of the tiles is visited)."""
    sc = scene_2d(11, n_cams=1, n=30, width=24, height=20, dtype=torch.float64)
    sc['conics'][0, :10, 1] = 2.0 * (sc['conics'][0, :10, 0] * sc['conics'][0, :10, 2]).sqrt()
    sc['conics'][0, 10:13, 0] = -0.2
    sc['opacities'][0, 13:16] = 0.003
    assert_matches_brute_force(sc, 8, atol=1e-10)


def test_nothing_visible_gives_background_and_zero_grads():
    sc = scene_2d(3, n_cams=2, n=10, dtype=torch.float32)
    sc['radii'] = torch.zeros_like(sc['radii'])
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    img, alpha, grads = rasterize(rasterize_to_pixels_cpu, sc, 16, bg, grad=True)
    assert torch.equal(img, bg[:, None, None, :].expand_as(img))
    assert torch.equal(alpha, torch.zeros_like(alpha))
    for k in ('means2d', 'conics', 'colors', 'opacities'):
        assert torch.equal(grads[k], torch.zeros_like(grads[k]))
    # d(sum w * (c + T bg)) / d bg = sum over pixels of w, T = 1 everywhere
    g = torch.Generator().manual_seed(123)
    w_img = torch.randn(img.shape, generator=g, dtype=torch.float64).float()
    assert torch.allclose(grads['backgrounds'], w_img.sum(dim=(1, 2)), rtol=1e-5, atol=1e-4)


def test_depth_order_ties_and_negative_depths():
    depths = np.array([3.0, -1.0, 2.0, 2.0, -0.0, 0.0, 5.0, -7.5], dtype=np.float32)
    count = np.array([1, 1, 1, 1, 1, 1, 0, 1])
    expected = [7, 1, 4, 5, 2, 3, 0]  # (depth, id) order; -0.0 == 0.0; count 0 dropped
    assert depth_order(depths, count).tolist() == expected
    assert depth_order(depths.astype(np.float64), count).tolist() == expected


# ------------------------------------------------------------------ tests: torch backend


SCENES = {
    'sparse': dict(n=40, scale=2.0, opacity=1.0),
    'dense': dict(n=400, scale=5.0, opacity=1.0),
    'faint': dict(n=200, scale=8.0, opacity=0.2),
}


@pytest.mark.parametrize('kind,n_ch,with_bg,dtype', [
    ('sparse', 3, False, torch.float32), ('sparse', 1, True, torch.float64),
    ('dense', 3, True, torch.float64), ('dense', 4, False, torch.float64),
    ('dense', 3, False, torch.float32),
    ('faint', 4, True, torch.float32), ('faint', 3, False, torch.float64),
])
def test_matches_torch_backend_with_gradients(kind, n_ch, with_bg, dtype):
    sc = scene_2d(5, n_cams=2, width=45, height=38, n_ch=n_ch, dtype=dtype, **SCENES[kind])
    bg = torch.rand(2, n_ch, dtype=dtype) if with_bg else None
    img, alpha, grads = rasterize(rasterize_to_pixels_cpu, sc, 16, bg, grad=True)
    ref_img, ref_alpha, ref_grads = rasterize(rasterize_to_pixels_torch, sc, 16, bg, grad=True)
    err = torch.maximum((img - ref_img).abs().amax(-1), (alpha - ref_alpha).abs()[..., 0])
    if dtype == torch.float32 and kind == 'dense':
        # float32 near-ties: a Gaussian whose alpha is within rounding of 1/255, or whose
        # T_next is within rounding of 1e-4, may be taken by one backend and not the other
        # (torch's own vectorised exp rounds differently from lane to lane). Such a pixel
        # moves by at most alpha * T < 0.01; all other pixels agree to 1e-5.
        assert (err > 1e-5).float().mean() < 1e-3 and err.max() < 1e-2
        return
    assert err.max() < 1e-5
    assert set(grads) == set(ref_grads)
    for k in ref_grads:
        assert ref_grads[k].abs().max() > 0, k
        assert rel_err(grads[k], ref_grads[k]) < 1e-4, k


@pytest.mark.parametrize('tile_size', [64, 80, 130])
def test_wide_tiles_match_torch_backend(tile_size):
    """The kernels keep per-row bit masks of live / active pixels in 64-bit words: tile
    rows of exactly 64 pixels and of two or three words must composite and differentiate
    like the torch backend (float64: no float32 near-ties), with pixels stopping early."""
    sc = scene_2d(11, n_cams=1, n=600, width=150, height=30, scale=5.0,
                  dtype=torch.float64)
    img, alpha, grads = rasterize(rasterize_to_pixels_cpu, sc, tile_size, grad=True)
    ref_img, ref_alpha, ref_grads = rasterize(rasterize_to_pixels_torch, sc, tile_size,
                                              grad=True)
    assert (ref_alpha > 0.999).float().mean() > 0.1  # many pixels stop at T <= 1e-4
    assert (img - ref_img).abs().max() < 1e-10 and (alpha - ref_alpha).abs().max() < 1e-10
    for k in ref_grads:
        assert ref_grads[k].abs().max() > 0, k
        assert rel_err(grads[k], ref_grads[k]) < 1e-9, k


def test_results_do_not_depend_on_thread_count():
    import numba
    sc = scene_2d(9, n_cams=1, n=3000, width=96, height=80, scale=4.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = rasterize(rasterize_to_pixels_cpu, sc, 16, grad=True)
        torch.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = rasterize(rasterize_to_pixels_cpu, sc, 16, grad=True)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    for k in one[2]:
        assert torch.equal(one[2][k], two[2][k]), k


def _scene_3d(n: int, sh_degree: int | None, seed: int = 0, width: int = 48, height: int = 40,
              dtype: torch.dtype = torch.float64) -> dict:
    """The benchmark's kind of scene: a cube of Gaussians 2.5 in front of two cameras."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) - 0.5
    means[:, 2] += 2.5
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.06 + 0.01
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.2
        colors[:, 0] = (torch.rand(n, 3, generator=g) - 0.5) / 0.2820948
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[1, :3, 3] = torch.tensor([0.2, -0.1, 0.3])
    f = 1.2 * width
    Ks = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]).repeat(2, 1, 1)
    out = dict(means=means, quats=quats, scales=scales, opacities=opac, colors=colors,
               viewmats=viewmats, Ks=Ks)
    out = {k: v.to(dtype) for k, v in out.items()}
    return dict(out, width=width, height=height, sh_degree=sh_degree)


def _render_3d(sc: dict, backend: str, mode: str, with_bg: bool):
    params = {k: sc[k].clone().requires_grad_(True)
              for k in ('means', 'quats', 'scales', 'opacities', 'colors')}
    bg = torch.tensor([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]], dtype=sc['means'].dtype) \
        if with_bg else None
    img, alpha, meta = rasterization(
        params['means'], params['quats'], params['scales'], params['opacities'],
        params['colors'], sc['viewmats'], sc['Ks'], sc['width'], sc['height'],
        sh_degree=sc['sh_degree'], backgrounds=bg, render_mode=mode, backend=backend)
    g = torch.Generator().manual_seed(1)
    loss = (img * torch.randn(img.shape, generator=g, dtype=img.dtype)).sum() \
        + (alpha * torch.randn(alpha.shape, generator=g, dtype=img.dtype)).sum()
    loss.backward()
    return img.detach(), alpha.detach(), {k: v.grad for k, v in params.items()}, meta


@pytest.mark.parametrize('n,sh_degree,mode,with_bg,dtype', [
    (300, 3, 'RGB', False, torch.float32),
    (300, 0, 'RGB', True, torch.float64),
    (300, 3, 'RGB', True, torch.float64),
    (2000, 3, 'RGB+ED', True, torch.float64),
    (2000, None, 'RGB+D', False, torch.float64),
    (800, 1, 'D', False, torch.float64),
    (800, 3, 'ED', False, torch.float64),
])
def test_full_rasterization_cpu_matches_torch(n, sh_degree, mode, with_bg, dtype):
    """Sparse (300) and dense (2000) scenes through projection + SH + compositing; float64
    so that no near-tie of the 1/255 and 1e-4 rules can flip (see the float32 note above)."""
    sc = _scene_3d(n, sh_degree, dtype=dtype)
    img, alpha, grads, meta = _render_3d(sc, 'cpu', mode, with_bg)
    ref_img, ref_alpha, ref_grads, _ = _render_3d(sc, 'torch', mode, with_bg)
    assert meta['backend'] == 'cpu'
    assert (alpha - ref_alpha).abs().max() < 1e-5
    if mode.endswith('ED'):  # expected depth divides by alpha: compare where alpha is not tiny
        keep = (ref_alpha > 1e-2).expand_as(img)
        assert (img - ref_img)[keep].abs().max() < 1e-5 * max(1.0, ref_img.abs().max())
    else:
        assert (img - ref_img).abs().max() < 1e-5 * max(1.0, ref_img.abs().max())
    for k in ref_grads:
        if ref_grads[k] is None:  # colours are unused in 'D' / 'ED'
            assert grads[k] is None and mode in ('D', 'ED'), k
            continue
        assert ref_grads[k].abs().max() > 0, k
        assert rel_err(grads[k], ref_grads[k]) < 1e-4, k


# ------------------------------------------------------------------ finite differences


@pytest.mark.parametrize('n_cams,width,height,fast', [(1, 9, 7, False), (2, 13, 11, True)])
def test_gradcheck_float64(n_cams, width, height, fast):
    """Finite differences of every differentiable input (fast mode: random projections)."""
    sc = scene_2d(4, n_cams=n_cams, n=5, width=width, height=height, n_ch=2, scale=2.0,
                  opacity=0.8, invisible=0.0, dtype=torch.float64)
    sc['means2d'] = sc['means2d'] * 0.6 + 2.0  # keep them near the image
    bg = torch.rand(n_cams, 2, dtype=torch.float64, requires_grad=True)
    inputs = tuple(sc[k].clone().requires_grad_(True)
                   for k in ('means2d', 'conics', 'colors', 'opacities'))

    def fn(means2d, conics, colors, opacities, backgrounds):
        return rasterize_to_pixels_cpu(means2d, conics, colors, opacities, sc['depths'],
                                       sc['radii'], width, height, 4, backgrounds)

    img, alpha = fn(*inputs, bg)
    assert 0.3 < alpha.max() < 0.999  # Gaussians visible, no early stop
    assert torch.autograd.gradcheck(fn, inputs + (bg,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    fast_mode=fast)


def test_float32_and_float64_agree():
    sc64 = scene_2d(8, n_cams=1, n=300, width=40, height=33, scale=4.0, dtype=torch.float64)
    sc32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
            for k, v in sc64.items()}
    img64, _, g64 = rasterize(rasterize_to_pixels_cpu, sc64, 16, grad=True)
    img32, _, g32 = rasterize(rasterize_to_pixels_cpu, sc32, 16, grad=True)
    assert img32.dtype == torch.float32 and img64.dtype == torch.float64
    assert (img32.double() - img64).abs().max() < 1e-5
    for k in g64:
        assert rel_err(g32[k].double(), g64[k]) < 1e-4, k


# ------------------------------------------------------------------ projection / SH (Numba)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_projection_cpu_matches_torch_projection(dtype):
    from nerfreg.ops.projection import project_gaussians
    from nerfreg.ops.projection_cpu import project_gaussians_cpu
    sc = _scene_3d(600, 3, dtype=dtype, width=64, height=48)
    sc['means'][:20, 2] = -1.0  # behind the camera: radius 0, depth still differentiable
    sc['means'][20:60, 0] = 3.0  # outside the 1.3x FOV clamp
    outs = []
    for fn in (project_gaussians, project_gaussians_cpu):
        ps = {k: sc[k].clone().requires_grad_(True) for k in ('means', 'quats', 'scales')}
        radii, m2d, depths, conics = fn(ps['means'], ps['quats'], ps['scales'], sc['viewmats'],
                                        sc['Ks'], 64, 48)
        g = torch.Generator().manual_seed(0)
        w = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(dtype)
             for t in (m2d, depths, conics)]
        ((m2d * w[0]).sum() + (depths * w[1]).sum() + (conics * w[2]).sum()).backward()
        outs.append((radii, m2d, depths, conics, {k: v.grad for k, v in ps.items()}))
    (r0, *ref, g0), (r1, *got, g1) = outs
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    assert torch.equal(r0, r1) and (r0 == 0).sum() >= 20 and (r0 > 0).sum() > 300
    for a, b in zip(got, ref):
        assert a.dtype == dtype and rel_err(a, b) < tol
    for k in g0:
        assert rel_err(g1[k], g0[k]) < tol, k


def test_projection_cpu_float32_is_float64_inside():
    # float32 in and out, float64 arithmetic in between: every output and gradient is the
    # float64 reference (same inputs) rounded once, not float32 arithmetic (a covariance
    # of thin Gaussians formed in float32 was ~6x further off)
    from nerfreg.ops.projection import project_gaussians
    from nerfreg.ops.projection_cpu import project_gaussians_cpu
    sc = _scene_3d(4000, 3, dtype=torch.float32, width=200, height=150)
    sc['scales'] = sc['scales'] * 0.1  # thin: covariances with condition numbers ~100
    outs = []
    for fn, dt in ((project_gaussians, torch.float64), (project_gaussians_cpu, torch.float32)):
        ps = {k: sc[k].to(dt).requires_grad_(True) for k in ('means', 'quats', 'scales')}
        _, m2d, depths, conics = fn(ps['means'], ps['quats'], ps['scales'],
                                    sc['viewmats'].to(dt), sc['Ks'].to(dt), 200, 150)
        g = torch.Generator().manual_seed(0)
        w = [torch.randn(t.shape, generator=g).to(dt) for t in (m2d, depths, conics)]
        ((m2d * w[0]).sum() + (depths * w[1]).sum() + (conics * w[2]).sum()).backward()
        outs.append([conics] + [ps[k].grad for k in ('means', 'quats', 'scales')])
    for name, ref, got in zip(('conics', 'means', 'quats', 'scales'), *outs):
        rel = float((got.detach().double() - ref.detach()).norm() / ref.detach().norm())
        assert rel < 4e-8, (name, rel)


@pytest.mark.parametrize('backend', ['cpu', 'torch'])
def test_sh_given_as_two_parts_renders_as_concatenated(backend):
    from nerfreg.ops.rasterization import rasterization
    sc = _scene_3d(300, 3, dtype=torch.float32, width=32, height=24)
    outs = []
    for pair in (False, True):
        ps = {k: sc[k].clone().requires_grad_(True) for k in ('means', 'colors')}
        sh0, rest = ps['colors'][:, :1].detach().clone(), ps['colors'][:, 1:].detach().clone()
        sh0.requires_grad_(True)
        rest.requires_grad_(True)
        colors = (sh0, rest) if pair else torch.cat([sh0, rest], 1)
        img, _, _ = rasterization(ps['means'], sc['quats'], sc['scales'], sc['opacities'],
                                  colors, sc['viewmats'], sc['Ks'], 32, 24, sh_degree=2,
                                  backend=backend)
        g = torch.Generator().manual_seed(1)
        (img * torch.randn(img.shape, generator=g)).sum().backward()
        outs.append((img, ps['means'].grad, sh0.grad, rest.grad))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert outs[1][3][:, 8:].abs().max() == 0 and outs[1][3][:, :8].abs().max() > 0
    with pytest.raises(ValueError, match='pair'):
        rasterization(sc['means'], sc['quats'], sc['scales'], sc['opacities'], (sh0, rest),
                      sc['viewmats'], sc['Ks'], 32, 24, backend=backend)


@pytest.mark.parametrize('sh_degree', [0, 1, 3])
def test_sh_colors_cpu_matches_torch_sh(sh_degree):
    from nerfreg.ops.projection_cpu import sh_colors_cpu
    from nerfreg.ops.rasterization import _colors_per_camera
    sc = _scene_3d(500, 3, dtype=torch.float64)
    outs = []
    for fn in ('torch', 'cpu'):
        ps = {k: sc[k].clone().requires_grad_(True) for k in ('means', 'colors')}
        if fn == 'torch':
            col = _colors_per_camera(ps['colors'], sh_degree, ps['means'], sc['viewmats'])
        else:
            col = sh_colors_cpu(sh_degree, ps['means'], ps['colors'], sc['viewmats'])
        g = torch.Generator().manual_seed(0)
        (col * torch.randn(col.shape, generator=g, dtype=torch.float64)).sum().backward()
        outs.append((col, {k: v.grad for k, v in ps.items()}))
    assert sh_degree == 0 or (outs[0][0] == 0).any()  # some channels are clamped at 0
    assert rel_err(outs[1][0], outs[0][0]) < 1e-12
    for k in outs[0][1]:
        if outs[0][1][k] is None:  # degree 0 does not depend on the view direction
            assert k == 'means' and not outs[1][1][k].any()
            continue
        assert rel_err(outs[1][1][k], outs[0][1][k]) < 1e-12, k
