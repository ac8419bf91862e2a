"""How training starts and what one optimizer step does: shared by trials and both sanity rungs.

The trial loop (:mod:`tuneladder.training.runner`), the overfit check and the LR range
test build their model and take their steps through these two functions, so a
change to either reaches all three.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from tuneladder.training.optimizers import make_optimizer

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tuneladder.core.hparams import TrialConfig
    from tuneladder.store.trials import BuildModel
    from tuneladder.tasks import DataInfo
    from tuneladder.training.metrics import LossFn

__all__ = ["global_norm", "setup", "train_step"]

NO_AMP = contextlib.nullcontext()


def setup(
    config: TrialConfig, build_model: BuildModel, info: DataInfo, device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model, seeded by ``config.seed`` and on ``device``, and its optimizer."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, info).to(device)
    return model, make_optimizer(model.parameters(), config)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    amp: contextlib.AbstractContextManager = NO_AMP,
    scaler: torch.amp.GradScaler | None = None,
    clip: float | None = None,
    measure_norm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Forward, loss, backward, update; nothing leaves the device (fp16 aside, below).

    ``loss_fn`` is the trial's loss (:func:`tuneladder.training.metrics.make_loss`).
    Returns the output, the loss, and the gradient norm when clipping (``clip``)
    or asked to (``measure_norm``), else None. The norm is the one before
    clipping: it says how large the gradients were, not what clipping made them.

    ``scaler`` (fp16, :func:`~tuneladder.infra.device.grad_scaler`) scales the loss
    before the backward pass; the gradients are unscaled before their norm is
    taken, so it and the clipping read true sizes. On a step whose gradients
    overflowed the update is skipped and the norm is not finite. The optimizer
    reads the scaler's overflow flag on the device where it runs fused (SGD, Adam,
    AdamW on CUDA); RAdam reads it back, one host sync a step.
    """
    with amp:
        output = model(x)
    loss = loss_fn(output, y)
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    norm = None
    if clip or measure_norm:
        if scaler is not None:
            scaler.unscale_(optimizer)
        params = [p for p in model.parameters() if p.grad is not None]
        norm = (
            nn.utils.clip_grad_norm_(params, clip) if clip else global_norm(p.grad for p in params)
        )
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return output, loss, norm


def global_norm(tensors: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """The L2 norm of several tensors taken together, as one device scalar.

    ``nn.utils.get_total_norm`` (torch 2.6 on) does it in a few fused kernels; before
    it, a norm per tensor. Both are public: nothing here depends on torch's internals.
    """
    present = [t for t in tensors if t is not None]
    if _TOTAL_NORM is not None:
        return _TOTAL_NORM(present, norm_type=2.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in present]))


_TOTAL_NORM = getattr(nn.utils, "get_total_norm", None)
