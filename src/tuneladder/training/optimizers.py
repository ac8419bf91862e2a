"""Optimizers by name, as the config writes them."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import torch

from tuneladder.core.hparams import TrialConfig

__all__ = ["OPTIMIZERS", "make_optimizer", "zero_missing_momentum"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "radam")


def make_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrialConfig
) -> torch.optim.Optimizer:
    """``momentum`` is SGD with ``config.momentum`` (and Nesterov if asked); ``sgd`` has none.

    Adam applies weight decay as L2 in the gradient; AdamW decouples it, which is
    why AdamW is the default. On CUDA, Adam, AdamW and SGD run fused: one kernel per
    step instead of a dozen, which is most of a small model's optimizer time, and
    under fp16 a fused step reads the loss scaler's overflow flag on the device
    where any other reads it back to the host every step. RAdam has no fused kernel.
    """
    params = list(params)
    kinds: dict[str, tuple[type[torch.optim.Optimizer], dict]] = {
        "sgd": (torch.optim.SGD, {}),
        "momentum": (
            torch.optim.SGD,
            {"momentum": config.momentum, "nesterov": config.nesterov},
        ),
        "adam": (torch.optim.Adam, {}),
        "adamw": (torch.optim.AdamW, {}),
        "radam": (torch.optim.RAdam, {}),
    }
    if config.optimizer not in kinds:
        raise ValueError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}"
        )
    kind, options = kinds[config.optimizer]
    # fused needs every parameter on CUDA; the CPU keeps the default implementation
    if params and all(p.is_cuda for p in params) and _takes_fused(kind):
        options = {**options, "fused": True}
    optimizer = kind(params, lr=config.lr, weight_decay=config.weight_decay, **options)
    zero_missing_momentum(optimizer)
    return optimizer


def zero_missing_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Start fused SGD's momentum at zero where it has none yet (a new optimizer, or one
    loaded from a state saved before its first update).

    Fused SGD makes its momentum buffers uninitialised on its first step and lets the
    kernel fill them, which it does not do on a step the fp16 loss scaler skips; the
    first step of an fp16 trial often is, and the next step would add that memory's
    garbage to the weights. With zeros (and no dampening) the first update is the
    gradient, as unfused SGD's is, to the bit.
    """
    for group in optimizer.param_groups:
        if not (group.get("fused") and group.get("momentum")):
            continue
        for param in group["params"]:
            state = optimizer.state[param]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(param)


def _takes_fused(kind: type[torch.optim.Optimizer]) -> bool:
    """Whether this torch's optimizer has a fused kernel to ask for.

    Fused SGD came to torch after fused Adam, and RAdam has none; asking for one
    that is not there would stop every trial, where the unfused step only costs speed.
    """
    return "fused" in inspect.signature(kind).parameters
