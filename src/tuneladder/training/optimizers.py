"""Optimizers by name, as the config writes them."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from tuneladder.core.hparams import TrialConfig

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "radam")


def make_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrialConfig
) -> torch.optim.Optimizer:
    """``momentum`` is SGD with ``config.momentum`` (and Nesterov if asked); ``sgd`` has none.

    Adam applies weight decay as L2 in the gradient; AdamW decouples it, which is
    why AdamW is the default. On CUDA, Adam and AdamW run fused: one kernel per
    step instead of a dozen, which is most of a small model's optimizer time.
    """
    name, lr, wd = config.optimizer, config.lr, config.weight_decay
    params = list(params)
    # fused needs every parameter on CUDA; the CPU keeps the default implementation
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return torch.optim.SGD(
            params, lr=lr, weight_decay=wd, momentum=config.momentum, nesterov=config.nesterov
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **fused)
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
