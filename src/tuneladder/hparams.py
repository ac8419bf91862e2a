"""The hyperparameters of one trial, split into training and model parts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TRAIN_FIELDS", "TrialConfig", "config_hash"]


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides a trial's result, saved with it as ``config.json``."""

    # budget
    epochs: int = 30
    seed: int = 0
    # optimizer
    optimizer: str = "adamw"  # sgd | momentum | adam | adamw | radam
    lr: float = 3e-4
    momentum: float = 0.9  # used by sgd and momentum
    nesterov: bool = False
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
        out = dataclasses.asdict(self)
        out["model"] = dict(self.model)
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
