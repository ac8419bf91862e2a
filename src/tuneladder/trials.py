"""The trial contract: a trial's config, its key, its files and when it is complete.

A trial folder holds ``config.json``, ``history.csv`` and ``result.json``;
``result.json`` is written last, so a trial is complete when its result carries
the expected key. While it runs the folder also holds ``checkpoint.pt``, and a
seed trial keeps its best weights in ``model.pt``. This module is the one home
of those facts, and it imports no torch: bookkeeping rules (collect, status)
read trials in a process that never loads it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneladder.env import provenance
from tuneladder.hparams import TrialConfig, config_hash
from tuneladder.io import read_json, write_json, write_torch

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tuneladder.runner import Outcome
    from tuneladder.tasks import DataInfo

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "HISTORY_COLUMNS",
    "HISTORY_FILE",
    "MODEL_FILE",
    "RESULT_FILE",
    "BuildModel",
    "Checkpoint",
    "base_params",
    "derive_seed",
    "is_complete",
    "make_result",
    "make_trial_config",
    "read_result",
    "stale_reason",
    "trial_key",
    "write_result",
]

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"

# One row per epoch of ``history.csv``, in this order.
HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_metric",
    "val_loss",
    "val_metric",
    "lr",
    "grad_norm",
    "weight_norm",
    "epoch_seconds",
    "peak_memory_mb",
)

# A task's model factory: ``(model hyperparameters, data info) -> nn.Module``.
BuildModel = Callable[[Mapping[str, Any], "DataInfo"], "nn.Module"]


def base_params(train: Mapping[str, Any], default_model: Mapping[str, Any]) -> dict[str, Any]:
    """Fixed hyperparameters: the task's default model, then the config's ``train``."""
    params = {**default_model, **train}
    params.pop("epochs", None)
    return params


def make_trial_config(
    base: Mapping[str, Any], sampled: Mapping[str, Any], *, epochs: int, seed: int
) -> TrialConfig:
    """Sampled values win over fixed ones; the result is saved with the trial."""
    return TrialConfig.from_flat({**base, **sampled}, epochs=epochs, seed=seed)


def derive_seed(ladder_seed: int, rung: str, index: int) -> int:
    """A trial's training seed: distinct per trial, a pure function of the ladder's seed."""
    entropy = [ladder_seed, zlib.crc32(rung.encode()), index]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))


def trial_key(config: TrialConfig, data_fingerprint: str, metric: str) -> str:
    """What must match for a finished trial to be reused: config, data and metric."""
    return f"{config_hash(config)}-{data_fingerprint}-{metric}"


def read_result(trial_dir: str | Path) -> dict[str, Any] | None:
    """The trial's ``result.json``, or None when there is none (or it cannot be read)."""
    try:
        return read_json(Path(trial_dir) / RESULT_FILE)
    except (OSError, ValueError):
        return None


def write_result(trial_dir: str | Path, result: Mapping[str, Any]) -> None:
    """Written atomically, and last: from now on the trial is complete."""
    write_json(Path(trial_dir) / RESULT_FILE, result)


def stale_reason(result: Mapping[str, Any] | None, key: str) -> str | None:
    """Why a recorded result cannot be reused for ``key``; None when it can."""
    if result is None:
        return "not run"
    if result.get("key") != key:
        return "stale: config, data or metric changed"
    return None


def is_complete(trial_dir: str | Path, key: str) -> bool:
    """A trial is complete when its result.json was written for exactly this key."""
    return stale_reason(read_result(trial_dir), key) is None


def make_result(
    outcome: Outcome,
    *,
    config: TrialConfig,
    trial: Mapping[str, Any] | None,
    metric: str,
    mode: str,
    key: str,
    data_fingerprint: str,
    device: torch.device,
    precision: str,
    threads: int,
    started: float,
) -> dict[str, Any]:
    """What ``result.json`` records: the outcome, what produced it, and where."""
    last = outcome.history[-1] if outcome.history else {}
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "trial": dict(trial or {}),
        "metric": {"name": metric, "mode": mode},
        "best_val_metric": outcome.best_val_metric,
        "best_val_loss": outcome.best_val_loss,
        "best_epoch": outcome.best_epoch,
        "epochs_run": len(outcome.history),
        "stopped_early": outcome.stopped_early,
        "resumed_from_epoch": outcome.resumed_from_epoch,
        "final_train_loss": last.get("train_loss"),
        "final_val_loss": last.get("val_loss"),
        "first_loss": outcome.first_loss,
        "train_seconds": sum(r["epoch_seconds"] for r in outcome.history),
        "total_seconds": time.time() - started,
        "peak_memory_mb": max((r["peak_memory_mb"] for r in outcome.history), default=None),
        "seed": config.seed,
        "config": config.to_json(),
        "params": config.flat(),
        "config_hash": config_hash(config),
        "key": key,
        "data_fingerprint": data_fingerprint,
        "device": str(device),
        "precision": precision if device.type == "cuda" else "fp32",
        "threads": threads,
        "started_at": started,
        **provenance(device),
    }


class Checkpoint:
    """A resumable snapshot of a running trial, valid only for the same key.

    What it holds is the training state's ``state_dict()``
    (:class:`tuneladder.runner.TrainState`) plus the key; torch is imported
    only when one is saved or loaded.
    """

    def __init__(self, path: str | Path, key: str, every_s: float) -> None:
        self.path, self.key, self.every_s = Path(path), key, every_s
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: Mapping[str, Any]) -> None:
        write_torch(self.path, {"key": self.key, **state})
        self._last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        import torch

        try:
            state = torch.load(self.path, weights_only=True, map_location="cpu")
        except Exception:  # a torn or foreign file is as good as none
            return None
        return state if state.get("key") == self.key else None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
