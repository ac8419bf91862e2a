"""A test-only task plugin (``bad_task:make_task``) whose own code goes wrong on demand.

``task.options.mistake`` picks the mistake, in ``load_arrays`` or in the model
factory; ``task.options.kind`` is classification (default) or regression. Each
line that raises carries a ``# mistake: NAME`` comment, so that tests can find
its number.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneladder.tasks import DataInfo, Task

MISTAKES = (
    "none",
    "load-raises",
    "load-not-a-pair",
    "factory-raises",
    "not-a-module",
    "wrong-shape",
    "flat-output",
    "forward-raises",
    "torch-raises",
    "nan-loss",
    "frozen",
)


def line_of(text: str) -> int:
    """The number of the line in this file that ends with ``text``."""
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.rstrip().endswith(text))


def make_task(options: Mapping[str, Any]) -> Task:
    mistake = options.get("mistake", "none")
    if mistake not in MISTAKES:
        raise ValueError(f"task.options.mistake must be one of {MISTAKES}, got {mistake!r}")
    kind = options.get("kind", "classification")

    def load_arrays() -> Any:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64) if kind == "classification" else x.sum(axis=1)
        if mistake == "load-raises":
            x = x[:, options["columns"]]  # mistake: load-raises
        if mistake == "load-not-a-pair":
            return x
        return x, y

    return Task(
        name="bad",
        kind=kind,
        load_arrays=load_arrays,
        build_model=build_model,
        default_model={"width": 8, "mistake": mistake},
    )


class Broken(nn.Module):
    def __init__(self, n_in: int, n_out: int, mistake: str) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.mistake = mistake

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mistake == "forward-raises":
            raise NotImplementedError("forward is not written yet")  # mistake: forward-raises
        out = self.linear(x)
        if self.mistake == "flat-output":
            return out[:, 0]
        if self.mistake == "nan-loss":
            return out * float("nan")
        return out


def build_model(hp: Mapping[str, Any], info: DataInfo) -> Any:
    mistake = hp["mistake"]
    if mistake == "factory-raises":
        raise ValueError("unknown activation 'gelu'")  # mistake: factory-raises
    if mistake == "not-a-module":
        return {"width": hp["width"]}
    n_in, n_out = info.input_shape[0], info.n_outputs
    if mistake == "wrong-shape":
        return nn.Linear(n_in, n_out + 1)
    if mistake == "torch-raises":
        return nn.Sequential(nn.Linear(n_in + 1, n_out))
    if mistake == "frozen":
        return nn.Linear(n_in, n_out).requires_grad_(False)
    return Broken(n_in, n_out, mistake)
