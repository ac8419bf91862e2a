"""Learning-rate schedules as pure functions of the optimizer step.

Every schedule is stepped once per optimizer step (not per epoch) so that short
runs get a smooth curve, and is a multiplier of the base LR, which makes them
easy to test and to plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["SCHEDULES", "lr_multiplier"]

SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle", "warmup_cosine")


def lr_multiplier(
    schedule: str,
    *,
    total_steps: int,
    steps_per_epoch: int,
    gamma: float = 0.5,
    step_epochs: int = 10,
    warmup_epochs: float = 1.0,
) -> Callable[[int], float]:
    """Return ``step -> factor`` for ``torch.optim.lr_scheduler.LambdaLR``."""
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"steps must be >= 1, got {total_steps=}, {steps_per_epoch=}")
    total = float(total_steps)
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "step":
        every = steps_per_epoch * step_epochs
        return lambda step: gamma ** (step // every)
    if schedule == "exponential":
        return lambda step: gamma ** (step / steps_per_epoch)
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step / total, 1.0)))
    if schedule == "onecycle":
        # as torch's OneCycleLR: 30% cosine warm-up from lr/25, then cosine down to lr/1e4
        peak = max(1, int(0.3 * total))
        start, end = 1 / 25, 1 / 25 / 1e4

        def one_cycle(step: int) -> float:
            if step < peak:
                return _cosine_between(start, 1.0, step / peak)
            return _cosine_between(1.0, end, min((step - peak) / max(total - peak, 1), 1.0))

        return one_cycle
    if schedule == "warmup_cosine":
        warmup = max(1, int(warmup_epochs * steps_per_epoch))

        def warmup_cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (
                1.0 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0))
            )

        return warmup_cosine
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def _cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))
