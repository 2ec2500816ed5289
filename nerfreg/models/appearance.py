"""``AffineAppearance`` (``MODELS``, config section ``appearance``): a per-image colour
transform of the rendered image, for photos with changing exposure and white balance.

Training image ``i`` has a learnt 12-vector (its embedding) that reads as a 3x3 colour
matrix and a bias: ``photo_i = (I + M_i) @ render + b_i``, starting at the identity
(``M_i = 0``, ``b_i = 0``). With ``center=True`` (default) the transforms are centred, i.e.
the mean ``M`` and ``b`` over the training images are subtracted, so the scene keeps the
average appearance of the training photos and the transforms only explain how each photo
departs from it (this fixes the gauge between scene colours and transforms).

Held-out and novel views get the identity (the average training appearance):
``eval_mode='identity'`` (default). ``eval_mode='nerfw'`` adds the NeRF-W protocol to the
evaluation: for each evaluated view a fresh transform (same parameterisation, starting at the
identity, not centred) is fitted by L-BFGS to the LEFT half of that view only (the render
is fixed: nothing flows into the scene), and the view's RIGHT half is scored with it, as
``psnr_nerfw`` / ``ssim_nerfw`` beside the plain metrics. Loss masks of the view, when
present, weight the fit; the score covers the whole right half.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nerfreg.metrics.functional import view_metrics
from nerfreg.registry import MODELS

from .scene_modules import SceneModule, is_training_view, training_indices

EVAL_MODES = ('identity', 'nerfw')


def affine_from_embedding(emb: Tensor) -> tuple[Tensor, Tensor]:
    """``(I + M [K,3,3], b [K,3])`` of 12-vectors ``emb [K,12]``."""
    eye = torch.eye(3, dtype=emb.dtype, device=emb.device)
    return eye + emb[:, :9].reshape(-1, 3, 3), emb[:, 9:]


def apply_affine(a: Tensor, b: Tensor, rgb: Tensor) -> Tensor:
    """Per-view (``rgb [B,H,W,3]``) or per-ray (``rgb [R,3]``) transform ``a rgb + b``."""
    if rgb.dim() == 2:
        return torch.einsum('rij,rj->ri', a, rgb) + b
    return torch.einsum('bij,bhwj->bhwi', a, rgb) + b[:, None, None, :]


@MODELS.register_module()
class AffineAppearance(SceneModule):
    """Per-training-image affine colour transform (see the module docstring).

    Args:
        lr: Adam learning rate of the transforms (group ``appearance``).
        final_ratio, decay_steps: the lr decays log-linearly to ``lr * final_ratio`` over
            ``decay_steps`` steps (set it to the run's length).
        weight_decay: Adam weight decay pulling each transform toward the identity.
        center: subtract the mean transform (see above).
        eval_mode: 'identity' (held-out views as the average photo) or 'nerfw' (also
            report ``psnr_nerfw`` / ``ssim_nerfw``, see the module docstring).
        eval_steps: L-BFGS iterations of the per-view fit ('nerfw').
    """

    def __init__(self, lr: float = 5e-3, final_ratio: float = 0.1, decay_steps: int = 10_000,
                 weight_decay: float = 0.0, center: bool = True, eval_mode: str = 'identity',
                 eval_steps: int = 200) -> None:
        super().__init__()
        if eval_mode not in EVAL_MODES:
            raise ValueError(f'appearance.eval_mode must be one of {EVAL_MODES}, got '
                             f'{eval_mode!r}')
        self.eval_mode, self.eval_steps = eval_mode, max(1, int(eval_steps))
        self.decay_steps = max(1, int(decay_steps))
        self.lr, self.final_ratio = float(lr), float(final_ratio)
        self.weight_decay, self.center = float(weight_decay), bool(center)
        self.embedding = nn.Parameter(torch.zeros(0, 12))

    @classmethod
    def check_disabled(cls, section: str, cfg: dict[str, Any]) -> None:
        if cfg.get('eval_mode', 'identity') != 'identity':
            raise ValueError(f'{section}.eval_mode={cfg["eval_mode"]!r} needs the section on: '
                             f'add {section}.enabled=True (a model trained without per-image '
                             'appearance has no transform to fit)')

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
        return affine_from_embedding(emb[index])

    def transform_rgb(self, rgb: Tensor, batch: dict[str, Any]) -> Tensor:
        if not is_training_view(batch) or self.embedding.shape[0] == 0:
            return rgb
        a, b = self.transforms(training_indices(batch))
        return apply_affine(a, b, rgb)

    def fit_view_transform(self, pred: Tensor, target: Tensor, weight: Tensor | None = None
                           ) -> tuple[Tensor, Tensor]:
        """A fresh transform per view, ``(A [B,3,3], b [B,3])`` from the identity, fitted by
        L-BFGS so that ``A pred + b`` matches ``target`` (``[B,H,W,3]``) in weighted MSE
        (``weight [B,H,W,1]``). Reads only the pixels it is given; ``pred`` is detached."""
        pred, target = pred.detach().float(), target.detach().float()
        w = torch.ones_like(pred[..., :1]) if weight is None else weight.detach().float()
        norm = (w.flatten(1).sum(1) * 3).clamp_min(1e-8)
        emb = torch.zeros(pred.shape[0], 12, device=pred.device, requires_grad=True)
        opt = torch.optim.LBFGS([emb], lr=1.0, max_iter=self.eval_steps, history_size=20,
                                tolerance_grad=1e-12, tolerance_change=1e-15,
                                line_search_fn='strong_wolfe')

        def closure() -> Tensor:
            opt.zero_grad()
            err = (apply_affine(*affine_from_embedding(emb), pred) - target).pow(2) * w
            loss = (err.flatten(1).sum(1) / norm).sum()  # views are independent
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return affine_from_embedding(emb.detach())

    def eval_metrics(self, pred: Tensor, target: Tensor, batch: dict[str, Any],
                     render: Any = None) -> dict[str, Tensor]:
        """NeRF-W protocol ('nerfw'): fit on the left half, score the right half."""
        if self.eval_mode != 'nerfw':
            return {}
        width = pred.shape[2]
        if pred.dim() != 4 or width < 2:
            raise ValueError(f"appearance.eval_mode='nerfw' needs whole views [B,H,W,3] at "
                             f'least 2 px wide, got {tuple(pred.shape)}')
        half = width // 2
        mask = batch.get('mask')
        a, b = self.fit_view_transform(pred[:, :, :half], target[:, :, :half],
                                       None if mask is None else mask[:, :, :half])
        right = apply_affine(a.to(pred.dtype), b.to(pred.dtype), pred[:, :, half:])
        scores = view_metrics(right, target[:, :, half:])
        return {key + '_nerfw': value for key, value in scores.items()}

    def extra_repr(self) -> str:
        return (f'images={self.embedding.shape[0]}, center={self.center}, '
                f'eval_mode={self.eval_mode}')
