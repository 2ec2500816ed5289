"""``DefaultTrainer``: builds every component from a config and runs train/val/test.

It plays the role of mmengine's ``Runner`` for renderers: hooks are called exactly as the
Runner calls them (``hook.before_train_iter(trainer, batch_idx=..., data_batch=...)``), so a
hook written for mmengine works unchanged. What a step does lives in the model, renderer and
optimizer; what happens around it (logging, checkpoints, schedulers, outputs) lives in hooks.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import signal
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner.priority import get_priority
from mmengine.visualization import Visualizer

from ..registry import HOOKS, MODELS, OPTIMIZERS, PARAM_SCHEDULERS, RENDERERS
from ..utils import get_rng_state, import_plugins, resolve_device, seed_everything, set_rng_state
from ..utils.plugins import import_custom_modules
from ..version import __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .dist import all_reduce_mean_, all_reduce_sum, barrier, broadcast_, init_distributed
from .errors import NonFiniteError, TrainingInterrupted

DEFAULT_HOOKS = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook'),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook'),
    sync_check=dict(type='SyncCheckHook'),  # no-op unless distributed
)

# Top-level config keys nerfreg reads; others are the user's own helper variables.
KNOWN_KEYS = {
    'data', 'model', 'renderer', 'optimizer', 'param_scheduler', 'train_cfg', 'default_hooks',
    'custom_hooks', 'visualizer', 'work_dir', 'device', 'seed', 'deterministic',
    'custom_imports', 'resume', 'load_from', 'launcher', 'log_level', 'default_scope',
    'unsafe_load', 'resume_strict'}
TRAIN_CFG_KEYS = {'max_steps': int, 'val_interval': int, 'nan_guard': dict,
                  'view_batching': str}
VIEW_BATCHING = ('sequential', 'joint')
# keys that may differ between a run and its resumption without changing the result
RESUME_VOLATILE = ('work_dir', 'resume', 'load_from', 'launcher', 'train_cfg.max_steps',
                   'resume_strict', 'log_level', 'device')

_instance_counter = 0


def check_config(cfg: Config) -> list[str]:
    """Reject malformed ``train_cfg``; return warnings for likely-misspelt top-level keys."""
    warnings = []
    for key in cfg.keys():
        if key not in KNOWN_KEYS and not key.startswith('_'):
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.8)
            if close:
                warnings.append(f'config key {key!r} is not used by nerfreg; did you mean '
                                f'{close[0]!r}?')
    train_cfg = cfg.get('train_cfg') or {}
    for key, value in train_cfg.items():
        if key not in TRAIN_CFG_KEYS:
            close = difflib.get_close_matches(key, list(TRAIN_CFG_KEYS), n=1, cutoff=0.6)
            hint = f' Did you mean {close[0]!r}?' if close else ''
            raise ValueError(f'train_cfg.{key} is not a known key.{hint} Known: '
                             f'{sorted(TRAIN_CFG_KEYS)}.')
        expected = TRAIN_CFG_KEYS[key]
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is int:
            ok = ok and value >= 0
        if key == 'view_batching':
            ok = value in VIEW_BATCHING
        if not ok and value is not None:
            kind = {int: 'an integer >= 0', dict: 'a dict'}.get(expected, f'one of {VIEW_BATCHING}')
            raise ValueError(f'train_cfg.{key}={value!r} must be {kind}.')
    return warnings


def _mean_loss_dict(loss_dicts: list[dict]) -> dict:
    """Per-key mean of the views' loss dicts (the single dict when there is one view)."""
    if len(loss_dicts) == 1:
        return loss_dicts[0]
    out = {}
    for key, value in loss_dicts[0].items():
        if torch.is_tensor(value):
            out[key] = torch.stack([d[key].detach().float() for d in loss_dicts]).mean()
        else:
            out[key] = value
    return out


def flatten_config(tree: Any, prefix: str = '') -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists are leaves)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten_config(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: tree}


def _unique_name(prefix: str) -> str:
    global _instance_counter
    _instance_counter += 1
    return f'{prefix}-{os.getpid()}-{_instance_counter}-{time.strftime("%Y%m%d_%H%M%S")}'


