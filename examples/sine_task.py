"""An example plugin task: noisy 2-D regression, generated, with its own model.

Point a config at it with ``task.name: "examples.sine_task:make_task"``; the
module is found from the directory you run snakemake in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

from tuneladder.tasks import DataInfo, Task


def make_task(options: Mapping[str, Any]) -> Task:
    """``options``: samples (default 2000) and noise (default 0.1)."""
    samples = int(options.get("samples", 2000))
    noise = float(options.get("noise", 0.1))
    if samples < 20:
        raise ValueError(f"task.options.samples must be >= 20, got {samples}")

    def load_arrays() -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        x = rng.uniform(-3, 3, size=(samples, 2)).astype(np.float32)
        y = np.sin(x[:, 0]) * np.cos(x[:, 1]) + noise * rng.standard_normal(samples)
        return x, y.astype(np.float32)

    return Task(
        name="sine",
        kind="regression",
        load_arrays=load_arrays,
        build_model=build_model,
        default_model={"width": 64, "num_layers": 2, "activation": "tanh"},
        standardize=True,
    )


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    activation = {"tanh": nn.Tanh, "relu": nn.ReLU}[hp["activation"]]
    layers: list[nn.Module] = []
    features = info.input_shape[0]
    for _ in range(int(hp["num_layers"])):
        layers += [nn.Linear(features, int(hp["width"])), activation()]
        features = int(hp["width"])
    layers.append(nn.Linear(features, info.n_outputs))
    return nn.Sequential(*layers)
