"""Base class of models trained by the nerfreg trainer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import Tensor, nn

from nerfreg.metrics.functional import view_metrics
from nerfreg.registry import MODELS

from .scene_modules import SceneModule

BackgroundSpec = Union[str, Sequence[float]]
_NAMED_BACKGROUNDS = {'black': (0.0, 0.0, 0.0), 'white': (1.0, 1.0, 1.0)}


def parse_background(spec: BackgroundSpec) -> tuple[float, float, float] | str:
    """``'white'``/``'black'``/``[r, g, b]`` as an RGB triple; ``'random'`` as is."""
    if isinstance(spec, str):
        if spec == 'random':
            return spec
        if spec in _NAMED_BACKGROUNDS:
            return _NAMED_BACKGROUNDS[spec]
        raise ValueError(f"background must be 'white', 'black', 'random' or [r, g, b], "
                         f'got {spec!r}')
    values = tuple(float(v) for v in spec)
    if len(values) != 3:
        raise ValueError(f'background [r, g, b] needs 3 values, got {spec!r}')
    return values


class BaseModel(nn.Module):
    """Trainer-facing model interface (see docs/architecture.md, "Model").

    ``config_sections`` names the top-level config sections the model takes; the trainer
    hands them to ``take_config_sections``, which builds the enabled ones (``MODELS``) as
    scene modules (``nerfreg.models.scene_modules``) in ``self.scene_modules``.
    """

    config_sections: tuple[str, ...] = ('camera_opt', 'appearance', 'depth_loss',
                                        'masked_metrics')

    def __init__(self) -> None:
        super().__init__()
        self.scene_modules = nn.ModuleDict()

    # ------------------------------------------------------------------ scene modules
    def take_config_sections(self, sections: dict[str, Any], scene: Any = None) -> None:
        """Build every section whose ``enabled`` is true (``type`` + settings) and size it
        from ``scene`` (when given; otherwise a checkpoint load sizes it)."""
        for name in self.config_sections:
            cfg = dict(sections.get(name) or {})
            if not cfg.pop('enabled', False):
                kind = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else None
                if isinstance(kind, type) and issubclass(kind, SceneModule):
                    kind.check_disabled(name, cfg)  # settings that need the section on
                continue
            if 'type' not in cfg:
                raise KeyError(f'config section `{name}` is enabled but has no `type`')
            module = MODELS.build(cfg)
            if not isinstance(module, SceneModule):
                raise TypeError(f'{name}.type={cfg["type"]!r} builds {type(module).__name__}, '
                                'which is not a SceneModule')
            if scene is not None:
                module.setup(scene)
            self.scene_modules[name] = module.to(self._module_device())

    def _module_device(self) -> torch.device:
        tensor = next(iter(self.buffers()), None)
        tensor = next(iter(self.parameters()), None) if tensor is None else tensor
        return tensor.device if tensor is not None else torch.device('cpu')

    def extra_param_groups(self) -> list[dict[str, Any]]:
        """Optimizer param groups of the scene modules (each with its own ``name``)."""
        return [g for m in self.scene_modules.values() for g in m.param_groups()]

    def section_schedulers(self) -> list[dict[str, Any]]:
        """``PARAM_SCHEDULERS`` configs the scene modules ask for."""
        return [c for m in self.scene_modules.values() for c in m.scheduler_cfgs()]

    def camera_overrides(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Corrected cameras (``viewmats``, ``camera`` or rays) for the renderer."""
        out: dict[str, Any] = {}
        for module in self.scene_modules.values():
            out.update(module.camera_overrides({**batch, **out}))
        return out

    def transform_rgb(self, rgb: Tensor, batch: dict[str, Any]) -> Tensor:
        """Rendered colours as this view's photo saw them (per-image appearance)."""
        for module in self.scene_modules.values():
            rgb = module.transform_rgb(rgb, batch)
        return rgb

    def extra_rays(self, batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Rays the scene modules ask to render with a training ray batch, by section
        (``SceneModule.extra_rays``; empty requests left out)."""
        step = int(getattr(self, 'step', 0))
        out = {}
        for name, module in self.scene_modules.items():
            rays = module.extra_rays(batch, step)
            if rays and len(rays['rays_o']):
                out[name] = rays
        return out

    def scene_module_losses(self, render_results: dict[str, Any], batch: dict[str, Any]
                            ) -> dict[str, Tensor]:
        """Loss terms of the scene modules (added to ``loss`` by the model); each module
        sees only its own ``render_results['extra_rays']``."""
        overrides = self.camera_overrides(batch) if self.scene_modules else {}
        extra = render_results.get('extra_rays') or {}
        own = {k: v for k, v in render_results.items() if k != 'extra_rays'}
        out: dict[str, Tensor] = {}
        for name, module in self.scene_modules.items():
            results = {**own, 'extra_rays': extra[name]} if name in extra else own
            out.update(module.loss_terms(results, batch, overrides))
        return out

    def setup(self, scene: Any) -> None:
        """Initialise parameters from the scene dataset."""

    def set_backgrounds(self, background: BackgroundSpec,
                        eval_background: BackgroundSpec | None) -> None:
        """Training and evaluation backgrounds of models that composite over one; the
        evaluation one defaults to the training one, or black when that is 'random'."""
        self.background = parse_background(background)
        if eval_background is None:
            eval_background = 'black' if self.background == 'random' else background
        self.eval_background = parse_background(eval_background)
        if self.eval_background == 'random':
            raise ValueError("eval_background cannot be 'random'")

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def get_loss_dict(self, render_results: dict[str, Any],
                      batch: dict[str, Any]) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def get_optimizer_dict(self, loss_dict: dict[str, Tensor], render_results: dict[str, Any],
                           batch: dict[str, Any], step: int) -> dict[str, Any]:
        return {'step': step}

    def target_image(self, render_results: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        """What a render is compared with; models that re-composite the ground truth on the
        render's background override this."""
        return batch['image']

    @torch.no_grad()
    def get_metric_dict(self, render_results: dict[str, Any], batch: dict[str, Any],
                        render: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                        ) -> dict[str, Tensor]:
        """Per-view ``psnr [B]`` and ``ssim [B]`` of the clamped (appearance-transformed)
        render against :meth:`target_image`, plus the scene modules' ``eval_metrics``.

        ``render(overrides)`` (given by the evaluation loops) renders ``batch`` again with
        render-input overrides; the scene modules get it as a function returning the
        appearance-transformed ``rgb``."""
        pred = self.transform_rgb(render_results['rgb'], batch)
        target = self.target_image(render_results, batch)
        metrics = view_metrics(pred, target)
        view_render = None
        if render is not None:
            def view_render(overrides: dict[str, Any]) -> Tensor:
                return self.transform_rgb(render(overrides)['rgb'], batch)
        for module in self.scene_modules.values():
            extra = module.eval_metrics(pred, target, batch, render=view_render)
            clash = sorted(set(extra) & set(metrics))
            if clash:
                raise KeyError(f'{type(module).__name__}.eval_metrics returns {clash}, '
                               'which another metric already reports; give them own names')
            metrics.update(extra)
        return metrics
