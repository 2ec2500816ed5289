"""Load a trained model for notebooks and scripts, render cameras, score a split.

    from nerfreg.apis import init_model, render_views, evaluate
    m = init_model('configs/gaussian_splatting/demo.py', 'work_dirs/demo/iter_1500.pth')
    images = render_views(m, m.scene().test.cameras)     # list of {'rgb', 'alpha', ...}
    metrics = evaluate(m)                                 # {'psnr': ..., 'ssim': ...}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config

from ..datasets import BaseSceneDataset, DataPipeline, build_dataset
from ..engine.checkpoint import load_checkpoint
from ..engine.interfaces import HasScene, Stateful, StepAware
from ..engine.sections import hand_config_sections
from ..registry import DATASETS, MODELS, RENDERERS
from ..utils import import_plugins, resolve_device
from ..utils.config import load_config
from ..utils.plugins import import_custom_modules


@dataclass
class LoadedModel:
    """A model with the renderer and config it was trained with (see :func:`init_model`)."""

    cfg: Config
    model: torch.nn.Module
    renderer: Any
    device: torch.device
    step: int = 0
    source: str | None = None
    _scene: Any = field(default=None, repr=False)

    def scene(self) -> Any:
        """The config's scene dataset (cameras, images; read once, on first use)."""
        if self._scene is None:
            self._scene = build_scene(self.cfg)
        return self._scene


