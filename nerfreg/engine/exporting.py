"""Exporting a model through the ``EXPORTERS`` registry (a plugin adds a format).

An exporter is a class ``Exporter(**cfg)`` called as ``exporter(model, path) -> Path``. Its
format name is the registered name without ``Exporter``, lower case (``PlyExporter`` ->
``ply``); its class attribute ``suffix`` (``'.ply'``) picks it from the output file name.
It declares the models it takes with ``accepts(model) -> bool``; an exporter without
``accepts`` is taken to export Gaussians and accepts models with Gaussian ``params``. A
model no exporter takes may say why in a class attribute ``export_hint`` (the error quotes
it).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..registry import EXPORTERS


@runtime_checkable
class SelectiveExporter(Protocol):
    """An exporter that says which models it can write."""

    def accepts(self, model: Any) -> bool: ...


def _has_gaussians(model: Any) -> bool:
    params = getattr(model, 'params', None)
    return params is not None and hasattr(params, 'keys') and 'means' in params.keys()


def export_formats() -> dict[str, type]:
    """``{format name: exporter class}`` of every registered exporter."""
    formats = {}
    for name in EXPORTERS.known_names():
        cls = EXPORTERS.get(name)
        key = name.lower()
        formats[key[:-len('exporter')] if key.endswith('exporter') and key != 'exporter'
                else key] = cls
    return formats


def _pick(fmt: str | None, out: Path) -> tuple[str, type]:
    formats = export_formats()
    if fmt is None:
        by_suffix = {getattr(cls, 'suffix', None): name for name, cls in formats.items()}
        fmt = by_suffix.get(out.suffix.lower(), 'ply')
    if fmt.lower() not in formats:
        raise ValueError(f'export format {fmt!r} is unknown; registered formats: '
                         f'{sorted(formats)}. Register an exporter in EXPORTERS (see '
                         'nerfreg/apis/export.py) or pick one of these.')
    return fmt.lower(), formats[fmt.lower()]


def export_model(model: Any, out: str | Path, fmt: str | None = None,
                 renderer: Any = None, **exporter_cfg: Any) -> Path:
    """Write ``model`` to ``out`` with a registered exporter.

    ``fmt`` is a format name (``'ply'``, ``'splat'``, or a plugin's); by default it follows
    the suffix of ``out`` (else ``ply``). A model the exporter does not accept raises a
    ``TypeError`` that says which formats would take it. ``renderer``: the one the model was
    trained with; an exporter taking ``rasterize_mode`` records its mode (viewers of the
    file render classic, so they need to know).
    """
    out = Path(out)
    fmt, cls = _pick(fmt, out)
    mode = getattr(renderer, 'rasterize_mode', None)
    if mode is not None and 'rasterize_mode' in inspect.signature(cls).parameters:
        exporter_cfg.setdefault('rasterize_mode', mode)
    exporter = EXPORTERS.build(dict(type=cls.__name__, **exporter_cfg))
    if not accepts(exporter, model):
        others = [name for name, c in export_formats().items()
                  if name != fmt and accepts(EXPORTERS.build(dict(type=c.__name__)), model)]
        hint = (f' Formats that take it: {others}.' if others else
                ' No registered exporter takes it; register one in EXPORTERS with '
                '`accepts(model)`.')
        why = getattr(model, 'export_hint', None) or 'it has no PLY/Gaussian form.'
        raise TypeError(f'the {fmt!r} exporter ({cls.__name__}) cannot export a '
                        f'{type(model).__name__}: {why}{hint}')
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(exporter(model, out))


def accepts(exporter: Any, model: Any) -> bool:
    """Whether ``exporter`` can write ``model`` (see the module docstring)."""
    if isinstance(exporter, SelectiveExporter):
        return bool(exporter.accepts(model))
    return _has_gaussians(model)


__all__ = ['SelectiveExporter', 'accepts', 'export_formats', 'export_model']
