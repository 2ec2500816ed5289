"""``MaskedMetrics`` (``MODELS``, config section ``masked_metrics``): PSNR and SSIM of the
evaluated views over the pixels their masks keep, reported as ``psnr_masked`` and
``ssim_masked`` beside the plain (whole-image) ``psnr`` and ``ssim``, never instead of them.

The masks are the scene's loss masks (COLMAP ``data.masks_dir``, instant-ngp ``mask_path``,
Blender ``data.alpha_mask``), which the data pipeline puts on held-out views too. PSNR comes
from the mask-weighted MSE; SSIM is the mean of the SSIM map over the kept pixels, with the
ignored pixels zeroed in both images first (``nerfreg.metrics.masked_ssim``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from nerfreg.metrics.functional import view_metrics
from nerfreg.registry import MODELS

from .scene_modules import SceneModule

_HOW = ('give the scene masks (COLMAP: data.masks_dir=masks; instant-ngp / nerfstudio: '
        'mask_path per frame; Blender: data.alpha_mask=True) or set masked_metrics.enabled=False')


@MODELS.register_module()
class MaskedMetrics(SceneModule):
    """Masked ``psnr_masked`` / ``ssim_masked`` of every evaluated view (no parameters)."""

    suffix = '_masked'

    @staticmethod
    def setup(scene: Any) -> None:
        """Refuse a scene whose held-out views carry no masks, before any training."""
        for name in ('val', 'test'):
            split = getattr(scene, name, None)
            if split is not None and len(split) and getattr(split, 'masks', None) is None:
                raise ValueError(f'masked_metrics.enabled=True but the {name} views of '
                                 f'{type(scene).__name__} have no masks: {_HOW}')

    def eval_metrics(self, pred: Tensor, target: Tensor, batch: dict[str, Any],
                     render: Any = None) -> dict[str, Tensor]:
        mask = batch.get('mask')
        names = list(batch.get('name') or [])
        if mask is None:
            raise ValueError(f'masked_metrics: view {names[:1]} of split {batch.get("split")!r} '
                             f'has no mask: {_HOW}')
        empty = (mask.flatten(1).sum(1) <= 0).nonzero().flatten().tolist()
        if empty:
            which = [names[i] if i < len(names) else i for i in empty]
            raise ValueError(f'masked_metrics: the mask of view {which} keeps no pixel, so its '
                             'masked metrics are undefined')
        scores = view_metrics(pred, target, mask)
        return {key + self.suffix: value for key, value in scores.items()}
