"""``DefaultTrainer``: builds every component from a config and runs train/val/test.

It plays the role of mmengine's ``Runner`` for renderers: hooks are called exactly as the
Runner calls them (``hook.before_train_iter(trainer, batch_idx=..., data_batch=...)``), so a
hook written for mmengine works unchanged. The trainer owns construction, hook dispatch and
the run's state; the order of steps lives in loops (``loops.py``, ``LOOPS``), what a step
does in the model, renderer and optimizer, what happens around it (logging, checkpoints,
schedulers, outputs) in hooks. Checkpoint state is in ``run_state.py``, signal handling in
``interrupt.py``, config checks in ``config_checks.py``.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer

from ..registry import DATASETS, LOOPS, MODELS, OPTIMIZERS, PARAM_SCHEDULERS, RENDERERS
from ..utils import import_plugins, resolve_device, seed_everything
from ..utils.compile_notice import announce_kernel_compiles
from ..utils.fileio import ensure_writable_dir
from ..utils.grad_check import non_finite_gradients
from ..utils.logging import route_library_logs
from ..utils.plugins import import_custom_modules
from . import run_state
from .checkpoint import save_checkpoint
from .config_checks import check_config
from .dist import broadcast_, init_distributed, sync_gradients
from .hook_order import DEFAULT_HOOKS, insert_hook, merged_hook_cfgs
from .interfaces import (
    DataPipelineProtocol,
    HasScene,
    ModelProtocol,
    OptimizerProtocol,
    RendererProtocol,
    ResultConcatenator,
    SceneInitialised,
    ViewSplitter,
    require,
)
from .interrupt import InterruptHandler
from .nan_guard import NaNGuard
from .sections import as_list, hand_config_sections, section_schedulers

_instance_counter = 0


def _mean_loss_dict(loss_dicts: list[dict]) -> dict:
    """Per-key mean of the views' loss dicts (the single dict when there is one view)."""
    if len(loss_dicts) == 1:
        return loss_dicts[0]
    return {k: torch.stack([d[k].detach().float() for d in loss_dicts]).mean()
            if torch.is_tensor(v) else v for k, v in loss_dicts[0].items()}


def _unique_name(prefix: str) -> str:
    global _instance_counter
    _instance_counter += 1
    return f'{prefix}-{os.getpid()}-{_instance_counter}-{time.strftime("%Y%m%d_%H%M%S")}'


