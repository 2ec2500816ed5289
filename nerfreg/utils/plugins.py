"""Third-party components: ``nerfreg.plugins`` entry points and ``custom_imports``."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from mmengine.logging import print_log

ENTRY_POINT_GROUP = 'nerfreg.plugins'
_loaded: set[str] = set()


def import_plugins(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Import every installed distribution's entry point in ``group`` (once per process).

    Each entry point names a module (``my_pkg.nerfreg_plugin``) or an object in it; loading
    it runs the module's ``@REGISTRY.register_module()`` decorators. Returns the names loaded.
    """
    loaded = []
    for ep in entry_points(group=group):
        key = f'{ep.name}={ep.value}'
        if key in _loaded:
            continue
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise ImportError(
                f"nerfreg plugin entry point '{ep.name} = {ep.value}' (group {group!r}) failed "
                f'to import: {exc}. Fix or uninstall the distribution that provides it.') from exc
        _loaded.add(key)
        loaded.append(ep.name)
    if loaded:
        print_log(f'Loaded nerfreg plugins: {", ".join(loaded)}', logger='current')
    return loaded


def import_custom_modules(custom_imports: dict | None) -> None:
    """Import ``custom_imports=dict(imports=[...], allow_failed_imports=False)`` of a config."""
    if not custom_imports:
        return
    imports = custom_imports.get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    allow_failed = custom_imports.get('allow_failed_imports', False)
    for name in imports:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if not allow_failed:
                raise ImportError(
                    f'custom_imports: failed to import {name!r}: {exc}. Check that the module '
                    'is on PYTHONPATH or installed.') from exc
            print_log(f'custom_imports: skipped {name!r} ({exc})', logger='current',
                      level=30)
