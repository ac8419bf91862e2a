"""Ranking trials, keeping the top k, and narrowing the space around them.

Narrowing rule (docs/decisions/): each numeric parameter's fine range is
centred on the best trial's value and reaches as far on each side as the other
top-k trials lie from it (their root-mean-square distance, in log space for log
parameters), at least a twentieth of the coarse range, clipped to the coarse
range. Categorical parameters keep only the values the top-k use, in their
original order. Only the trials that sampled a parameter count for it (a
conditional one may be absent); when only one of several did, it keeps its
coarse range. The fine space is never wider than the coarse one, and each parameter's
record says whether the top-k agreed: a fine range that keeps more than half of
the coarse one is centred on the best but says that the top-k disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuneladder.core.direction import Direction, top
from tuneladder.search.space import Space

__all__ = [
    "AGREE",
    "MIN_HALF_WIDTH",
    "RERUN_SETS",
    "narrow",
    "narrow_space",
    "top_distinct",
    "tunable",
]

# The narrowest fine range, as a share of the coarse range on each side of the best.
MIN_HALF_WIDTH = 0.05
# The top-k agree on a parameter when its fine range keeps at most this share of the coarse.
AGREE = 0.5
# What a trial's reruns set for themselves, so that two trials differing only here are one config.
RERUN_SETS = ("epochs", "seed")


def top_distinct(
    rows: Sequence[Mapping[str, Any]], k: int, mode: Direction | str
) -> list[Mapping[str, Any]]:
    """The best ``k`` ok trials with distinct hyperparameters (ties keep ladder order).

    Trials that sampled the same values are one config, whatever their seeds and
    epochs: a space of few choices samples some twice, and the seed reruns would
    train both copies alike.
    """
    return top(rows, k, mode, distinct=lambda row: repr(sorted(tunable(row["params"]).items())))


def tunable(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters without those its reruns set (:data:`RERUN_SETS`)."""
    return {k: v for k, v in params.items() if k not in RERUN_SETS}


def narrow_space(space: Space, top: Sequence[Mapping[str, Any]]) -> Space:
    """The fine space around the ``top`` trials' sampled values (best first)."""
    return narrow(space, top)[0]


def narrow(
    space: Space, top: Sequence[Mapping[str, Any]]
) -> tuple[Space, dict[str, dict[str, Any]]]:
    """The fine space around the ``top`` trials (best first), and how each parameter narrowed.

    ``top`` rows carry the values each trial sampled under ``params``; a
    parameter a trial did not sample is absent there. The record of a parameter
    has ``used_by`` (how many of the top-k sampled it), ``kept`` (the fine
    range's share of the coarse one, in log space for log parameters; for a
    categorical, the share of its values), ``agree`` and, when they do not,
    ``note``, a sentence for the report.
    """
    if not top:
        raise ValueError("no successful trial to narrow the space around")
    fine: Space = {}
    records: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        values = [row["params"][name] for row in top if name in row["params"]]
        record: dict[str, Any] = {"used_by": len(values), "of": len(top)}
        if not values or (len(values) == 1 and len(top) > 1):
            fine[name] = dist
            record.update(kept=1.0, agree=None)
            record["note"] = (
                f"only {len(values)} of the top {len(top)} sampled it: coarse range kept"
            )
        elif isinstance(dist, CategoricalDistribution):
            used = [c for c in dist.choices if c in values]
            fine[name] = CategoricalDistribution(used)
            record.update(values=used, kept=len(used) / len(dist.choices))
            record["agree"] = len(used) < len(dist.choices) or len(used) == 1
            if not record["agree"]:
                record["note"] = f"the top {len(values)} use every value: all kept"
        else:
            assert isinstance(dist, FloatDistribution | IntDistribution)
            fine[name], range_record = _narrow_range(dist, values)
            record.update(range_record)
            if not record["agree"]:
                record["note"] = (
                    f"the top {len(values)} disagree: spread {record['spread']:.2g}"
                    f"{' decades' if dist.log else ''} around the best, so the fine range keeps"
                    f" {record['kept']:.0%} of the coarse one"
                )
        records[name] = record
    return fine, records


def _narrow_range(
    dist: FloatDistribution | IntDistribution, values: Sequence[float]
) -> tuple[FloatDistribution | IntDistribution, dict[str, Any]]:
    """Centre on ``values[0]`` (the best), half-width the others' RMS distance from it."""
    to = math.log10 if dist.log else float
    back = (lambda t: 10.0**t) if dist.log else float
    low, high = to(dist.low), to(dist.high)
    width = high - low
    centre = to(values[0])
    others = [to(v) - centre for v in values[1:]]
    spread = math.sqrt(sum(d * d for d in others) / len(others)) if others else 0.0
    half = max(spread, MIN_HALF_WIDTH * width)
    # 10**log10(x) may drift by an ulp past the original bounds: clip in value space too
    new_low = max(dist.low, back(max(low, centre - half)))
    new_high = min(dist.high, back(min(high, centre + half)))
    narrowed: FloatDistribution | IntDistribution
    if isinstance(dist, IntDistribution):
        lo, hi = max(dist.low, math.floor(new_low)), min(dist.high, math.ceil(new_high))
        narrowed = IntDistribution(lo, hi, log=dist.log)
        new_low, new_high = lo, hi
    else:
        narrowed = FloatDistribution(new_low, new_high, log=dist.log)
    kept = (to(new_high) - to(new_low)) / width if width > 0 else 1.0
    return narrowed, {
        "best": values[0],
        "spread": spread,
        "kept": kept,
        "agree": kept <= AGREE,
    }
