"""The digits task with a model that holds most of its device's memory while it trains.

A task plugin (``crowded_task:make_task``) for ``bench/gpu_check.py``'s check that a
trial out of memory beside another trains again alone. Each model takes
``task.options.fraction`` (default 0.6) of the GPU's memory at its first
training step and keeps it until the trial ends: one such trial fits a GPU, two
side by side do not. It then waits ``task.options.hold_s`` (default 2) seconds,
so that trials of two lanes do meet. On a CPU (the check's dry mode) the memory
is an exclusive ``flock`` on ``ballast.lock`` beside the run, held while the
model lives: a second taker raises the CUDA allocator's out-of-memory error, as
a second allocation would on the GPU, and a process that dies lets go of it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneladder.tasks import DataInfo, Task, load_task

LEDGER = Path("ballast.lock")


def make_task(options: Mapping[str, Any]) -> Task:
    fraction = float(options.get("fraction", 0.6))
    if not 0.5 < fraction < 0.95:
        raise ValueError(f"task.options.fraction must be in (0.5, 0.95), got {fraction}")
    hold_s = float(options.get("hold_s", 2.0))
    digits = load_task("digits")

    def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
        return Crowded(digits.build_model(hp, info), fraction, hold_s)

    return dataclasses.replace(digits, name="crowded", build_model=build_model)


class Crowded(nn.Module):
    """A model, and a ballast of device memory it takes at its first training step."""

    def __init__(self, net: nn.Module, fraction: float, hold_s: float) -> None:
        super().__init__()
        self.net = net
        self.fraction, self.hold_s = fraction, hold_s
        self.ballast: Any = None  # not a buffer: no checkpoint carries it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.ballast is None:
            self.ballast = _take(x.device, self.fraction, owner=self)
            time.sleep(self.hold_s)
        return self.net(x)


def _take(device: torch.device, fraction: float, owner: nn.Module) -> Any:
    if device.type == "cuda":
        _, total = torch.cuda.mem_get_info(device)
        return torch.empty(int(total * fraction), dtype=torch.uint8, device=device)
    handle = open(LEDGER, "a")  # noqa: SIM115 - closed when the model is freed
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory (simulated: another trial holds the ballast)"
        ) from None
    # given back when the model is freed, as the GPU's memory is at the trial's end
    return weakref.finalize(owner, handle.close)
