"""Ranking trials, keeping the top k, and narrowing the space around them.

Narrowing rule (docs/architecture.md): for each numeric parameter take the
top-k values' span, in log space for log parameters and linear space
otherwise, widen it by half its width on each side (by a tenth of the
original span when all top-k agree), and clip it to the original range;
categorical parameters keep only the values the top-k use, in their original
order. The fine space is therefore never wider than the coarse one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuneladder.direction import Direction, top
from tuneladder.space import Space

__all__ = ["narrow_space", "top_distinct"]

WIDEN = 0.5
MIN_SPAN = 0.1


def top_distinct(
    rows: Sequence[Mapping[str, Any]], k: int, mode: Direction | str
) -> list[Mapping[str, Any]]:
    """The best ``k`` ok trials with distinct hyperparameters (ties keep ladder order)."""
    return top(rows, k, mode, distinct=lambda row: repr(sorted(row["params"].items())))


def narrow_space(space: Space, top: Sequence[Mapping[str, Any]]) -> Space:
    """The fine space around the ``top`` trials' sampled values."""
    if not top:
        raise ValueError("no successful trial to narrow the space around")
    fine: Space = {}
    for name, dist in space.items():
        values = [row["params"][name] for row in top]
        if isinstance(dist, CategoricalDistribution):
            used = [c for c in dist.choices if c in values]
            fine[name] = CategoricalDistribution(used)
            continue
        assert isinstance(dist, FloatDistribution | IntDistribution)
        low, high = _narrow(values, dist.low, dist.high, log=dist.log)
        if isinstance(dist, IntDistribution):
            fine[name] = IntDistribution(
                max(dist.low, math.floor(low)), min(dist.high, math.ceil(high)), log=dist.log
            )
        else:
            fine[name] = FloatDistribution(low, high, log=dist.log)
    return fine


def _narrow(values: Sequence[float], low: float, high: float, *, log: bool) -> tuple[float, float]:
    to = math.log if log else float
    back = math.exp if log else float
    lo, hi = to(min(values)), to(max(values))
    span = hi - lo
    pad = WIDEN * span if span > 0 else MIN_SPAN * (to(high) - to(low)) / 2
    new_low = max(to(low), lo - pad)
    new_high = min(to(high), hi + pad)
    # exp(log(x)) may drift by an ulp past the original bounds: clip in value space too
    return max(low, back(new_low)), min(high, back(new_high))
