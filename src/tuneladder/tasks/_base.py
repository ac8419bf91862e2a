from __future__ import annotations

from collections.abc import Callable, Mapping
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
    """What a model factory needs to know about the data, saved in ``data/meta.json``."""

    kind: str  # classification | regression
    input_shape: tuple[int, ...]
    n_outputs: int  # classes, or regression targets

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataInfo:
        return cls(data["kind"], tuple(data["input_shape"]), int(data["n_outputs"]))


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
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)

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
