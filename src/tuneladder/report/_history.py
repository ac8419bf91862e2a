"""A trial's epochs as the report holds them: one flat array of floats, read as dicts.

A 100,000-trial sweep has 1.5 million epochs. Held as a dict per epoch they took
about 1.8 GB of the ``report_sweeps`` job; held as one ``array('d')`` per trial
they take about 130 MB. :class:`History` still reads as the list of dicts the
figures and rules were written for (``history[i]["val_loss"]``), and
:func:`columns` gives a rule whole columns without building a dict per epoch.
No IO here: ``_load`` reads the files.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import overload

__all__ = ["History", "columns", "empty_history"]

# one header (and its name -> position map) shared by every trial that wrote it
_HEADERS: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, int]]] = {}


class History(Sequence[dict[str, float]]):
    """A trial's ``history.csv``: ``len(history)`` epochs of the ``header``'s columns.

    ``values`` holds the epochs one after another (``len(header)`` floats each);
    a cell that is empty or not a number is NaN. ``history[i]`` is epoch ``i`` as
    a dict (a repeated column name keeps its last cell, as ``dict(zip(...))``
    would), ``history.column(name)`` a column as a list.
    """

    __slots__ = ("_index", "_width", "header", "values")

    def __init__(self, header: Sequence[str], values: array) -> None:
        key = tuple(header)
        shared = _HEADERS.get(key)
        if shared is None:
            shared = _HEADERS.setdefault(key, (key, {name: i for i, name in enumerate(key)}))
        self.header, self._index = shared
        self._width = len(key)
        if self._width and len(values) % self._width:
            raise ValueError(f"{len(values)} values do not make rows of {self._width} columns")
        self.values = values

    def __len__(self) -> int:
        return len(self.values) // self._width if self._width else 0

    @overload
    def __getitem__(self, i: int) -> dict[str, float]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, float]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, float] | list[dict[str, float]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("history index out of range")
        start = (i % n) * self._width
        return dict(zip(self.header, self.values[start : start + self._width], strict=True))

    def __iter__(self) -> Iterator[dict[str, float]]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, History):
            return self.header == other.header and _same(self.values, other.values)
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"History({len(self)} epochs of {', '.join(self.header)})"

    def column(self, name: str) -> list[float]:
        """Every epoch's value of column ``name`` (KeyError where the header lacks it and
        there are epochs: a history of none has every column, empty)."""
        if not self.values and name not in self._index:
            return []
        return self.values[self._index[name] :: self._width].tolist()


def _same(a: array, b: array) -> bool:
    """Equal arrays, NaN equal to NaN (the same cells read twice)."""
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )


def columns(history: Sequence[Mapping[str, float]], *names: str) -> list[list[float]]:
    """The columns ``names`` of a history, each as a list over its epochs.

    A :class:`History` slices its array; any other sequence of epoch mappings
    (a test's hand-made history) is read epoch by epoch.
    """
    if isinstance(history, History):
        return [history.column(name) for name in names]
    return [[epoch[name] for epoch in history] for name in names]


def empty_history() -> History:
    """No epochs: a trial whose ``history.csv`` is absent or empty."""
    return History((), array("d"))
