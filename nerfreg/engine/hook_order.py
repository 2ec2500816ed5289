"""Building the trainer's hook list: default hooks by key, custom hooks, priority order."""

from __future__ import annotations

import copy

from mmengine.hooks import Hook
from mmengine.runner.priority import get_priority

from ..registry import HOOKS

DEFAULT_HOOKS = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook'),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook'),
    sync_check=dict(type='SyncCheckHook'),  # no-op unless distributed
)


def insert_hook(hooks: list[Hook], hook: Hook | dict,
                priority: int | str | None = None) -> Hook:
    """Build ``hook`` if it is a config and insert it into ``hooks`` keeping the list sorted
    by priority (ties in registration order, as mmengine's Runner)."""
    if isinstance(hook, dict):
        hook = copy.deepcopy(dict(hook))
        priority = hook.pop('priority', priority)
        hook = HOOKS.build(hook)
    if priority is not None:
        hook.priority = priority
    value = get_priority(hook.priority)
    index = len(hooks)
    while index > 0 and get_priority(hooks[index - 1].priority) > value:
        index -= 1
    hooks.insert(index, hook)
    return hook


def merged_hook_cfgs(default_hooks: dict | None, custom_hooks: list | None) -> list:
    """The default hooks overridden by key (a ``None`` value disables one; a dict without
    ``type`` updates the default's arguments), then the custom hooks."""
    merged = copy.deepcopy(DEFAULT_HOOKS)
    for key, hook in dict(default_hooks or {}).items():
        if isinstance(hook, dict) and 'type' not in hook and key in DEFAULT_HOOKS:
            hook = {**DEFAULT_HOOKS[key], **hook}  # partial override of a default
        merged[key] = hook
    return [h for h in merged.values() if h is not None] + list(custom_hooks or [])
