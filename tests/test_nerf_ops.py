"""Hash encoding, ray marching and compositing: compiled CPU path vs torch reference,
float64 finite differences, and a constant-density sphere against its closed form."""

from __future__ import annotations

import math

import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.ops.hash_encoding import dense_levels, hash_encode, level_resolutions
from nerfreg.ops.ray_march import GridSpec, march_cpu, march_rays, pixel_rays, ray_aabb
from nerfreg.ops.volume_rendering import composite
from nerfreg.renderers.volume_renderer import VolumeRenderer


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def test_level_resolutions_span_base_to_finest():
    res = level_resolutions(16, 16, 2048)
    assert res[0] == 16 and res[-1] == 2048 and res == sorted(res)
    assert dense_levels([4, 100], 2 ** 12) == [True, False]
    with pytest.raises(ValueError, match='finest_resolution'):
        level_resolutions(4, 32, 16)


def test_hash_encoding_cpu_matches_torch_reference():
    res = level_resolutions(8, 4, 300)  # dense and hashed levels
    tables = (torch.rand(8, 2 ** 12, 2) - 0.5).requires_grad_()
    x = torch.rand(3000, 3)
    x[:5] = torch.tensor([0.0, 1.0, 0.5])  # faces of the cube
    a = hash_encode(x, tables, res, 'torch')
    b = hash_encode(x, tables, res, 'cpu')
    assert _rel(b, a) < 1e-5
    g = torch.randn_like(a)
    (ga,) = torch.autograd.grad(a, tables, g)
    (gb,) = torch.autograd.grad(b, tables, g)
    assert _rel(gb, ga) < 1e-4


def test_hash_encoding_trilinear_at_vertices_and_gradcheck_float64():
    res = [3, 5]
    tables = torch.randn(2, 64, 2, dtype=torch.float64)
    # at a vertex of level 0 the feature is that vertex's row (level 0 is dense: 4^3 = 64)
    x = torch.tensor([[1 / 3, 2 / 3, 0.0]], dtype=torch.float64)
    out = hash_encode(x, tables, res, 'cpu')
    assert torch.allclose(out[0, :2], tables[0, 1 + 2 * 4 + 0 * 16])
    tables.requires_grad_()
    pts = torch.rand(4, 3, dtype=torch.float64)
    for backend in ('cpu', 'torch'):
        assert torch.autograd.gradcheck(lambda t, b=backend: hash_encode(pts, t, res, b), (tables,),
                                        eps=1e-6, atol=1e-7)


