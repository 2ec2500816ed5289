"""Load what the viewer shows: a model and renderer from a config's registries plus a
checkpoint (``.pth``) or a 3DGS ``.ply``, and optionally the training cameras.

``init_model`` has the shape of the planned ``nerfreg.apis.init_model`` (config,
checkpoint, device, cfg_options -> model in eval mode) so it can be swapped for it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: What a bare 3DGS PLY is rendered with (the PLY layout is Gaussian splatting by format).
PLY_CONFIG = dict(model=dict(type='GaussianSplatting'),
                  renderer=dict(type='GaussianSplatRenderer'), device='auto')


@dataclass
class ViewerScene:
    """A loaded scene: ``model`` (eval), ``renderer``, the config, the checkpoint's step,
    the training cameras and their images (None when there is no dataset)."""

    model: torch.nn.Module
    renderer: Any
    cfg: Any
    step: int
    cameras: Any = None
    images: list[torch.Tensor] | None = None


def _as_config(config: Any, cfg_options: dict | None = None) -> Any:
    from mmengine.config import Config

    from ..utils.config import load_config
    if isinstance(config, (str, Path)):
        return load_config(config, cfg_options)
    cfg = config if isinstance(config, Config) else Config(copy.deepcopy(dict(config)))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _ply_sh_degree(path: Path) -> int:
    """SH degree of a 3DGS PLY (checks the layout; the error names missing properties)."""
    from ..exporters.ply import read_ply
    params = read_ply(path)
    k = params['shN'].shape[1] + 1
    return int(round(k ** 0.5)) - 1


def init_model(config: Any, checkpoint: str | Path | None = None,
               device: str | torch.device = 'cpu', cfg_options: dict | None = None
               ) -> torch.nn.Module:
    """The config's model (plugins and ``custom_imports`` loaded) with ``checkpoint``
    (nerfreg ``.pth`` or 3DGS ``.ply``) loaded, on ``device``, in eval mode. The loaded
    step is in ``model.viewer_step``."""
    from ..registry import MODELS
    from ..utils import import_plugins
    from ..utils.plugins import import_custom_modules
    cfg = _as_config(config, cfg_options)
    import_plugins()
    import_custom_modules(cfg.get('custom_imports'))
    if cfg.get('model') is None:
        raise KeyError('The config has no `model` section.')
    model = MODELS.build(copy.deepcopy(dict(cfg.model))).to(device)
    step = 0
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.suffix.lower() == '.ply':
            from ..exporters import load_ply_into_model
            load_ply_into_model(model, path)
            if hasattr(model, 'set_step') and hasattr(model, 'sh_degree_interval'):
                # a PLY carries its full SH degree
                model.set_step(max(1, model.sh_degree_interval) * getattr(model, 'sh_degree', 3))
        else:
            from ..engine.checkpoint import load_checkpoint
            ckpt = load_checkpoint(path, map_location='cpu',
                                   weights_only=not bool(cfg.get('unsafe_load', False)))
            model.load_state_dict(ckpt['model'])
            step = int(ckpt.get('global_step', 0))
    model.to(device).eval()
    model.viewer_step = step
    return model


def build_renderer(cfg: Any) -> Any:
    from ..registry import RENDERERS
    if cfg.get('renderer') is None:
        raise KeyError('The config has no `renderer` section.')
    return RENDERERS.build(copy.deepcopy(dict(cfg.renderer)))


def training_views(cfg: Any) -> tuple[Any, list[torch.Tensor] | None]:
    """``(cameras, images)`` of the config's training split, or ``(None, None)``."""
    from ..registry import DATASETS
    data_cfg = copy.deepcopy(dict(cfg.get('data') or {}))
    if not data_cfg:
        return None, None
    for key in ('batch_size', 'image_device', 'shuffle'):
        data_cfg.pop(key, None)
    scene = DATASETS.build(data_cfg)
    scene = getattr(scene, 'dataset', scene)
    train = getattr(scene, 'train', None)
    if train is None:
        return None, None
    return train.cameras, list(getattr(train, 'images', None) or []) or None


def load_scene(config: Any | None, checkpoint: str | Path,
               device: str | torch.device | None = None, cfg_options: dict | None = None,
               with_cameras: bool = True) -> ViewerScene:
    """Everything ``nerfreg-view`` shows. ``config=None`` views a bare 3DGS PLY."""
    from ..utils import resolve_device
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f'{checkpoint} does not exist')
    if config is None:
        if checkpoint.suffix.lower() != '.ply':
            raise ValueError(f'{checkpoint}: without a config only a 3DGS .ply can be viewed; '
                             'give CONFIG CHECKPOINT for a .pth checkpoint')
        cfg = _as_config(copy.deepcopy(PLY_CONFIG), cfg_options)
        cfg.model.sh_degree = _ply_sh_degree(checkpoint)
        with_cameras = False
    else:
        cfg = _as_config(config, cfg_options)
    dev = resolve_device(device or cfg.get('device', 'auto'))
    model = init_model(cfg, checkpoint, dev)
    renderer = build_renderer(cfg)
    cameras, images = training_views(cfg) if with_cameras else (None, None)
    return ViewerScene(model, renderer, cfg, int(model.viewer_step), cameras, images)


__all__ = ['PLY_CONFIG', 'ViewerScene', 'build_renderer', 'init_model', 'load_scene',
           'training_views']
