"""Library API for notebooks and scripts; the command-line tools are thin wrappers over it.

- :func:`init_model`: a model and renderer from a config and a checkpoint or PLY,
- :func:`render_views`: images of any cameras, :func:`render_path`: a fly-through video,
- :func:`evaluate`: metrics (and optionally test outputs) on a split,
- :func:`export`: a file in any format of the ``EXPORTERS`` registry.
"""

from .export import export, export_formats
from .inference import LoadedModel, build_scene, evaluate, init_model, render_views
from .video import render_path

__all__ = ['LoadedModel', 'build_scene', 'evaluate', 'export', 'export_formats', 'init_model',
           'render_path', 'render_views']
