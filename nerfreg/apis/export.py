"""Export a loaded model in any format of the ``EXPORTERS`` registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.exporting import export_formats, export_model


def export(loaded: Any, out: str | Path, fmt: str | None = None, **exporter_cfg: Any) -> Path:
    """Write the model of ``loaded`` (a ``LoadedModel`` or a bare model) to ``out``.

    ``fmt`` is a format name (``'ply'``, ``'splat'`` or a plugin's; see
    :func:`export_formats`); by default it follows the suffix of ``out`` (else ``ply``). A
    model the exporter does not accept (e.g. a field without a PLY form) raises a
    ``TypeError`` naming the formats that would take it.
    """
    return export_model(getattr(loaded, 'model', loaded), out, fmt,
                        renderer=getattr(loaded, 'renderer', None), **exporter_cfg)


__all__ = ['export', 'export_formats']
