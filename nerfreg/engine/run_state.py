"""A run's resumable state: what a checkpoint holds, loading it back, resume or load_from.

A checkpoint holds the model (with its current size), optimizer and strategy state,
schedulers, renderer, data order and position, every RNG state, the step and the config,
so that a resumed run continues exactly. The functions take the trainer (duck-typed: its
``model``, ``optimizer``, ``renderer``, ``data``, ``param_schedulers``, ``cfg`` ...).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..utils import get_rng_state, set_rng_state
from ..version import __version__
from .checkpoint import load_checkpoint
from .config_checks import config_changes
from .interfaces import Stateful


def run_state_dict(trainer: Any) -> dict:
    """Everything needed to continue ``trainer``'s run exactly."""
    return {
        'global_step': trainer.global_step,
        'model': trainer.model.state_dict(),
        'optimizer': trainer.optimizer.state_dict(),
        'renderer': trainer.renderer.state_dict() if isinstance(trainer.renderer, Stateful)
        else {},
        'param_schedulers': [s.state_dict() for s in trainer.param_schedulers],
        'data': trainer.data.state_dict() if isinstance(trainer.data, Stateful) else {},
        'rng': get_rng_state(),
        'meta': {'nerfreg_version': __version__, 'config': trainer.cfg.pretty_text,
                 'seed': trainer.seed, 'time': time.strftime('%Y-%m-%d %H:%M:%S'),
                 'experiment_name': trainer.experiment_name},
    }


def load_run_state(trainer: Any, path: str | Path, resume: bool = True,
                   weights_only: bool | None = None) -> dict:
    """Load a checkpoint into ``trainer``; ``resume`` also restores the optimizer,
    schedulers, data order and RNG (else only model and renderer weights)."""
    if weights_only is None:
        weights_only = not bool(trainer.cfg.get('unsafe_load', False))
    checkpoint = load_checkpoint(path, map_location='cpu', weights_only=weights_only)
    if resume:
        report_config_changes(trainer, checkpoint)
    trainer.model.load_state_dict(checkpoint['model'])
    trainer.model.to(trainer.device)
    if isinstance(trainer.renderer, Stateful) and checkpoint.get('renderer'):
        trainer.renderer.load_state_dict(checkpoint['renderer'])
    trainer.global_step = int(checkpoint.get('global_step', 0))
    if resume:
        trainer.optimizer.load_state_dict(checkpoint['optimizer'])
        for sched, state in zip(trainer.param_schedulers, checkpoint.get('param_schedulers', [])):
            sched.load_state_dict(state)
        if checkpoint.get('data') and isinstance(trainer.data, Stateful):
            trainer.data.load_state_dict(checkpoint['data'])
        if 'rng' in checkpoint:
            set_rng_state(checkpoint['rng'])
    trainer.iter = trainer.global_step
    trainer.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    trainer.logger.info(f'Loaded checkpoint {path} (step {trainer.global_step}, '
                        f'{"resumed" if resume else "weights only"}).')
    return checkpoint


def report_config_changes(trainer: Any, checkpoint: dict) -> None:
    """Log which config keys differ from the checkpoint's; refuse if ``resume_strict``."""
    lines = config_changes(checkpoint.get('meta', {}).get('config'), trainer.cfg)
    if not lines:
        return
    message = 'The config differs from the checkpoint\'s:\n' + '\n'.join(lines)
    if trainer.cfg.get('resume_strict', False):
        raise ValueError(message + '\nRefusing to resume (--resume-strict). Drop the '
                         'flag to continue with the new values.')
    trainer.logger.warning(message + '\nContinuing with the new values.')


def latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The checkpoint named in ``work_dir/last_checkpoint``, if it exists."""
    marker = Path(work_dir) / 'last_checkpoint'
    if not marker.is_file():
        return None
    path = Path(marker.read_text().strip())
    return path if path.is_file() else None


def resume_or_load(trainer: Any) -> None:
    """Apply the config's ``resume`` (exact continuation) or ``load_from`` (weights or a
    PLY; the step restarts at 0)."""
    resume = trainer.cfg.get('resume', False)
    load_from = trainer.cfg.get('load_from')
    if resume:
        path = load_from if isinstance(resume, bool) and load_from else None
        path = resume if isinstance(resume, (str, Path)) else path
        path = path or latest_checkpoint(trainer.work_dir)
        if path is None:
            trainer.logger.warning(f'resume=True but {trainer.work_dir} has no checkpoint; '
                                   'starting from scratch.')
            return
        load_run_state(trainer, path, resume=True)
    elif load_from:
        if str(load_from).lower().endswith('.ply'):
            from ..exporters import load_ply_into_model
            n = load_ply_into_model(trainer.model, load_from)
            trainer.model.to(trainer.device)
            trainer.logger.info(f'Initialised {n:,} Gaussians from {load_from}.')
        else:
            load_run_state(trainer, load_from, resume=False)
        trainer.global_step = 0
        trainer.iter = 0
