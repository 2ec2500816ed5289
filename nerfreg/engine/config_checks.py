"""Config checks: misspelt top-level keys, malformed ``train_cfg``, and config drift on resume.

``train_cfg`` holds two kinds of keys: the train step's own (``nan_guard``, ``view_batching``),
read by the trainer, and the train loop's (``type`` plus the loop's constructor arguments;
``max_steps`` and ``val_interval`` for the default ``IterBasedTrainLoop``).
"""

from __future__ import annotations

import difflib
from typing import Any

from mmengine.config import Config

# Top-level config keys nerfreg reads; others are the user's own helper variables.
KNOWN_KEYS = {
    'data', 'model', 'renderer', 'optimizer', 'param_scheduler', 'train_cfg', 'val_cfg',
    'test_cfg', 'default_hooks', 'custom_hooks', 'visualizer', 'work_dir', 'device', 'seed',
    'deterministic', 'custom_imports', 'resume', 'load_from', 'launcher', 'log_level',
    'default_scope', 'unsafe_load', 'resume_strict'}
STEP_KEYS = {'nan_guard': dict, 'view_batching': str}  # train step settings (the trainer's)
DEFAULT_LOOP_KEYS = {'max_steps': int, 'val_interval': int}  # IterBasedTrainLoop's
VIEW_BATCHING = ('sequential', 'joint')
# keys that may differ between a run and its resumption without changing the result
RESUME_VOLATILE = ('work_dir', 'resume', 'load_from', 'launcher', 'train_cfg.max_steps',
                   'resume_strict', 'log_level', 'device')


def check_config(cfg: Config) -> list[str]:
    """Reject malformed ``train_cfg``; return warnings for likely-misspelt top-level keys.

    With a custom train loop (``train_cfg.type``), the loop's own keys are checked by its
    constructor when the ``LOOPS`` registry builds it.
    """
    warnings = []
    for key in cfg.keys():
        if key not in KNOWN_KEYS and not key.startswith('_'):
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.8)
            if close:
                warnings.append(f'config key {key!r} is not used by nerfreg; did you mean '
                                f'{close[0]!r}?')
    train_cfg = dict(cfg.get('train_cfg') or {})
    loop_type = train_cfg.pop('type', None)
    known = dict(STEP_KEYS)
    if loop_type in (None, 'IterBasedTrainLoop'):
        known.update(DEFAULT_LOOP_KEYS)
    for key, value in train_cfg.items():
        if key not in known:
            if loop_type not in (None, 'IterBasedTrainLoop'):
                continue  # the custom loop's constructor judges its keys
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f' Did you mean {close[0]!r}?' if close else ''
            raise ValueError(f'train_cfg.{key} is not a known key.{hint} Known: '
                             f'{sorted(known)}.')
        expected = known[key]
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is int:
            ok = ok and value >= 0
        if key == 'view_batching':
            ok = value in VIEW_BATCHING
        if not ok and value is not None:
            kind = {int: 'an integer >= 0', dict: 'a dict'}.get(expected, f'one of {VIEW_BATCHING}')
            raise ValueError(f'train_cfg.{key}={value!r} must be {kind}.')
    return warnings


def flatten_config(tree: Any, prefix: str = '') -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists are leaves)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten_config(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: tree}


def config_changes(old_text: str | None, cfg: Config) -> list[str]:
    """``'  key: old -> new'`` lines for the keys where ``cfg`` differs from a checkpoint's
    stored config text (volatile keys such as ``work_dir`` are ignored)."""
    if not old_text:
        return []
    try:
        old = flatten_config(Config.fromstring(old_text, '.py').to_dict())
    except Exception:  # an unparsable stored config must not block a resume
        return []
    new = flatten_config(cfg.to_dict())
    changed = sorted(k for k in set(old) | set(new)
                     if old.get(k, '<unset>') != new.get(k, '<unset>')
                     and not k.startswith(RESUME_VOLATILE))
    return [f'  {k}: {old.get(k, "<unset>")!r} -> {new.get(k, "<unset>")!r}' for k in changed]
