"""DefaultStrategy decisions and structure ops keeping Adam state aligned."""

from __future__ import annotations

import math

import pytest
import torch

from nerfreg.models import GaussianSplatting
from nerfreg.optim import GaussianOptimizer
from nerfreg.registry import STRATEGIES
from nerfreg.strategies import DefaultStrategy, Strategy, ops


def _setup(n: int = 8, **strategy):
    model = GaussianSplatting(sh_degree=1)
    model.init_from_points(torch.rand(n, 3), torch.rand(n, 3))
    cfg = dict(type='DefaultStrategy', **strategy)
    opt = GaussianOptimizer(model, scene_extent=1.0, strategy=cfg)
    # One Adam step so that every parameter has non-zero moments.
    for p in model.params.values():
        p.grad = torch.randn_like(p)
    opt.step()
    opt.zero_grad()
    return model, opt


def _assert_aligned(model, opt) -> None:
    for group in opt.param_groups:
        p = group['params'][0]
        assert p is model.params[group['name']]
        state = opt.state[p]
        assert state['exp_avg'].shape == p.shape
        assert state['exp_avg_sq'].shape == p.shape
        assert float(state['step']) == 1.0


def _info(n: int, grad_px: torch.Tensor, radii: torch.Tensor, w: int = 100, h: int = 100):
    means2d = torch.zeros(1, n, 2, requires_grad=True)
    means2d.grad = grad_px.reshape(1, n, 2).clone()
    return dict(means2d=means2d, radii=radii.reshape(1, n), width=w, height=h, n_cameras=1)


def test_registry_and_swap_by_name() -> None:
    assert isinstance(STRATEGIES.build(dict(type='DefaultStrategy')), DefaultStrategy)

    @STRATEGIES.register_module(name='_TestNoopStrategy', force=True)
    class _Noop(Strategy):
        pass

    model = GaussianSplatting(sh_degree=0)
    model.init_from_points(torch.rand(4, 3), torch.rand(4, 3))
    opt = GaussianOptimizer(model, strategy=dict(type='_TestNoopStrategy'))
    assert isinstance(opt.strategy, _Noop)


def test_statistics_use_ndc_scaled_gradients() -> None:
    model, opt = _setup(4)
    strategy, state = opt.strategy, opt.strategy_state
    grad = torch.tensor([[0.001, 0.0], [0.0, 0.002], [0.003, 0.004], [1.0, 1.0]])
    radii = torch.tensor([10, 20, 5, 0])
    strategy.update_state(model.params, state, _info(4, grad, radii, w=100, h=50))
    strategy.update_state(model.params, state, _info(4, grad, radii, w=100, h=50))
    # x scaled by w/2 = 50, y by h/2 = 25.
    expected = torch.tensor([0.05, 0.05, math.hypot(0.15, 0.1), 0.0]) * 2
    assert state['grad2d'].dtype == torch.float64
    assert torch.allclose(state['grad2d'].float(), expected, atol=1e-6)
    assert state['count'].tolist() == [2, 2, 2, 0]
    assert torch.allclose(state['radii'], torch.tensor([0.1, 0.2, 0.05, 0.0]))


def test_statistics_with_several_cameras() -> None:
    """A batch of C views: the loss is a mean over views, so gradients are scaled by C and
    every view where a Gaussian is visible counts once."""
    model, opt = _setup(3)
    means2d = torch.zeros(2, 3, 2, requires_grad=True)
    means2d.grad = torch.tensor([[[0.001, 0.0]] * 3, [[0.0, 0.001]] * 3])
    radii = torch.tensor([[4, 0, 4], [4, 4, 0]])
    info = dict(means2d=means2d, radii=radii, width=40, height=40, n_cameras=2)
    opt.strategy.update_state(model.params, opt.strategy_state, info)
    state = opt.strategy_state
    assert state['count'].tolist() == [2, 1, 1]
    assert torch.allclose(state['grad2d'].float(), torch.tensor([0.08, 0.04, 0.04]))
    assert torch.allclose(state['radii'], torch.full((3,), 0.1))