class DefaultTrainer:
    """Config-driven trainer for differentiable renderers.

    Build order: hooks, data pipeline, renderer, model, optimizer, schedulers, visualizer.
    ``iter`` follows mmengine: inside a step's hooks it is the 0-based index of that step;
    ``global_step`` is the number of completed steps (what checkpoints store).
    """

    def __init__(self, cfg: Config | dict) -> None:
        cfg = cfg if isinstance(cfg, Config) else Config(copy.deepcopy(dict(cfg)))
        self.cfg = cfg
        self.launcher = cfg.get('launcher', 'none') or 'none'
        self.rank, self.world_size, self.device = init_distributed(
            self.launcher, resolve_device(cfg.get('device', 'auto')))
        self.work_dir = Path(cfg.get('work_dir') or 'work_dirs/default').resolve()
        self._make_work_dir()
        self.timestamp = time.strftime('%Y%m%d_%H%M%S')
        self.experiment_name = _unique_name(Path(str(cfg.filename or 'config')).stem)
        self.log_dir = self.work_dir
        self.logger = MMLogger.get_instance(
            self.experiment_name, logger_name='nerfreg',
            log_file=str(self.work_dir / f'{self.timestamp}.log'),
            log_level=cfg.get('log_level', 'INFO') if self.rank == 0 else 'ERROR')
        self.message_hub = MessageHub.get_instance(self.experiment_name)
        DefaultScope.get_instance(self.experiment_name, scope_name='nerfreg')
        import_plugins()
        import_custom_modules(cfg.get('custom_imports'))
        for warning in check_config(cfg):
            self.logger.warning(warning)

        self.seed = int(cfg.get('seed', 0) if cfg.get('seed') is not None else 0)
        seed_everything(self.seed, bool(cfg.get('deterministic', False)))
        train_cfg = cfg.get('train_cfg') or {}
        self.max_steps = int(train_cfg.get('max_steps', 1000))
        self.val_interval = int(train_cfg.get('val_interval', 0) or 0)
        guard = train_cfg.get('nan_guard') or {}
        self.max_bad_steps = int(guard.get('max_consecutive', 10))
        self.view_batching = train_cfg.get('view_batching') or 'sequential'
        self.global_step = 0
        self._iter = 0
        self._bad_steps = 0
        self._stop_requested = 0
        self._stop_everywhere = False  # a rank was signalled (agreed in the all-reduce)
        self.stop_training = False  # a hook may set it to end training after this step
        self.val_metrics: dict[str, float] = {}
        self.test_metrics: dict[str, float] = {}

        self._hooks: list[Hook] = []
        self.register_hooks(cfg.get('default_hooks'), cfg.get('custom_hooks'))
        self.data = self.build_data(cfg.get('data'))
        self.renderer = self.build_component(RENDERERS, cfg.get('renderer'), 'renderer')
        self.model = self.build_model(cfg.get('model'))
        self.optimizer = self.build_optimizer(cfg.get('optimizer'))
        self.param_schedulers = self.build_param_schedulers(cfg.get('param_scheduler'))
        self.visualizer = self.build_visualizer(cfg.get('visualizer'))
        self._dump_config()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg: Config | dict) -> DefaultTrainer:
        """Build a trainer from a config (mmengine ``Runner.from_cfg`` analogue)."""
        return cls(cfg)

    def _make_work_dir(self) -> None:
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.work_dir, prefix='.write_test'):
                pass
        except OSError as exc:
            raise PermissionError(
                f'work_dir {self.work_dir} is not writable ({exc.strerror}). Pass a writable '
                '--work-dir.') from exc

    def build_component(self, registry, cfg: dict | None, key: str,
                        **default_args: Any) -> Any:
        """Build ``cfg`` from ``registry``; a missing section is an error naming the key."""
        if cfg is None:
            raise KeyError(f'The config has no `{key}` section; add `{key} = dict(type=...)`.')
        cfg = copy.deepcopy(dict(cfg))
        return registry.build(cfg, default_args=default_args or None)

    def build_data(self, cfg: dict | None) -> Any:
        """The data pipeline (``cfg.data``): dataset plus view order."""
        from ..registry import DATASETS
        if cfg is None:
            raise KeyError('The config has no `data` section; inherit a file from '
                           'configs/_base_/datasets/.')
        cfg = copy.deepcopy(dict(cfg))
        cls = DATASETS.get(cfg['type']) if isinstance(cfg.get('type'), str) else None
        if cls is not None and hasattr(cls, 'next_train_batch'):
            # a registered class that is a whole pipeline (plugins with their own data)
            return DATASETS.build(cfg, default_args=dict(
                device=self.device, seed=self.seed, rank=self.rank,
                world_size=self.world_size))
        from ..datasets import DataPipeline
        return DataPipeline.from_cfg(cfg, device=self.device, seed=self.seed, rank=self.rank,
                                     world_size=self.world_size)

    def build_model(self, cfg: dict | None) -> torch.nn.Module:
        model = self.build_component(MODELS, cfg, 'model')
        scene = getattr(self.data, 'dataset', None)
        if scene is not None and hasattr(model, 'setup'):
            model.setup(scene)
        return model.to(self.device)

    def build_optimizer(self, cfg: dict | None) -> Any:
        extent = float(getattr(getattr(self.data, 'dataset', None), 'scene_extent', 1.0))
        return self.build_component(OPTIMIZERS, cfg, 'optimizer', model=self.model,
                                    scene_extent=extent)

    def build_param_schedulers(self, cfgs: Iterable[dict] | dict | None) -> list:
        if not cfgs:
            return []
        cfgs = [cfgs] if isinstance(cfgs, dict) else list(cfgs)
        return [self.build_component(PARAM_SCHEDULERS, c, 'param_scheduler',
                                     optimizer=self.optimizer) for c in cfgs]

    def build_visualizer(self, cfg: dict | None) -> Visualizer:
        cfg = copy.deepcopy(dict(cfg or dict(vis_backends=[dict(type='LocalVisBackend')])))
        cfg.pop('type', None)
        cfg.setdefault('save_dir', str(self.work_dir / 'vis_data'))
        return Visualizer.get_instance(self.experiment_name, **cfg)

    def register_hook(self, hook: Hook | dict, priority: int | str | None = None) -> None:
        """Insert a hook keeping the list sorted by priority (ties: registration order)."""
        if isinstance(hook, dict):
            hook = copy.deepcopy(dict(hook))
            priority = hook.pop('priority', priority)
            hook = HOOKS.build(hook)
        if priority is not None:
            hook.priority = priority
        value = get_priority(hook.priority)
        index = len(self._hooks)
        while index > 0 and get_priority(self._hooks[index - 1].priority) > value:
            index -= 1
        self._hooks.insert(index, hook)

    def register_hooks(self, default_hooks: dict | None, custom_hooks: list | None) -> None:
        """Default hooks by key (a ``None`` value disables one), then custom hooks."""
        merged = copy.deepcopy(DEFAULT_HOOKS)
        for key, hook in dict(default_hooks or {}).items():
            if isinstance(hook, dict) and 'type' not in hook and key in DEFAULT_HOOKS:
                hook = {**DEFAULT_HOOKS[key], **hook}  # partial override of a default
            merged[key] = hook
        for hook in merged.values():
            if hook is not None:
                self.register_hook(hook)
        for hook in custom_hooks or []:
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

    @property
    def max_iters(self) -> int:
        return self.max_steps

    @property
    def epoch(self) -> int:
        return 0

    @property
    def max_epochs(self) -> int:
        return 1

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call ``fn_name`` on every hook in priority order, as mmengine's Runner does."""
        for hook in self._hooks:
            if hasattr(hook, fn_name):
                getattr(hook, fn_name)(self, **kwargs)

    # ------------------------------------------------------------------ training
    def train(self) -> torch.nn.Module:
        """Alias of :meth:`train_loop` (mmengine naming)."""
        return self.train_loop()

    def train_loop(self) -> torch.nn.Module:
        """Resume/load if configured, then run steps until ``max_steps``."""
        self.call_hook('before_run')
        self._resume_or_load()
        if self.world_size > 1:  # like DDP: every rank starts from rank 0's model
            with torch.no_grad():
                broadcast_([t.data for t in self.model.state_dict().values()
                            if torch.is_tensor(t)])
        self.call_hook('before_train')
        self.call_hook('before_train_epoch')
        previous = self._install_signal_handlers()
        try:
            for step in range(self.global_step, self.max_steps):
                self._iter = step
                batch = self.data.next_train_batch()
                self.call_hook('before_train_iter', batch_idx=self._iter, data_batch=batch)
                outputs = self.train_step(batch)
                self.global_step = self._iter + 1
                self.call_hook('after_train_iter', batch_idx=self._iter, data_batch=batch,
                               outputs=outputs)
                if self._should_validate():
                    self.validation()
                if self._stop_agreed():
                    self._stop_after_signal()
                if self.stop_training:
                    break
            self._iter = self.global_step
        finally:
            self._restore_signal_handlers(previous)
        self.call_hook('after_train_epoch')
        self.call_hook('after_train')
        self.call_hook('after_run')
        return self.model

    def _should_validate(self) -> bool:
        if not self.val_interval:
            return False
        return self.global_step % self.val_interval == 0 or self.global_step == self.max_steps

    def train_step(self, batch: dict) -> dict:
        """One update: render, loss, backward, parameter and structure update.

        With several views per batch and ``train_cfg.view_batching='sequential'`` (the
        default), each view is rendered and back-propagated on its own with its loss divided
        by the number of views, and gradients accumulate: numerically the program that
        data-parallel ranks run, one view each. ``'joint'`` renders all views in one call.
        """
        self.model.train()
        views = self._split_views(batch)
        loss_dicts, results, finite = [], [], True
        for view in views:
            render_inputs = self.model(view)
            render_results = self.renderer(render_inputs, view)
            loss_dict = self.model.get_loss_dict(render_results, view)
            loss = loss_dict['loss']
            finite = finite and bool(torch.isfinite(loss))
            if self.world_size == 1 and not finite:
                return self._skip_bad_step(f'loss is {loss.item()}', loss_dict)
            (loss / len(views) if len(views) > 1 else loss).backward()
            loss_dicts.append(loss_dict)
            results.append(render_results)
        loss_dict = _mean_loss_dict(loss_dicts)
        render_results = results[0] if len(results) == 1 else self.renderer.concat_results(results)
        if self.world_size > 1:
            if not self._sync_gradients(finite):
                return self._skip_bad_step('loss is not finite on some rank', loss_dict)
        bad = self._non_finite_gradients()
        if bad:
            return self._skip_bad_step(f'non-finite gradient in {", ".join(bad)}', loss_dict)
        self._bad_steps = 0
        optimizer_dict = self.model.get_optimizer_dict(loss_dict, render_results, batch,
                                                       self.global_step)
        self.optimizer.update_model(**optimizer_dict)
        return {k: v.detach() if torch.is_tensor(v) else v for k, v in loss_dict.items()}

    def _split_views(self, batch: dict) -> list[dict]:
        """Per-view batches for sequential view batching, else ``[batch]``."""
        split = getattr(self.data, 'split_views', None)
        if (self.view_batching == 'joint' or split is None
                or not hasattr(self.renderer, 'concat_results')):
            return [batch]
        return split(batch)

    def _sync_gradients(self, finite: bool) -> bool:
        """Average gradients over ranks (one coalesced all-reduce); True if every loss was
        finite. The flag travels in the same buffer so that all ranks skip together."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flags = torch.tensor([0.0 if finite else 1.0, float(self._stop_requested > 0)],
                             device=params[0].device, dtype=params[0].grad.dtype)
        all_reduce_mean_([p.grad for p in params] + [flags])
        bad, stop = flags.tolist()
        self._stop_everywhere = stop > 0
        return bad == 0.0

    def _non_finite_gradients(self) -> list[str]:
        """Names of parameters with a NaN/Inf gradient (one host sync per step)."""
        named = [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None]
        if not named:
            return []
        finite = torch.stack([torch.isfinite(g).all() for _, g in named])
        if bool(finite.all()):
            return []
        return [name for (name, _), ok in zip(named, finite.tolist()) if not ok]

    def _skip_bad_step(self, reason: str, loss_dict: dict) -> dict:
        """NaN/Inf guard: drop this update; stop after too many bad steps in a row."""
        self.model.zero_grad(set_to_none=True)
        if hasattr(self.model, 'set_step'):  # step-driven schedules (SH degree) move on
            self.model.set_step(self._iter + 1)
        if hasattr(self.optimizer, 'zero_grad'):
            self.optimizer.zero_grad()
        self._bad_steps += 1
        self.logger.warning(f'step {self._iter + 1}: {reason}; update skipped '
                            f'({self._bad_steps}/{self.max_bad_steps} consecutive).')
        if self._bad_steps >= self.max_bad_steps:
            raise NonFiniteError(
                f'{self._bad_steps} consecutive steps had a non-finite loss or gradient (last: '
                f'{reason}) at step {self._iter + 1}. The last good state is in the latest '
                'checkpoint; lower the learning rates or check the data, then resume.')
        return {'loss': torch.tensor(float('nan')), 'skipped': True}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _evaluate(self, split: str, mode: str) -> dict[str, float]:
        """Render every view of ``split`` in order; average the model's metrics."""
        self.model.eval()
        self.call_hook(f'before_{mode}')
        self.call_hook(f'before_{mode}_epoch')
        sums: dict[str, float] = defaultdict(float)
        count = 0
        # views are split across ranks by the pipeline; hooks see the global view index
        batches = (self.data.iter_split(split, shard=True) if self.world_size > 1
                   else self.data.iter_split(split))
        for local_idx, batch in enumerate(batches):
            idx = self.rank + local_idx * self.world_size
            self.call_hook(f'before_{mode}_iter', batch_idx=idx, data_batch=batch)
            render_inputs = self.model(batch)
            render_results = self.renderer(render_inputs, batch)
            metrics = self.model.get_metric_dict(render_results, batch)
            views = 1
            for key, value in metrics.items():
                value = torch.as_tensor(value, dtype=torch.float64)
                sums[key] += float(value.sum())
                views = value.numel()
            count += views
            self.call_hook(f'after_{mode}_iter', batch_idx=idx, data_batch=batch,
                           outputs=dict(render_results=render_results, metrics=metrics))
        if self.world_size > 1:
            keys = sorted(sums)
            totals = all_reduce_sum(torch.tensor([sums[k] for k in keys] + [count],
                                                 dtype=torch.float64, device=self.device))
            sums, count = dict(zip(keys, totals[:-1].tolist())), int(totals[-1])
        averaged = {k: v / max(count, 1) for k, v in sums.items()}
        self.call_hook(f'after_{mode}_epoch', metrics=averaged)
        barrier()
        self.call_hook(f'after_{mode}')
        self.model.train()
        return averaged

    def validation(self) -> dict[str, float]:
        """Score the val split (no gradients, no parameter or structure change)."""
        self.val_metrics = self._evaluate('val', 'val')
        return self.val_metrics

    def test(self, checkpoint: str | Path | None = None) -> dict[str, float]:
        """Load ``checkpoint`` (if given), render and score the test split."""
        if checkpoint is not None:
            self.load_model(checkpoint)
        self._iter = self.global_step
        self.test_metrics = self._evaluate('test', 'test')
        return self.test_metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly."""
        return {
            'global_step': self.global_step,
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'renderer': self.renderer.state_dict() if hasattr(self.renderer, 'state_dict')
            else {},
            'param_schedulers': [s.state_dict() for s in self.param_schedulers],
            'data': self.data.state_dict() if hasattr(self.data, 'state_dict') else {},
            'rng': get_rng_state(),
            'meta': {'nerfreg_version': __version__, 'config': self.cfg.pretty_text,
                     'seed': self.seed, 'time': time.strftime('%Y-%m-%d %H:%M:%S'),
                     'experiment_name': self.experiment_name},
        }

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
        if weights_only is None:
            weights_only = not bool(self.cfg.get('unsafe_load', False))
        checkpoint = load_checkpoint(path, map_location='cpu', weights_only=weights_only)
        if resume:
            self._report_config_changes(checkpoint)
        self.model.load_state_dict(checkpoint['model'])
        self.model.to(self.device)
        if hasattr(self.renderer, 'load_state_dict') and checkpoint.get('renderer'):
            self.renderer.load_state_dict(checkpoint['renderer'])
        self.global_step = int(checkpoint.get('global_step', 0))
        if resume:
            self.optimizer.load_state_dict(checkpoint['optimizer'])
            for sched, state in zip(self.param_schedulers, checkpoint.get('param_schedulers', [])):
                sched.load_state_dict(state)
            if checkpoint.get('data') and hasattr(self.data, 'load_state_dict'):
                self.data.load_state_dict(checkpoint['data'])
            if 'rng' in checkpoint:
                set_rng_state(checkpoint['rng'])
        self._iter = self.global_step
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        self.logger.info(f'Loaded checkpoint {path} (step {self.global_step}, '
                         f'{"resumed" if resume else "weights only"}).')
        return checkpoint

    def _report_config_changes(self, checkpoint: dict) -> None:
        """Log which config keys differ from the checkpoint's; refuse if ``resume_strict``."""
        text = checkpoint.get('meta', {}).get('config')
        if not text:
            return
        try:
            old = flatten_config(Config.fromstring(text, '.py').to_dict())
        except Exception:  # an unparsable stored config must not block a resume
            return
        new = flatten_config(self.cfg.to_dict())
        changed = sorted(k for k in set(old) | set(new)
                         if old.get(k, '<unset>') != new.get(k, '<unset>')
                         and not k.startswith(RESUME_VOLATILE))
        if not changed:
            return
        lines = [f'  {k}: {old.get(k, "<unset>")!r} -> {new.get(k, "<unset>")!r}'
                 for k in changed]
        message = 'The config differs from the checkpoint\'s:\n' + '\n'.join(lines)
        if self.cfg.get('resume_strict', False):
            raise ValueError(message + '\nRefusing to resume (--resume-strict). Drop the '
                             'flag to continue with the new values.')
        self.logger.warning(message + '\nContinuing with the new values.')

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint named in ``work_dir/last_checkpoint``, if it exists."""
        marker = self.work_dir / 'last_checkpoint'
        if not marker.is_file():
            return None
        path = Path(marker.read_text().strip())
        return path if path.is_file() else None

    def _resume_or_load(self) -> None:
        resume = self.cfg.get('resume', False)
        load_from = self.cfg.get('load_from')
        if resume:
            path = load_from if isinstance(resume, bool) and load_from else None
            path = resume if isinstance(resume, (str, Path)) else path
            path = path or self.latest_checkpoint()
            if path is None:
                self.logger.warning(f'resume=True but {self.work_dir} has no checkpoint; '
                                    'starting from scratch.')
                return
            self.load_model(path, resume=True)
        elif load_from:
            if str(load_from).lower().endswith('.ply'):
                from ..exporters import load_ply_into_model
                n = load_ply_into_model(self.model, load_from)
                self.model.to(self.device)
                self.logger.info(f'Initialised {n:,} Gaussians from {load_from}.')
            else:
                self.load_model(load_from, resume=False)
            self.global_step = 0
            self._iter = 0

    # ------------------------------------------------------------------ interruption
    def _install_signal_handlers(self) -> dict:
        """SIGINT/SIGTERM finish the step, checkpoint and exit; a second SIGINT aborts."""
        import threading
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):  # noqa: ARG001
            self._stop_requested += 1
            if self._stop_requested > 1 and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.logger.warning(f'Received {signal.Signals(signum).name}: finishing step '
                                f'{self._iter + 1}, then saving a checkpoint (Ctrl-C again to '
                                'abort now).')

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    def _stop_agreed(self) -> bool:
        """Stop after this step? Distributed, the request travels in the step's all-reduce,
        so every rank stops after the same step even if only some were signalled."""
        if self.world_size > 1:
            return self._stop_everywhere
        return self._stop_requested > 0

    def _stop_after_signal(self) -> None:
        path = self.work_dir / f'iter_{self.global_step}.pth'
        for hook in self._hooks:
            if hasattr(hook, 'save_now'):
                path = hook.save_now(self)
                break
        else:
            self.save_model(path)
        barrier()  # no rank leaves (and makes torchrun stop the others) before the file exists
        self.logger.warning(f'Interrupted at step {self.global_step}; checkpoint {path}. '
                            'Resume with: python tools/train.py CONFIG --resume '
                            f'--work-dir {self.work_dir}')
        raise TrainingInterrupted(self.global_step, path)

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