class DefaultTrainer:
    """Config-driven trainer for differentiable renderers.

    Build order: hooks, data pipeline, renderer, model, optimizer, schedulers, visualizer,
    loops. ``iter`` follows mmengine: inside a step's hooks it is the 0-based index of that
    step; ``global_step`` is the number of completed steps (what checkpoints store).
    """

    def __init__(self, cfg: Config | dict) -> None:
        cfg = cfg if isinstance(cfg, Config) else Config(copy.deepcopy(dict(cfg)))
        self.cfg = cfg
        self.launcher = cfg.get('launcher', 'none') or 'none'
        self.rank, self.world_size, self.device = init_distributed(
            self.launcher, resolve_device(cfg.get('device', 'auto')))
        self.work_dir = Path(cfg.get('work_dir') or 'work_dirs/default').resolve()
        ensure_writable_dir(self.work_dir)
        self.timestamp = time.strftime('%Y%m%d_%H%M%S')
        self.experiment_name = _unique_name(Path(str(cfg.filename or 'config')).stem)
        self.log_dir = self.work_dir
        self.logger = MMLogger.get_instance(
            self.experiment_name, logger_name='nerfreg',
            log_file=str(self.work_dir / f'{self.timestamp}.log'),
            log_level=cfg.get('log_level', 'INFO') if self.rank == 0 else 'ERROR')
        route_library_logs(self.logger)  # model/strategy messages reach the log file
        self.message_hub = MessageHub.get_instance(self.experiment_name)
        DefaultScope.get_instance(self.experiment_name, scope_name='nerfreg')
        import_plugins()
        import_custom_modules(cfg.get('custom_imports'))
        announce_kernel_compiles()  # one line before a first-run numba compile
        for warning in check_config(cfg):
            self.logger.warning(warning)

        self.seed = int(cfg.get('seed', 0) if cfg.get('seed') is not None else 0)
        seed_everything(self.seed, bool(cfg.get('deterministic', False)))
        loop_cfg = dict(cfg.get('train_cfg') or {})  # step keys popped, the rest: the loop
        self.view_batching = loop_cfg.pop('view_batching', None) or 'sequential'
        self.nan_guard = NaNGuard(**(loop_cfg.pop('nan_guard', None) or {}))
        self.global_step = 0
        self._iter = 0
        self.interrupt = InterruptHandler(self.logger.warning, lambda: self._iter)
        self.stop_training = False  # a hook may set it to end training after this step
        self.val_metrics: dict[str, float] = {}
        self.test_metrics: dict[str, float] = {}

        self._hooks: list[Hook] = []
        self.register_hooks(cfg.get('default_hooks'), cfg.get('custom_hooks'))
        self.data = self.build_data(cfg.get('data'))
        self.renderer = self.build_component(RENDERERS, cfg.get('renderer'), 'renderer')
        require(self.renderer, RendererProtocol, 'renderer')
        self.model = self.build_model(cfg.get('model'))
        self.optimizer = self.build_optimizer(cfg.get('optimizer'))
        self.param_schedulers = self.build_param_schedulers(cfg.get('param_scheduler'))
        self.visualizer = self.build_visualizer(cfg.get('visualizer'))
        self._split_views = (self.view_batching == 'sequential'
                             and isinstance(self.data, ViewSplitter)
                             and isinstance(self.renderer, ResultConcatenator))
        self.train_loop = self.build_loop(loop_cfg, 'IterBasedTrainLoop')
        self.val_loop = self.build_loop(cfg.get('val_cfg'), 'ValLoop')
        self.test_loop = self.build_loop(cfg.get('test_cfg'), 'TestLoop')
        self._dump_config()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg: Config | dict) -> DefaultTrainer:
        """Build a trainer from a config (mmengine ``Runner.from_cfg`` analogue)."""
        return cls(cfg)

    def build_component(self, registry, cfg: dict | None, key: str,
                        **default_args: Any) -> Any:
        """Build ``cfg`` from ``registry``; a missing section is an error naming the key."""
        if cfg is None:
            raise KeyError(f'The config has no `{key}` section; add `{key} = dict(type=...)`.')
        cfg = copy.deepcopy(dict(cfg))
        return registry.build(cfg, default_args=default_args or None)

    def build_data(self, cfg: dict | None) -> DataPipelineProtocol:
        """The data pipeline (``cfg.data``): dataset plus view order. A registered class that
        is itself a whole pipeline (a plugin with its own data) is built directly."""
        if cfg is None:
            raise KeyError('The config has no `data` section; inherit a file from '
                           'configs/_base_/datasets/.')
        cfg = copy.deepcopy(dict(cfg))
        cls = DATASETS.get(cfg['type']) if isinstance(cfg.get('type'), str) else None
        where = dict(device=self.device, seed=self.seed, rank=self.rank,
                     world_size=self.world_size)
        if isinstance(cls, type) and issubclass(cls, DataPipelineProtocol):
            data = DATASETS.build(cfg, default_args=where)
        else:
            from ..datasets import DataPipeline
            data = DataPipeline.from_cfg(cfg, **where)
        require(data, DataPipelineProtocol, 'data')
        return data

    @property
    def scene(self) -> Any:
        """The scene dataset of the pipeline, or None when it exposes none."""
        return self.data.dataset if isinstance(self.data, HasScene) else None

    def build_model(self, cfg: dict | None) -> torch.nn.Module:
        model = self.build_component(MODELS, cfg, 'model')
        require(model, ModelProtocol, 'model')
        hand_config_sections(model, self.cfg, self.scene)  # e.g. camera_opt, appearance
        if self.scene is not None and isinstance(model, SceneInitialised):
            model.setup(self.scene)
        return model.to(self.device)

    def build_optimizer(self, cfg: dict | None) -> OptimizerProtocol:
        extent = float(getattr(self.scene, 'scene_extent', 1.0))
        optimizer = self.build_component(OPTIMIZERS, cfg, 'optimizer', model=self.model,
                                         scene_extent=extent)
        require(optimizer, OptimizerProtocol, 'optimizer')
        return optimizer

    def build_param_schedulers(self, cfgs: Iterable[dict] | dict | None) -> list:
        cfgs = as_list(cfgs) + section_schedulers(self.model)
        return [self.build_component(PARAM_SCHEDULERS, c, 'param_scheduler',
                                     optimizer=self.optimizer) for c in cfgs]

    def build_visualizer(self, cfg: dict | None) -> Visualizer:
        cfg = copy.deepcopy(dict(cfg or dict(vis_backends=[dict(type='LocalVisBackend')])))
        cfg.pop('type', None)
        cfg.setdefault('save_dir', str(self.work_dir / 'vis_data'))
        return Visualizer.get_instance(self.experiment_name, **cfg)

    def build_loop(self, cfg: dict | None, default_type: str) -> Any:
        """A loop from ``LOOPS`` (``type`` defaults to ``default_type``), bound to self."""
        cfg = {'type': default_type, **copy.deepcopy(dict(cfg or {}))}
        return LOOPS.build(cfg, default_args=dict(runner=self))

    def register_hook(self, hook: Hook | dict, priority: int | str | None = None) -> None:
        """Insert a hook keeping the list sorted by priority (ties: registration order)."""
        insert_hook(self._hooks, hook, priority)

    def register_hooks(self, default_hooks: dict | None, custom_hooks: list | None) -> None:
        """Default hooks by key (a ``None`` value disables one), then custom hooks."""
        for hook in merged_hook_cfgs(default_hooks, custom_hooks):
            self.register_hook(hook)

    @property
    def hooks(self) -> list[Hook]:
        return list(self._hooks)

    def _dump_config(self) -> None:
        if self.rank == 0:
            self.cfg.dump(str(self.work_dir / f'{Path(str(self.cfg.filename or "config")).stem}'
                              '.py'))

    # ------------------------------------------------------------------ mmengine-like state
    @property
    def iter(self) -> int:
        return self._iter

    @iter.setter
    def iter(self, value: int) -> None:
        self._iter = int(value)

    @property
    def max_iters(self) -> int:
        return int(getattr(self.train_loop, 'max_iters', self.global_step))

    max_steps = max_iters
    epoch, max_epochs = 0, 1  # one endless epoch, in mmengine's terms

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call ``fn_name`` on every hook in priority order, as mmengine's Runner does."""
        for hook in self._hooks:
            if hasattr(hook, fn_name):
                getattr(hook, fn_name)(self, **kwargs)

    # ------------------------------------------------------------------ running
    def train(self) -> torch.nn.Module:
        """Resume/load if configured, then run the train loop."""
        self.call_hook('before_run')
        run_state.resume_or_load(self)
        if self.world_size > 1:  # like DDP: every rank starts from rank 0's model
            with torch.no_grad():
                broadcast_([t.data for t in self.model.state_dict().values()
                            if torch.is_tensor(t)])
        model = self.train_loop.run()
        self.call_hook('after_run')
        return model

    def validation(self) -> dict[str, float]:
        """Score the val split (no gradients, no parameter or structure change)."""
        self.val_metrics = self.val_loop.run()
        return self.val_metrics

    def test(self, checkpoint: str | Path | None = None) -> dict[str, float]:
        """Load ``checkpoint`` (if given), render and score the test split."""
        if checkpoint is not None:
            self.load_model(checkpoint)
        self._iter = self.global_step
        self.test_metrics = self.test_loop.run()
        return self.test_metrics

    def train_step(self, batch: dict) -> dict:
        """One update: render, loss, backward, parameter and structure update.

        With several views per batch and ``train_cfg.view_batching='sequential'`` (the
        default), each view is rendered and back-propagated on its own with its loss divided
        by the number of views, and gradients accumulate: numerically the program that
        data-parallel ranks run, one view each. ``'joint'`` renders all views in one call.
        """
        self.model.train()
        views = self.data.split_views(batch) if self._split_views else [batch]
        loss_dicts, results, finite = [], [], True
        for view in views:
            render_inputs = self.model(view)
            render_results = self.renderer(render_inputs, view)
            loss_dict = self.model.get_loss_dict(render_results, view)
            loss = loss_dict['loss']
            finite = finite and bool(torch.isfinite(loss))
            if self.world_size == 1 and not finite:
                return self._skip_step(f'loss is {loss.item()}')
            (loss / len(views) if len(views) > 1 else loss).backward()
            loss_dicts.append(loss_dict)
            results.append(render_results)
        loss_dict = _mean_loss_dict(loss_dicts)
        render_results = results[0] if len(results) == 1 else self.renderer.concat_results(results)
        if self.world_size > 1:
            # one coalesced all-reduce averages the gradients and carries two flags: a
            # non-finite loss (every rank skips together) and a stop request from a signal
            finite, self.interrupt.everywhere = sync_gradients(
                self.model, finite, self.interrupt.requested > 0)
            if not finite:
                return self._skip_step('loss is not finite on some rank')
        bad = non_finite_gradients(self.model.named_parameters())
        if bad:
            return self._skip_step(f'non-finite gradient in {", ".join(bad)}')
        self.nan_guard.good_step()
        optimizer_dict = self.model.get_optimizer_dict(loss_dict, render_results, batch,
                                                       self.global_step)
        self.optimizer.update_model(**optimizer_dict)
        return {k: v.detach() if torch.is_tensor(v) else v for k, v in loss_dict.items()}

    def _skip_step(self, reason: str) -> dict:
        return self.nan_guard.skip(reason, self._iter, self.model, self.optimizer,
                                   self.logger.warning)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly."""
        return run_state.run_state_dict(self)

    def save_model(self, path: str | Path) -> Path:
        """Write a checkpoint atomically; hooks may add to it in ``before_save_checkpoint``.

        Collective when distributed (every rank calls it: rank-local statistics are summed
        into the checkpoint); only rank 0 writes.
        """
        checkpoint = self.state_dict()
        if self.rank != 0:
            return Path(path)
        self.call_hook('before_save_checkpoint', checkpoint=checkpoint)
        return save_checkpoint(checkpoint, path)

    def load_model(self, path: str | Path, resume: bool = True,
                   weights_only: bool | None = None) -> dict:
        """Load a checkpoint; ``resume`` restores optimizer, schedulers, data order and RNG."""
        return run_state.load_run_state(self, path, resume, weights_only)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint named in ``work_dir/last_checkpoint``, if it exists."""
        return run_state.latest_checkpoint(self.work_dir)

    # ------------------------------------------------------------------ misc
    def log_scalars(self, scalars: dict[str, float], step: int | None = None) -> None:
        """Send scalars to the visualizer backends (rank 0 only)."""
        if self.rank != 0:
            return
        clean = {k: float(v) for k, v in scalars.items()
                 if isinstance(v, (int, float)) and math.isfinite(float(v))}
        if clean:
            self.visualizer.add_scalars(clean, step=self.global_step if step is None else step)


__all__ = ['DefaultTrainer', 'DEFAULT_HOOKS']
