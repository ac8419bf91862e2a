"""The few numbers of a learning curve that the report's failure rules read.

The rules (``tuneladder.report._analysis.classify``) judge a trial by where its
smoothed val loss bottomed out, how far it climbed back, and how fast train loss
still fell at the end. Computed from the whole history, that meant the report
read every trial's ``history.csv``: at 100,000 trials, 100,000 files read and
parsed in the ``report_sweeps`` job. A trial computes its summary once, when it
writes its result, and ``collect`` carries it in the rung's table; the report
reads a history only where a summary is absent (a result written before there
were summaries) or was made by other rules (``CURVE_RULES``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CURVE_RULES", "OVERFIT_SMOOTH", "SLOW_BACK", "curve_summary", "usable_summary"]

# Val loss is judged as a trailing mean over 1/OVERFIT_SMOOTH of the epochs (at least one),
# so that one lucky epoch is not its minimum.
OVERFIT_SMOOTH = 5
# Train loss is still falling fast if it fell by enough over the last 1/SLOW_BACK of the
# epochs (at least one).
SLOW_BACK = 4
# What a summary was made with: a stored one made with other numbers is not used.
CURVE_RULES = {"smooth": OVERFIT_SMOOTH, "back": SLOW_BACK}


def curve_summary(train: Sequence[float], val: Sequence[float]) -> dict[str, Any]:
    """What the failure rules read of a curve of ``train`` and ``val`` losses per epoch.

    ``epochs`` and ``rules`` (``CURVE_RULES``) always; with two or more epochs all finite
    (``judged``), also ``width`` (the trailing mean's epochs), ``low`` (the epoch
    of the smoothed val loss's minimum), ``val_low`` and ``val_end`` (the smoothed
    val loss there and at the end), ``train_low`` and ``train_end`` (train loss
    there and at the end) and ``train_back`` (train loss 1/``SLOW_BACK`` of the
    epochs before the end, at least one). The sums are those the rules made from the
    history itself, in the same order, so a summary gives the same verdicts.
    """
    n = len(train)
    out: dict[str, Any] = {"epochs": n, "rules": CURVE_RULES, "judged": False}
    if n < 2 or len(val) != n or not all(map(math.isfinite, [*train, *val])):
        return out
    width = max(1, n // OVERFIT_SMOOTH)
    # the mean of the epochs up to i, at most `width` of them (the first ones have fewer)
    smoothed = [sum(val[: i + 1]) / (i + 1) for i in range(min(width - 1, n))]
    smoothed += [sum(val[i - width + 1 : i + 1]) / width for i in range(width - 1, n)]
    low = min(range(n), key=smoothed.__getitem__)
    back = max(1, n // SLOW_BACK)
    out.update(
        judged=True,
        width=width,
        low=low,
        val_low=smoothed[low],
        val_end=smoothed[-1],
        train_low=train[low],
        train_end=train[-1],
        train_back=train[-back - 1],
    )
    return out


def usable_summary(summary: Mapping[str, Any] | None) -> bool:
    """Whether a stored summary was made as :func:`curve_summary` makes one now."""
    return isinstance(summary, Mapping) and summary.get("rules") == CURVE_RULES
