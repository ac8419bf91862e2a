from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

__all__ = ["METRICS", "DataInfo", "Task"]

# Metrics each kind of task can select on; loss is always recorded too.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "loss"),
    "regression": ("rmse", "mae", "r2", "loss"),
}


@dataclass(frozen=True)
class DataInfo:
    """What a model factory needs to know about the data, saved in ``data/meta.json``.

    ``target_mean`` and ``target_std`` (one value per output) are set when the
    prepared regression targets are standardised, ``(y - target_mean) /
    target_std`` with train-split statistics: the model learns that target, and
    metrics are turned back into the target's own units with ``target_std``.
    Both are None when targets are stored as they are (classification, or a
    task with ``standardize_target=False``).
    """

    kind: str  # classification | regression
    input_shape: tuple[int, ...]
    n_outputs: int  # classes, or regression targets
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if (self.target_mean is None) != (self.target_std is None):
            raise ValueError(
                "target_mean and target_std are set together, got"
                f" {self.target_mean=}, {self.target_std=}"
            )
        if self.target_std is not None and min(self.target_std, default=0.0) <= 0:
            raise ValueError(f"target_std must be > 0, got {self.target_std=}")

    def to_json(self) -> dict[str, Any]:
        scale = None
        if self.target_mean is not None and self.target_std is not None:
            scale = {"mean": list(self.target_mean), "std": list(self.target_std)}
        return {
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
            "target_scale": scale,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataInfo:
        # data prepared before target scaling existed has no target_scale: raw targets
        scale = data.get("target_scale")
        return cls(
            data["kind"],
            tuple(data["input_shape"]),
            int(data["n_outputs"]),
            target_mean=tuple(float(v) for v in scale["mean"]) if scale else None,
            target_std=tuple(float(v) for v in scale["std"]) if scale else None,
        )


@dataclass(frozen=True, kw_only=True)
class Task:
    """A dataset and a model family.

    Args:
        name: Shown in reports and paths of MLflow runs.
        kind: ``classification`` (cross-entropy, accuracy) or ``regression``
            (mean squared error, rmse/mae/r2).
        load_arrays: Returns all samples as ``(x, y)`` numpy arrays; the
            library splits them, so a task never decides what is test data.
            Called once, by the prepare rung, never on the trial path.
        build_model: ``(model_hyperparameters, data_info) -> nn.Module``.
        default_model: The model hyperparameters used where the config sets
            none; also "the task's default model" of the untuned baseline.
        standardize: Scale features to zero mean and unit variance with
            statistics of the train split only.
        standardize_target: Regression only: the model learns the target
            scaled to zero mean and unit variance per output (train-split
            statistics), so that learning rates, the overfit check and the
            loss mean the same whatever the target's units. rmse, mae and r2
            are still reported in the target's own units; the recorded
            ``loss`` is the training objective, the mean squared error on the
            scaled target. Set False when the model's output must be the raw
            target (its last layer already denormalises, say): the loss is then
            the mean squared error in the target's units. Ignored for
            classification.
        applies: ``(model_hyperparameters) -> names`` of those the model
            built from them reads (``channels`` means nothing to an MLP, say);
            the summary and the report show only these. None: all of them.

    Example::

        def make_task(options):
            return Task(name="sine", kind="regression", load_arrays=load,
                        build_model=build, default_model={"width": 64})
    """

    name: str
    kind: str
    load_arrays: Callable[[], tuple[np.ndarray, np.ndarray]]
    build_model: Callable[[Mapping[str, Any], DataInfo], nn.Module]
    default_model: Mapping[str, Any] = field(default_factory=dict)
    standardize: bool = False
    standardize_target: bool = True
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in METRICS:
            raise ValueError(f"kind must be one of {', '.join(METRICS)}, got {self.kind!r}")
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(
                f"split must be three positive fractions summing to 1, got {self.split}"
            )

    @property
    def model_params(self) -> frozenset[str]:
        """The hyperparameter names ``build_model`` reads: others in a config are typos."""
        return frozenset(self.default_model)

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.kind]
