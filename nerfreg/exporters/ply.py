"""The standard 3D Gaussian Splatting PLY file: write, read, load into a model.

Layout (one binary little-endian ``vertex`` element, float32 properties, in this order):
``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3`` with
``M = 3 * (K - 1)``, ``K = (sh_degree + 1)^2``. Values are pre-activation as the reference
viewers expect: log scales, logit opacity, raw wxyz quaternions, SH coefficients.
``f_rest`` is channel-major: the K-1 coefficients of red, then green, then blue, i.e.
``f_rest_{c*(K-1)+k} = shN[:, k, c]``. Normals are written as zeros.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..registry import EXPORTERS
from ..utils.fileio import atomic_output

PARAM_KEYS = ('means', 'scales', 'quats', 'opacities', 'sh0', 'shN')


def ply_property_names(sh_degree: int) -> list[str]:
    """Property names of the standard layout for ``sh_degree`` (0..3), in file order."""
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (['x', 'y', 'z', 'nx', 'ny', 'nz'] + [f'f_dc_{i}' for i in range(3)]
            + [f'f_rest_{i}' for i in range(rest)] + ['opacity']
            + [f'scale_{i}' for i in range(3)] + [f'rot_{i}' for i in range(4)])


def _sh_degree_from_rest(num_rest_coeffs: int) -> int:
    """SH degree from the number of higher-order coefficients per channel (K - 1)."""
    degree = round(math.sqrt(num_rest_coeffs + 1)) - 1
    if (degree + 1) ** 2 - 1 != num_rest_coeffs:
        raise ValueError(f'{num_rest_coeffs} higher-order SH coefficients per channel is not '
                         '(d+1)^2 - 1 for any degree d')
    return degree


def _params_of(source: Any) -> dict[str, Tensor]:
    """Parameter tensors from a model (``.params``), a state dict or a plain dict."""
    params = getattr(source, 'params', source)
    if isinstance(params, torch.nn.ParameterDict):
        params = dict(params.items())
    if not isinstance(params, Mapping):
        raise TypeError(f'cannot read Gaussian parameters from {type(source).__name__}')
    if 'means' not in params and 'params.means' in params:  # a model state dict
        params = {k[len('params.'):]: v for k, v in params.items() if k.startswith('params.')}
    missing = [k for k in PARAM_KEYS if k not in params]
    if missing:
        raise KeyError(f'Gaussian parameters lack {missing}; expected keys {list(PARAM_KEYS)}')
    return {k: params[k].detach().float().cpu() for k in PARAM_KEYS}


def params_to_ply_array(params: Mapping[str, Tensor] | Any) -> np.ndarray:
    """A structured little-endian float32 array in the standard 3DGS vertex layout."""
    p = _params_of(params)
    n = p['means'].shape[0]
    rest = p['shN'].reshape(n, -1, 3)
    degree = _sh_degree_from_rest(rest.shape[1])
    columns = [
        p['means'].reshape(n, 3), torch.zeros(n, 3), p['sh0'].reshape(n, 3),
        rest.transpose(1, 2).reshape(n, -1),  # channel-major: all R, then G, then B
        p['opacities'].reshape(n, 1), p['scales'].reshape(n, 3), p['quats'].reshape(n, 4),
    ]
    flat = torch.cat(columns, dim=1).numpy().astype('<f4')
    names = ply_property_names(degree)
    assert flat.shape[1] == len(names)
    dtype = np.dtype([(name, '<f4') for name in names])
    out = np.empty(n, dtype=dtype)
    out.view('<f4').reshape(n, len(names))[:] = flat
    return out


RASTERIZE_MODE_COMMENT = 'nerfreg rasterize_mode'


def write_ply(params: Mapping[str, Tensor] | Any, path: str | Path,
              rasterize_mode: str | None = None) -> Path:
    """Write Gaussians (a model, its state dict or a params dict) as a standard 3DGS PLY.

    ``rasterize_mode`` (the renderer's, e.g. 'antialiased') goes into a header comment
    ``nerfreg rasterize_mode <mode>`` (see :func:`read_ply_rasterize_mode`): viewers render
    classic, so an anti-aliased scene looks slightly different there.
    """
    from plyfile import PlyData, PlyElement

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vertices = params_to_ply_array(params)
    comments = [] if rasterize_mode is None else [f'{RASTERIZE_MODE_COMMENT} {rasterize_mode}']
    with atomic_output(path) as tmp:
        PlyData([PlyElement.describe(vertices, 'vertex')], text=False, byte_order='<',
                comments=comments).write(str(tmp))
    return path


def read_ply_rasterize_mode(path: str | Path) -> str | None:
    """The rasterize mode recorded by :func:`write_ply` in the header, else None."""
    prefix = f'comment {RASTERIZE_MODE_COMMENT} '.encode()
    with open(path, 'rb') as f:
        for _ in range(10_000):  # header lines; the binary body follows 'end_header'
            line = f.readline()
            if not line or line.strip() == b'end_header':
                return None
            if line.startswith(prefix):
                return line[len(prefix):].decode('ascii', 'replace').strip()
    return None


def read_ply(path: str | Path) -> dict[str, Tensor]:
    """Parameters (``means scales quats opacities sh0 shN``, float32 CPU) of a 3DGS PLY."""
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'PLY file {path} does not exist')
    ply = PlyData.read(str(path))
    if 'vertex' not in ply:
        raise ValueError(f'{path} has no vertex element')
    vertex = ply['vertex']
    names = [prop.name for prop in vertex.properties]
    required = ['x', 'y', 'z', 'f_dc_0', 'f_dc_1', 'f_dc_2', 'opacity', 'scale_0', 'scale_1',
                'scale_2', 'rot_0', 'rot_1', 'rot_2', 'rot_3']
    missing = [r for r in required if r not in names]
    if missing:
        raise ValueError(f'{path} is not a 3D Gaussian Splatting PLY: it lacks {missing} '
                         '(a plain point cloud? use it as a dataset point cloud instead)')
    n_rest = sum(1 for name in names if name.startswith('f_rest_'))
    if n_rest % 3:
        raise ValueError(f'{path}: {n_rest} f_rest properties is not a multiple of 3')
    degree = _sh_degree_from_rest(n_rest // 3)
    n = vertex.count

    def cols(keys: list[str]) -> Tensor:
        data = np.stack([np.asarray(vertex[k], dtype=np.float32) for k in keys], axis=1)
        return torch.from_numpy(data.reshape(n, len(keys)))

    k1 = (degree + 1) ** 2 - 1
    rest = cols([f'f_rest_{i}' for i in range(n_rest)]) if n_rest else torch.zeros(n, 0)
    return {
        'means': cols(['x', 'y', 'z']),
        'scales': cols(['scale_0', 'scale_1', 'scale_2']),
        'quats': cols(['rot_0', 'rot_1', 'rot_2', 'rot_3']),
        'opacities': cols(['opacity'])[:, 0].contiguous(),
        'sh0': cols(['f_dc_0', 'f_dc_1', 'f_dc_2'])[:, None, :].contiguous(),
        'shN': rest.reshape(n, 3, k1).transpose(1, 2).contiguous(),
    }


def load_ply_into_model(model: torch.nn.Module, path: str | Path) -> int:
    """Replace the Gaussians of ``model`` (``GaussianSplatting``) by those of a 3DGS PLY.

    Parameters are resized to the file's N and kept on the model's device. A file with a
    lower SH degree than the model is zero-padded (renders identically); a higher one is an
    error. Other state (buffers such as the SH schedule step) is left as is. Returns N.
    """
    params = read_ply(path)
    current = model.params
    k1_model = current['shN'].shape[1]
    k1_file = params['shN'].shape[1]
    if k1_file > k1_model:
        model_degree = _sh_degree_from_rest(k1_model)
        file_degree = _sh_degree_from_rest(k1_file)
        raise ValueError(f'{path} has SH degree {file_degree} but the model has {model_degree}; '
                         f'set model.sh_degree={file_degree} in the config')
    if k1_file < k1_model:
        pad = torch.zeros(params['shN'].shape[0], k1_model - k1_file, 3)
        params['shN'] = torch.cat([params['shN'], pad], dim=1)
    device = current['means'].device
    state = {f'params.{k}': v.to(device=device, dtype=current[k].dtype)
             for k, v in params.items()}
    model.load_state_dict(state, strict=False)
    return int(params['means'].shape[0])


@EXPORTERS.register_module()
class PlyExporter:
    """``PlyExporter()(model, path)``: the standard 3DGS PLY (see module docstring)."""

    suffix = '.ply'

    def __init__(self, rasterize_mode: str | None = None) -> None:
        self.rasterize_mode = rasterize_mode

    def __call__(self, model: Any, path: str | Path) -> Path:
        return write_ply(model, path, rasterize_mode=self.rasterize_mode)


__all__ = ['PARAM_KEYS', 'PlyExporter', 'load_ply_into_model', 'params_to_ply_array',
           'ply_property_names', 'read_ply', 'read_ply_rasterize_mode', 'write_ply']
