"""Materialise a task's data once, split, and hand trials the train/val part only.

The prepare rung writes ``train.pt``, ``val.pt``, ``test.pt`` and ``meta.json``.
Tuning code calls :func:`load_train_val`, which cannot return test data; only
:func:`load_test`, called by the final rung, reads ``test.pt``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneladder.io import read_json, write_json, write_torch
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


def prepare(task: Task, out_dir: str | Path, *, seed: int) -> dict[str, Any]:
    """Load the task's arrays, split, standardise and write them. Returns the meta."""
    out_dir = Path(out_dir)
    x, y = task.load_arrays()
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"task {task.name}: x has {len(x)} rows but y has {len(y)}")
    if not np.isfinite(x).all():
        raise ValueError(f"task {task.name}: features contain NaN or inf")
    classification = task.kind == "classification"
    if classification:
        y = y.astype(np.int64)
        n_outputs = int(y.max()) + 1
        if len(np.unique(y)) < 2:
            raise ValueError(f"task {task.name}: the target has a single class")
    else:
        y = y.astype(np.float32).reshape(len(y), -1)
        n_outputs = y.shape[1]
    train, val, test = split_indices(
        y if classification else np.zeros(len(y)), task.split, seed=seed, stratify=classification
    )
    stats = None
    if task.standardize:
        # statistics of the train split only: nothing of val or test leaks into training
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std[std == 0] = 1.0
        x = (x - mean) / std
        stats = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    info = DataInfo(task.kind, tuple(x.shape[1:]), n_outputs)
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
