"""A test-only task plugin (``fault_task:make_task``) whose model misbehaves on demand.

Hyperparameters: ``fault`` is none, raise, nan, sleep or oom and takes effect
from epoch ``fault_epoch`` on (epochs are counted by ``model.train()`` calls,
which the training loop makes once per epoch); ``sleep_s`` is slept at the start
of every epoch, whatever the fault, to make trials slow enough to interrupt.
"oom" asks for a 4 TiB tensor: the allocator refuses at once, as it does when
memory runs out, without ever exhausting the machine. "crowded" raises the CUDA
allocator's out-of-memory error in the first such model a process trains, as a
trial does on a GPU its neighbours have filled, and trains the next one normally.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneladder.tasks import DataInfo, Task
from tuneladder.tasks.models import MLP

FAULTS = ("none", "raise", "nan", "sleep", "oom", "crowded")
DEFAULT_MODEL = {"width": 16, "fault": "none", "fault_epoch": 1, "sleep_s": 0.0}
_CROWDED: list[int] = []  # a "crowded" model of this process has run out of memory


class FaultyMLP(nn.Module):
    def __init__(self, info: DataInfo, hp: Mapping[str, Any]) -> None:
        super().__init__()
        if hp["fault"] not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {hp['fault']!r}")
        self.net = MLP(info.input_shape, info.n_outputs, width=int(hp["width"]), num_layers=1,
                       dropout=0.0)  # fmt: skip
        self.fault, self.fault_epoch = hp["fault"], int(hp["fault_epoch"])
        self.sleep_s = float(hp["sleep_s"])
        self.epoch = -1

    def train(self, mode: bool = True) -> FaultyMLP:
        if mode:
            self.epoch += 1
            if self.sleep_s or (self.fault == "sleep" and self.epoch >= self.fault_epoch):
                time.sleep(self.sleep_s or 0.2)
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if not self.training or self.epoch < self.fault_epoch:
            return out
        if self.fault == "raise":
            raise RuntimeError(f"injected fault at epoch {self.epoch}")
        if self.fault == "nan":
            return out * float("nan")
        if self.fault == "oom":
            torch.empty(2**40)  # 4 TiB: DefaultCPUAllocator can't allocate memory
        if self.fault == "crowded" and not _CROWDED:
            _CROWDED.append(self.epoch)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return out


def _load() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def make_task(options: Mapping[str, Any]) -> Task:
    return Task(
        name="fault",
        kind="classification",
        load_arrays=_load,
        build_model=lambda hp, info: FaultyMLP(info, hp),
        default_model=DEFAULT_MODEL,
    )
