"""Which way a metric is better, and ranking by it: the one place that compares metric values.

Like Optuna's ``StudyDirection``, one type decides "better"; nobody multiplies by
-1 by hand. :class:`Direction` is a string enum whose values are the config's
``metric.mode`` (``"max"``, ``"min"``), so it goes wherever a mode string went
and ``Direction(mode)`` accepts either. Values that are None or not finite are
never better than anything: they rank last and never become a best.

Example:
    >>> d = Direction("min")
    >>> d.better(0.1, 0.2), d.best([0.3, float("nan"), 0.2]), best_so_far([0.3, None, 0.1], d)
    (True, 0.2, [0.3, 0.3, 0.1])
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["Direction", "best_so_far", "halving_tier", "ok_value", "tie_key", "top"]

T = TypeVar("T")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class Direction(StrEnum):
    """Whether larger (``MAXIMIZE``, ``"max"``) or smaller (``MINIMIZE``, ``"min"``) is better."""

    MAXIMIZE = "max"
    MINIMIZE = "min"

    @classmethod
    def _missing_(cls, value: object) -> Direction:
        raise ValueError(f"mode must be 'max' or 'min', got mode={value!r}")

    @property
    def worst(self) -> float:
        """The value any finite value beats: ``-inf`` when maximising, ``inf`` when minimising."""
        return -math.inf if self is Direction.MAXIMIZE else math.inf

    @property
    def optuna(self) -> str:
        """The same direction in Optuna's words (``"maximize"``, ``"minimize"``)."""
        return "maximize" if self is Direction.MAXIMIZE else "minimize"

    def gain(self, delta: float) -> float:
        """A change of the metric, signed so that positive means better."""
        return delta if self is Direction.MAXIMIZE else -delta

    def sort_key(self, value: float | None) -> float:
        """Sorting by this key puts the best value first; None and non-finite values last."""
        return -self.gain(value) if _finite(value) else math.inf  # type: ignore[arg-type]

    def better(self, a: float | None, b: float | None) -> bool:
        """Whether ``a`` is strictly better than ``b`` (any finite value beats a missing one)."""
        return self.sort_key(a) < self.sort_key(b)

    def best(self, values: Iterable[float | None]) -> float | None:
        """The best finite value (the first of equals), or None when there is none."""
        best = None
        for value in values:
            if _finite(value) and (best is None or self.better(value, best)):
                best = value
        return best


def ok_value(row: Mapping[str, Any]) -> float | None:
    """The value a trial row is ranked by: its val metric when it finished ``ok`` and is finite."""
    # inline: the report asks this of every trial row several times, 100,000 rows over
    if row.get("status") != "ok":
        return None
    value = row.get("best_val_metric")
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def halving_tier(item: Any) -> int:
    """How many halving levels short of its sweep's last one a trial row stopped (0 for
    anything else): a config that halving stopped early ranks below every config that
    trained further, since it lost to them at equal epochs (docs/decisions/)."""
    halving = item.get("halving") if isinstance(item, Mapping) else None
    return int(halving["last_level"] - halving["level"]) if halving else 0


def best_so_far(values: Iterable[float | None], direction: Direction | str) -> list[float | None]:
    """The best finite value after each one, in order (None before the first)."""
    direction = Direction(direction)
    best, out = None, []
    for value in values:
        if direction.better(value, best):
            best = value
        out.append(best)
    return out


def tie_key(value: float | None) -> float:
    """``value`` to 12 digits, where sums of the same values in another order tie (they
    differ in the last bit); None as infinity, after every value."""
    return math.inf if value is None else round(value, 12)


def top(
    items: Sequence[T],
    n: int,
    direction: Direction | str,
    *,
    value: Callable[[T], float | None] = ok_value,  # type: ignore[assignment]
    tie_break: Callable[[T], Any] | None = None,
    distinct: Callable[[T], Hashable] | None = None,
    tier: Callable[[T], int] = halving_tier,
) -> list[T]:
    """The ``n`` best items, best first: the one way the ladder picks its top trials.

    Args:
        items: trial rows (or anything ``value`` reads), in ladder order.
        n: how many to keep at most.
        direction: which way ``value`` is better.
        value: an item's value; items whose value is None or not finite are left
            out (by default :func:`ok_value`: only ``ok`` trials with a finite metric).
        tie_break: among equal values, a smaller ``tie_break(item)`` ranks first;
            what still ties keeps the order given.
        distinct: when given, only the first (best) item of each ``distinct(item)``
            is kept, such as one trial per set of hyperparameters.
        tier: ranks before ``value``: every item of a lower tier comes first (by
            default :func:`halving_tier`, 0 for all rows of a sweep without halving).
    """
    direction = Direction(direction)
    sign = -1.0 if direction is Direction.MAXIMIZE else 1.0  # sort_key of a finite value
    # one key tuple per item, its position last (what still ties keeps the order given, and
    # no two keys are equal): a report ranks 100,000 trials several times, and a key
    # function per item cost a second each time
    keys = []
    for position, item in enumerate(items):
        v = value(item)
        if v is not None and math.isfinite(v):
            keys.append((tier(item), sign * v, tie_break(item) if tie_break else 0, position))
    if distinct is None:
        # the n smallest in order, as sorted(keys)[:n] would give them
        return [items[key[-1]] for key in heapq.nsmallest(n, keys)]
    out: list[T] = []
    seen: set[Hashable] = set()
    for key in sorted(keys):
        if len(out) == n:
            break
        item = items[key[-1]]
        signature = distinct(item)
        if signature in seen:
            continue
        seen.add(signature)
        out.append(item)
    return out
