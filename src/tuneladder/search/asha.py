"""Asynchronous successive halving (ASHA; Li et al., MLSys 2020): the promotion rule.

The levels are those of synchronous halving (:class:`~tuneladder.search.halving.Halving`:
level 0 trains a config for ``min_epochs``, each later one continues it to eta
times the epochs, the last to the sweep's ``epochs``), but no level waits for
the one before to end. A config finished at level *l* is promoted to *l* + 1 as
soon as it is among the best ``n // eta`` of the ``n`` configs finished at *l*
so far; a worker that asks gets the promotable config of the highest level
first, else the next config of the plan at level 0, else nothing for now.

With a sweep's finite number of configs one rule is added, so that at least
one config reaches the sweep's epochs as with the synchronous levels: once no
config can arrive at a level any more (every config was asked at level 0, and
every level below is finished with nothing left to promote), that level
promotes ``max(1, n // eta)`` of its ``n``.

Which configs are promoted depends on the order in which trials finish, so the
caller records each ask (:mod:`tuneladder.execution.promotions` keeps a log)
and replays it with :meth:`Asha.asked`. Pure: no files, no torch.

Example:
    >>> plan = {"halving": {"eta": 2, "levels": [{"epochs": 1}, {"epochs": 2}]},
    ...         "trials": [{"name": "0"}, {"name": "1"}]}
    >>> asha = Asha(plan, "max")
    >>> a, b = asha.ask(), asha.ask()
    >>> (a.name, a.level), (b.name, b.level), asha.ask()
    (('0', 0), ('1', 0), None)
    >>> asha.tell(0, {"name": "1", "status": "ok", "best_val_metric": 0.9, "epochs_run": 1})
    >>> asha.ask()  # 1 finished: the best 1 // 2 = 0 of it, but level 0 is not closed
    >>> asha.tell(0, {"name": "0", "status": "ok", "best_val_metric": 0.5, "epochs_run": 1})
    >>> asha.ask()
    Ask(level=1, name='1')
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuneladder.core.direction import Direction, ok_value

__all__ = ["ASYNC", "SYNC", "Ask", "Asha", "mode_of"]

# halving.mode: the levels one after the other, or promotions as trials finish
SYNC = "sync"
ASYNC = "async"


def mode_of(halving: Mapping[str, Any] | None) -> str | None:
    """A sweep's (or a plan's) halving mode; None when it does not halve."""
    if not halving:
        return None
    return str(halving.get("mode") or SYNC)


@dataclass(frozen=True)
class Ask:
    """Train config ``name`` at ``level`` (continuing its trial of the level before)."""

    level: int
    name: str


class Asha:
    """The promotion rule of a sweep that halves asynchronously, as ask and tell.

    Args:
        plan: the sweep's plan (its ``trials`` in ladder order and its ``halving``:
            ``eta`` and the levels' ``epochs``).
        mode: which way the metric is better.
    """

    def __init__(self, plan: Mapping[str, Any], mode: Direction | str) -> None:
        halving = plan.get("halving")
        if not halving:
            raise ValueError(f"plan of {plan.get('rung')!r} does not halve: it has no levels")
        self._direction = Direction(mode)
        self._eta = int(halving["eta"])
        self._epochs = [int(level["epochs"]) for level in halving["levels"]]
        self._names = [entry["name"] for entry in plan["trials"]]
        self._index = {name: i for i, name in enumerate(self._names)}
        self._next = 0  # the first config of the plan that may not have been asked yet
        levels = range(len(self._epochs))
        self._asked: list[set[str]] = [set() for _ in levels]
        self._rows: list[dict[str, Mapping[str, Any]]] = [{} for _ in levels]
        # per level, the configs able to go on, best first: (sort key, ladder index, name)
        self._ranked: list[list[tuple[float, int, str]]] = [[] for _ in levels]

    def __len__(self) -> int:
        return len(self._epochs)

    def epochs(self, level: int) -> int:
        return self._epochs[level]

    def ask(self) -> Ask | None:
        """The next training: the best promotable config of the highest level, else a new
        config at level 0; None when nothing can start now (trials still running) or
        the sweep is done (:attr:`done`)."""
        for level in reversed(range(len(self) - 1)):
            name = self._promotable(level)
            if name is not None:
                return self.asked(Ask(level + 1, name))
        self._skip_asked()
        if self._next < len(self._names):
            return self.asked(Ask(0, self._names[self._next]))
        return None

    def asked(self, ask: Ask) -> Ask:
        """Record an ask (made here, or replayed from the log of one made elsewhere)."""
        if ask.name not in self._index:
            raise ValueError(f"config {ask.name!r} is not in the plan")
        if ask.level > 0 and ask.name not in self._rows[ask.level - 1]:
            raise ValueError(f"config {ask.name!r} has no result at level {ask.level - 1}")
        self._asked[ask.level].add(ask.name)
        return ask

    def tell(self, level: int, row: Mapping[str, Any]) -> None:
        """A finished trial's row (``name``, ``status``, ``best_val_metric``, ``epochs_run``,
        ``stopped_early``) at ``level``; told again (retrained), the new row replaces it."""
        name = row["name"]
        self._asked[level].add(name)
        ranked = self._ranked[level]
        old = self._rows[level].get(name)
        if old is not None and (key := self._key(level, old)) is not None:
            ranked.pop(bisect.bisect_left(ranked, key))
        self._rows[level][name] = row
        if (key := self._key(level, row)) is not None:
            bisect.insort(ranked, key)

    def asked_at(self, level: int) -> set[str]:
        """Configs asked at ``level`` so far (finished there or not)."""
        return set(self._asked[level])

    def running(self, level: int) -> set[str]:
        """Configs asked at ``level`` without a result there yet."""
        return self._asked[level] - self._rows[level].keys()

    def finished(self, level: int) -> dict[str, Mapping[str, Any]]:
        """The rows told at ``level``, by config name."""
        return dict(self._rows[level])

    @property
    def done(self) -> bool:
        """Every config was asked, every ask finished, and nothing is left to promote."""
        self._skip_asked()
        return (
            self._next == len(self._names)
            and not any(self.running(level) for level in range(len(self)))
            and all(self._promotable(level) is None for level in range(len(self) - 1))
        )

    def _key(self, level: int, row: Mapping[str, Any]) -> tuple[float, int, str] | None:
        """Where a row ranks among its level's, or None when it cannot go on: only ``ok``
        trials that ran to the level's epochs and were not stopped by patience."""
        value = ok_value(row)
        if value is None or row.get("stopped_early") or row["epochs_run"] != self._epochs[level]:
            return None
        return self._direction.sort_key(value), self._index[row["name"]], row["name"]

    def _promotable(self, level: int) -> str | None:
        """The best config of ``level``'s top ``n // eta`` not yet asked at the next level."""
        quota = len(self._rows[level]) // self._eta
        if quota == 0 and self._rows[level] and self._closed(level):
            quota = 1  # the sweep's configs ran out: the best still goes on
        above = self._asked[level + 1]
        for _, _, name in self._ranked[level][:quota]:
            if name not in above:
                return name
        return None

    def _closed(self, level: int) -> bool:
        """No config can arrive at ``level`` any more."""
        self._skip_asked()
        if self._next < len(self._names):
            return False
        below = range(level)
        return not self.running(level) and all(
            not self.running(b) and self._promotable(b) is None for b in below
        )

    def _skip_asked(self) -> None:
        while self._next < len(self._names) and self._names[self._next] in self._asked[0]:
            self._next += 1
