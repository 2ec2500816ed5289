"""PLY / .splat export: standard 3DGS layout, exact round trip, identical re-render."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from nerfreg.cameras.paths import look_at
from nerfreg.exporters import (
    load_ply_into_model,
    read_ply,
    read_splat,
    write_ply,
    write_splat,
)
from nerfreg.models import GaussianSplatting
from nerfreg.renderers import GaussianSplatRenderer


def _model(sh_degree: int, n: int = 60, seed: int = 0) -> GaussianSplatting:
    gen = torch.Generator().manual_seed(seed)
    model = GaussianSplatting(sh_degree=sh_degree, sh_degree_interval=0, background='white')
    k = (sh_degree + 1) ** 2
    values = {
        'means': torch.randn(n, 3, generator=gen) * 0.5,
        'scales': torch.randn(n, 3, generator=gen) * 0.3 - 2.5,
        'quats': torch.randn(n, 4, generator=gen),
        'opacities': torch.randn(n, generator=gen),
        'sh0': torch.randn(n, 1, 3, generator=gen) * 0.5,
        'shN': torch.randn(n, k - 1, 3, generator=gen) * 0.2,
    }
    for name, value in values.items():
        model.params[name] = torch.nn.Parameter(value)
    return model.eval()


def _expected_names(sh_degree: int) -> list[str]:
    """Written out independently of the exporter (reference 3DGS order)."""
    n_rest = {0: 0, 1: 9, 2: 24, 3: 45}[sh_degree]
    return (['x', 'y', 'z', 'nx', 'ny', 'nz', 'f_dc_0', 'f_dc_1', 'f_dc_2']
            + [f'f_rest_{i}' for i in range(n_rest)]
            + ['opacity', 'scale_0', 'scale_1', 'scale_2', 'rot_0', 'rot_1', 'rot_2', 'rot_3'])


def _render(model: GaussianSplatting) -> torch.Tensor:
    rot, t = look_at(np.array([[0.3, -0.4, -3.0]]), np.zeros(3), np.array([0.0, -1.0, 0.0]))
    viewmats = torch.eye(4)[None].clone()
    viewmats[0, :3, :3] = torch.as_tensor(rot[0], dtype=torch.float32)
    viewmats[0, :3, 3] = torch.as_tensor(t[0], dtype=torch.float32)
    ks = torch.tensor([[[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]])
    batch = dict(viewmats=viewmats, Ks=ks, width=32, height=32)
    with torch.no_grad():
        return GaussianSplatRenderer(backend='torch', render_mode='RGB')(model(batch),
                                                                          batch)['rgb']


@pytest.mark.parametrize('sh_degree', [0, 3])
def test_ply_has_standard_layout(tmp_path, sh_degree):
    model = _model(sh_degree)
    path = write_ply(model, tmp_path / 'scene.ply')
    ply = PlyData.read(str(path))
    assert ply.byte_order == '<' and not ply.text
    assert [e.name for e in ply.elements] == ['vertex']
    vertex = ply['vertex']
    assert [p.name for p in vertex.properties] == _expected_names(sh_degree)
    assert all(p.val_dtype in ('f4', 'float32') for p in vertex.properties)
    assert vertex.count == model.num_gaussians
    p = model.params
    np.testing.assert_array_equal(vertex['x'], p['means'][:, 0].detach().numpy())
    np.testing.assert_array_equal(vertex['opacity'], p['opacities'].detach().numpy())
    np.testing.assert_array_equal(vertex['scale_2'], p['scales'][:, 2].detach().numpy())
    np.testing.assert_array_equal(vertex['rot_0'], p['quats'][:, 0].detach().numpy())
    np.testing.assert_array_equal(vertex['f_dc_1'], p['sh0'][:, 0, 1].detach().numpy())
    np.testing.assert_array_equal(vertex['nx'], np.zeros(model.num_gaussians, np.float32))
    if sh_degree == 3:  # channel-major: f_rest_{c*15+k} = shN[:, k, c]
        for c, k in [(0, 0), (0, 14), (1, 0), (2, 7), (2, 14)]:
            np.testing.assert_array_equal(vertex[f'f_rest_{c * 15 + k}'],
                                          p['shN'][:, k, c].detach().numpy())


@pytest.mark.parametrize('sh_degree', [0, 1, 3])
def test_ply_round_trip_is_exact_and_renders_identically(tmp_path, sh_degree):
    model = _model(sh_degree)
    path = write_ply(model, tmp_path / 'scene.ply')
    params = read_ply(path)
    for name, value in model.params.items():
        assert params[name].shape == value.shape, name
        assert torch.equal(params[name], value.detach()), name

    fresh = GaussianSplatting(sh_degree=sh_degree, sh_degree_interval=0, background='white')
    assert load_ply_into_model(fresh, path) == model.num_gaussians
    fresh.eval()
    before, after = _render(model), _render(fresh)
    assert float(before.std()) > 0.01  # the view sees something
    assert float((before - after).abs().max()) < 1e-5


def test_lower_degree_ply_is_padded_higher_is_rejected(tmp_path):
    low = write_ply(_model(1), tmp_path / 'low.ply')
    model = GaussianSplatting(sh_degree=3, sh_degree_interval=0, background='white').eval()
    load_ply_into_model(model, low)
    assert model.params['shN'].shape[1] == 15
    assert float(model.params['shN'][:, 3:].detach().abs().max()) == 0.0
    src = _model(1)
    assert float((_render(src) - _render(model)).abs().max()) < 1e-5

    high = write_ply(_model(3), tmp_path / 'high.ply')
    with pytest.raises(ValueError, match='sh_degree=3'):
        load_ply_into_model(GaussianSplatting(sh_degree=1), high)


def test_plain_point_cloud_is_rejected(tmp_path):
    pts = np.zeros(4, dtype=[('x', 'f4'), ('y', 'f4'), ('z', 'f4')])
    PlyData([PlyElement.describe(pts, 'vertex')]).write(str(tmp_path / 'pts.ply'))
    with pytest.raises(ValueError, match='not a 3D Gaussian Splatting PLY'):
        read_ply(tmp_path / 'pts.ply')


def test_splat_layout(tmp_path):
    model = _model(3, n=20)
    path = write_splat(model, tmp_path / 'scene.splat')
    assert path.stat().st_size == 32 * 20
    data = read_splat(path)
    p = model.params
    opacity = torch.sigmoid(p['opacities']).detach()
    key = (torch.exp(p['scales'].sum(1)) * opacity).detach()
    order = torch.argsort(-key, stable=True)
    np.testing.assert_array_equal(data['position'], p['means'][order].detach().numpy())
    np.testing.assert_allclose(data['scale'], torch.exp(p['scales'])[order].detach().numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(data['rgba'][:, 3] / 255.0, opacity[order].numpy(), atol=1 / 255)
    q = (data['rot'].astype(np.float64) - 128) / 128
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=0.03)
