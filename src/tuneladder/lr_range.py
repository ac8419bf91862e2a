"""The LR range test: raise the LR exponentially, watch the loss, read off a range.

Rule for the coarse range when the space says ``lr: auto`` (docs/lr-range.md):

* smooth the per-step loss with a bias-corrected exponential moving average;
* stop once the smoothed loss exceeds ``diverge_factor`` x its minimum (or is
  not finite): that LR is the divergence point;
* the suggestion is the LR of steepest descent of the smoothed loss against
  log(LR), searched between 10% of the steps (early steps are noise) and the
  minimum of the smoothed loss;
* the range is ``[suggestion / 10, min(suggestion x 10, LR at the minimum)]``,
  and at least one decade wide (its low end moves down when needed).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from tuneladder.data import TrainVal
from tuneladder.hparams import TrialConfig
from tuneladder.metrics import loss_fn
from tuneladder.optimizers import make_optimizer
from tuneladder.runner import BuildModel

__all__ = ["analyse", "coarse_range", "lr_range_test", "smooth"]

SKIP_FRACTION = 0.1


def lr_range_test(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    *,
    start: float,
    end: float,
    steps: int,
    smoothing: float,
    diverge_factor: float,
    device: torch.device,
) -> dict[str, Any]:
    """Run the sweep on the training split and return the curve and the derived range."""
    if not 0 < start < end:
        raise ValueError(f"need 0 < start < end, got {start=}, {end=}")
    kind = data.info.kind
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.info).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n = len(data.train)
    batch_size = min(config.batch_size, n)
    lrs = start * (end / start) ** (np.arange(steps) / (steps - 1))
    losses: list[float] = []
    order = torch.randperm(n, generator=generator, device=device)
    cursor, best, avg = 0, math.inf, 0.0
    started = time.perf_counter()
    model.train()
    for i, lr in enumerate(lrs):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator, device=device), 0
        idx = order[cursor : cursor + batch_size]
        cursor += batch_size
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        loss = loss_fn(kind, model(data.train.x[idx]), data.train.y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # a per-step sync is fine here: a few hundred steps, and stopping needs the value
        value = loss.item()
        losses.append(value)
        avg = smoothing * value + (1 - smoothing) * avg
        smoothed = avg / (1 - (1 - smoothing) ** (i + 1))
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge_factor * best:
            break
    result = analyse(
        lrs[: len(losses)], np.array(losses), smoothing=smoothing, diverge_factor=diverge_factor
    )
    result.update(
        start=start,
        end=end,
        steps=steps,
        steps_run=len(losses),
        smoothing=smoothing,
        diverge_factor=diverge_factor,
        batch_size=batch_size,
        optimizer=config.optimizer,
        seconds=time.perf_counter() - started,
        config=config.to_json(),
    )
    return result


def smooth(losses: np.ndarray, smoothing: float) -> np.ndarray:
    """Bias-corrected exponential moving average (weight ``smoothing`` on the newest)."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, value in enumerate(losses):
        avg = smoothing * value + (1 - smoothing) * avg
        out[i] = avg / (1 - (1 - smoothing) ** (i + 1))
    return out


def analyse(
    lrs: np.ndarray, losses: np.ndarray, *, smoothing: float, diverge_factor: float
) -> dict[str, Any]:
    """Suggestion, minimum, divergence point and coarse range from a recorded curve."""
    lrs = np.asarray(lrs, dtype=float)
    smoothed = smooth(np.asarray(losses, dtype=float), smoothing)
    finite = np.isfinite(smoothed)
    lowest = int(np.nanargmin(np.where(finite, smoothed, np.nan)))
    diverged = np.flatnonzero(
        ~finite
        | (smoothed > diverge_factor * np.minimum.accumulate(np.where(finite, smoothed, np.inf)))
    )
    divergence_lr = float(lrs[diverged[0]]) if len(diverged) else None
    first = min(int(SKIP_FRACTION * len(lrs)), max(lowest - 1, 0))
    window = slice(first, lowest + 1)
    if lowest - first >= 2:
        slope = np.gradient(smoothed[window], np.log10(lrs[window]))
        steepest = first + int(np.argmin(slope))
    else:  # the loss only rose: the smallest LR tried is the best guess
        steepest = first
    suggestion = float(lrs[steepest])
    low, high = coarse_range(suggestion, float(lrs[lowest]))
    return {
        "lrs": lrs.tolist(),
        "losses": [float(v) for v in losses],
        "smoothed": [float(v) for v in smoothed],
        "suggestion": suggestion,
        "min_loss_lr": float(lrs[lowest]),
        "divergence_lr": divergence_lr,
        "range": [low, high],
        "rule": "[suggestion/10, min(suggestion*10, lr at min loss)], at least one decade",
    }


def coarse_range(suggestion: float, min_loss_lr: float) -> tuple[float, float]:
    high = min(suggestion * 10, max(min_loss_lr, suggestion))
    low = min(suggestion / 10, high / 10)
    return low, high
