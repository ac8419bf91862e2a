"""A trial's epochs as the report holds them: its cells as read, numbers when asked, as dicts.

A 100,000-trial sweep has 1.5 million epochs. Held as a dict per epoch they took
about 1.8 GB of the ``report_sweeps`` job, and turning their 15 million cells into
floats took most of its reading, though every trial's rules read two columns and
only the few trials a figure draws read the rest. :class:`History` keeps a trial's
cells as one string and parses a column when a rule asks for it
(:func:`columns`), every cell when an epoch is read as a dict
(``history[i]["val_loss"]``, as the figures were written for). No IO here:
``_load`` reads the files.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

__all__ = ["History", "LazyHistory", "columns", "empty_history", "number"]

# one header (and its name -> position map) shared by every trial that wrote it
_HEADERS: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, int]]] = {}


def number(text: str) -> float:
    """A cell as a float: NaN where it is empty or not a number."""
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _numbers(cells: Sequence[str]) -> list[float]:
    try:
        return list(map(float, cells))  # in C: the common case, every cell a number
    except ValueError:
        return [number(c) for c in cells]


class History(Sequence[dict[str, float]]):
    """A trial's ``history.csv``: ``len(history)`` epochs of the ``header``'s columns.

    Give it the epochs' ``values`` (``len(header)`` floats each, one epoch after
    another), or their ``cells``: the csv rows' cells joined by commas, every row
    ``len(header)`` cells long, parsed when read. A cell that is empty or not a
    number is NaN. ``history[i]`` is epoch ``i`` as a dict (a repeated column
    name keeps its last cell, as ``dict(zip(...))`` would), ``history.column(name)``
    a column as a list.
    """

    __slots__ = ("_cells", "_epochs", "_index", "_values", "_width", "header")

    def __init__(
        self, header: Sequence[str], values: array | None = None, *, cells: str | None = None
    ) -> None:
        key = tuple(header)
        shared = _HEADERS.get(key)
        if shared is None:
            shared = _HEADERS.setdefault(key, (key, {name: i for i, name in enumerate(key)}))
        self.header, self._index = shared
        self._width = len(key)
        self._values, self._cells = values, cells
        count = len(values) if values is not None else _count(cells)
        if (count % self._width if self._width else count) or (values is None) == (cells is None):
            raise ValueError(f"give values or cells, in rows of {self._width} columns")
        self._epochs = count // self._width if self._width else 0

    @property
    def values(self) -> array:
        """Every cell as a float, one epoch after another."""
        if self._values is None:
            assert self._cells is not None
            self._values = array("d", _numbers(self._cells.split(",")))
            self._cells = None
        return self._values

    def __len__(self) -> int:
        return self._epochs

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
        return self.columns(name)[0]

    def columns(self, *names: str) -> list[list[float]]:
        """:meth:`column` of each of ``names``, the cells split once."""
        if not self._epochs:
            return [[] for _ in names]
        where = [self._index[name] for name in names]
        if self._cells is None:
            return [self.values[i :: self._width].tolist() for i in where]
        cells = self._cells.split(",")
        return [_numbers(cells[i :: self._width]) for i in where]


class LazyHistory(Sequence[dict[str, float]]):
    """A :class:`History` loaded (by ``load``) the first time it is read.

    A rung's rows each carry one: the failure rules read a trial's curve summary
    from its row, so only the trials a figure draws, or whose result has no
    summary, have their file read.
    """

    __slots__ = ("_history", "_load")

    def __init__(self, load: Callable[[], History]) -> None:
        self._load: Callable[[], History] | None = load
        self._history: History | None = None

    @property
    def history(self) -> History:
        if self._history is None:
            assert self._load is not None
            self._history, self._load = self._load(), None
        return self._history

    def __len__(self) -> int:
        return len(self.history)

    @overload
    def __getitem__(self, i: int) -> dict[str, float]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, float]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, float] | list[dict[str, float]]:
        return self.history[i]

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.history)

    def __eq__(self, other: object) -> bool:
        return self.history == (other.history if isinstance(other, LazyHistory) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "LazyHistory(not read yet)" if self._history is None else repr(self._history)


def _count(cells: str | None) -> int:
    """How many cells a comma-joined string holds (none in an empty one)."""
    return cells.count(",") + 1 if cells else 0


def _same(a: array, b: array) -> bool:
    """Equal arrays, NaN equal to NaN (the same cells read twice)."""
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )


def columns(history: Sequence[Mapping[str, float]], *names: str) -> list[list[float]]:
    """The columns ``names`` of a history, each as a list over its epochs.

    A :class:`History` parses those cells only; any other sequence of epoch
    mappings (a test's hand-made history) is read epoch by epoch.
    """
    if isinstance(history, LazyHistory):
        history = history.history
    if isinstance(history, History):
        return history.columns(*names)
    return [[epoch[name] for epoch in history] for name in names]


def empty_history() -> History:
    """No epochs: a trial whose ``history.csv`` is absent or empty."""
    return History((), array("d"))
