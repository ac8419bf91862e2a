"""How sure we are: spread over seeds and whether two configs can be told apart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from tuneladder.core.metric_table import BUILT_IN, Bounds

__all__ = ["Bounds", "bounds_text", "METRIC_BOUNDS", "describe", "metric_bounds", "welch_p_value"]

# Where each built-in metric can lie (None: unbounded on that side), from its one home,
# tuneladder.core.metric_table. A t-interval knows nothing of these, so with few seeds it can
# reach past them (an accuracy interval up to 1.07).
METRIC_BOUNDS: dict[str, Bounds] = {
    name: metric.bounds for metrics in BUILT_IN.values() for name, metric in metrics.items()
}


def metric_bounds(metric: str) -> Bounds:
    """``(low, high)`` of a built-in metric's possible values; ``(None, None)`` for another.

    A task's own metric carries its bounds itself (:class:`~tuneladder.core.metric_table.Metric`).
    """
    return METRIC_BOUNDS.get(metric, (None, None))


def describe(values: Sequence[float], bounds: Bounds = (None, None)) -> dict[str, Any]:
    """Mean, sample std and a 95% t-interval of the mean (None where n is too small).

    The interval's ends are clipped to ``bounds`` (see :func:`metric_bounds`), and
    ``ci95_clipped`` says whether that moved either end.

    Example::

        >>> describe([0.99, 1.0], bounds=(0.0, 1.0))["ci95"][1]
        1.0
    """
    from scipy import stats

    n = len(values)
    if n == 0:
        return {
            "n": 0,
            "mean": None,
            "std": None,
            "ci95": None,
            "ci95_clipped": False,
            "values": [],
        }
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else None
    ci, clipped = None, False
    if std is not None:
        half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        low, high = bounds
        ci = [mean - half, mean + half]
        if low is not None and ci[0] < low:
            ci[0], clipped = low, True
        if high is not None and ci[1] > high:
            ci[1], clipped = high, True
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "ci95": ci,
        "ci95_clipped": clipped,
        "values": list(values),
    }


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test; None when either side has fewer than two values."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    # from exact means and deviations: on the raw values SciPy warns of precision
    # loss when one side's values are all equal, which val accuracy (a multiple of
    # 1/n) often is over a handful of seeds; its spread is then exactly zero
    test = stats.ttest_ind_from_stats(
        statistics.fmean(a), statistics.stdev(a), len(a),
        statistics.fmean(b), statistics.stdev(b), len(b),
        equal_var=False,
    )  # fmt: skip
    return float(test.pvalue)


def bounds_text(bounds: Sequence[float | None] | None) -> str:
    """A metric's range as an interval: ``[0, 1]``, ``[0, inf)``, ``(-inf, 1]``."""
    low, high = bounds or (None, None)
    return (
        (f"[{low:g}" if low is not None else "(-inf")
        + ", "
        + (f"{high:g}]" if high is not None else "inf)")
    )
