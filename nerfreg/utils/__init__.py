"""Small infrastructure helpers: devices, random state, plugins."""

from .device import resolve_device
from .plugins import import_plugins
from .random import get_rng_state, seed_everything, set_rng_state

__all__ = ['resolve_device', 'import_plugins', 'get_rng_state', 'seed_everything',
           'set_rng_state']
