"""The LR range test: raise the LR exponentially, watch the loss, read off a range.

Rule for the coarse range when the space says ``lr: auto`` (docs/lr-range.md):

* smooth the per-step loss with a bias-corrected exponential moving average;
* stop once the smoothed loss exceeds ``diverge_factor`` x its minimum (or is
  not finite): that LR is the divergence point;
* the suggestion is read off a zero-lag smoothing of the same curve (the EMA
  run forwards, then backwards), because a one-sided EMA trails the curve and
  shifts the steepest point towards higher LRs. It is the LR of steepest
  descent against log(LR), measured as a slope over +-4% of the steps (one-step
  differences are mostly noise), searched from 10% of the steps (early steps
  are noise) up to the curve's minimum;
* the range is ``[suggestion / 10, min(suggestion x 10, LR at the minimum)]``;
  as the suggestion never lies past the minimum, it spans at least a decade.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.loader import epoch_seed
from tuneladder.data.prepared import TrainVal
from tuneladder.store.trials import BuildModel
from tuneladder.training.metrics import Scoring, make_loss
from tuneladder.training.step import NO_AMP, setup, train_step

__all__ = [
    "LRRangeSettings",
    "analyse",
    "coarse_range",
    "lr_range_test",
    "smooth",
    "smooth_zero_lag",
]

SKIP_FRACTION = 0.1
# the test length the smoothing setting is for (the default steps)
REFERENCE_STEPS = 200
SLOPE_FRACTION = 0.04


@dataclass(frozen=True, kw_only=True)
class LRRangeSettings:
    """The sweep and the rule that reads it: the config's ``lr_range`` section.

    Attributes:
        start: the first step's LR.
        end: the LR the last step would reach.
        steps: steps at most, the LR raised exponentially from ``start`` to ``end``.
        smoothing: the EMA's weight on the newest loss, for a test of
            :data:`REFERENCE_STEPS` steps or more; a shorter test weighs the newest
            loss more (:attr:`smoothing_used`).
        diverge_factor: stop once the smoothed loss exceeds this times its minimum.
    """

    start: float
    end: float
    steps: int
    smoothing: float
    diverge_factor: float

    @property
    def smoothing_used(self) -> float:
        """The weight for this test's steps: the EMA spans the same share of a short curve
        as of a long one. At 0.05 over 50 steps it spanned the whole descent, and the
        zero-lag curve, pulled up by the rise after the minimum, was lowest at step 0."""
        return min(1.0, max(self.smoothing, self.smoothing * REFERENCE_STEPS / self.steps))

    def __post_init__(self) -> None:
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got smoothing={self.smoothing!r}")
        if not 0 < self.start < self.end:
            raise ValueError(f"need 0 < start < end, got start={self.start!r}, end={self.end!r}")


def lr_range_test(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    settings: LRRangeSettings,
    *,
    device: torch.device,
    scoring: Scoring | None = None,
    amp: contextlib.AbstractContextManager = NO_AMP,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Run the sweep on the training split and return the curve and the derived range.

    The loss is the task's (``scoring``), the one the trials train on; ``amp``
    their autocast, around each forward pass as in the trials, and ``scaler`` fp16's loss
    scaler.
    """
    start, end, steps = settings.start, settings.end, settings.steps
    smoothing, diverge_factor = settings.smoothing_used, settings.diverge_factor
    loss_fn = make_loss(data.info, device, (scoring or Scoring()).loss)
    model, optimizer = setup(config, build_model, data.info, device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n = len(data.train)
    batch_size = min(config.batch_size, n)
    lrs = start * (end / start) ** (np.arange(steps) / (steps - 1))
    losses: list[float] = []
    best, avg = math.inf, 0.0
    order = _index_batches(n, batch_size, steps, generator, device)
    started = time.perf_counter()
    model.train()
    feed = data.train.batches(order, seed=epoch_seed(config.seed, 0))
    for i, (lr, (xb, yb)) in enumerate(zip(lrs, feed, strict=True)):
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        _, loss, _ = train_step(model, optimizer, loss_fn, xb, yb, amp=amp, scaler=scaler)
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
        smoothing=settings.smoothing,
        smoothing_used=smoothing,
        diverge_factor=diverge_factor,
        batch_size=batch_size,
        optimizer=config.optimizer,
        seconds=time.perf_counter() - started,
        config=config.to_json(),
    )
    return result


def _index_batches(
    n: int, batch_size: int, steps: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """``steps`` batches of indices: shuffled passes over the split, a new order per pass."""
    order, cursor = torch.randperm(n, generator=generator, device=device), 0
    for _ in range(steps):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator, device=device), 0
        yield order[cursor : cursor + batch_size]
        cursor += batch_size


def smooth(losses: np.ndarray, smoothing: float) -> np.ndarray:
    """Bias-corrected exponential moving average (weight ``smoothing`` on the newest)."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, value in enumerate(losses):
        avg = smoothing * value + (1 - smoothing) * avg
        out[i] = avg / (1 - (1 - smoothing) ** (i + 1))
    return out


def smooth_zero_lag(losses: np.ndarray, smoothing: float) -> np.ndarray:
    """The bias-corrected EMA run forwards and then backwards: no shift along the LR axis."""
    return smooth(smooth(np.asarray(losses, dtype=float), smoothing)[::-1], smoothing)[::-1]


def analyse(
    lrs: np.ndarray, losses: np.ndarray, *, smoothing: float, diverge_factor: float
) -> dict[str, Any]:
    """Suggestion, minimum, divergence point and coarse range from a recorded curve."""
    lrs = np.asarray(lrs, dtype=float)
    losses = np.asarray(losses, dtype=float)
    online = smooth(losses, smoothing)
    finite = np.isfinite(online)
    running_min = np.minimum.accumulate(np.where(finite, online, np.inf))
    diverged = np.flatnonzero(~finite | (online > diverge_factor * running_min))
    divergence_lr = float(lrs[diverged[0]]) if len(diverged) else None
    # read the suggestion off the finite part before divergence, without lag
    usable = int(diverged[0]) if len(diverged) else len(lrs)
    usable = max(usable, 1)
    centred = smooth_zero_lag(losses[:usable], smoothing)
    lowest = int(np.argmin(centred))
    first = min(int(SKIP_FRACTION * len(lrs)), max(lowest - 1, 0))
    half = max(1, int(SLOPE_FRACTION * len(lrs)))
    log_lr = np.log10(lrs[:usable])
    best_slope, steepest = np.inf, first
    for i in range(first, lowest + 1):
        lo, hi = max(i - half, 0), min(i + half, usable - 1)
        if hi > lo:
            slope = (centred[hi] - centred[lo]) / (log_lr[hi] - log_lr[lo])
            if slope < best_slope:
                best_slope, steepest = slope, i
    suggestion = float(lrs[steepest])
    low, high = coarse_range(suggestion, float(lrs[lowest]))
    return {
        "lrs": lrs.tolist(),
        "losses": [float(v) for v in losses],
        "smoothed": [float(v) for v in online],
        "smoothed_zero_lag": [float(v) for v in centred],
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
