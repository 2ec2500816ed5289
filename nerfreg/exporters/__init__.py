"""Exporters of trained scenes (registered in ``nerfreg.registry.EXPORTERS``).

- ``ply``: the standard 3D Gaussian Splatting PLY (``write_ply``, ``read_ply``,
  ``load_ply_into_model``), read by the reference viewers and most web viewers.
- ``splat``: the compact antimatter15 ``.splat`` layout (``write_splat``).
"""

from .ply import (
    PlyExporter,
    load_ply_into_model,
    params_to_ply_array,
    ply_property_names,
    read_ply,
    read_ply_rasterize_mode,
    write_ply,
)
from .splat import SplatExporter, read_splat, write_splat

EXPORT_FORMATS = {'ply': write_ply, 'splat': write_splat}

__all__ = ['EXPORT_FORMATS', 'PlyExporter', 'SplatExporter', 'load_ply_into_model',
           'params_to_ply_array', 'ply_property_names', 'read_ply', 'read_ply_rasterize_mode',
           'read_splat',
           'write_ply', 'write_splat']
