"""Backend selection, the gsplat argument/meta conversion (no CUDA needed) and, with CUDA and
gsplat present, agreement of gsplat with the torch reference."""

from __future__ import annotations

import sys

import pytest
import torch

from nerfreg.ops import rasterization
from nerfreg.ops.gsplat_backend import (
    convert_gsplat_meta,
    gsplat_available,
    gsplat_kwargs,
)
from nerfreg.ops.rasterization import resolve_backend

OPTIONS = dict(sh_degree=2, near_plane=0.05, far_plane=100.0, render_mode='RGB+ED',
               tile_size=16, eps2d=0.3, radius_clip=0.5)


def inputs(n: int = 5, n_cams: int = 2, device: str = 'cpu'):
    gen = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=gen) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=gen) * 4.0
    scales = torch.rand(n, 3, generator=gen) * 0.1 + 0.02
    opac = torch.rand(n, generator=gen) * 0.5 + 0.4
    sh = torch.randn(n, 9, 3, generator=gen) * 0.3
    vm = torch.eye(4)[None].repeat(n_cams, 1, 1)
    vm[1:, 0, 3] = 0.2
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])[None].repeat(n_cams, 1, 1)
    bg = torch.rand(n_cams, 3, generator=gen)
    return [t.to(device) for t in (means, quats, scales, opac, sh, vm, K, bg)]


def test_gsplat_kwargs_conversion():
    means, quats, scales, opac, sh, vm, K, bg = inputs()
    kw = gsplat_kwargs(means, quats, scales, opac, sh, vm, K, 32, 24, backgrounds=bg,
                       **OPTIONS)
    assert kw['packed'] is False
    assert kw['rasterize_mode'] == 'classic' and kw['camera_model'] == 'pinhole'
    assert (kw['width'], kw['height'], kw['tile_size']) == (32, 24, 16)
    assert kw['sh_degree'] == 2 and kw['render_mode'] == 'RGB+ED'
    assert (kw['near_plane'], kw['far_plane'], kw['eps2d'], kw['radius_clip']) == (
        0.05, 100.0, 0.3, 0.5)
    torch.testing.assert_close(kw['quats'].norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(kw['quats'], quats / quats.norm(dim=-1, keepdim=True))
    for ours, theirs in (('means', means), ('scales', scales), ('opacities', opac),
                         ('colors', sh), ('viewmats', vm), ('Ks', K), ('backgrounds', bg)):
        assert kw[ours] is theirs
    # depth-only modes: backgrounds are colour-only and get dropped, like the other backends
    kw_d = gsplat_kwargs(means, quats, scales, opac, sh, vm, K, 32, 24, backgrounds=bg,
                         **dict(OPTIONS, render_mode='ED'))
    assert kw_d['backgrounds'] is None


def test_convert_gsplat_meta_per_axis_radii():
    n_cams, n = 2, 4
    meta = dict(radii=torch.tensor([[[3, 5], [0, 0], [7, 2], [1, 1]]] * n_cams,
                                   dtype=torch.int32),
                means2d=torch.zeros(n_cams, n, 2), depths=torch.ones(n_cams, n),
                conics=torch.ones(n_cams, n, 3), opacities=torch.rand(n_cams, n),
                colors=torch.rand(n_cams, n, 3), width=9, height=8, tile_width=1)
    out = convert_gsplat_meta(meta, n_cams, 9, 8, 16)
    assert out['radii'].tolist() == [[5, 0, 7, 1]] * n_cams
    assert out['radii'].dtype == torch.int32
    assert out['means2d'] is meta['means2d'] and out['colors'] is meta['colors']
    assert (out['n_cameras'], out['width'], out['height'], out['tile_size'],
            out['backend']) == (2, 9, 8, 16, 'gsplat')
    assert out['tile_width'] == 1  # extra gsplat keys are kept
    # older gsplat: [C, N] radii and per-Gaussian opacities [N] are brought to [C, N]
    meta_old = dict(meta, radii=torch.tensor([[5, 0, 7, 1]] * n_cams), opacities=torch.rand(n))
    out_old = convert_gsplat_meta(meta_old, n_cams, 9, 8, 16)
    assert out_old['radii'].tolist() == [[5, 0, 7, 1]] * n_cams
    assert out_old['opacities'].shape == (n_cams, n)


def test_auto_backend_on_cpu(monkeypatch):
    dev = torch.device('cpu')
    assert resolve_backend('torch', dev) == 'torch'
    # without the Numba module, auto falls back to the torch reference
    monkeypatch.setitem(sys.modules, 'nerfreg.ops.rasterize_cpu', None)
    assert resolve_backend('auto', dev) == 'torch'
    means, quats, scales, opac, sh, vm, K, bg = inputs()
    _, _, meta = rasterization(means, quats, scales, opac, sh, vm, K, 32, 24, sh_degree=2)
    assert meta['backend'] == 'torch'
    with pytest.raises(ImportError, match="backend='cpu' needs nerfreg.ops.rasterize_cpu"):
        rasterization(means, quats, scales, opac, sh, vm, K, 32, 24, sh_degree=2,
                      backend='cpu')


def test_auto_prefers_cpu_kernel_when_importable():
    try:
        import nerfreg.ops.rasterize_cpu  # noqa: F401
    except ImportError as err:
        pytest.skip(f'nerfreg.ops.rasterize_cpu not importable here: {err}')
    assert resolve_backend('auto', torch.device('cpu')) == 'cpu'


def test_auto_prefers_gsplat_on_cuda(monkeypatch):
    import nerfreg.ops.gsplat_backend as gb
    monkeypatch.setattr(gb, 'gsplat_available', lambda: True)
    assert resolve_backend('auto', torch.device('cuda')) == 'gsplat'
    monkeypatch.setattr(gb, 'gsplat_available', lambda: False)
    assert resolve_backend('auto', torch.device('cuda')) == 'torch'


def test_gsplat_backend_on_cpu_gives_install_hint():
    means, quats, scales, opac, sh, vm, K, bg = inputs()
    with pytest.raises((RuntimeError, ImportError), match='pip install gsplat'):
        rasterization(means, quats, scales, opac, sh, vm, K, 32, 24, sh_degree=2,
                      backend='gsplat')


def _gsplat_skip_reason() -> str:
    if not torch.cuda.is_available():
        return 'gsplat backend needs a CUDA device (torch.cuda.is_available() is False)'
    if not gsplat_available():
        return 'gsplat is not installed (pip install gsplat)'
    return ''


@pytest.mark.skipif(bool(_gsplat_skip_reason()), reason=_gsplat_skip_reason())
def test_gsplat_matches_torch_backend_on_cuda():
    means, quats, scales, opac, sh, vm, K, bg = inputs(n=50, device='cuda')
    means.requires_grad_(True)
    args = (means, quats, scales, opac, sh, vm, K, 32, 24)
    kw = dict(sh_degree=2, backgrounds=bg, render_mode='RGB+ED')
    c_g, a_g, meta_g = rasterization(*args, backend='gsplat', **kw)
    c_t, a_t, meta_t = rasterization(*args, backend='torch', **kw)
    assert meta_g['backend'] == 'gsplat'
    torch.testing.assert_close(a_g, a_t, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(c_g, c_t, atol=1e-3, rtol=1e-3)
    c_g.sum().backward()
    assert meta_g['means2d'].grad is not None
