"""The hyperparameters of one trial, split into training and model parts."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ONLY_WITH", "TRAIN_FIELDS", "TrialConfig", "applicable", "config_hash", "unused"]


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides a trial's result, saved with it as ``config.json``."""

    # budget
    epochs: int = 30
    seed: int = 0
    # optimizer
    optimizer: str = "adamw"  # sgd | momentum | adam | adamw | radam
    lr: float = 3e-4
    momentum: float = 0.9  # the momentum optimizer only (sgd has none)
    nesterov: bool = False  # the momentum optimizer only
    weight_decay: float = 0.01
    batch_size: int = 64
    # schedule, stepped every optimizer step
    schedule: str = "constant"  # constant | step | exponential | cosine | onecycle | warmup_cosine
    warmup_epochs: float = 1.0  # warmup_cosine
    step_epochs: int = 10  # step: multiply by gamma every step_epochs
    gamma: float = 0.5  # step and exponential (per epoch)
    # stability
    grad_clip: float | None = None
    patience: int | None = None  # early stopping on the val metric, in epochs
    diverge_factor: float = 5.0  # train loss above this multiple of the first loss: diverged
    # task-specific model hyperparameters (arch, width, dropout, ...)
    model: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_flat(cls, params: Mapping[str, Any], *, epochs: int, seed: int) -> TrialConfig:
        """Build from one flat mapping, as the config's ``train`` and ``space`` write it."""
        train = {k: v for k, v in params.items() if k in TRAIN_FIELDS}
        model = {k: v for k, v in params.items() if k not in TRAIN_FIELDS}
        train.update(epochs=epochs, seed=seed)
        return cls(**train, model=dict(sorted(model.items())))

    def flat(self) -> dict[str, Any]:
        """All hyperparameters in one mapping: what MLflow, reports and sweeps compare."""
        out = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"
        }
        out.update(self.model)
        return out

    def to_json(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies field by field, and a 10,000-trial plan
        # calls this 10,000 times; only ``model`` holds anything mutable
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = copy.deepcopy(dict(self.model))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialConfig:
        return cls(**{**data, "model": dict(data.get("model", {}))})


TRAIN_FIELDS: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(TrialConfig) if f.name not in ("model", "seed")
)


def config_hash(config: TrialConfig) -> str:
    """A stable short hash: a finished trial is reused only when this matches."""
    text = json.dumps(config.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Settings that apply only under some values of another: name -> (setting, the values).
ONLY_WITH: dict[str, tuple[str, frozenset[str]]] = {
    "momentum": ("optimizer", frozenset({"momentum"})),
    "nesterov": ("optimizer", frozenset({"momentum"})),
    "step_epochs": ("schedule", frozenset({"step"})),
    "gamma": ("schedule", frozenset({"step", "exponential"})),
    "warmup_epochs": ("schedule", frozenset({"warmup_cosine"})),  # onecycle's warm-up is fixed
}
# Guards of the training loop, not hyperparameters: they decide when a trial is stopped.
_GUARDS = frozenset({"diverge_factor"})


def unused(
    params: Mapping[str, Any],
    *,
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
) -> set[str]:
    """The names in a flat config that the trial built from it never reads.

    ``momentum`` and ``nesterov`` unless the optimizer is ``momentum``; ``gamma``
    unless the schedule is ``step`` or ``exponential``; ``step_epochs`` unless it
    is ``step``; ``warmup_epochs`` unless it is ``warmup_cosine``; and the model
    hyperparameters (names outside :data:`TRAIN_FIELDS`) that ``model_applies`` (a
    task's :attr:`~tuneladder.tasks.Task.applies`) leaves out, none when it is None.
    The sweeps sample a searched parameter only where it is read
    (:func:`tuneladder.search.space.active`); the summary lists only the others.

    Example::

        >>> sorted(unused({"optimizer": "adamw", "momentum": 0.9, "lr": 1e-3}))
        ['momentum']
    """
    train = {k for k in params if k in TRAIN_FIELDS or k == "seed"}
    model = {k: v for k, v in params.items() if k not in train}
    model_kept = set(model) if model_applies is None else set(model_applies(model))
    out = {name for name in model if name not in model_kept}
    for name, (setting, values) in ONLY_WITH.items():
        if name in params and setting in params and params[setting] not in values:
            out.add(name)
    return out


def applicable(
    params: Mapping[str, Any],
    *,
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
) -> dict[str, Any]:
    """The hyperparameters of a flat config that the trial actually used, in their order.

    Dropped: runner guards (``diverge_factor``) and what :func:`unused` names.

    Example::

        >>> applicable({"optimizer": "adamw", "momentum": 0.9, "lr": 1e-3})
        {'optimizer': 'adamw', 'lr': 0.001}
    """
    dropped = unused(params, model_applies=model_applies) | _GUARDS
    return {name: value for name, value in params.items() if name not in dropped}
