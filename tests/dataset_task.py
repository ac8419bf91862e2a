"""A test-only plugin on torch Datasets: blobs of points with the task's own fixed splits.

Every read of a test sample appends a line to the file ``options["record"]``
(``test_reads.log`` in the working directory unless given), from whichever
process reads it, so a test can show when, and by whom, the test part was read.
``kind: regression`` makes the target a number; ``augment: false`` drops the
train-time transform; ``single: true`` returns one Dataset for the library to split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from tuneladder.tasks import DataInfo, Task

FEATURES = 8
CLASSES = 3


class Blobs(Dataset):
    """``n`` points around three fixed centres; sample i comes from (seed, i)."""

    def __init__(self, n: int, seed: int, *, kind: str, record: Path | None = None) -> None:
        centres = np.random.default_rng(0).normal(0, 2, (CLASSES, FEATURES))
        labels = np.arange(n) % CLASSES
        self.x = (
            centres[labels] + np.random.default_rng(seed).normal(0, 1, (n, FEATURES))
        ).astype(np.float32)
        self.kind, self.record = kind, record
        self.targets = (
            labels.tolist() if kind == "classification" else (3 * self.x.sum(1) + 50).tolist()
        )

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if self.record is not None:
            with open(self.record, "a") as handle:
                handle.write(f"{index} {os.getpid()}\n")
        return torch.from_numpy(self.x[index]), self.targets[index]


def jitter(x: torch.Tensor) -> torch.Tensor:
    """Augmentation: a little noise on every feature."""
    return x + 0.1 * torch.randn_like(x)


def make_task(options: Mapping[str, Any]) -> Task:
    kind = options.get("kind", "classification")
    n = int(options.get("samples", 240))
    record = Path(options.get("record", "test_reads.log")).resolve()

    def load_datasets() -> Any:
        if options.get("single", False):
            return Blobs(n, 1, kind=kind)
        return {
            "train": Blobs(n, 1, kind=kind),
            "val": Blobs(n // 4, 2, kind=kind),
            "test": Blobs(n // 4, 3, kind=kind, record=record),
        }

    return Task(
        name="blobs",
        kind=kind,
        load_datasets=load_datasets,
        train_transform=jitter if options.get("augment", True) else None,
        build_model=build_model,
        default_model={"width": 16, "dropout": 0.1},
    )


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    return nn.Sequential(
        nn.Linear(info.input_shape[0], int(hp["width"])),
        nn.ReLU(),
        nn.Dropout(float(hp["dropout"])),
        nn.Linear(int(hp["width"]), info.n_outputs),
    )


def read_count(record: Path) -> int:
    """Test samples read so far."""
    return len(record.read_text().splitlines()) if record.is_file() else 0
