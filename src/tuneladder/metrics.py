"""Loss and metrics, accumulated on the device so that training never waits on the host.

A batch adds a small vector of sums to a running total; one transfer at the end
of an epoch turns the totals into numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["batch_sums", "loss_fn", "summarize"]


def loss_fn(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "classification":
        return F.cross_entropy(output.float(), target)
    return F.mse_loss(output.float(), target)


def batch_sums(
    kind: str, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor
) -> torch.Tensor:
    """Device-side sums for one batch (row counts are known on the host).

    Classification: loss*rows, correct. Regression: loss*rows, squared error,
    absolute error, sum of targets, sum of squared targets.
    """
    loss_sum = loss.detach().float() * len(target)
    if kind == "classification":
        correct = (output.detach().argmax(dim=1) == target).sum().float()
        return torch.stack([loss_sum, correct])
    error = output.detach().float() - target
    t = target.float()
    return torch.stack([loss_sum, error.pow(2).sum(), error.abs().sum(), t.sum(), t.pow(2).sum()])


def summarize(
    kind: str, sums: list[float], rows: int, values_per_row: int = 1
) -> dict[str, float]:
    """Turn accumulated sums into the task's metrics."""
    if kind == "classification":
        loss_sum, correct = sums
        return {"loss": loss_sum / rows, "accuracy": correct / rows}
    loss_sum, sse, sae, s1, s2 = sums
    count = rows * values_per_row
    variance = s2 / count - (s1 / count) ** 2
    return {
        "loss": loss_sum / rows,
        "rmse": math.sqrt(sse / count) if sse >= 0 else float("nan"),
        "mae": sae / count,
        "r2": 1.0 - (sse / count) / variance if variance > 0 else float("nan"),
    }
