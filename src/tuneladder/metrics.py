"""Loss and metrics, accumulated on the device so that training never waits on the host.

A batch adds a small vector of sums to a running total; one transfer at the end
of an epoch turns the totals into numbers.

Regression models learn a standardised target (see :mod:`tuneladder.data`), so
``loss`` is the mean squared error on that scale: the training objective. rmse,
mae and r2 are in the target's own units: :func:`batch_stats` multiplies the
errors by the train split's target std (:func:`target_units`) before summing,
one elementwise product per batch on the device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from tuneladder.tasks import DataInfo

__all__ = ["batch_stats", "loss_fn", "n_stats", "summarize", "target_units"]


def loss_fn(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "classification":
        return F.cross_entropy(output.float(), target)
    return F.mse_loss(output.float(), target)


def target_units(info: DataInfo, device: torch.device | str) -> torch.Tensor | None:
    """The per-output std that turns a standardised target's errors into the target's units.

    None when the targets are stored as they are (classification, or a task
    that opted out of target scaling): the errors are in its units already.
    """
    if info.target_std is None:
        return None
    return torch.tensor(info.target_std, dtype=torch.float32, device=device)


def batch_stats(
    kind: str,
    output: torch.Tensor,
    target: torch.Tensor,
    target_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Device-side sums for one batch, besides the loss (row counts are known on the host).

    Classification: correct predictions. Regression: squared error, absolute
    error, sum of targets, sum of squared targets, in the target's own units
    when ``target_std`` (from :func:`target_units`) is given.
    """
    output = output.detach()
    if kind == "classification":
        return (output.argmax(dim=1) == target).sum().unsqueeze(0)
    error = output.float() - target
    t = target.float()
    if target_std is not None:
        # scaled back per output; the target's mean is not added back: r2 needs only
        # its variance, and a shift leaves that unchanged
        error, t = error * target_std, t * target_std
    return torch.stack([error.pow(2).sum(), error.abs().sum(), t.sum(), t.pow(2).sum()])


def n_stats(kind: str) -> int:
    return 1 if kind == "classification" else 4


def summarize(
    kind: str, loss_sum: float, stats: list[float], rows: int, values_per_row: int = 1
) -> dict[str, float]:
    """Turn accumulated sums into the task's metrics.

    ``loss`` is the mean training objective (for regression on a standardised
    target, the mean squared error on that scale); the regression metrics are
    in whatever units :func:`batch_stats` summed them in.
    """
    if kind == "classification":
        return {"loss": loss_sum / rows, "accuracy": stats[0] / rows}
    sse, sae, s1, s2 = stats
    count = rows * values_per_row
    variance = s2 / count - (s1 / count) ** 2
    return {
        "loss": loss_sum / rows,
        "rmse": math.sqrt(sse / count) if sse >= 0 else float("nan"),
        "mae": sae / count,
        "r2": 1.0 - (sse / count) / variance if variance > 0 else float("nan"),
    }
