"""Base class of models trained by the nerfreg trainer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from torch import Tensor, nn

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
    """Trainer-facing model interface (see docs/architecture.md, "Model")."""

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

    def get_metric_dict(self, render_results: dict[str, Any],
                        batch: dict[str, Any]) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError
