"""A test-only plugin (``imbalanced_task:make_task``): a binary task where one sample in ten
is positive, trained on a class-weighted loss, with a metric of its own.

Two overlapping Gaussian clouds, so no model separates them and ROC-AUC stays
well inside (0.5, 1); predicting the majority class scores an accuracy of 0.9
and a ROC-AUC of 0.5, which is why such a task is selected on ROC-AUC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneladder.tasks import DataInfo, Metric, Task

SAMPLES = 600
POSITIVE_SHARE = 0.1


def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(SAMPLES) < POSITIVE_SHARE).astype(np.int64)
    x = rng.normal(0.0, 1.0, size=(SAMPLES, 4)) + 1.2 * y[:, None] * np.array([1, -1, 0.5, 0])
    return x.astype(np.float32), y


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    width = int(hp["width"])
    return nn.Sequential(
        nn.Linear(info.input_shape[0], width), nn.ReLU(), nn.Linear(width, info.n_outputs)
    )


def weighted_loss(info: DataInfo) -> nn.Module:
    # the positives are rare: each counts as much as nine negatives
    return nn.CrossEntropyLoss(weight=torch.tensor([1.0, (1 - POSITIVE_SHARE) / POSITIVE_SHARE]))


def positive_recall(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The share of positives predicted positive."""
    positive = targets == 1
    return ((outputs.argmax(dim=1) == 1) & positive).sum() / positive.sum()


def make_task(options: Mapping[str, Any]) -> Task:
    return Task(
        name="imbalanced",
        kind="classification",
        load_arrays=load_arrays,
        build_model=build_model,
        default_model={"width": 16},
        standardize=True,
        loss=weighted_loss,
        extra_metrics={
            "positive_recall": Metric(fn=positive_recall, mode="max", bounds=(0.0, 1.0))
        },
    )
