"""How sure we are: spread over seeds and whether two configs can be told apart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["describe", "welch_p_value"]


def describe(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample std and a 95% t-interval of the mean (None where n is too small)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None, "values": []}
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else None
    ci = None
    if std is not None:
        half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"n": n, "mean": mean, "std": std, "ci95": ci, "values": list(values)}


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test; None when either side has fewer than two values."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
