"""Loss and metrics, accumulated on the device so that training never waits on the host.

A batch adds a small vector of sums to a running total; one transfer at the end
of an epoch turns the totals into numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["batch_stats", "loss_fn", "n_stats", "summarize"]


def loss_fn(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "classification":
        return F.cross_entropy(output.float(), target)
    return F.mse_loss(output.float(), target)


def batch_stats(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Device-side sums for one batch, besides the loss (row counts are known on the host).

    Classification: correct predictions. Regression: squared error, absolute
    error, sum of targets, sum of squared targets.
    """
    output = output.detach()
    if kind == "classification":
        return (output.argmax(dim=1) == target).sum().unsqueeze(0)
    error = output.float() - target
    t = target.float()
    return torch.stack([error.pow(2).sum(), error.abs().sum(), t.sum(), t.pow(2).sum()])


def n_stats(kind: str) -> int:
    return 1 if kind == "classification" else 4


def summarize(
    kind: str, loss_sum: float, stats: list[float], rows: int, values_per_row: int = 1
) -> dict[str, float]:
    """Turn accumulated sums into the task's metrics."""
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
