"""Base class of models trained by the nerfreg trainer."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class BaseModel(nn.Module):
    """Trainer-facing model interface (see docs/architecture.md, "Model")."""

    def setup(self, scene: Any) -> None:
        """Initialise parameters from the scene dataset."""

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
