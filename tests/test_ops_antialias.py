"""Anti-aliased rendering (rasterize_mode='antialiased') and absolute gradients (absgrad).

Checks: the compensation equals its definition; a sub-pixel Gaussian keeps its integral
(classic inflates it by the 0.3 px dilation); the Numba CPU and torch backends agree on
images (1e-5) and gradients (1e-4 relative); float64 finite differences; per-pixel
absolute gradients against a pixel-by-pixel autograd loop; clear errors.
"""

from __future__ import annotations

import math

import pytest
import torch

from nerfreg.ops import rasterization
from nerfreg.ops.projection import project_gaussians
from nerfreg.ops.projection_cpu import project_gaussians_cpu
from nerfreg.ops.rasterize_cpu import rasterize_to_pixels_cpu
from nerfreg.ops.rasterize_torch import rasterize_to_pixels_torch
from nerfreg.renderers import GaussianSplatRenderer

F64 = torch.float64


def _scene(n: int = 300, seed: int = 0, width: int = 40, height: int = 32,
           dtype: torch.dtype = F64, small: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g, dtype=F64) - 0.5
    means[:, 2] += 2.5
    quats = torch.randn(n, 4, generator=g, dtype=F64)
    scales = torch.rand(n, 3, generator=g, dtype=F64) * (0.01 if small else 0.06) + 0.003
    opac = torch.rand(n, generator=g, dtype=F64) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g, dtype=F64)
    viewmats = torch.eye(4, dtype=F64).repeat(2, 1, 1)
    viewmats[1, :3, 3] = torch.tensor([0.2, -0.1, 0.3], dtype=F64)
    f = 1.2 * width
    Ks = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]],
                      dtype=F64).repeat(2, 1, 1)
    out = dict(means=means, quats=quats, scales=scales, opacities=opac, colors=colors,
               viewmats=viewmats, Ks=Ks)
    return dict({k: v.to(dtype) for k, v in out.items()}, width=width, height=height)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def _render(sc: dict, backend: str, mode: str, absgrad: bool = False):
    params = {k: sc[k].clone().requires_grad_(True)
              for k in ('means', 'quats', 'scales', 'opacities', 'colors')}
    img, alpha, meta = rasterization(**params, viewmats=sc['viewmats'], Ks=sc['Ks'],
                                     width=sc['width'], height=sc['height'], backend=backend,
                                     rasterize_mode=mode, absgrad=absgrad)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(img.shape, generator=g, dtype=F64).to(img.dtype)
    ((img * w).sum() + alpha.sum()).backward()
    return img.detach(), alpha.detach(), {k: v.grad for k, v in params.items()}, meta


def test_compensation_is_the_determinant_ratio():
    sc = _scene(50)
    radii, m2d, depths, conics, comps = project_gaussians(
        sc['means'], sc['quats'], sc['scales'], sc['viewmats'], sc['Ks'], sc['width'],
        sc['height'], eps2d=0.3, calc_compensations=True)
    # conics are the inverse of cov2d + 0.3 I: det(cov2d + eps) = 1 / det(conic)
    det_blur = 1.0 / (conics[..., 0] * conics[..., 2] - conics[..., 1] ** 2)
    cov = torch.stack([conics[..., 2], -conics[..., 1], conics[..., 0]], -1) * det_blur[..., None]
    det0 = (cov[..., 0] - 0.3) * (cov[..., 2] - 0.3) - cov[..., 1] ** 2
    expected = torch.sqrt(det0 / det_blur)
    assert torch.allclose(comps, expected, rtol=1e-9, atol=1e-12)
    assert (comps > 0).all() and (comps < 1).all()


def test_antialiased_keeps_the_integral_of_a_subpixel_gaussian():
    # A faint isotropic Gaussian facing the camera with screen std 0.4 px: its alpha
    # integrates to o * 2 pi var; the classic 0.3 px^2 dilation inflates it.
    f, z, var = 100.0, 2.0, 0.4 ** 2
    sigma = math.sqrt(var) * z / f
    kw = dict(means=torch.tensor([[0.0, 0.0, z]], dtype=F64),
              quats=torch.tensor([[1.0, 0, 0, 0]], dtype=F64),
              scales=torch.full((1, 3), sigma, dtype=F64),
              opacities=torch.tensor([0.2], dtype=F64), colors=torch.ones(1, 3, dtype=F64),
              viewmats=torch.eye(4, dtype=F64)[None],
              Ks=torch.tensor([[[f, 0, 16.0], [0, f, 16.0], [0, 0, 1]]], dtype=F64),
              width=32, height=32, backend='cpu')
    ideal = 0.2 * 2 * math.pi * var
    sums = {mode: rasterization(**kw, rasterize_mode=mode)[1].sum().item()
            for mode in ('classic', 'antialiased')}
    assert sums['antialiased'] == pytest.approx(ideal, rel=0.08)
    assert sums['classic'] == pytest.approx(0.2 * 2 * math.pi * (var + 0.3), rel=0.08)


@pytest.mark.parametrize('dtype', [torch.float32, F64])
def test_antialiased_cpu_matches_torch_backend(dtype):
    sc = _scene(300, seed=2, dtype=dtype)
    img_t, alpha_t, g_t, meta_t = _render(sc, 'torch', 'antialiased')
    img_c, alpha_c, g_c, meta_c = _render(sc, 'cpu', 'antialiased')
    assert meta_c['rasterize_mode'] == 'antialiased'
    assert (img_t - img_c).abs().max() < 1e-5 and (alpha_t - alpha_c).abs().max() < 1e-5
    for k in g_t:
        assert _rel(g_c[k], g_t[k]) < 1e-4, k
    # and it is not the classic image
    img_classic = _render(sc, 'cpu', 'classic')[0]
    assert (img_classic - img_c).abs().max() > 1e-3


def test_projection_compensation_gradients_match_finite_differences():
    sc = _scene(12, seed=3)
    inputs = tuple(sc[k].clone().requires_grad_(True) for k in ('means', 'quats', 'scales'))

    def cpu(means, quats, scales):
        out = project_gaussians_cpu(means, quats, scales, sc['viewmats'], sc['Ks'],
                                    sc['width'], sc['height'], calc_compensations=True)
        return out[1], out[3], out[4]

    def ref(means, quats, scales):
        out = project_gaussians(means, quats, scales, sc['viewmats'], sc['Ks'], sc['width'],
                                sc['height'], calc_compensations=True)
        return out[1], out[3], out[4]

    assert torch.autograd.gradcheck(cpu, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    assert torch.autograd.gradcheck(ref, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_antialiased_render_gradients_match_finite_differences():
    # Whole pipeline in float64 on the CPU backend: a smooth loss of the image.
    sc = _scene(6, seed=4, width=16, height=12, small=True)
    sc['scales'] = sc['scales'] * 3
    sc['opacities'] = sc['opacities'] * 0.5
    names = ('means', 'scales', 'opacities')

    def render(means, scales, opacities):
        img, _, _ = rasterization(means, sc['quats'], scales, opacities, sc['colors'],
                                  sc['viewmats'], sc['Ks'], sc['width'], sc['height'],
                                  backend='cpu', rasterize_mode='antialiased')
        return img

    inputs = tuple(sc[k].clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(render, inputs, eps=1e-7, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize('raster', [rasterize_to_pixels_torch, rasterize_to_pixels_cpu])
def test_absgrad_is_the_sum_of_per_pixel_absolute_gradients(raster):
    sc = _scene(20, seed=5, width=12, height=10)
    radii, m2d, depths, conics = project_gaussians(
        sc['means'], sc['quats'], sc['scales'], sc['viewmats'], sc['Ks'], 12, 10)
    m2d = m2d.detach()
    colors = sc['colors'][None].expand(2, -1, -1)
    opac = sc['opacities'][None].expand(2, -1)
    weights = torch.randn(2, 10, 12, 3, generator=torch.Generator().manual_seed(0), dtype=F64)

    leaf = m2d.clone().requires_grad_(True)
    sink = torch.zeros_like(m2d, requires_grad=True)
    img, _ = raster(leaf, conics, colors, opac, depths, radii, 12, 10, 16, None,
                    absgrad_sink=sink)
    (img * weights).sum().backward()
    expected = torch.zeros_like(m2d)
    for c in range(2):
        for y in range(10):
            for x in range(12):
                one = m2d.clone().requires_grad_(True)
                img1, _ = rasterize_to_pixels_torch(one, conics, colors, opac, depths, radii,
                                                    12, 10, 16)
                (img1[c, y, x] * weights[c, y, x]).sum().backward()
                expected += one.grad.abs()
    assert (expected > 0).sum() > 10
    assert torch.allclose(sink.grad, expected, rtol=1e-9, atol=1e-12)
    assert (sink.grad >= leaf.grad.abs() - 1e-12).all()


def test_rasterization_exposes_absgrad_on_means2d():
    sc = _scene(100, seed=6)
    for backend in ('cpu', 'torch'):
        _, _, _, meta = _render(sc, backend, 'classic', absgrad=True)
        means2d = meta['means2d']
        assert means2d.absgrad.shape == means2d.shape
        assert (means2d.absgrad >= means2d.grad.abs() - 1e-12).all()
        assert (means2d.absgrad > means2d.grad.abs() + 1e-9).any()  # pixels do cancel


def test_unknown_rasterize_mode_lists_the_valid_ones():
    sc = _scene(5)
    with pytest.raises(ValueError, match="'classic', 'antialiased'.*'mip'"):
        rasterization(sc['means'], sc['quats'], sc['scales'], sc['opacities'], sc['colors'],
                      sc['viewmats'], sc['Ks'], 8, 8, rasterize_mode='mip')
    with pytest.raises(ValueError, match="rasterize_mode must be one of"):
        GaussianSplatRenderer(rasterize_mode='Antialiased')


def test_renderer_records_the_mode_and_warns_on_a_mismatch():
    aa = GaussianSplatRenderer(rasterize_mode='antialiased')
    state = aa.state_dict()
    assert state == {'rasterize_mode': 'antialiased'}
    classic = GaussianSplatRenderer()
    with pytest.warns(UserWarning, match=r"renderer\.rasterize_mode='antialiased'"):
        classic.load_state_dict(state)
    with pytest.warns(UserWarning, match='trained with'):
        aa.load_state_dict({'rasterize_mode': 'classic'})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        GaussianSplatRenderer(rasterize_mode='antialiased').load_state_dict(state)
