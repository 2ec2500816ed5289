"""Fused CPU L1 + D-SSIM kernel against the torch reference and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfreg.models.losses import l1_ssim_loss, use_fused_loss
from nerfreg.ops.fused_ssim_cpu import fused_l1_ssim_cpu, l1_ssim_numpy


@pytest.mark.parametrize('shape', [(1, 40, 57, 3), (2, 13, 17, 3), (1, 6, 9, 1), (1, 12, 11, 4)])
def test_fused_matches_torch_reference(shape) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    target = torch.rand(shape, generator=g)
    # near the target, as in training (SSIM high, gradients small and signed)
    pred = (target + 0.1 * torch.randn(shape, generator=g)).requires_grad_(True)
    ref = l1_ssim_loss(pred, target, 0.2, fused=False)
    ref['loss'].backward()
    g_ref = pred.grad.clone()
    pred.grad = None
    out = l1_ssim_loss(pred, target, 0.2, fused=True)
    out['loss'].backward()
    for key in ('loss', 'l1', 'dssim'):
        assert abs(float(out[key].detach()) - float(ref[key].detach())) <= 1e-5, key
    err = (pred.grad - g_ref).abs().max() / g_ref.abs().max()
    assert err <= 1e-4, float(err)
    # elementwise, where the gradient is not tiny
    big = g_ref.abs() > 1e-2 * g_ref.abs().max()
    rel = ((pred.grad - g_ref).abs() / g_ref.abs())[big]
    assert rel.max() <= 1e-3, float(rel.max())


def test_fused_gradient_float64_finite_differences() -> None:
    g = torch.Generator().manual_seed(3)
    target = torch.rand(1, 7, 9, 2, generator=g, dtype=torch.float64)
    pred = (target + 0.2 * torch.randn(1, 7, 9, 2, generator=g, dtype=torch.float64))
    pred.requires_grad_(True)

    def f(x):
        l1, s = fused_l1_ssim_cpu(x, target)
        return 0.8 * l1 + 0.2 * (1 - s)

    # L1's kink: keep |pred - target| away from 0 for the central differences
    with torch.no_grad():
        d = pred - target
        pred += torch.where(d.abs() < 1e-3, torch.full_like(d, 1e-2), torch.zeros_like(d))
    assert torch.autograd.gradcheck(f, (pred,), eps=1e-6, atol=1e-9, rtol=1e-6)


def test_grad_scales_with_each_output() -> None:
    g = torch.Generator().manual_seed(5)
    target = torch.rand(1, 15, 16, 3, generator=g)
    pred = torch.rand(1, 15, 16, 3, generator=g, requires_grad=True)
    l1, s = fused_l1_ssim_cpu(pred, target)
    (3.0 * l1 - 2.0 * s).backward()
    g_fused = pred.grad.clone()
    pred.grad = None
    ref = l1_ssim_loss(pred, target, fused=False)
    (3.0 * ref['l1'] + 2.0 * ref['dssim']).backward()
    assert torch.allclose(g_fused, pred.grad, rtol=1e-4, atol=1e-9)


def test_values_do_not_depend_on_threads() -> None:
    import numba
    g = torch.Generator().manual_seed(6)
    p = torch.rand(1, 31, 23, 3, generator=g).numpy()
    t = torch.rand(1, 31, 23, 3, generator=g).numpy()
    numba.set_num_threads(1)
    one = l1_ssim_numpy(p, t, True)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    two = l1_ssim_numpy(p, t, True)
    assert one[:2] == two[:2]
    assert np.array_equal(one[2], two[2]) and np.array_equal(one[3], two[3])


def test_dispatch_and_errors() -> None:
    x = torch.rand(1, 12, 12, 3)
    assert use_fused_loss(x, x)
    assert not use_fused_loss(x, x, fused=False)
    assert not use_fused_loss(x, x.clone().requires_grad_(True))  # target gradient: torch
    assert not use_fused_loss(x.half(), x.half())
    with pytest.raises(ValueError, match='fused must be'):
        use_fused_loss(x, x, fused='yes')
    with pytest.raises(ValueError, match='shapes differ'):
        fused_l1_ssim_cpu(x, x[:, :5])
    # [H, W, C] images work like [1, H, W, C]
    a = fused_l1_ssim_cpu(x[0], x[0] * 0.5)
    b = fused_l1_ssim_cpu(x, x * 0.5)
    assert float(a[0]) == float(b[0]) and float(a[1]) == float(b[1])
