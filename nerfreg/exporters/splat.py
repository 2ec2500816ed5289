"""The ``.splat`` layout of the antimatter15 WebGL viewer (32 bytes per Gaussian).

Per Gaussian, little-endian: position ``3 x float32``, activated scale ``3 x float32``,
colour ``4 x uint8`` (RGB from the degree-0 SH, alpha = sigmoid(opacity), both x255),
rotation ``4 x uint8`` (normalised wxyz quaternion mapped from [-1, 1] to [0, 255]).
Gaussians are sorted by decreasing ``volume * opacity`` so that viewers can stream the
most visible ones first. View-dependent colour (higher SH degrees) is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..ops.sh import SH_C0
from ..registry import EXPORTERS
from ..utils.fileio import atomic_write_bytes
from .ply import _params_of

SPLAT_DTYPE = np.dtype([('position', '<f4', 3), ('scale', '<f4', 3), ('rgba', 'u1', 4),
                        ('rot', 'u1', 4)])


def params_to_splat_array(params: Mapping[str, Tensor] | Any) -> np.ndarray:
    """Structured array (``SPLAT_DTYPE``) of the Gaussians, most visible first."""
    p = _params_of(params)
    n = p['means'].shape[0]
    scales = torch.exp(p['scales'])
    opacity = torch.sigmoid(p['opacities'].reshape(n))
    volume = torch.exp(p['scales'].sum(1))
    order = torch.argsort(-volume * opacity, stable=True)
    rgb = (0.5 + SH_C0 * p['sh0'].reshape(n, 3)).clamp(0, 1)
    rgba = torch.cat([rgb, opacity[:, None]], dim=1)
    quats = torch.nn.functional.normalize(p['quats'], dim=1)
    out = np.empty(n, dtype=SPLAT_DTYPE)
    out['position'] = p['means'][order].numpy()
    out['scale'] = scales[order].numpy()
    out['rgba'] = (rgba[order] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    out['rot'] = (quats[order] * 128 + 128).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def write_splat(params: Mapping[str, Tensor] | Any, path: str | Path) -> Path:
    """Write Gaussians (model, state dict or params dict) as an antimatter15 ``.splat``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, params_to_splat_array(params).tobytes())
    return path


def read_splat(path: str | Path) -> np.ndarray:
    """The structured array (``SPLAT_DTYPE``) stored in a ``.splat`` file."""
    data = Path(path).read_bytes()
    if len(data) % SPLAT_DTYPE.itemsize:
        raise ValueError(f'{path}: size {len(data)} is not a multiple of '
                         f'{SPLAT_DTYPE.itemsize} bytes')
    return np.frombuffer(data, dtype=SPLAT_DTYPE)


@EXPORTERS.register_module()
class SplatExporter:
    """``SplatExporter()(model, path)``: the antimatter15 ``.splat`` layout."""

    suffix = '.splat'

    def __call__(self, model: Any, path: str | Path) -> Path:
        return write_splat(model, path)


__all__ = ['SH_C0', 'SPLAT_DTYPE', 'SplatExporter', 'params_to_splat_array', 'read_splat',
           'write_splat']
