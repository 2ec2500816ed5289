"""Top-level config sections a model asks for (``TakesConfigSections``).

A model that declares ``config_sections`` receives those sections of the config when it is
built (``hand_config_sections``), before its optimizer, so the components it builds from
them join the optimizer with their own param groups; the lr schedules they ask for
(``section_schedulers``) are built beside the config's ``param_scheduler`` list. The trainer
knows no section by name.
"""

from __future__ import annotations

from typing import Any

from .interfaces import TakesConfigSections


def hand_config_sections(model: Any, cfg: Any, scene: Any = None) -> None:
    """Give ``model`` the config sections it declares (missing ones as ``None``)."""
    if isinstance(model, TakesConfigSections):
        sections = {name: cfg.get(name) for name in model.config_sections}
        model.take_config_sections(sections, scene)


def section_schedulers(model: Any) -> list[dict]:
    """Scheduler configs the model's sections ask for (their lengths are section settings,
    never ``train_cfg.max_steps``, which may change on resume)."""
    if not isinstance(model, TakesConfigSections):
        return []
    return list(model.section_schedulers())


def as_list(cfgs: Any) -> list:
    """A config entry that is one dict, a list of dicts or None, as a list."""
    return [cfgs] if isinstance(cfgs, dict) else list(cfgs or [])