def test_clone_vs_split_selection_and_adam_rows() -> None:
    model, opt = _setup(6, grow_grad2d=0.01, grow_scale3d=0.05)
    with torch.no_grad():
        model.params['scales'][:3] = math.log(0.01)   # small: clone
        model.params['scales'][3:] = math.log(0.2)    # large: split
    state = opt.strategy_state
    state['grad2d'] = torch.tensor([0.05, 0.0, 0.05, 0.05, 0.0, 0.05]) * 4
    state['count'] = torch.full((6,), 4.0)
    state['radii'] = torch.zeros(6)
    dupli, split = opt.strategy.grow_masks(model.params, state, step=1000)
    assert dupli.tolist() == [True, False, True, False, False, False]
    assert split.tolist() == [False, False, False, True, False, True]

    old_means = model.params['means'].detach().clone()
    old_avg = opt.state[model.params['means']]['exp_avg'].clone()
    n_dupli, n_split = opt.strategy.grow(model.params, opt.optimizer, state, step=1000)
    assert (n_dupli, n_split) == (2, 2)
    # 6 + 2 clones - 2 split parents + 4 children
    assert model.num_gaussians == 10
    _assert_aligned(model, opt)
    avg = opt.state[model.params['means']]['exp_avg']
    # Kept rows: 0, 1, 2, 4 and clones of 0, 2 (same positions); split children at the end.
    kept = [0, 1, 2, 4]
    assert torch.equal(model.params['means'][:4].detach(), old_means[kept])
    assert torch.equal(avg[:4], old_avg[kept])
    assert torch.equal(model.params['means'][4:6].detach(), old_means[[0, 2]])
    assert torch.count_nonzero(avg[4:]) == 0
    scales = model.params['scales'].detach()
    assert torch.allclose(scales[6:], torch.full((4, 3), math.log(0.2 / 1.6)))
    # Children are sampled near their parent (within a few sigma).
    children = model.params['means'][6:].detach().view(2, 2, 3)  # [n_split, parents, 3]
    parents = old_means[[3, 5]]
    assert ((children - parents[None]).norm(dim=-1) < 5 * 0.2).all()
    assert state['grad2d'].shape[0] == 10


def test_split_samples_follow_the_gaussian() -> None:
    n = 2000
    model = GaussianSplatting(sh_degree=0)
    model.init_from_points(torch.zeros(n, 3), torch.rand(n, 3))
    with torch.no_grad():
        model.params['scales'][:] = torch.log(torch.tensor([[1.0, 0.1, 0.01]]))
        # 90 degrees about z: local x -> world y, local y -> world -x.
        model.params['quats'][:] = torch.tensor([[math.cos(math.pi / 4), 0, 0,
                                                  math.sin(math.pi / 4)]])
    ops.split(model.params, None, None, torch.ones(n, dtype=torch.bool))
    assert model.num_gaussians == 2 * n
    std = model.params['means'].detach().std(dim=0)
    assert torch.allclose(std, torch.tensor([0.1, 1.0, 0.01]), rtol=0.1)
    assert torch.allclose(model.params['scales'].detach(),
                          torch.log(torch.tensor([[1.0, 0.1, 0.01]]) / 1.6).expand(2 * n, 3))


def test_prune_by_opacity_and_size_after_first_reset() -> None:
    model, opt = _setup(5, prune_opa=0.005, prune_scale3d=0.1, prune_scale2d=0.15,
                        reset_every=300)
    with torch.no_grad():
        model.params['opacities'][:] = torch.logit(torch.tensor([0.001, 0.5, 0.5, 0.5, 0.5]))
        model.params['scales'][:] = math.log(0.01)
        model.params['scales'][2] = math.log(0.5)        # too big in world space
    state = opt.strategy_state
    state['radii'] = torch.tensor([0.0, 0.0, 0.0, 0.3, 0.0])  # #3 too big on screen
    assert opt.strategy.prune_mask(model.params, state, step=200).tolist() == [
        True, False, False, False, False]
    assert opt.strategy.prune_mask(model.params, state, step=400).tolist() == [
        True, False, True, True, False]
    n = opt.strategy.prune(model.params, opt.optimizer, state, step=400)
    assert n == 3 and model.num_gaussians == 2
    _assert_aligned(model, opt)
    assert state['radii'].shape == (2,)


def test_opacity_reset_keeps_other_state() -> None:
    model, opt = _setup(4)
    with torch.no_grad():
        model.params['opacities'][:] = torch.logit(torch.tensor([0.9, 0.5, 0.005, 0.02]))
    avg_means = opt.state[model.params['means']]['exp_avg'].clone()
    ops.reset_opacity(model.params, opt.optimizer, 0.01)
    op = torch.sigmoid(model.params['opacities'].detach())
    assert torch.allclose(op, torch.tensor([0.01, 0.01, 0.005, 0.01]), atol=1e-6)
    assert torch.count_nonzero(opt.state[model.params['opacities']]['exp_avg']) == 0
    assert torch.equal(opt.state[model.params['means']]['exp_avg'], avg_means)
    _assert_aligned(model, opt)


def test_reset_and_refine_schedule() -> None:
    model, opt = _setup(4, refine_start=10, refine_every=10, reset_every=30, refine_stop=100,
                        grow_grad2d=1e9)
    radii = torch.full((4,), 5)
    grad = torch.zeros(4, 2)
    stats = {s: opt.strategy.step_post_backward(model.params, opt.optimizer,
                                                opt.strategy_state, s, _info(4, grad, radii))
             for s in (10, 20, 30, 100)}
    assert stats[10] == {}  # refine only after refine_start
    assert 'n_prune' in stats[20] and 'opacity_reset' not in stats[20]
    assert stats[30].get('opacity_reset') is True
    assert stats[100] == {}  # nothing after refine_stop


