"""GaussianOptimizer param groups / checkpoints and the exponential lr schedule."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from nerfreg.models import GaussianSplatting
from nerfreg.optim import DEFAULT_LRS, ExponentialDecayLR, GaussianOptimizer
from nerfreg.registry import OPTIMIZERS, PARAM_SCHEDULERS


def _model(n: int = 6) -> GaussianSplatting:
    model = GaussianSplatting(sh_degree=1)
    model.init_from_points(torch.rand(n, 3), torch.rand(n, 3))
    return model


def _fake_step(model, opt, step: int, seed: int) -> dict:
    """A deterministic loss on the parameters plus fake screen-space statistics."""
    gen = torch.Generator().manual_seed(seed)
    loss = sum((p * torch.randn(p.shape, generator=gen)).sum() for p in model.params.values())
    n = model.num_gaussians
    means2d = (model.params['means'][None, :, :2] * 1.0)
    means2d.retain_grad()
    loss = loss + (means2d * torch.randn(means2d.shape, generator=gen)).sum() * 1e-3
    loss.backward()
    return opt.update_model(step=step, means2d=means2d, radii=torch.full((1, n), 4),
                            width=64, height=64, n_cameras=1)


def test_param_groups_and_learning_rates() -> None:
    model = _model()
    opt = OPTIMIZERS.build(dict(type='GaussianOptimizer'),
                           default_args=dict(model=model, scene_extent=3.0))
    assert isinstance(opt, GaussianOptimizer)
    lrs = opt.get_lr()
    assert set(lrs) == set(model.params.keys())
    assert lrs['means'] == pytest.approx(1.6e-4 * 3.0)
    for name in ('scales', 'quats', 'opacities', 'sh0'):
        assert lrs[name] == pytest.approx(DEFAULT_LRS[name])
    assert lrs['shN'] == pytest.approx(2.5e-3 / 20)
    for group in opt.param_groups:
        assert group['eps'] == 1e-15 and len(group['params']) == 1
        assert group['params'][0] is model.params[group['name']]
    assert opt.strategy_state['scene_scale'] == 3.0
    with pytest.raises(ValueError, match='unknown attributes'):
        GaussianOptimizer(model, lr=dict(colors=1e-3))


def test_exponential_decay_values_and_resume() -> None:
    model = _model()
    opt = GaussianOptimizer(model, scene_extent=2.0)
    sched = PARAM_SCHEDULERS.build(dict(type='ExponentialDecayLR', groups=['means'],
                                        max_steps=100), default_args=dict(optimizer=opt))
    assert isinstance(sched, ExponentialDecayLR) and sched.by_epoch is False
    init, final = 1.6e-4 * 2.0, 1.6e-6 * 2.0
    assert opt.get_lr()['means'] == pytest.approx(init)
    for _ in range(50):
        sched.step()
    assert opt.get_lr()['means'] == pytest.approx(math.sqrt(init * final))
    assert opt.get_lr()['scales'] == pytest.approx(5e-3)  # other groups untouched
    saved = copy.deepcopy(sched.state_dict())
    for _ in range(50):
        sched.step()
    assert opt.get_lr()['means'] == pytest.approx(final)
    sched.step()
    assert opt.get_lr()['means'] == pytest.approx(final)  # clamped after max_steps
    # Exact resume on a fresh optimizer.
    opt2 = GaussianOptimizer(_model(), scene_extent=2.0)
    sched2 = ExponentialDecayLR(opt2, groups=['means'], max_steps=100)
    sched2.load_state_dict(saved)
    assert opt2.get_lr()['means'] == sched.lr_at(50, init)
    sched2.step()
    assert opt2.get_lr()['means'] == sched.lr_at(51, init)
    with pytest.raises(ValueError, match='unknown param groups'):
        ExponentialDecayLR(opt, groups=['colors'])


def test_lr_final_and_delay() -> None:
    opt = GaussianOptimizer(_model())
    sched = ExponentialDecayLR(opt, groups=['means', 'scales'], max_steps=10, lr_final=1e-7,
                               delay_steps=5, delay_mult=0.1)
    assert opt.get_lr()['means'] == pytest.approx(1.6e-4 * 0.1)
    sched.set_step(10)
    assert opt.get_lr()['scales'] == pytest.approx(1e-7)


def test_state_dict_resume_is_exact_with_structure_changes() -> None:
    torch.manual_seed(0)
    model = _model(8)
    strategy = dict(type='DefaultStrategy', refine_start=2, refine_every=3, reset_every=1000,
                    grow_grad2d=1e-9, grow_scale3d=0.5)
    opt = GaussianOptimizer(model, scene_extent=1.0, strategy=strategy)
    for step in range(6):
        _fake_step(model, opt, step, seed=step)
    assert model.num_gaussians > 8  # densified at step 3
    model_sd = copy.deepcopy(model.state_dict())
    opt_sd = copy.deepcopy(opt.state_dict())
    assert opt_sd['strategy']['count'] is not None

    # A model without a scene, resized by load_state_dict, and a fresh optimizer.
    model2 = GaussianSplatting(sh_degree=1)
    assert model2.num_gaussians == 0
    opt2 = GaussianOptimizer(model2, scene_extent=1.0, strategy=strategy)
    model2.load_state_dict(model_sd)
    opt2.load_state_dict(opt_sd)
    assert model2.num_gaussians == model.num_gaussians
    for name in ('grad2d', 'count', 'radii'):
        assert torch.equal(opt2.strategy_state[name], opt.strategy_state[name])

    # Interleaved on purpose: split samples must not depend on the global RNG.
    stats: list[list[dict]] = [[], []]
    for step in range(6, 10):
        stats[0].append(_fake_step(model, opt, step, seed=step))
        torch.rand(7)
        stats[1].append(_fake_step(model2, opt2, step, seed=step))
    assert stats[0] == stats[1]
    assert any('n_split' in s and s['n_split'] + s['n_dupli'] > 0 for s in stats[0])
    for name in model.params.keys():
        assert torch.equal(model.params[name], model2.params[name]), name
        st1 = opt.state[model.params[name]]
        st2 = opt2.state[model2.params[name]]
        assert torch.equal(st1['exp_avg'], st2['exp_avg'])
        assert float(st1['step']) == float(st2['step']) == 10


def test_non_finite_gradients_names_exactly_the_culprits() -> None:
    from nerfreg.optim import non_finite_gradients
    model = _model(5)
    for p in model.params.values():
        p.grad = torch.randn_like(p)
    opt = GaussianOptimizer(model, scene_extent=1.0)
    assert opt.non_finite_gradients() == []
    model.params['scales'].grad[2, 1] = float('nan')
    model.params['shN'].grad[0, 0, 0] = float('-inf')
    assert opt.non_finite_gradients() == ['scales', 'shN']
    # +inf and -inf in one tensor (their sum is NaN) and a huge but finite gradient
    model.params['scales'].grad[2, 1] = 0.0
    model.params['shN'].grad[0, 0, 0] = float('inf')
    model.params['shN'].grad[1, 0, 0] = float('-inf')
    assert opt.non_finite_gradients() == ['shN']
    model.params['shN'].grad.zero_()
    model.params['means'].grad.fill_(3e38)  # the sum overflows: the exact check decides
    assert opt.non_finite_gradients() == []
    named = [(f'params.{n}', p) for n, p in model.params.items()]
    model.params['quats'].grad = None
    model.params['opacities'].grad[0] = float('nan')
    assert non_finite_gradients(named) == ['params.opacities']


@pytest.mark.parametrize('fused', [True, False])
def test_fused_adam_matches_reference_and_resumes(fused: bool) -> None:
    """Fused and per-tensor Adam agree to rounding; either resumes from the other's
    checkpoint, continuing with its own implementation."""
    runs = {}
    for flag in (True, False):
        torch.manual_seed(0)
        model = _model(8)
        opt = GaussianOptimizer(model, scene_extent=1.0, fused=flag)
        assert bool(opt.param_groups[0]['fused']) is flag
        for step in range(4):
            _fake_step(model, opt, step, seed=step)
        runs[flag] = (model, opt)
    for name in runs[True][0].params.keys():
        assert torch.allclose(runs[True][0].params[name], runs[False][0].params[name],
                              rtol=1e-5, atol=1e-6), name
    model, opt = runs[not fused]
    model2 = GaussianSplatting(sh_degree=1)
    opt2 = GaussianOptimizer(model2, scene_extent=1.0, fused=fused)
    model2.load_state_dict(copy.deepcopy(model.state_dict()))
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert all(bool(g['fused']) is fused for g in opt2.param_groups)
    _fake_step(model2, opt2, 4, seed=4)
    _fake_step(model, opt, 4, seed=4)
    for name in model.params.keys():
        assert torch.allclose(model.params[name], model2.params[name], rtol=1e-5,
                              atol=1e-6), name


def test_fused_option_is_checked() -> None:
    with pytest.raises(ValueError, match='fused must be'):
        GaussianOptimizer(_model(3), fused='fast')