def test_hash_encoding_point_gradient_matches_torch_and_finite_differences():
    """Points that move with a refined camera get the gradient of the trilinear weights."""
    res = level_resolutions(6, 4, 200)  # dense and hashed levels
    tables = torch.rand(6, 2 ** 10, 2) - 0.5
    x = (torch.rand(2000, 3) * 0.9 + 0.05).requires_grad_()
    g = torch.randn(2000, 12)
    (ga,) = torch.autograd.grad(hash_encode(x, tables, res, 'torch'), x, g)
    (gb,) = torch.autograd.grad(hash_encode(x, tables, res, 'cpu'), x, g)
    assert _rel(gb, ga) < 1e-4
    t64 = torch.randn(2, 64, 2, dtype=torch.float64)
    pts = (torch.rand(5, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: hash_encode(p, t64, [3, 5], 'cpu'), (pts,),
                                    eps=1e-7, atol=1e-6)


def _samples(n_rays=40, seed=0, dtype=torch.float32, max_count=30):
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_count, (n_rays,), generator=gen)
    offsets = torch.zeros(n_rays + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    s = int(offsets[-1])
    dt = torch.rand(s, generator=gen, dtype=dtype) * 0.1 + 0.01
    t0 = torch.zeros(s, dtype=dtype)
    for r in range(n_rays):
        a, b = int(offsets[r]), int(offsets[r + 1])
        t0[a:b] = torch.cumsum(dt[a:b], 0) - dt[a:b] + 1.0
    sigmas = torch.rand(s, generator=gen, dtype=dtype) * 20
    rgbs = torch.rand(s, 3, generator=gen, dtype=dtype)
    return sigmas, rgbs, t0, t0 + dt, offsets


def test_composite_cpu_matches_torch_reference_with_early_stop():
    sigmas, rgbs, t0, t1, offsets = _samples()
    sigmas[:200] *= 20  # some rays terminate early
    sigmas.requires_grad_()
    rgbs.requires_grad_()
    ref = composite(sigmas, rgbs, t0, t1, offsets, 1e-4, 'torch')
    out = composite(sigmas, rgbs, t0, t1, offsets, 1e-4, 'cpu')
    for a, b in zip(out, ref):
        assert _rel(a, b) < 1e-5
    gs = [torch.randn_like(v) for v in ref]
    ga = torch.autograd.grad(ref, (sigmas, rgbs), gs)
    gb = torch.autograd.grad(out, (sigmas, rgbs), gs)
    for a, b in zip(gb, ga):
        assert _rel(a, b) < 1e-4


def test_composite_gradcheck_float64():
    sigmas, rgbs, t0, t1, offsets = _samples(4, seed=1, dtype=torch.float64, max_count=7)
    sigmas.requires_grad_()
    rgbs.requires_grad_()
    for backend in ('cpu', 'torch'):
        assert torch.autograd.gradcheck(
            lambda s, c, b=backend: composite(s, c, t0, t1, offsets, 0.0, b), (sigmas, rgbs),
            eps=1e-6, atol=1e-7)


@pytest.mark.parametrize('mode', ['aabb', 'contract'])
def test_marching_cpu_matches_torch_reference(mode):
    gen = torch.Generator().manual_seed(0)
    o = torch.randn(200, 3, generator=gen) * 0.3 + torch.tensor([0.0, 0.0, -4.0])
    d = torch.nn.functional.normalize(
        torch.randn(200, 3, generator=gen) * 0.3 + torch.tensor([0.0, 0.0, 1.0]), dim=1)
    cone = 0.0 if mode == 'aabb' else 1 / 64
    spec = GridSpec(mode, (-1.5,) * 3, (1.5,) * 3, (0.0,) * 3, 1.0, 16, 0.02,
                    1e10 if cone else 0.02, cone)
    grid = torch.rand(16 ** 3, generator=gen) > 0.6
    if mode == 'aabb':
        tn, tf = ray_aabb(o, d, torch.tensor(spec.lo), torch.tensor(spec.hi))
    else:
        tn, tf = torch.full((200,), 0.05), torch.full((200,), 100.0)
    jitter = torch.rand(200, generator=gen)
    a = march_rays(o, d, tn, tf, jitter, grid, spec, 500, 'cpu')
    b = march_rays(o, d, tn, tf, jitter, grid, spec, 500, 'torch')
    assert int(a[0][-1]) > 100
    assert torch.equal(a[0], b[0])
    assert torch.allclose(a[1], b[1]) and torch.allclose(a[2], b[2])
    assert bool((a[1] < a[2]).all())


@pytest.mark.parametrize('mode', ['aabb', 'contract'])
def test_marching_skips_empty_space_with_the_same_samples(mode):
    """A sparse grid (a few occupied blobs) with rays from inside and outside the ball:
    skipping empty cells and blocks gives bit-identical samples to looking every step up,
    and the same as the torch reference."""
    gen = torch.Generator().manual_seed(3)
    n, res = 400, 64
    o = torch.randn(n, 3, generator=gen) * (0.2 if mode == 'contract' else 0.3)
    o[: n // 2] += torch.tensor([0.0, 0.0, -4.0 if mode == 'aabb' else -0.5])
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen) * 0.4
                                      + torch.tensor([0.0, 0.0, 1.0]), dim=1)
    cone = 0.0 if mode == 'aabb' else 1 / 128
    # contract: with the shell rule (steps growing as n^2 beyond the unit ball)
    spec = GridSpec(mode, (-1.5,) * 3, (1.5,) * 3, (0.1, -0.2, 0.05), 0.8, res, 0.01,
                    1e10 if cone else 0.01, cone, 4 * 0.8 / (res * 2) if cone else 0.0)
    grid = torch.zeros(res, res, res, dtype=torch.bool)
    for c in torch.randint(4, res - 10, (40, 3), generator=gen):
        grid[c[0]:c[0] + 6, c[1]:c[1] + 5, c[2]:c[2] + 4] = True
    grid[res // 2 - 1:res // 2 + 1, :, res // 2] = True  # a thin sheet across the middle
    grid = grid.reshape(-1)
    if mode == 'aabb':
        tn, tf = ray_aabb(o, d, torch.tensor(spec.lo), torch.tensor(spec.hi))
    else:
        tn, tf = torch.full((n,), 0.02), torch.full((n,), 200.0)
    jitter = torch.rand(n, generator=gen)
    fast = march_cpu(o, d, tn, tf, jitter, grid, spec, 4000)
    slow = march_cpu(o, d, tn, tf, jitter, grid, spec, 4000, skip_empty=False)
    ref = march_rays(o, d, tn, tf, jitter, grid, spec, 4000, 'torch')
    assert int(fast[0][-1]) > 1000
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)
    assert torch.equal(fast[0], ref[0])
    if mode == 'contract':  # far out, the shell rule's steps: ~2 per cell along the radius
        far = march_rays(o, d, tn, tf, jitter, torch.ones_like(grid), spec, 10**6, 'cpu')
        per_ray = (far[0][1:] - far[0][:-1]).double().mean()
        assert per_ray < 200, per_ray  # cone steps alone: ~775
    assert torch.allclose(fast[1], ref[1]) and torch.allclose(fast[2], ref[2])


