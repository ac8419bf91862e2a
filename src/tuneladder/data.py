"""Materialise a task's data once, split, and hand trials the train/val part only.

The prepare rung writes ``train.pt``, ``val.pt``, ``test.pt`` and ``meta.json``.
Tuning code calls :func:`load_train_val`, which cannot return test data; only
:func:`load_test`, called by the final rung, reads ``test.pt``.

Regression targets are saved standardised with train-split statistics (unless
the task opts out); their mean and std per output are in ``meta.json`` under
``info.target_scale``, and :mod:`tuneladder.metrics` reports errors in the
target's own units with them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneladder.io import read_json, write_json, write_torch
from tuneladder.preflight import DataError, call_task_function, wrong_return
from tuneladder.tasks import DataInfo, Task

__all__ = [
    "Split",
    "TrainVal",
    "load_info",
    "load_test",
    "load_train_val",
    "prepare",
    "split_indices",
]


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class TrainVal:
    """What tuning may see: no test split in here by construction."""

    train: Split
    val: Split
    info: DataInfo
    fingerprint: str  # changes whenever the prepared data changes

    def to(self, device: torch.device | str) -> TrainVal:
        return TrainVal(self.train.to(device), self.val.to(device), self.info, self.fingerprint)


def split_indices(
    y: np.ndarray, fractions: tuple[float, float, float], *, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/val/test indices; stratified by class for classification."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    parts: list[list[np.ndarray]] = [[], [], []]
    for group in groups:
        group = rng.permutation(group)
        n_train = int(round(fractions[0] * len(group)))
        n_val = int(round(fractions[1] * len(group)))
        parts[0].append(group[:n_train])
        parts[1].append(group[n_train : n_train + n_val])
        parts[2].append(group[n_train + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    for name, idx in (("train", train), ("val", val), ("test", test)):
        if len(idx) == 0:
            raise ValueError(
                f"the {name} split is empty: too few samples ({len(y)}) for {fractions}"
            )
    return train, val, test


def _checked_arrays(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """The task's samples as float32 features and int64 labels or (n, outputs) float32 targets.

    What a model cannot train on is a DataError naming the task and the column;
    an exception inside ``load_arrays`` is a UserCodeError pointing at its line.
    """
    source = f"task {task.name!r}"
    arrays = call_task_function(task.load_arrays)
    if not (isinstance(arrays, tuple | list) and len(arrays) == 2):
        raise wrong_return(task.load_arrays, arrays, "a pair (x, y) of arrays")
    try:
        x, y = np.asarray(arrays[0]), np.asarray(arrays[1])
    except (TypeError, ValueError) as err:  # ragged lists, say
        raise DataError(f"{source}: x and y must be arrays ({err})") from None
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{source}: x must hold a row of features per sample, got shape {x.shape}")
    if len(x) != len(y):
        raise DataError(f"{source}: x has {len(x)} rows but y has {len(y)}")
    x = _as_float32(x, f"{source}: feature")
    _refuse_non_finite(x, f"{source}: feature")
    if task.kind == "regression":
        y = _as_float32(y.reshape(len(y), -1), f"{source}: target")
        _refuse_non_finite(y, f"{source}: target")
        return x, y
    if task.kind == "multilabel":
        return x, _multilabel_targets(y, source)
    if y.ndim != 1:
        raise DataError(f"{source}: y must hold one class index per sample, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{source}: classification targets must be class indices 0, 1, ...,"
            f" got {y[:1].tolist()[0]!r}"
        )
    labels = y.astype(np.float64)
    _refuse_non_finite(labels.reshape(len(y), 1), f"{source}: target")
    bad = (labels < 0) | (labels != np.round(labels))
    if bad.any():
        value = y[np.flatnonzero(bad)[0]]
        raise DataError(
            f"{source}: classification targets must be class indices 0, 1, ..., got {value}"
        )
    y = y.astype(np.int64)
    if len(np.unique(y)) < 2:
        raise DataError(f"{source}: the target has a single class ({y[0]})")
    return x, y


def _multilabel_targets(y: np.ndarray, source: str) -> np.ndarray:
    """A multilabel task's targets: one row of 0/1 per sample, as float32 (BCE's targets)."""
    if y.ndim != 2:
        raise DataError(
            f"{source}: y must hold a row of 0/1 labels per sample, got shape {y.shape}"
        )
    y = _as_float32(y, f"{source}: label")
    bad = (y != 0) & (y != 1)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(
            f"{source}: label {_column(y, column)} must be 0 or 1, got {y[row, column]}"
            f" (sample {row})"
        )
    return y


def _as_float32(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as float32; ``what`` names the samples' part (task and feature/target)."""
    try:
        return values.astype(np.float32)
    except (TypeError, ValueError) as err:
        flat = values.reshape(len(values), -1)
        for j in range(flat.shape[1]):  # find the column, only to name it
            try:
                flat[:, j].astype(np.float32)
            except (TypeError, ValueError):
                raise DataError(f"{what} {_column(values, j)} is not numeric ({err})") from None
        raise DataError(f"{what} values are not numeric ({err})") from None


