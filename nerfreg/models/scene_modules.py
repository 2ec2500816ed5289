"""Scene modules: optional components a model builds from top-level config sections.

A model declares the sections it takes (``BaseModel.config_sections``); the trainer hands
it those sections (``take_config_sections``) and the model builds each enabled one from
``MODELS`` into ``model.scene_modules``. A scene module is an ``nn.Module`` living inside the
model (so checkpoints and resume cover it) that may

- correct the cameras of training views before rendering (``camera_overrides``),
- transform the rendered colours of a view or ray batch (``transform_rgb``),
- add loss terms (``loss_terms``), also on extra rays it asks a ray-batch model to render
  with the batch (``extra_rays``),
- add metrics of evaluated views beside the plain ones (``eval_metrics``; e.g. over the
  unmasked pixels, or after a test-time fit to part of the view),
- bring its own optimizer param groups (``param_groups``) and lr schedules
  (``scheduler_cfgs``).

Training views are recognised by ``batch['split'] == 'train'`` (set by the data
pipelines); every other view (held-out, novel paths) keeps its recorded camera.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


def is_training_view(batch: dict[str, Any]) -> bool:
    """True for batches of training views or rays (``batch['split'] == 'train'``)."""
    return batch.get('split') == 'train'


def training_indices(batch: dict[str, Any]) -> Tensor:
    """Index into the training split of every view (``index [B]``) or ray (``cam_index [R]``)."""
    if 'cam_index' in batch:
        return batch['cam_index']
    return batch['index']


class SceneModule(nn.Module):
    """Base class: every hook is a no-op.

    ``setup(scene)`` sizes the parameters from the scene dataset (train views, points).
    Without a scene (a model built for inference) they stay empty and ``load_state_dict``
    takes the checkpoint's sizes.
    """

    #: ``loss_terms`` reads ``render_results['depth']`` of training renders (the model then
    #: renders depth while training; otherwise it may skip that channel)
    needs_training_depth: bool = False

    @classmethod
    def check_disabled(cls, section: str, cfg: dict[str, Any]) -> None:
        """Called with the settings of a disabled section; raise for a setting that only
        makes sense with the section enabled (instead of ignoring it silently)."""

    def setup(self, scene: Any) -> None:
        """Size parameters and buffers from the scene dataset."""

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups ``dict(name=..., params=[...], lr=..., **adam_options)``."""
        return []

    def scheduler_cfgs(self) -> list[dict[str, Any]]:
        """``PARAM_SCHEDULERS`` configs for this module's groups (lengths are settings of the
        module, so that a resume with another ``train_cfg.max_steps`` stays exact)."""
        return []

    def camera_overrides(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Render inputs replacing the batch's cameras (``viewmats``, ``camera``, rays)."""
        return {}

    def transform_rgb(self, rgb: Tensor, batch: dict[str, Any]) -> Tensor:
        """Rendered colours ``[B,H,W,3]`` or ``[R,3]`` as the photo of this view saw them."""
        return rgb

    def extra_rays(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        """Rays to render with a training ray batch (models that train on rays ask):
        ``rays_o [K,3]``, ``rays_d [K,3]`` (unit), ``cam_index [K]``, ``split='train'`` and any
        keys of the module's own; the same for the same ``(batch, step)``. The model renders
        them (camera corrections applied) and hands them back to :meth:`loss_terms` as
        ``render_results['extra_rays']``, with their ``render`` (``rgb``, ``depth``,
        ``alpha``)."""
        return {}

    def loss_terms(self, render_results: dict[str, Any], batch: dict[str, Any],
                   overrides: dict[str, Any]) -> dict[str, Tensor]:
        """Weighted loss terms added to the model's loss."""
        return {}

    def eval_metrics(self, pred: Tensor, target: Tensor, batch: dict[str, Any],
                     render: Callable[[dict[str, Any]], Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """Extra metrics ``{name: [B]}`` of evaluated views, beside the model's plain ones.

        ``pred`` is what the plain metrics score (the render after ``transform_rgb``),
        ``target`` the ground truth, both ``[B,H,W,3]``. Names must differ from the plain
        ``psnr``/``ssim`` and say what they are (``psnr_masked``). Every view of a split must
        get the same keys (the loops average them). A module may fit per-view parameters
        here (test-time fitting, gradients enabled locally); it must use only this view's
        pixels, keep nothing between views and never touch the scene. ``render(overrides)``
        (when the evaluation loop gives one) renders these views again with render-input
        overrides (e.g. other ``viewmats``), as ``pred`` was made, so a module can fit
        camera parameters (gradients enabled locally).
        """
        return {}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # take the checkpoint's sizes (a module built without a scene is empty)
        for name, tensor in list(self._parameters.items()) + list(self._buffers.items()):
            value = state_dict.get(prefix + name)
            if tensor is None or value is None or value.shape == tensor.shape:
                continue
            new = torch.empty(value.shape, dtype=tensor.dtype, device=tensor.device)
            if name in self._parameters:
                self._parameters[name] = nn.Parameter(new, requires_grad=tensor.requires_grad)
            else:
                self._buffers[name] = new
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