def _sphere_inputs(radius, sigma, color, backend, step=2e-3):
    spec = GridSpec('aabb', (-1.0,) * 3, (1.0,) * 3, (0.0,) * 3, 1.0, 8, step, step, 0.0)

    def query(x, d):
        inside = (x.norm(dim=1) < radius).to(x.dtype)
        return sigma * inside, torch.tensor(color, dtype=x.dtype).expand(len(x), 3)

    def ray_range(o, d):
        return ray_aabb(o, d, torch.tensor(spec.lo), torch.tensor(spec.hi))

    return dict(query=query, ray_range=ray_range, grid=torch.ones(8 ** 3, dtype=torch.bool),
                spec=spec, max_samples=4096, t_min=0.0, backend=backend, jitter=False)


@pytest.mark.parametrize('backend', ['cpu', 'torch'])
def test_constant_density_sphere_matches_closed_form(backend):
    radius, sigma, color, bg = 0.6, 3.0, (0.9, 0.3, 0.1), torch.tensor([0.0, 0.5, 1.0])
    cams = Cameras(R=torch.eye(3)[None], t=torch.tensor([[0.0, 0.0, 3.0]]), fx=40.0, fy=40.0,
                   cx=16.0, cy=16.0, width=32, height=32)
    batch = dict(camera=cams, width=32, height=32, viewmats=cams.viewmats(), Ks=cams.Ks())
    inputs = _sphere_inputs(radius, sigma, color, backend)
    inputs['backgrounds'] = bg[None]
    out = VolumeRenderer(chunk_size=300)(inputs, batch)
    o, d = pixel_rays(cams, 32, 32)
    # distance of the sphere centre from each ray, chord length, entry distance
    tc = -(o * d).sum(1)
    b2 = (o + tc[:, None] * d).pow(2).sum(1)
    chord = 2 * torch.sqrt((radius ** 2 - b2).clamp_min(0))
    opacity = 1 - torch.exp(-sigma * chord)
    expected = opacity[:, None] * torch.tensor(color) + (1 - opacity)[:, None] * bg
    assert float((out['rgb'].reshape(-1, 3) - expected).abs().max()) < 1e-2
    assert float((out['alpha'].reshape(-1) - opacity).abs().max()) < 1e-2
    hit = chord > 0.3
    t_in = tc - chord / 2
    e = torch.exp(-sigma * chord)
    depth = t_in + 1 / sigma - chord * e / (1 - e)
    assert float((out['depth'].reshape(-1)[hit] - depth[hit]).abs().max()) < 1e-2
    assert int(hit.sum()) > 100


def test_chunked_view_equals_one_chunk():
    cams = Cameras(R=torch.eye(3)[None], t=torch.tensor([[0.0, 0.0, 3.0]]), fx=20.0, fy=20.0,
                   cx=8.0, cy=8.0, width=16, height=16)
    batch = dict(camera=cams, width=16, height=16)
    inputs = _sphere_inputs(0.5, 2.0, (0.2, 0.4, 0.6), 'cpu', step=0.01)
    inputs['backgrounds'] = torch.ones(1, 3)
    a = VolumeRenderer(chunk_size=7)(inputs, batch)
    b = VolumeRenderer(chunk_size=10_000)(inputs, batch)
    assert a['rgb'].shape == (1, 16, 16, 3)
    assert torch.equal(a['rgb'], b['rgb']) and torch.equal(a['depth'], b['depth'])


def test_pixel_rays_go_through_pixel_centres():
    cams = Cameras(R=torch.linalg.qr(torch.randn(3, 3))[0][None] * 1.0,
                   t=torch.tensor([[0.1, -0.2, 2.0]]), fx=30.0, fy=25.0, cx=9.0, cy=7.0,
                   width=20, height=12)
    if torch.det(cams.R[0]) < 0:
        cams.R[0] = -cams.R[0]
    o, d = pixel_rays(cams, 20, 12)
    uv, depth = cams.project(o + 2.5 * d)
    ys, xs = torch.meshgrid(torch.arange(12), torch.arange(20), indexing='ij')
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float() + 0.5
    assert torch.allclose(uv.reshape(-1, 2), centres, atol=1e-4)
    assert math.isclose(float(d.norm(dim=1).min()), 1.0, rel_tol=1e-5)


def test_memory_error_names_the_key():
    cams = Cameras(R=torch.eye(3)[None], t=torch.tensor([[0.0, 0.0, 3.0]]), fx=20.0, fy=20.0,
                   cx=8.0, cy=8.0, width=16, height=16)
    inputs = _sphere_inputs(0.5, 2.0, (0.2, 0.4, 0.6), 'cpu', step=0.01)
    inputs['backgrounds'] = torch.ones(1, 3)
    with pytest.raises(MemoryError, match='renderer.chunk_size'):
        VolumeRenderer(bytes_per_sample=2 ** 50)(inputs, dict(camera=cams, width=16, height=16))


def test_training_sample_budget_keeps_leading_rays():
    gen = torch.Generator().manual_seed(0)
    o = torch.tensor([[0.0, 0.0, -3.0]]).repeat(50, 1) + torch.randn(50, 3, generator=gen) * 0.1
    d = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0]]).repeat(50, 1), dim=1)
    inputs = _sphere_inputs(0.5, 2.0, (0.2, 0.4, 0.6), 'cpu', step=0.01)
    inputs.update(backgrounds=torch.ones(50, 3), jitter=True)
    batch = dict(rays_o=o, rays_d=d)
    torch.manual_seed(1)
    full = VolumeRenderer(train_sample_budget=None)(inputs, batch)
    torch.manual_seed(1)
    part = VolumeRenderer(train_sample_budget=1000)(inputs, batch)
    n = part['meta']['n_rays']
    assert 1 <= n < 50 and part['rgb'].shape == (n, 3)
    assert part['meta']['n_samples'] <= 1000 < full['meta']['n_samples']
    assert torch.equal(part['rgb'], full['rgb'][:n])
    # marching in chunks that stop at the budget renders exactly the same rays and samples
    for chunk in (1, 7, 49):
        torch.manual_seed(1)
        chunked = VolumeRenderer(train_sample_budget=1000, march_chunk=chunk)(inputs, batch)
        assert chunked['meta'] == part['meta']
        assert torch.equal(chunked['rgb'], part['rgb'])
    torch.manual_seed(1)  # a budget that every ray fits: all rays, whatever the chunking
    roomy = VolumeRenderer(train_sample_budget=10 ** 6, march_chunk=7)(inputs, batch)
    assert roomy['meta']['n_rays'] == 50 and torch.equal(roomy['rgb'], full['rgb'])