def test_cap_max_limits_growth_to_highest_gradients() -> None:
    model, opt = _setup(10, grow_grad2d=0.01, grow_scale3d=0.05, cap_max=13)
    with torch.no_grad():
        model.params['scales'][:] = math.log(0.01)
        model.params['scales'][8:] = math.log(0.5)
    state = opt.strategy_state
    state['grad2d'] = torch.arange(1, 11, dtype=torch.float32)  # all above threshold
    state['count'] = torch.ones(10)
    state['radii'] = torch.zeros(10)
    dupli, split = opt.strategy.grow_masks(model.params, state, step=1000)
    # Budget 3 rows: the highest gradients are #9 (split, +1), #8 (split, +1), #7 (clone).
    assert torch.where(dupli)[0].tolist() == [7]
    assert torch.where(split)[0].tolist() == [8, 9]
    opt.strategy.grow(model.params, opt.optimizer, state, step=1000)
    assert model.num_gaussians == 13
    _assert_aligned(model, opt)
    state['grad2d'] = torch.full((13,), 10.0)
    state['count'] = torch.ones(13)
    assert opt.strategy.grow(model.params, opt.optimizer, state, step=1100) == (0, 0)


def test_reduce_state_is_called_before_decisions() -> None:
    calls = []

    class Reducing(DefaultStrategy):
        def reduce_state(self, state):
            calls.append(state['count'].clone())
            state = dict(state)
            state['grad2d'] = state['grad2d'] * 0  # e.g. all-reduced to nothing
            return state

    model, opt = _setup(4)
    opt.strategy = Reducing(refine_start=0, refine_every=1, grow_grad2d=1e-6)
    grad = torch.ones(4, 2)
    stats = opt.strategy.step_post_backward(model.params, opt.optimizer, opt.strategy_state,
                                            1, _info(4, grad, torch.full((4,), 3)))
    assert len(calls) == 1 and calls[0].tolist() == [1, 1, 1, 1]
    assert stats['n_dupli'] == 0 and stats['n_split'] == 0


def test_missing_means2d_grad_is_explained() -> None:
    model, opt = _setup(2)
    info = _info(2, torch.zeros(2, 2), torch.ones(2))
    info['means2d'].grad = None
    with pytest.raises(RuntimeError, match='retain_grad'):
        opt.strategy.update_state(model.params, opt.strategy_state, info)


def _reduce_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        state = {'grad2d': torch.tensor([1.0, 2.0]) * (rank + 1),
                 'count': torch.tensor([1.0, 0.0]) + rank,
                 'radii': torch.tensor([0.1, 0.5]) * (rank + 1),
                 'scene_scale': 1.0}
        state = DefaultStrategy(sync_across_ranks=True).reduce_state(state)
        if rank == 0:
            torch.save({k: v for k, v in state.items()}, out)
    finally:
        dist.destroy_process_group()


def test_reduce_state_all_reduces_across_processes(tmp_path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    out = str(tmp_path / 'state.pt')
    mp.spawn(_reduce_worker, args=(2, port, out), nprocs=2, join=True)
    state = torch.load(out)
    assert state['grad2d'].tolist() == [3.0, 6.0]
    assert state['count'].tolist() == [3.0, 1.0]
    assert torch.allclose(state['radii'], torch.tensor([0.2, 1.0]))
    single = DefaultStrategy(sync_across_ranks=True).reduce_state({'count': torch.ones(2)})
    assert single['count'].tolist() == [1.0, 1.0]  # no process group: unchanged


def test_prune_big_after_prunes_oversized_without_any_reset() -> None:
    kw = dict(prune_opa=0.005, prune_scale3d=0.1, prune_scale2d=0.15, reset_every=10_000)
    model, opt = _setup(3, prune_big_after=250, **kw)
    with torch.no_grad():
        model.params['opacities'][:] = torch.logit(torch.tensor([0.5, 0.5, 0.5]))
        model.params['scales'][:] = math.log(0.01)
        model.params['scales'][1] = math.log(0.5)        # too big in world space
    state = opt.strategy_state
    state['radii'] = torch.tensor([0.3, 0.0, 0.0])       # #0 too big on screen
    assert opt.strategy.prune_mask(model.params, state, step=200).tolist() == [
        False, False, False]
    assert opt.strategy.prune_mask(model.params, state, step=300).tolist() == [
        True, True, False]
    plain, plain_opt = _setup(3, **kw)  # without the option: only after the first reset
    with torch.no_grad():
        plain.params['opacities'][:] = model.params['opacities']
        plain.params['scales'][:] = model.params['scales']
    plain_opt.strategy_state['radii'] = state['radii'].clone()
    assert plain_opt.strategy.prune_mask(plain.params, plain_opt.strategy_state,
                                         step=300).tolist() == [False, False, False]
