"""Real spherical harmonics: basis against associated Legendre functions, orthonormality,
degree truncation and the view direction used by rasterization()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import lpmv

from nerfreg.ops import rasterization, spherical_harmonics
from nerfreg.ops.sh import num_sh_bases, sh_basis


def legendre_real_sh(degree: int, dirs: np.ndarray) -> np.ndarray:
    """Real SH from P_l^m (SciPy's lpmv includes the Condon-Shortley phase):
    N_lm P_l^|m|(cos t) * sqrt2 * {sin(|m| phi), 1/sqrt2, cos(m phi)} for m {<0, =0, >0}."""
    dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    cos_t = dirs[:, 2]
    phi = np.arctan2(dirs[:, 1], dirs[:, 0])
    cols = []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            am = abs(m)
            norm = math.sqrt((2 * ell + 1) / (4 * math.pi)
                             * math.factorial(ell - am) / math.factorial(ell + am))
            p = lpmv(am, ell, cos_t)
            if m < 0:
                cols.append(math.sqrt(2) * norm * p * np.sin(am * phi))
            elif m == 0:
                cols.append(norm * p)
            else:
                cols.append(math.sqrt(2) * norm * p * np.cos(m * phi))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize('degree', [0, 1, 2, 3])
def test_basis_matches_associated_legendre(degree):
    rng = np.random.default_rng(degree)
    dirs = rng.normal(size=(200, 3))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    ours = sh_basis(degree, torch.tensor(dirs)).numpy()
    assert ours.shape == (200, num_sh_bases(degree))
    np.testing.assert_allclose(ours, legendre_real_sh(degree, dirs), atol=1e-12)


def test_known_values():
    # degree 0 constant 1/(2 sqrt(pi)); degree 1 along +x is -sqrt(3/(4pi)) (CS phase)
    b = sh_basis(1, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))[0]
    k1 = math.sqrt(3 / (4 * math.pi))
    torch.testing.assert_close(b, torch.tensor([0.5 / math.sqrt(math.pi), 0.0, 0.0, -k1],
                                               dtype=torch.float64))


def test_basis_is_orthonormal_on_the_sphere():
    """Gauss-Legendre in cos(theta) x uniform phi integrates these polynomials exactly."""
    z, wz = np.polynomial.legendre.leggauss(8)
    phi = np.arange(16) * 2 * math.pi / 16
    zz, pp = np.meshgrid(z, phi, indexing='ij')
    rho = np.sqrt(1 - zz ** 2)
    dirs = np.stack([rho * np.cos(pp), rho * np.sin(pp), zz], -1).reshape(-1, 3)
    weights = (wz[:, None] * np.full(16, 2 * math.pi / 16)[None, :]).reshape(-1)
    basis = sh_basis(3, torch.tensor(dirs)).numpy()  # [P, 16]
    gram = basis.T @ (basis * weights[:, None])
    np.testing.assert_allclose(gram, np.eye(16), atol=1e-12)


def test_lower_degree_ignores_higher_coefficients_and_normalises_dirs():
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    coeffs = torch.randn(10, 16, 3, generator=gen, dtype=torch.float64)
    garbage = coeffs.clone()
    garbage[:, 4:] = 1e6
    out = spherical_harmonics(1, dirs, coeffs)
    torch.testing.assert_close(out, spherical_harmonics(1, 7.0 * dirs, garbage))
    unit = dirs / dirs.norm(dim=-1, keepdim=True)
    expected = torch.einsum('nk,nkc->nc', sh_basis(1, unit), coeffs[:, :4])
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match='needs 16'):
        spherical_harmonics(3, dirs, coeffs[:, :9])


def test_rasterization_sh_colour_uses_camera_centre_and_offset():
    """meta['colors'] = max(SH(mean - camera centre) + 0.5, 0) for a translated camera."""
    means = torch.tensor([[0.3, -0.2, 4.0], [-0.5, 0.4, 3.0]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    sh = torch.randn(2, 16, 3, generator=gen, dtype=torch.float64)
    sh[1, 0] = -5.0  # a colour that clamps to 0
    vm = torch.eye(4, dtype=torch.float64)[None]
    # rotate 90 deg about y and translate: camera centre = -R^T t
    vm[0, :3, :3] = torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=torch.float64)
    vm[0, :3, 3] = torch.tensor([0.5, 0.1, 6.0], dtype=torch.float64)
    centre = -vm[0, :3, :3].T @ vm[0, :3, 3]
    K = torch.tensor([[[50.0, 0, 32], [0, 50, 32], [0, 0, 1]]], dtype=torch.float64)
    _, _, meta = rasterization(means, torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=torch.float64),
                               torch.full((2, 3), 0.1, dtype=torch.float64),
                               torch.ones(2, dtype=torch.float64), sh, vm, K, 64, 64,
                               sh_degree=2, backend='torch')
    dirs = (means - centre).numpy()
    basis = legendre_real_sh(2, dirs)  # [2, 9]
    expected = np.maximum(np.einsum('nk,nkc->nc', basis, sh[:, :9].numpy()) + 0.5, 0.0)
    np.testing.assert_allclose(meta['colors'][0].numpy(), expected, atol=1e-12)
    assert torch.all(meta['colors'][0, 1] == 0)
