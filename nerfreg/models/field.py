"""Hash-grid radiance field (instant-ngp style): position -> density, (position, direction)
-> colour. Points arrive in the grid's normalised coordinates ``u`` in [0,1]^3 (see
``nerfreg.ops.ray_march``), directions as unit vectors in world space."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nerfreg.ops.hash_encoding import hash_encode, level_resolutions
from nerfreg.ops.sh import num_sh_bases, sh_basis


def _mlp(n_in: int, hidden: int, n_hidden_layers: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class HashGridField(nn.Module):
    """Multiresolution hash encoding + density MLP + SH-encoded direction + colour MLP.

    Args:
        n_levels, n_features: levels of the hash grid and features per level.
        log2_table_size: ``T = 2**log2_table_size`` rows per level.
        base_resolution, finest_resolution: coarsest and finest grid resolution over the
            normalised cube.
        hidden: width of the MLPs; ``geo_features``: density-MLP features passed to the
            colour MLP besides the density; ``color_layers``: hidden layers of the colour MLP.
        sh_degree: degree of the spherical-harmonics direction encoding (0..3).
        density_bias: added to the raw density before ``exp`` (negative: start nearly empty).
        backend: hash encoding backend, 'auto' | 'cpu' (Numba) | 'torch'.
    """

    def __init__(self, n_levels: int = 16, n_features: int = 2, log2_table_size: int = 19,
                 base_resolution: int = 16, finest_resolution: int = 2048, hidden: int = 64,
                 geo_features: int = 15, color_layers: int = 2, sh_degree: int = 3,
                 density_bias: float = -1.0, backend: str = 'auto') -> None:
        super().__init__()
        if not 0 <= sh_degree <= 3:
            raise ValueError(f'field.sh_degree must be in 0..3, got {sh_degree}')
        self.resolutions = level_resolutions(n_levels, base_resolution, finest_resolution)
        self.sh_degree = int(sh_degree)
        self.density_bias = float(density_bias)
        self.backend = backend
        size = 2 ** int(log2_table_size)
        self.tables = nn.Parameter(torch.empty(n_levels, size, n_features).uniform_(-1e-4, 1e-4))
        self.density_mlp = _mlp(n_levels * n_features, hidden, 1, 1 + geo_features)
        self.color_mlp = _mlp(num_sh_bases(sh_degree) + geo_features, hidden, color_layers, 3)

    def encode(self, u: Tensor) -> Tensor:
        return hash_encode(u, self.tables, self.resolutions, self.backend)

    def density(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(sigma [N], geo [N, G])`` at normalised points ``u [N,3]``."""
        h = self.density_mlp(self.encode(u))
        raw = h[:, 0] + self.density_bias
        # exp with a bounded argument: no overflow, no exploding gradients
        return torch.exp(raw.clamp(-15.0, 15.0)), h[:, 1:]

    def forward(self, u: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """``(sigma [N], rgb [N,3])`` at normalised points ``u`` seen along ``dirs``."""
        sigma, geo = self.density(u)
        basis = sh_basis(self.sh_degree, dirs)
        rgb = torch.sigmoid(self.color_mlp(torch.cat([basis.to(geo.dtype), geo], dim=1)))
        return sigma, rgb