def _refuse_non_finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values.reshape(len(values), -1))
    if bad.any():
        rows, columns = np.nonzero(bad)
        raise DataError(
            f"{what} {_column(values, columns[0])} is NaN or inf in"
            f" {len(np.unique(rows))} of {len(values)} samples (first: sample {rows[0]})"
        )


def _column(values: np.ndarray, flat_index: int) -> str:
    """A feature's name by position: ``column 3``, or ``(0, 4, 5)`` for images."""
    shape = values.shape[1:]
    if len(shape) <= 1:
        return f"column {flat_index}"
    return str(tuple(int(i) for i in np.unravel_index(flat_index, shape)))


def prepare(task: Task, out_dir: str | Path, *, seed: int) -> dict[str, Any]:
    """Load the task's arrays, split, standardise and write them. Returns the meta."""
    out_dir = Path(out_dir)
    x, y = _checked_arrays(task)
    classification = task.kind == "classification"
    n_outputs = int(y.max()) + 1 if classification else y.shape[1]
    try:
        train, val, test = split_indices(
            y if classification else np.zeros(len(y)),
            task.split,
            seed=seed,
            stratify=classification,
        )
    except ValueError as err:
        raise DataError(f"task {task.name!r}: {err}") from None
    # statistics of the train split only: nothing of val or test leaks into training
    stats = None
    if task.standardize:
        mean, std = _train_stats(x[train])
        x = (x - mean) / std
        stats = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    target_mean = target_std = None
    if task.kind == "regression" and task.standardize_target:
        # the model learns a unit-variance target, so the loss, the LR range and the
        # overfit check mean the same whatever the target's units (metrics convert back)
        y_mean, y_std = _train_stats(y[train])
        y = (y - y_mean) / y_std
        target_mean, target_std = tuple(y_mean.tolist()), tuple(y_std.tolist())
    info = DataInfo(
        task.kind,
        tuple(x.shape[1:]),
        n_outputs,
        target_mean=target_mean,
        target_std=target_std,
    )
    digest = hashlib.sha256()
    for name, idx in (("train", train), ("val", val), ("test", test)):
        xs, ys = torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy())
        write_torch(out_dir / f"{name}.pt", {"x": xs, "y": ys})
        digest.update(xs.numpy().tobytes())
        digest.update(ys.numpy().tobytes())
    meta = {
        "task": task.name,
        "info": info.to_json(),
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "split": list(task.split),
        "seed": seed,
        "standardize": stats,
        "fingerprint": digest.hexdigest()[:16],
    }
    write_json(out_dir / "meta.json", meta)
    return meta


def _train_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per column, a std of 0 (a constant column) replaced by 1."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std[std == 0] = 1.0
    return mean, std


def load_info(data_dir: str | Path) -> DataInfo:
    return DataInfo.from_json(read_json(Path(data_dir) / "meta.json")["info"])


def _load_split(path: Path) -> Split:
    if not path.is_file():
        raise FileNotFoundError(f"prepared data not found: {path} (run the prepare rung first)")
    blob = torch.load(path, weights_only=True)
    return Split(blob["x"], blob["y"])


def load_train_val(data_dir: str | Path) -> TrainVal:
    data_dir = Path(data_dir)
    meta = read_json(data_dir / "meta.json")
    return TrainVal(
        train=_load_split(data_dir / "train.pt"),
        val=_load_split(data_dir / "val.pt"),
        info=DataInfo.from_json(meta["info"]),
        fingerprint=meta["fingerprint"],
    )


def load_test(data_dir: str | Path) -> Split:
    """The held-out split. Only the final rung calls this, once per chosen model."""
    return _load_split(Path(data_dir) / "test.pt")
