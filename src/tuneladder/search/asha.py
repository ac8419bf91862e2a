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

A sweep may also **grow** (``halving.grow``: its plan carries ``reserve``
configs, sampled after its ``trials``). ASHA keeps every worker busy by adding
a new config whenever nothing can be promoted; a sweep of a fixed size instead
leaves workers idle while its slowest trainings end. Growing, a worker that
would wait takes the next reserve config, or promotes a grown one, when the
training is expected to end before the last training now running does, so
growth fills idle time and never delays the final choice (more than an
estimate's error): seconds per epoch are measured at the level before, and a
config not yet trained is assumed as slow as the slowest tenth seen so far.
Grown configs rank and count as any other; they are never needed to finish: a
pace can be far off for a config not trained yet, so a grown training asks at
each epoch's end whether it goes on (:meth:`Asha.keeps`): not once the planned
trainings are all done (:attr:`Asha.settled`), nor when at its measured pace it
would end after them; the caller then cuts it (:meth:`Asha.cut`).

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
import itertools
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
    # asked to fill idle time (a reserve config, or a promotion only growth made possible):
    # cut at an epoch's end when Asha.keeps says so
    grown: bool = False


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
        # the epochs a training at each level adds to the level before's
        self._adds = [b - a for a, b in itertools.pairwise([0, *self._epochs])]
        self._names = [entry["name"] for entry in plan["trials"]]
        self._reserve = [entry["name"] for entry in plan.get("reserve", ())]
        self._in_reserve = set(self._reserve)  # names: is this config a reserve one
        self._index = {name: i for i, name in enumerate(self._names + self._reserve)}
        self._next = 0  # the first config of the plan that may not have been asked yet
        self._next_reserve = 0
        levels = range(len(self._epochs))
        self._asked: list[set[str]] = [set() for _ in levels]
        self._rows: list[dict[str, Mapping[str, Any]]] = [{} for _ in levels]
        # per level, the configs able to go on, best first: (sort key, ladder index, name)
        self._ranked: list[list[tuple[float, int, str]]] = [[] for _ in levels]
        # the same of the planned configs only, and how many of them finished, per level
        self._ranked_planned: list[list[tuple[float, int, str]]] = [[] for _ in levels]
        self._finished_planned = [0 for _ in levels]
        # the same two rankings less the configs asked at the next level: a promotion is
        # the first of them, when it ranks within the quota (scanning the ranking past
        # those promoted made a sweep of 100,000 configs quadratic)
        self._unpromoted: list[list[tuple[float, int, str]]] = [[] for _ in levels]
        self._unpromoted_planned: list[list[tuple[float, int, str]]] = [[] for _ in levels]
        self._started: dict[tuple[int, str], float] = {}  # running trainings' start times
        self._optional: set[tuple[int, str]] = set()  # trainings asked to fill idle time
        self._cut: list[set[str]] = [set() for _ in levels]  # grown trainings stopped
        # asked, neither finished nor cut: per level, and those not grown (kept as they
        # change, since `settled` is asked at every grown training's epoch end)
        self._running: list[set[str]] = [set() for _ in levels]
        self._running_planned: set[tuple[int, str]] = set()
        # when the last running training ends (all, planned only), by the state it read
        self._version = 0
        self._ends_cache: dict[bool, tuple[int, float | None]] = {}
        self._per_epoch: dict[str, float] = {}  # each config's measured seconds per epoch
        self._paces: list[float] = []  # the same, sorted

    def __len__(self) -> int:
        return len(self._epochs)

    def epochs(self, level: int) -> int:
        return self._epochs[level]

    def ask(self, now: float | None = None) -> Ask | None:
        """The next training: the best promotable config of the highest level, else a new
        config at level 0, else (at time ``now``, when the sweep grows) a grown config
        that ends before the running trainings do; None when nothing can start now
        (trials still running) or the sweep is done (:attr:`done`)."""
        for level in reversed(range(len(self) - 1)):
            name = self._promotable(level)
            if name is not None:
                return self.asked(Ask(level + 1, name), at=now)
        self._skip_asked()
        if self._next < len(self._names):
            return self.asked(Ask(0, self._names[self._next]), at=now)
        if now is None or not self._reserve:
            return None
        ends = self._running_ends_at()
        for level in reversed(range(len(self) - 1)):
            name = self._growth(level, now, ends)
            if name is not None:
                return self.asked(Ask(level + 1, name, grown=True), at=now)
        while self._next_reserve < len(self._reserve):
            name = self._reserve[self._next_reserve]
            if name not in self._asked[0]:
                if not self._fits(0, name, now, ends):
                    return None
                return self.asked(Ask(0, name, grown=True), at=now)
            self._next_reserve += 1
        return None

    def asked(self, ask: Ask, *, at: float | None = None) -> Ask:
        """Record an ask (made here, or replayed from the log of one made elsewhere), and
        when it started (``at``), which a growing sweep times its end by."""
        if ask.name not in self._index:
            raise ValueError(f"config {ask.name!r} is not in the plan")
        if ask.level > 0 and ask.name not in self._rows[ask.level - 1]:
            raise ValueError(f"config {ask.name!r} has no result at level {ask.level - 1}")
        self._version += 1
        key = (ask.level, ask.name)
        self._mark_asked(ask.level, ask.name)
        if ask.grown:
            self._optional.add(key)
            self._running_planned.discard(key)
        if ask.name not in self._rows[ask.level] and ask.name not in self._cut[ask.level]:
            self._running[ask.level].add(ask.name)
            if key not in self._optional:
                self._running_planned.add(key)
        if at is not None and ask.name not in self._rows[ask.level]:
            self._started[key] = at
        return ask

    def cut(self, level: int, name: str) -> None:
        """A grown training stopped before its end (the planned trainings were done): it
        runs no more, has no result, and is never asked again."""
        self._version += 1
        self._cut[level].add(name)
        self._started.pop((level, name), None)
        self._running[level].discard(name)
        self._running_planned.discard((level, name))

    def is_grown(self, level: int, name: str) -> bool:
        """Whether the training of ``name`` at ``level`` was asked to fill idle time."""
        return (level, name) in self._optional

    @property
    def settled(self) -> bool:
        """The planned trainings are all done: every trial asked, every training not
        grown finished, and no promotion of the trials left. Grown trainings still
        running stop at their next epoch's end."""
        self._skip_asked()
        return (
            self._next == len(self._names)
            and not self._running_planned
            and all(self._promotable(level) is None for level in range(len(self) - 1))
        )

    @property
    def grown(self) -> list[str]:
        """The reserve configs asked so far and not cut at level 0, in plan order."""
        return [n for n in self._reserve if n in self._asked[0] and n not in self._cut[0]]

    def tell(self, level: int, row: Mapping[str, Any]) -> None:
        """A finished trial's row (``name``, ``status``, ``best_val_metric``, ``epochs_run``,
        ``stopped_early``) at ``level``; told again (retrained), the new row replaces it."""
        name = row["name"]
        self._version += 1
        self._mark_asked(level, name)
        self._started.pop((level, name), None)
        self._running[level].discard(name)
        self._running_planned.discard((level, name))
        seconds, epochs = row.get("train_seconds"), row.get("epochs_run")
        if seconds and epochs:
            if (pace := self._per_epoch.get(name)) is not None:
                self._paces.pop(bisect.bisect_left(self._paces, pace))
            self._per_epoch[name] = pace = float(seconds) / int(epochs)
            bisect.insort(self._paces, pace)
        lists = [(self._ranked[level], self._unpromoted[level])]
        # a planned training: neither a grown config's nor a promotion only growth made
        planned = name not in self._in_reserve and (level, name) not in self._optional
        if planned:
            lists.append((self._ranked_planned[level], self._unpromoted_planned[level]))
        old = self._rows[level].get(name)
        if old is not None and (key := self._key(level, old)) is not None:
            # from every list: one told while planned may be grown now (a replayed log)
            for keys in (
                self._ranked,
                self._ranked_planned,
                self._unpromoted,
                self._unpromoted_planned,
            ):
                _discard(keys[level], key)
        elif old is None and planned:
            self._finished_planned[level] += 1
        self._rows[level][name] = row
        if (key := self._key(level, row)) is not None:
            waiting = level + 1 < len(self) and name not in self._asked[level + 1]
            for ranked, unpromoted in lists:
                bisect.insort(ranked, key)
                if waiting:
                    bisect.insort(unpromoted, key)

    def _mark_asked(self, level: int, name: str) -> None:
        """``name`` asked at ``level``: promoted, it no longer waits at the level below."""
        if name in self._asked[level]:
            return
        self._asked[level].add(name)
        below = self._rows[level - 1].get(name) if level > 0 else None
        if below is not None and (key := self._key(level - 1, below)) is not None:
            _discard(self._unpromoted[level - 1], key)
            _discard(self._unpromoted_planned[level - 1], key)

    def asked_at(self, level: int) -> set[str]:
        """Configs asked at ``level`` so far (finished there or not), less those cut."""
        return self._asked[level] - self._cut[level]

    def running(self, level: int) -> set[str]:
        """Configs asked at ``level`` without a result there yet, nor cut."""
        return set(self._running[level])

    def finished(self, level: int) -> dict[str, Mapping[str, Any]]:
        """The rows told at ``level``, by config name."""
        return dict(self._rows[level])

    @property
    def done(self) -> bool:
        """Every config was asked, every ask finished, and nothing is left to promote
        (a grown config is promoted only while others still train)."""
        return self.settled and not any(self._running)

    def _key(self, level: int, row: Mapping[str, Any]) -> tuple[float, int, str] | None:
        """Where a row ranks among its level's, or None when it cannot go on: only ``ok``
        trials that ran to the level's epochs and were not stopped by patience."""
        value = ok_value(row)
        if value is None or row.get("stopped_early") or row["epochs_run"] != self._epochs[level]:
            return None
        return self._direction.sort_key(value), self._index[row["name"]], row["name"]

    def _promotable(self, level: int) -> str | None:
        """The best config of ``level``'s top ``n // eta`` not yet asked at the next level.

        Among the planned configs only: a sweep that grows promotes them exactly as it
        would without growth, so its grown configs never hold back the final choice."""
        finished = self._finished_planned[level]
        quota = finished // self._eta
        if quota == 0 and finished and self._closed(level):
            quota = 1  # the sweep's configs ran out: the best still goes on
        waiting = self._unpromoted_planned[level]
        if waiting and _within(waiting[0], self._ranked_planned[level], quota):
            return waiting[0][2]
        return None

    def _growth(self, level: int, now: float | None, ends: float | None) -> str | None:
        """A promotion the grown configs make possible (a grown config, or a planned one
        in the top 1/eta of them all but not of the planned), when it fits before
        ``ends`` (:meth:`_fits`)."""
        if now is None or ends is None:
            return None
        quota, ranked = len(self._rows[level]) // self._eta, self._ranked[level]
        if quota <= 0:
            return None
        last = ranked[quota - 1] if quota < len(ranked) else None  # the quota's last key
        # _fits, for each config in turn (a scan of thousands at 1,000 workers)
        per_epoch, new_pace, epochs = self._per_epoch, self._new_pace(), self._adds[level + 1]
        for key in self._unpromoted[level]:
            if last is not None and key > last:
                break
            pace = per_epoch.get(key[2], new_pace)
            if pace is not None and now + pace * epochs <= ends:
                return key[2]
        return None

    def keeps(self, now: float, seconds_left: float) -> bool:
        """Whether a grown training with ``seconds_left`` to train (its own pace, measured)
        goes on at ``now``: not once the planned trainings are all done, nor when it would
        end after the last of them still running is expected to."""
        if self.settled:
            return False
        ends = self._running_ends_at(planned_only=True)
        return ends is None or now + seconds_left <= ends

    def _running_ends_at(self, *, planned_only: bool = False) -> float | None:
        """When the last training now running (not grown, with ``planned_only``) is expected
        to end; None when none is, or one's start or pace is unknown."""
        cached = self._ends_cache.get(planned_only)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        ends = self._last_end(planned_only=planned_only)
        self._ends_cache[planned_only] = (self._version, ends)
        return ends

    def _last_end(self, *, planned_only: bool) -> float | None:
        """:meth:`_running_ends_at` computed: :meth:`_seconds` of every running training."""
        ends, per_epoch, new_pace, adds = None, self._per_epoch, self._new_pace(), self._adds
        for key, started in self._started.items():
            if planned_only and key in self._optional:
                continue
            pace = per_epoch.get(key[1], new_pace)
            if pace is None:
                return None
            end = started + pace * adds[key[0]]
            if ends is None or end > ends:
                ends = end
        return ends

    def _fits(self, level: int, name: str, now: float | None, ends: float | None) -> bool:
        """A grown training may start at ``now`` if it should end by ``ends``."""
        if now is None or ends is None:
            return False
        seconds = self._seconds(level, name)
        return seconds is not None and now + seconds <= ends

    def _seconds(self, level: int, name: str) -> float | None:
        """How long training ``name`` at ``level`` should take: its epochs there times its
        pace at the level before, or, new, the pace of the slowest tenth seen so far."""
        pace = self._per_epoch.get(name, self._new_pace())
        return None if pace is None else pace * self._adds[level]

    def _new_pace(self) -> float | None:
        """The pace a config not trained yet is expected to have: the slowest tenth's seen
        so far (None before any)."""
        paces = self._paces
        return paces[min(len(paces) - 1, int(0.9 * len(paces)))] if paces else None

    def _closed(self, level: int) -> bool:
        """No config can arrive at ``level`` any more."""
        self._skip_asked()
        if self._next < len(self._names):
            return False
        below = range(level)
        return not self._running[level] and all(
            not self._running[b] and self._promotable(b) is None for b in below
        )

    def _skip_asked(self) -> None:
        while self._next < len(self._names) and self._names[self._next] in self._asked[0]:
            self._next += 1


def _within(key: tuple[float, int, str], ranked: list[tuple[float, int, str]], quota: int) -> bool:
    """Whether ``key`` (in ``ranked``) is among its first ``quota``: keys are unique."""
    return quota > 0 and (quota >= len(ranked) or key <= ranked[quota - 1])


def _discard(keys: list[tuple[float, int, str]], key: tuple[float, int, str]) -> None:
    """Take ``key`` out of the sorted ``keys`` where it is there."""
    at = bisect.bisect_left(keys, key)
    if at < len(keys) and keys[at] == key:
        keys.pop(at)
