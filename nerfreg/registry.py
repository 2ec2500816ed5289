"""String-keyed registries of nerfreg, children of mmengine's root registries.

Every registry has scope ``nerfreg`` and lazy ``locations``: building ``type='X'``
imports the modules that register components of that kind, so users never import
them by hand. Unknown names fail with the registry name and the closest matches.
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import Registry as _MMRegistry


class UnknownTypeError(KeyError):
    """A config asked for a ``type`` that no registry in the chain knows."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class Registry(_MMRegistry):
    """mmengine ``Registry`` whose ``build`` reports unknown types helpfully."""

    def known_names(self) -> list[str]:
        """Names resolvable from this registry (own, then ancestors')."""
        self.import_from_location()
        names, reg = [], self
        while reg is not None:
            names.extend(n for n in reg.module_dict if n not in names)
            reg = reg.parent
        return names

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        obj_type = cfg.get('type') if isinstance(cfg, dict) else None
        if isinstance(obj_type, str) and self.get(obj_type) is None:
            known = self.known_names()
            close = difflib.get_close_matches(obj_type, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
            own = sorted(self.module_dict)
            raise UnknownTypeError(
                f"type={obj_type!r} is not registered in the '{self.scope}::{self.name}' "
                f'registry.{hint} Registered here: {own}. Fix the `type` in your config, or '
                'import the module that registers it via `custom_imports` or a '
                '`nerfreg.plugins` entry point.')
        try:
            return super().build(cfg, *args, **kwargs)
        except TypeError as exc:
            match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            obj_cls = self.get(obj_type) if isinstance(obj_type, str) else None
            if match is None or obj_cls is None:
                raise
            raise TypeError(self._bad_key_message(obj_cls, obj_type, match.group(1))) from exc

    @staticmethod
    def _bad_key_message(obj_cls: type, obj_type: str, key: str) -> str:
        try:
            params = [n for n in inspect.signature(obj_cls).parameters if n not in
                      ('self', 'args', 'kwargs')]
        except (TypeError, ValueError):
            params = []
        close = difflib.get_close_matches(key, params, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
        return (f'{obj_type} does not take the config key {key!r}.{hint} Its keys are: '
                f'{params}. Fix or remove {key!r} in the config.')


DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='nerfreg',
                    locations=['nerfreg.datasets'])
RENDERERS = Registry('renderer', scope='nerfreg', locations=['nerfreg.renderers'])
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='nerfreg',
                  locations=['nerfreg.models'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope='nerfreg',
                      locations=['nerfreg.optim'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            scope='nerfreg', locations=['nerfreg.optim'])
STRATEGIES = Registry('densification strategy', scope='nerfreg',
                      locations=['nerfreg.strategies'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='nerfreg',
                 locations=['nerfreg.engine.hooks', 'nerfreg.viewer.hook'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='nerfreg',
                   locations=['nerfreg.metrics'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='nerfreg',
                       locations=['nerfreg.visualization'])
EXPORTERS = Registry('exporter', scope='nerfreg', locations=['nerfreg.exporters'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='nerfreg',
                 locations=['nerfreg.engine.loops'])

__all__ = [
    'DATASETS', 'RENDERERS', 'MODELS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'STRATEGIES',
    'HOOKS', 'METRICS', 'VISBACKENDS', 'EXPORTERS', 'LOOPS', 'Registry', 'UnknownTypeError',
]
