"""The names of a trial folder's files: the one place they are spelled.

A module of its own, importing nothing, so that the bookkeeping that only reads
trial folders (status, the report, the MLflow mirror) need not load the trial
contract's code fingerprint, which reads the task's modules
(:mod:`tuneladder.store.trials`, the rest of the contract).
"""

from __future__ import annotations

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "HISTORY_COLUMNS",
    "HISTORY_FILE",
    "MODEL_FILE",
    "RESULT_FILE",
    "STATE_FILE",
]

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
# the training state a halving level stopped in: the next level continues from it
STATE_FILE = "state.pt"

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
