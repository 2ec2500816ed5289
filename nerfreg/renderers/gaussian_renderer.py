"""Renderer wrapping ``nerfreg.ops.rasterization`` for the trainer."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from nerfreg.ops.rasterization import check_rasterize_mode
from nerfreg.registry import RENDERERS

_DEPTH_MODES = ('D', 'ED', 'RGB+D', 'RGB+ED')


@RENDERERS.register_module()
class GaussianSplatRenderer:
    """``renderer(render_inputs, batch) -> {'rgb', 'alpha', 'depth', 'meta', 'backgrounds'}``.

    ``render_inputs`` come from the model's ``forward`` (activated Gaussians, SH degree,
    backgrounds); cameras (``viewmats``, ``Ks``, ``width``, ``height``) from the batch, unless
    ``render_inputs`` carries corrected ``viewmats`` (the model's camera corrections).
    ``rgb`` is absent in depth-only modes and ``depth`` in 'RGB'.

    ``rasterize_mode``: 'classic' or 'antialiased' (gsplat's names; see
    ``nerfreg.ops.rasterization``). It is saved in checkpoints (``renderer.rasterize_mode``);
    loading an anti-aliased checkpoint into a classic renderer warns. ``render_inputs``
    may ask for ``absgrad=True`` (the model forwards its strategy's render requests) and
    for a ``render_mode`` (the model's training mode); the ``render_mode`` argument wins
    over both.
    """

    def __init__(self, backend: str = 'auto', render_mode: str = 'RGB+ED',
                 near_plane: float = 0.01, far_plane: float = 1e10, tile_size: int = 16,
                 eps2d: float = 0.3, radius_clip: float = 0.0,
                 rasterize_mode: str = 'classic') -> None:
        self.rasterize_mode = check_rasterize_mode(rasterize_mode)
        self.backend = backend
        self.render_mode = render_mode
        self.near_plane = float(near_plane)
        self.far_plane = float(far_plane)
        self.tile_size = int(tile_size)
        self.eps2d = float(eps2d)
        self.radius_clip = float(radius_clip)

    def __call__(self, render_inputs: dict[str, Any], batch: dict[str, Any],
                 render_mode: str | None = None) -> dict[str, Any]:
        from nerfreg.ops import rasterization

        mode = render_mode or render_inputs.get('render_mode') or self.render_mode
        backgrounds = render_inputs.get('backgrounds')
        colors, alphas, meta = rasterization(
            means=render_inputs['means'], quats=render_inputs['quats'],
            scales=render_inputs['scales'], opacities=render_inputs['opacities'],
            colors=render_inputs['colors'],
            viewmats=render_inputs.get('viewmats', batch['viewmats']), Ks=batch['Ks'],
            width=int(batch['width']), height=int(batch['height']),
            sh_degree=render_inputs.get('sh_degree'), near_plane=self.near_plane,
            far_plane=self.far_plane, backgrounds=backgrounds, render_mode=mode,
            backend=self.backend, tile_size=self.tile_size, eps2d=self.eps2d,
            radius_clip=self.radius_clip, rasterize_mode=self.rasterize_mode,
            absgrad=bool(render_inputs.get('absgrad', False)))
        out: dict[str, Any] = {'alpha': alphas, 'meta': meta, 'backgrounds': backgrounds}
        if mode in ('RGB', 'RGB+D', 'RGB+ED'):
            out['rgb'] = colors[..., :3]
        if mode in _DEPTH_MODES:
            out['depth'] = colors[..., -1:]
        return out

    @staticmethod
    def concat_results(results: list[dict[str, Any]]) -> dict[str, Any]:
        """Render results of single-view renders, after their backward passes, as one
        multi-view result: tensors are concatenated over the view axis, and ``meta['means2d']``
        carries the concatenated gradients (what the densification statistics read)."""
        if len(results) == 1:
            return results[0]
        out: dict[str, Any] = {}
        for key in results[0]:
            if key == 'meta':
                continue
            values = [r[key] for r in results]
            out[key] = (torch.cat([v.detach() for v in values]) if torch.is_tensor(values[0])
                        else values[0])
        metas = [r['meta'] for r in results]
        meta: dict[str, Any] = {}
        for key, value in metas[0].items():
            if torch.is_tensor(value) and value.dim() > 0:
                meta[key] = torch.cat([m[key].detach() for m in metas])
            else:
                meta[key] = value
        grads = [m['means2d'].grad for m in metas]
        if all(g is not None for g in grads):
            meta['means2d'].grad = torch.cat(grads)
        absgrads = [getattr(m['means2d'], 'absgrad', None) for m in metas]
        if all(g is not None for g in absgrads):
            meta['means2d'].absgrad = torch.cat(absgrads)
        meta['n_cameras'] = sum(int(m['n_cameras']) for m in metas)
        out['meta'] = meta
        return out

    def state_dict(self) -> dict[str, Any]:
        return {'rasterize_mode': self.rasterize_mode}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keeps the configured mode; warns when the checkpoint was trained in another."""
        saved = (state_dict or {}).get('rasterize_mode', 'classic')
        if saved != self.rasterize_mode:
            warnings.warn(
                f"checkpoint key renderer.rasterize_mode={saved!r} differs from this "
                f"renderer's rasterize_mode={self.rasterize_mode!r}: the scene was trained "
                f"with {saved!r} rendering and will look different. Set "
                f"renderer.rasterize_mode={saved!r} (--cfg-options) to render it as trained.",
                stacklevel=2)
