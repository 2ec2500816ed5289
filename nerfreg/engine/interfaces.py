"""What the trainer needs from its parts, as ``typing.Protocol`` classes.

Components need not inherit from these: a class matches when it has the methods (checked
with ``isinstance`` on ``runtime_checkable`` protocols, once, when the trainer is built).
The four core protocols are required; the capability protocols below them are optional and
switch a behaviour on when present. ``docs/architecture.md`` describes the contract.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol, runtime_checkable


@runtime_checkable
class DataPipelineProtocol(Protocol):
    """Training views in a seeded order, evaluation splits in order.

    Distributed evaluation calls ``iter_split(split, shard=True)`` (this rank's views). A
    pipeline that is also ``Stateful`` has its order and position saved in checkpoints
    (needed for an exact resume).
    """

    def next_train_batch(self) -> dict: ...

    def iter_split(self, split: str) -> Iterable[dict]: ...


@runtime_checkable
class ModelProtocol(Protocol):
    """An ``nn.Module``: batch -> render inputs; losses and optimizer inputs. Validation
    and test also need ``MetricProvider``."""

    def __call__(self, batch: dict) -> Any: ...

    def get_loss_dict(self, render_results: dict, batch: dict) -> dict: ...

    def get_optimizer_dict(self, loss_dict: dict, render_results: dict, batch: dict,
                           step: int) -> dict: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


@runtime_checkable
class RendererProtocol(Protocol):
    """``renderer(render_inputs, batch) -> render_results``."""

    def __call__(self, render_inputs: Any, batch: dict) -> dict: ...


@runtime_checkable
class OptimizerProtocol(Protocol):
    """Parameter and structure update from the model's optimizer dict; its state for
    checkpoints (a resume also calls ``load_state_dict``)."""

    def update_model(self, **optimizer_dict: Any) -> Any: ...

    def state_dict(self) -> dict: ...


# ---------------------------------------------------------------- optional capabilities
@runtime_checkable
class MetricProvider(Protocol):
    """A model that scores renders (``{'psnr': [B], ...}``): checked when a val/test loop
    starts, so a model that is only trained need not have it. A ``get_metric_dict`` with a
    ``render`` parameter also gets ``render(overrides)``: the batch rendered again with
    render-input overrides (a test-time fit of the camera needs it)."""

    def get_metric_dict(self, render_results: dict, batch: dict) -> dict: ...


@runtime_checkable
class Stateful(Protocol):
    """Has state to put in checkpoints (data pipelines and renderers may)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


@runtime_checkable
class HasScene(Protocol):
    """A pipeline exposing its scene dataset (cameras, points, ``scene_extent``)."""

    dataset: Any


@runtime_checkable
class SceneInitialised(Protocol):
    """A model that initialises itself from the scene (points, extent) before training."""

    def setup(self, scene: Any) -> None: ...


@runtime_checkable
class StepAware(Protocol):
    """A model with step-driven schedules (e.g. SH degree) that must advance on skipped
    steps and be set to its final stage when loaded from a file without a step (PLY)."""

    def set_step(self, step: int) -> None: ...


@runtime_checkable
class ViewSplitter(Protocol):
    """A pipeline that splits a multi-view batch into single-view batches."""

    def split_views(self, batch: dict) -> list[dict]: ...


@runtime_checkable
class ResultConcatenator(Protocol):
    """A renderer that joins single-view results into one multi-view result."""

    def concat_results(self, results: list[dict]) -> dict: ...


@runtime_checkable
class GradientResettable(Protocol):
    """An optimizer with state to clear when a step is skipped."""

    def zero_grad(self) -> None: ...


@runtime_checkable
class TargetProvider(Protocol):
    """A model whose ground truth differs from ``batch['image']`` (e.g. re-composited on
    the render's random background); metrics and pictures compare against it."""

    def target_image(self, render_results: dict, batch: dict) -> Any: ...


def target_image(model: Any, render_results: dict, batch: dict) -> Any:
    """What a render is compared with: the model's ``target_image`` or ``batch['image']``."""
    if isinstance(model, TargetProvider):
        return model.target_image(render_results, batch)
    return batch['image']


@runtime_checkable
class TakesConfigSections(Protocol):
    """A model that takes the top-level config sections it names (``engine/sections.py``)."""

    config_sections: tuple[str, ...]

    def take_config_sections(self, sections: dict, scene: Any = None) -> None: ...

    def section_schedulers(self) -> list[dict]: ...


def require(obj: Any, protocol: type, key: str) -> None:
    """Raise a ``TypeError`` naming the config section and the missing methods when ``obj``
    does not satisfy ``protocol``."""
    if isinstance(obj, protocol):
        return
    names = [n for n in protocol.__dict__.get('__annotations__', {})]
    names += [n for n, v in vars(protocol).items() if callable(v) and not n.startswith('_')]
    names += ['__call__'] if '__call__' in vars(protocol) else []
    missing = [n for n in names if not hasattr(obj, n)]
    raise TypeError(f'`{key}` built a {type(obj).__name__}, which lacks {missing} required by '
                    f'{protocol.__name__} (nerfreg/engine/interfaces.py). Add them to the '
                    'class or choose another `type`.')


__all__ = ['DataPipelineProtocol', 'ModelProtocol', 'RendererProtocol', 'OptimizerProtocol',
           'MetricProvider', 'Stateful', 'HasScene', 'SceneInitialised', 'StepAware',
           'ViewSplitter', 'ResultConcatenator', 'GradientResettable', 'TargetProvider',
           'TakesConfigSections', 'require', 'target_image']
