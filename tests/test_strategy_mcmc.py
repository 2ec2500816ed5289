"""MCMCStrategy: relocation moment matching, growth to the cap, SGLD noise, regularisers,
initial subsampling and bit-exact resume."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from nerfreg.models import GaussianSplatting
from nerfreg.ops import rasterization
from nerfreg.optim import GaussianOptimizer
from nerfreg.registry import STRATEGIES
from nerfreg.strategies import MCMCStrategy, ops
from nerfreg.strategies import mcmc as mcmc_module

F64 = torch.float64


def _model(n: int = 50, seed: int = 0) -> GaussianSplatting:
    g = torch.Generator().manual_seed(seed)
    model = GaussianSplatting(sh_degree=1, init_opacity=0.5)
    model.init_from_points(torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g))
    return model


def _fake_step(model, opt, step: int, seed: int) -> dict:
    """A deterministic loss on the parameters (no rendering needed by MCMC)."""
    gen = torch.Generator().manual_seed(seed)
    loss = sum((p * torch.randn(p.shape, generator=gen)).sum() for p in model.params.values())
    loss.backward()
    return opt.update_model(step=step)


def _render_alpha(means, scales, opacities, n_copies: int) -> torch.Tensor:
    n = n_copies
    _, alpha, _ = rasterization(
        means.repeat(n, 1), torch.tensor([[1.0, 0, 0, 0]], dtype=F64).repeat(n, 1),
        scales.repeat(n, 1), opacities.repeat(n), torch.ones(n, 3, dtype=F64),
        torch.eye(4, dtype=F64)[None],
        torch.tensor([[[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]]], dtype=F64), 64, 64,
        backend='torch')
    return alpha


@pytest.mark.parametrize('opacity', [0.1, 0.3])
@pytest.mark.parametrize('n_copies', [2, 4])
def test_relocation_keeps_the_image_to_first_order(opacity, n_copies):
    """One Gaussian split into N at the same place with the corrected opacity and scale
    renders the original image: what remains is the 1/255 alpha cut-off of each copy,
    while plain copies are off by a large factor."""
    means = torch.tensor([[0.0, 0.0, 2.0]], dtype=F64)
    scales = torch.tensor([[0.3, 0.2, 0.25]], dtype=F64)
    o = torch.tensor([opacity], dtype=F64)
    ref = _render_alpha(means, scales, o, 1)
    new_o, new_s = ops.relocation_correction(o, scales, torch.tensor([n_copies]))
    assert new_o.item() == pytest.approx(1 - (1 - opacity) ** (1 / n_copies))
    corrected = _render_alpha(means, new_s, new_o, n_copies)
    naive = _render_alpha(means, scales, o, n_copies)
    err = (corrected - ref).abs().max().item()
    assert err <= n_copies / 255 + 0.002
    assert err < 0.1 * (naive - ref).abs().max().item()


def test_relocation_correction_of_one_copy_is_the_identity():
    o = torch.tensor([0.05, 0.5, 0.99], dtype=F64)
    s = torch.rand(3, 3, dtype=F64)
    new_o, new_s = ops.relocation_correction(o, s, torch.ones(3, dtype=torch.long))
    assert torch.allclose(new_o, o) and torch.allclose(new_s, s)


def test_relocate_moves_dead_gaussians_and_keeps_adam_aligned():
    model = _model(40)
    opt = GaussianOptimizer(model, strategy=dict(type='MCMCStrategy', noise_lr=0.0,
                                                 refine_start=0, refine_every=1))
    _fake_step(model, opt, 0, seed=0)  # Adam moments everywhere (no refine at step 0)
    with torch.no_grad():
        model.params['opacities'][:10] = -10.0  # dead
    n_before = model.num_gaussians
    n = opt.strategy.relocate(model.params, opt.optimizer, opt.strategy_state, step=5)
    assert n == 10 and model.num_gaussians == n_before
    opacity = torch.sigmoid(model.params['opacities'])
    assert (opacity[:10] > 0.005).all()
    # every relocated Gaussian sits exactly on a live one
    means = model.params['means']
    assert (means[:10, None] == means[None, 10:]).all(-1).any(-1).all()
    for group in opt.param_groups:
        p = group['params'][0]
        assert p is model.params[group['name']]
        state = opt.state[p]
        assert state['exp_avg'].shape == p.shape
        assert (state['exp_avg'][:10] == 0).all()


def test_growth_adds_five_percent_up_to_the_cap():
    model = _model(100)
    opt = GaussianOptimizer(model, strategy=dict(type='MCMCStrategy', cap_max=108,
                                                 noise_lr=0.0, refine_start=0,
                                                 refine_every=10))
    stats = _fake_step(model, opt, 10, seed=1)
    assert stats['n_added'] == 5 and model.num_gaussians == 105
    stats = _fake_step(model, opt, 20, seed=2)
    assert stats['n_added'] == 3 and model.num_gaussians == 108
    assert _fake_step(model, opt, 30, seed=3)['n_added'] == 0
    for group in opt.param_groups:
        assert opt.state[group['params'][0]]['exp_avg'].shape[0] == 108


def test_noise_is_zero_when_disabled_and_moves_only_transparent_gaussians():
    model = _model(30)
    with torch.no_grad():
        model.params['opacities'][:15] = -8.0   # nearly transparent
        model.params['opacities'][15:] = 4.0    # opaque
    strategy = MCMCStrategy(noise_lr=0.0, refine_start=10_000)
    before = model.params['means'].detach().clone()
    strategy.step_post_backward(model.params, None, {}, 3, {'lr': {'means': 1e-3}})
    assert torch.equal(model.params['means'], before)

    strategy = MCMCStrategy(noise_lr=5e5, refine_start=10_000)
    strategy.step_post_backward(model.params, None, {}, 3, {'lr': {'means': 1e-3}})
    moved = (model.params['means'] - before).norm(dim=-1)
    assert (moved[:15] > 0).all()
    assert moved[15:].max() < 1e-6 * moved[:15].min() + 1e-12
    # no learning rate, no noise
    before = model.params['means'].detach().clone()
    strategy.step_post_backward(model.params, None, {}, 4, {'lr': {'means': 0.0}})
    assert torch.equal(model.params['means'], before)


def test_noise_and_scale_regulariser_are_in_units_of_the_scene_extent():
    """The same Gaussians in a world k times larger (means and scales x k, and the
    optimizer's scene extent, hence the means lr, x k) move k times as far under the same
    noise draw and pay the same scale regulariser: the values mean the same at any scale."""
    k = 6.4
    moved, reg = [], []
    for factor in (1.0, k):
        torch.manual_seed(0)                            # the initial scales are jittered
        model = _model(30)
        with torch.no_grad():
            model.params['means'].mul_(factor)
            model.params['scales'].add_(math.log(factor))
            model.params['opacities'].fill_(-6.0)       # transparent enough to be moved
        opt = GaussianOptimizer(model, scene_extent=factor, strategy=dict(
            type='MCMCStrategy', noise_lr=5e5, refine_start=10_000, opacity_reg=0.0,
            scale_reg=0.01))
        batch = {'image': torch.zeros(1, 8, 8, 3)}
        reg.append(model.get_loss_dict({'rgb': torch.zeros(1, 8, 8, 3)}, batch)['scale_reg'])
        before = model.params['means'].detach().clone()
        opt.strategy.step_post_backward(model.params, opt.optimizer, opt.strategy_state, 3,
                                        {'lr': opt.get_lr()})
        moved.append(model.params['means'].detach() - before)
    assert moved[0].abs().max() > 1e-3
    torch.testing.assert_close(moved[1], k * moved[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(reg[1], reg[0])


def test_a_loaded_state_keeps_the_scene_extent():
    """Resuming restores the strategy state; the regulariser must still be divided by the
    scene's extent, not by the 1 a fresh state starts from."""
    model = _model(20)
    opt = GaussianOptimizer(model, scene_extent=2.5, strategy=dict(type='MCMCStrategy'))
    resumed = GaussianOptimizer(model, scene_extent=2.5, strategy=dict(type='MCMCStrategy'))
    resumed.load_state_dict(opt.state_dict())
    batch = {'image': torch.zeros(1, 8, 8, 3)}
    loss = model.get_loss_dict({'rgb': torch.zeros(1, 8, 8, 3)}, batch)['scale_reg']
    torch.testing.assert_close(loss, 0.01 / 2.5 * torch.exp(model.params['scales']).mean())


def test_regularisers_reach_the_model_loss():
    model = _model(20)
    GaussianOptimizer(model, strategy=dict(type='MCMCStrategy', opacity_reg=0.01,
                                           scale_reg=0.02))
    batch = {'image': torch.zeros(1, 8, 8, 3)}
    results = {'rgb': torch.zeros(1, 8, 8, 3)}
    losses = model.get_loss_dict(results, batch)
    expected_o = 0.01 * torch.sigmoid(model.params['opacities']).mean()
    expected_s = 0.02 * torch.exp(model.params['scales']).mean()
    assert torch.allclose(losses['opacity_reg'], expected_o)
    assert torch.allclose(losses['scale_reg'], expected_s)
    assert torch.allclose(losses['loss'], expected_o + expected_s)  # image loss is 0
    losses['loss'].backward()
    assert model.params['opacities'].grad.abs().sum() > 0


def test_cap_below_the_initial_points_subsamples_and_says_so(monkeypatch):
    said = []
    monkeypatch.setattr(mcmc_module, 'print_log', lambda msg, **kw: said.append(msg))
    model = _model(200)
    opt = GaussianOptimizer(model, strategy=dict(type='MCMCStrategy', cap_max=64))
    assert model.num_gaussians == 64
    assert len(said) == 1 and '200' in said[0] and 'cap_max=64' in said[0]
    assert all(opt.optimizer.param_groups[i]['params'][0] is model.params[g['name']]
               for i, g in enumerate(opt.param_groups))
    # deterministic subset
    model2 = _model(200)
    GaussianOptimizer(model2, strategy=dict(type='MCMCStrategy', cap_max=64))
    assert torch.equal(model.params['means'], model2.params['means'])


def test_state_dict_resume_is_exact_across_relocation():
    strategy = dict(type='MCMCStrategy', cap_max=60, refine_start=1, refine_every=2,
                    min_opacity=0.45, noise_lr=5e5)
    model = _model(40)
    opt = GaussianOptimizer(model, scene_extent=2.5, strategy=strategy)
    for step in range(5):
        _fake_step(model, opt, step, seed=step)
    model_sd, opt_sd = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    model2 = GaussianSplatting(sh_degree=1)
    opt2 = GaussianOptimizer(model2, scene_extent=2.5, strategy=strategy)
    model2.load_state_dict(model_sd)
    opt2.load_state_dict(opt_sd)
    stats = [[], []]
    for step in range(5, 12):
        stats[0].append(_fake_step(model, opt, step, seed=step))
        torch.rand(5)  # the global RNG must not matter
        stats[1].append(_fake_step(model2, opt2, step, seed=step))
    assert stats[0] == stats[1]
    assert sum(s.get('n_relocated', 0) for s in stats[0]) > 0
    assert sum(s.get('n_added', 0) for s in stats[0]) > 0
    for name in model.params.keys():
        assert torch.equal(model.params[name], model2.params[name]), name
        st1, st2 = opt.state[model.params[name]], opt2.state[model2.params[name]]
        assert torch.equal(st1['exp_avg'], st2['exp_avg'])
        assert torch.equal(st1['exp_avg_sq'], st2['exp_avg_sq'])


def test_registry_and_dataclass_fields():
    strategy = STRATEGIES.build(dict(type='MCMCStrategy', cap_max=10))
    assert isinstance(strategy, MCMCStrategy) and strategy.cap_max == 10
    with pytest.raises(TypeError):
        STRATEGIES.build(dict(type='MCMCStrategy', cap=10))
    with pytest.raises(ValueError, match='cap_max'):
        MCMCStrategy(cap_max=0)


def test_random_init_ignores_the_point_cloud():
    class Scene:
        points = torch.rand(30, 3)
        points_rgb = torch.rand(30, 3)
        scene_extent = 2.0
        scene_center = torch.tensor([1.0, 0.0, 0.0])

    model = GaussianSplatting(sh_degree=0, num_random=500, random_init=True)
    model.setup(Scene())
    means = model.params['means']
    assert model.num_gaussians == 500
    assert (means - Scene.scene_center).abs().max() <= 2.0
    assert (means.min(0).values < -0.5).any()  # not the unit cube of the SfM points
