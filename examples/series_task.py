"""An example task with data hyperparameters: forecasting a cyclic series from a window.

The series is generated (an 11-step cycle of varying height, like yearly sunspot
counts, plus noise). A sample is the last ``window`` values before a step, and
its target the value at that step. ``window`` is a data hyperparameter: it
changes the samples, so each value the sweep tries is prepared once, and the
model's input size follows it. ``jitter``, the noise added to training inputs,
is one too, read by the train transform. Every window predicts the same steps
(those after the longest window), so every value splits into the same train,
val and test targets, and their scores compare like for like.

Point a config at it with ``task.name: "examples.series_task:make_task"``
(``config/examples/window.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneladder.tasks import DataInfo, Task

MAX_WINDOW = 32


def make_task(options: Mapping[str, Any]) -> Task:
    """``options``: length of the series (default 1200) and its noise (default 0.1)."""
    length = int(options.get("length", 1200))
    noise = float(options.get("noise", 0.1))
    if length < MAX_WINDOW + 50:
        raise ValueError(f"task.options.length must be >= {MAX_WINDOW + 50}, got {length}")

    def load_arrays(data: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        window = int(data["window"])
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be in [1, {MAX_WINDOW}], got {window}")
        series = cyclic_series(length, noise)
        steps = np.arange(MAX_WINDOW, length)
        x = np.stack([series[t - window : t] for t in steps]).astype(np.float32)
        return x, series[steps].astype(np.float32)

    return Task(
        name="series",
        kind="regression",
        load_arrays=load_arrays,
        train_transform=jittered,
        build_model=build_model,
        default_model={"width": 64, "num_layers": 2},
        data_params={"window": 8, "jitter": 0.0},
        standardize=True,
    )


def cyclic_series(length: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    height = 1.0 + 0.5 * np.sin(2 * np.pi * t / 97)  # cycles of varying height
    return height * np.abs(np.sin(np.pi * t / 11)) + noise * rng.standard_normal(length)


def jittered(x: torch.Tensor, data: Mapping[str, Any]) -> torch.Tensor:
    """Training inputs with Gaussian noise of std ``jitter`` (in standardised units)."""
    jitter = float(data["jitter"])
    return x + jitter * torch.randn_like(x) if jitter > 0 else x


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    layers: list[nn.Module] = []
    features = info.input_shape[0]  # the window: the model follows the data
    for _ in range(int(hp["num_layers"])):
        layers += [nn.Linear(features, int(hp["width"])), nn.ReLU()]
        features = int(hp["width"])
    layers.append(nn.Linear(features, info.n_outputs))
    return nn.Sequential(*layers)