def _as_config(config: str | Path | Config | dict, cfg_options: dict | None) -> Config:
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        return cfg
    if isinstance(config, dict):
        cfg = Config(copy.deepcopy(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        return cfg
    return load_config(config, cfg_options)


def build_scene(cfg: Config) -> Any:
    """The scene dataset of ``cfg.data`` (pipeline keys dropped; images stay on the CPU).

    The nested and the flat form go through the data pipeline's own parser, so top-level
    overrides (``--cfg-options data.image_size=32``) apply as they do in training; a whole
    pipeline class of its own (``RayPipeline``, a plugin's) is built and asked for its scene.
    """
    data_cfg = copy.deepcopy(dict(cfg.get('data') or {}))
    if not data_cfg:
        raise KeyError('The config has no `data` section: cameras come from the dataset.')
    kind = data_cfg.get('type')
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    if cls is None or cls is DataPipeline or (isinstance(cls, type)
                                              and issubclass(cls, BaseSceneDataset)):
        return build_dataset(data_cfg)
    scene = DATASETS.build(data_cfg)
    return scene.dataset if isinstance(scene, HasScene) else scene


def set_final_stage(model: torch.nn.Module) -> None:
    """A file without a step (a PLY) holds the finished model: move step-driven schedules
    (the active SH degree) to their end."""
    if isinstance(model, StepAware) and hasattr(model, 'sh_degree_interval'):
        model.set_step(max(1, int(model.sh_degree_interval)) * int(getattr(model, 'sh_degree', 3)))


def init_model(config: str | Path | Config | dict, checkpoint_or_ply: str | Path | None = None,
               device: str | torch.device = 'auto', cfg_options: dict | None = None,
               unsafe_load: bool | None = None) -> LoadedModel:
    """Build the config's model and renderer and load weights into them.

    ``checkpoint_or_ply``: a nerfreg checkpoint (``iter_*.pth``, read with
    ``weights_only=True`` unless ``unsafe_load``), a 3DGS ``.ply``, or None (untrained).
    No dataset is read (:meth:`LoadedModel.scene` reads it when asked).
    """
    cfg = _as_config(config, cfg_options)
    import_plugins()
    import_custom_modules(cfg.get('custom_imports'))
    for key in ('model', 'renderer'):
        if cfg.get(key) is None:
            raise KeyError(f'The config has no `{key}` section; pass the config the model '
                           'was trained with.')
    device = resolve_device(device if device != 'auto' else cfg.get('device', 'auto'))
    model = MODELS.build(copy.deepcopy(dict(cfg.model)))
    hand_config_sections(model, cfg)  # e.g. camera_opt: sized by the checkpoint
    model = model.to(device)
    renderer = RENDERERS.build(copy.deepcopy(dict(cfg.renderer)))
    step = 0
    if checkpoint_or_ply is not None:
        path = Path(checkpoint_or_ply)
        if path.suffix.lower() == '.ply':
            from ..exporters import load_ply_into_model
            load_ply_into_model(model, path)
            set_final_stage(model)
        else:
            if unsafe_load is None:
                unsafe_load = bool(cfg.get('unsafe_load', False))
            ckpt = load_checkpoint(path, map_location='cpu', weights_only=not unsafe_load)
            model.load_state_dict(ckpt['model'])
            if ckpt.get('renderer') and isinstance(renderer, Stateful):
                renderer.load_state_dict(ckpt['renderer'])
            step = int(ckpt.get('global_step', 0))
    model.to(device).eval()
    return LoadedModel(cfg, model, renderer, device, step,
                       None if checkpoint_or_ply is None else str(checkpoint_or_ply))


@torch.no_grad()
def render_views(loaded: LoadedModel, cameras: Any, render_mode: str | None = None
                 ) -> list[dict[str, torch.Tensor]]:
    """Render each camera of ``cameras`` (a ``Cameras``) one by one.

    Returns per view ``{'rgb': [H,W,3], 'alpha': [H,W,1], 'depth': [H,W,1] (depth modes)}``,
    float tensors on the CPU.
    """
    cams = cameras.to(loaded.device)
    out = []
    for i in range(len(cams)):
        cam = cams[i]
        batch = dict(camera=cam, viewmats=cam.viewmats(), Ks=cam.Ks(), width=int(cam.width[0]),
                     height=int(cam.height[0]), name=list(cam.names))
        kwargs = {} if render_mode is None else dict(render_mode=render_mode)
        results = loaded.renderer(loaded.model(batch), batch, **kwargs)
        out.append({k: results[k][0].detach().cpu() for k in ('rgb', 'alpha', 'depth')
                    if torch.is_tensor(results.get(k))})
    return out


def evaluate(loaded: LoadedModel, split: str = 'test', work_dir: str | Path | None = None,
             write_outputs: bool = False, out_dir: str | Path | None = None,
             save_images: bool = True, cfg_options: dict | None = None) -> dict[str, float]:
    """Render and score ``split`` with the config's data pipeline and test loop.

    With ``write_outputs`` (or an ``out_dir``) the ``TestOutputHook`` writes renders, ground
    truth, a comparison sheet and ``metrics.json`` to ``out_dir`` (default: the hook's,
    ``<work_dir>/test``). The work dir (default ``work_dirs/<config name>``) receives the
    log. Returns the mean metrics.
    """
    from ..engine import DefaultTrainer
    from ..engine.hooks import TestOutputHook
    cfg = copy.deepcopy(loaded.cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = str(work_dir or cfg.get('work_dir') or
                       Path('work_dirs') / Path(str(cfg.filename or 'model')).stem)
    cfg.resume, cfg.load_from, cfg.device = False, None, str(loaded.device)
    write_outputs = write_outputs or out_dir is not None
    if not write_outputs:
        cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                            if h.get('type') != 'TestOutputHook']
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.model.load_state_dict(loaded.model.state_dict())
    trainer.model.to(trainer.device)
    if isinstance(trainer.renderer, Stateful) and isinstance(loaded.renderer, Stateful):
        trainer.renderer.load_state_dict(loaded.renderer.state_dict())
    trainer.global_step = loaded.step
    if write_outputs:
        hook = next((h for h in trainer.hooks if isinstance(h, TestOutputHook)), None)
        if hook is None:
            hook = TestOutputHook()
            trainer.register_hook(hook)
        if out_dir is not None:
            hook.out_dir = str(out_dir)
        hook.save_images = hook.save_images and save_images
        hook.checkpoint = loaded.source and str(Path(loaded.source).resolve())
    trainer.test_loop.split = split
    return trainer.test()


__all__ = ['LoadedModel', 'build_scene', 'evaluate', 'init_model', 'render_views',
           'set_final_stage']
