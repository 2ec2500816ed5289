"""``AffineAppearance`` (``MODELS``, config section ``appearance``): a per-image colour
transform of the rendered image, for photos with changing exposure and white balance.

Training image ``i`` has a learnt 12-vector (its embedding) that reads as a 3x3 colour
matrix and a bias: ``photo_i = (I + M_i) @ render + b_i``, starting at the identity
(``M_i = 0``, ``b_i = 0``). With ``center=True`` (default) the transforms are centred, i.e.
the mean ``M`` and ``b`` over the training images are subtracted, so the scene keeps the
average appearance of the training photos and the transforms only explain how each photo
departs from it (this fixes the gauge between scene colours and transforms).

Held-out and novel views get the identity (the average training appearance) by default;
``eval_mode='none'`` is the same, and there is no test-time fitting here (the NeRF-W
half-image protocol is not implemented; see docs/real_captures.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nerfreg.registry import MODELS

from .scene_modules import SceneModule, is_training_view, training_indices


@MODELS.register_module()
class AffineAppearance(SceneModule):
    """Per-training-image affine colour transform (see the module docstring).

    Args:
        lr: Adam learning rate of the transforms (group ``appearance``).
        final_ratio, decay_steps: the lr decays log-linearly to ``lr * final_ratio`` over
            ``decay_steps`` steps (set it to the run's length).
        weight_decay: Adam weight decay pulling each transform toward the identity.
        center: subtract the mean transform (see above).
    """

    def __init__(self, lr: float = 5e-3, final_ratio: float = 0.1, decay_steps: int = 10_000,
                 weight_decay: float = 0.0, center: bool = True) -> None:
        super().__init__()
        self.decay_steps = max(1, int(decay_steps))
        self.lr, self.final_ratio = float(lr), float(final_ratio)
        self.weight_decay, self.center = float(weight_decay), bool(center)
        self.embedding = nn.Parameter(torch.zeros(0, 12))

    @torch.no_grad()
    def setup(self, scene: Any) -> None:
        self.embedding = nn.Parameter(torch.zeros(len(scene.train), 12))

    def param_groups(self) -> list[dict[str, Any]]:
        return [dict(name='appearance', params=[self.embedding], lr=self.lr,
                     initial_lr=self.lr, weight_decay=self.weight_decay)]

    def scheduler_cfgs(self) -> list[dict[str, Any]]:
        return [dict(type='ExponentialDecayLR', groups=['appearance'],
                     max_steps=self.decay_steps, final_ratio=self.final_ratio)]

    def transforms(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """``(A [K,3,3], b [K,3])`` of the training images ``index [K]``."""
        emb = self.embedding
        if self.center:
            emb = emb - emb.mean(0, keepdim=True)
        emb = emb[index]
        eye = torch.eye(3, dtype=emb.dtype, device=emb.device)
        return eye + emb[:, :9].reshape(-1, 3, 3), emb[:, 9:]

    def transform_rgb(self, rgb: Tensor, batch: dict[str, Any]) -> Tensor:
        if not is_training_view(batch) or self.embedding.shape[0] == 0:
            return rgb
        a, b = self.transforms(training_indices(batch))
        if rgb.dim() == 2:  # rays [R,3]
            return torch.einsum('rij,rj->ri', a, rgb) + b
        return torch.einsum('bij,bhwj->bhwi', a, rgb) + b[:, None, None, :]

    def extra_repr(self) -> str:
        return f'images={self.embedding.shape[0]}, center={self.center}'
