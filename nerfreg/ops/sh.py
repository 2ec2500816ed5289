"""Real spherical harmonics up to degree 3 (the basis used by 3DGS and gsplat).

Basis order is ``(l, m)`` with ``l = 0..3`` and ``m = -l..l``. Each function is
``sqrt(2) * Im(Y_l^|m|)`` for ``m < 0``, ``Y_l^0`` and ``sqrt(2) * Re(Y_l^m)`` for ``m > 0``,
where ``Y_l^m`` are the orthonormal complex harmonics *with* the Condon-Shortley phase
(so e.g. the degree-1 functions are ``-k*y, k*z, -k*x``). The normalisation constants
below are computed from ``sqrt((2l+1)/(4 pi) * (l-|m|)!/(l+|m|)!)`` rather than typed in;
``tests/test_ops_sh.py`` checks the polynomials against associated Legendre functions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_PI = math.pi
# degree 0
_K00 = 0.5 / math.sqrt(_PI)
SH_C0 = _K00  # public: RGB = SH_C0 * sh0 + 0.5 for degree 0 (PLY, .splat, initialisation)
# degree 1: sqrt(3 / 4pi)
_K1 = math.sqrt(3.0 / (4.0 * _PI))
# degree 2
_K2_XY = 0.5 * math.sqrt(15.0 / _PI)       # m = -2, -1, +1 (times xy, yz, xz)
_K2_0 = 0.25 * math.sqrt(5.0 / _PI)        # m = 0 (times 3z^2 - 1 = 2z^2 - x^2 - y^2)
_K2_2 = 0.25 * math.sqrt(15.0 / _PI)       # m = +2 (times x^2 - y^2)
# degree 3
_K3_3 = 0.25 * math.sqrt(35.0 / (2.0 * _PI))   # m = +-3
_K3_2a = 0.5 * math.sqrt(105.0 / _PI)          # m = -2 (times xyz)
_K3_1 = 0.25 * math.sqrt(21.0 / (2.0 * _PI))   # m = +-1
_K3_0 = 0.25 * math.sqrt(7.0 / _PI)            # m = 0
_K3_2b = 0.25 * math.sqrt(105.0 / _PI)         # m = +2 (times (x^2 - y^2) z)


def num_sh_bases(degree: int) -> int:
    """Number of basis functions up to ``degree`` (inclusive): ``(degree + 1) ** 2``."""
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Evaluate the real SH basis at unit directions ``dirs [..., 3]`` -> ``[..., (d+1)^2]``."""
    if not 0 <= degree <= 3:
        raise ValueError(f'sh_degree must be in 0..3, got {degree}')
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, _K00)]
    if degree >= 1:
        out += [-_K1 * y, _K1 * z, -_K1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _K2_XY * x * y,
            -_K2_XY * y * z,
            _K2_0 * (2.0 * zz - xx - yy),
            -_K2_XY * x * z,
            _K2_2 * (xx - yy),
        ]
    if degree >= 3:
        out += [
            -_K3_3 * y * (3.0 * xx - yy),
            _K3_2a * x * y * z,
            -_K3_1 * y * (4.0 * zz - xx - yy),
            _K3_0 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            -_K3_1 * x * (4.0 * zz - xx - yy),
            _K3_2b * z * (xx - yy),
            -_K3_3 * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Raw SH colour ``sum_k basis_k(dir) * coeffs[..., k, :]`` (no +0.5 offset, no clamp).

    Args:
        degree: SH degree to use (0..3); only the first ``(degree+1)^2`` coefficients are read.
        dirs: ``[..., 3]`` view directions (normalised here; need not be unit length).
        coeffs: ``[..., K, D]`` coefficients with ``K >= (degree+1)^2``, broadcastable with dirs.
    Returns:
        ``[..., D]``.
    """
    n_bases = num_sh_bases(degree)
    if coeffs.shape[-2] < n_bases:
        raise ValueError(f'sh_degree={degree} needs {n_bases} SH coefficients per Gaussian, '
                         f'got {coeffs.shape[-2]}')
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    basis = sh_basis(degree, dirs)  # [..., B]
    return (basis.unsqueeze(-1) * coeffs[..., :n_bases, :]).sum(dim=-2)
