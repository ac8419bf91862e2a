"""Successive halving in a sweep: which configs train, to which epoch, level by level.

Level 0 trains every config of the sweep for ``min_epochs``. Each later level
continues the best 1/eta of the configs that reached the level before, from the
state they stopped in, to eta times the epochs (the last level to the sweep's
``epochs``). A config has one schedule whose horizon is the sweep's ``epochs``
from its first step, and a level only stops it early, so a config continued to
15 epochs has the history it would have had trained straight through.

The levels and their counts follow from the config alone, so the DAG is static;
which configs continue is decided by each level's plan, from the table of the
level before. :class:`Levels` is that loop, once: the workers walk it to train
the levels and ``collect`` to read them, so both plan the same levels from the
same tables. Trial folders are ``trials/<index>/e<epochs>/``, one per config
and level; a level's plan, worker markers, claims and table are in
``levels/<level>/``. This module reads and writes no files and imports no torch.

Example:
    >>> h = Halving(trials=30, epochs=15, eta=3, min_epochs=3)
    >>> [(level.epochs, level.configs) for level in h.levels]
    [(3, 30), (9, 10), (15, 3)]
    >>> h.trial_epochs, h.trials * h.epochs
    (168, 450)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from tuneladder.core.direction import Direction, ok_value, top

__all__ = [
    "LEVELS_DIR",
    "Halving",
    "Level",
    "Levels",
    "asked_level",
    "configs_of",
    "continuing",
    "expected_seconds",
    "level_dir",
    "level_entry",
    "level_trial_dirs",
    "merge_levels",
    "plan_level",
    "trial_dir",
    "with_halving",
]

# A sweep's levels keep their plan, worker markers, claims and table in levels/<level>/.
LEVELS_DIR = "levels"


@dataclass(frozen=True, kw_only=True)
class Level:
    """One level of successive halving.

    Attributes:
        index: 0 for the level that trains every config.
        epochs: the epoch of the config's schedule its trials stop at.
        configs: how many configs it trains (fewer when failures leave fewer to continue).
    """

    index: int
    epochs: int
    configs: int


@dataclass(frozen=True, kw_only=True)
class Halving:
    """The levels of one sweep, from its trial count, epochs, ``eta`` and ``min_epochs``."""

    trials: int
    epochs: int
    eta: int
    min_epochs: int
    mode: str = "sync"  # or "async": promotions as trials finish (tuneladder.search.asha)
    grow: float = 0.0  # async: reserve configs, as a multiple of trials, to fill idle workers

    def __post_init__(self) -> None:
        # keys as a sweep's section names them: the config check prefixes the section
        if self.mode not in ("sync", "async"):
            raise ValueError(f"halving.mode must be 'sync' or 'async', got {self.mode!r}")
        if self.grow < 0:
            raise ValueError(f"halving.grow must be >= 0, got {self.grow}")
        if self.grow and self.mode != "async":
            raise ValueError(
                "halving.grow needs halving.mode: async (a synchronous sweep has no idle"
                f" workers to fill until a level ends), got mode {self.mode!r}"
            )
        if self.eta < 2:
            raise ValueError(f"halving.eta must be >= 2, got {self.eta}")
        if not 1 <= self.min_epochs < self.epochs:
            raise ValueError(
                f"halving.min_epochs must be >= 1 and < epochs ({self.epochs}),"
                f" got {self.min_epochs}"
            )
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")

    @classmethod
    def from_sweep(cls, sweep: Mapping[str, Any]) -> Halving | None:
        """From a resolved ``coarse``/``fine`` section; None when it does not halve."""
        spec = sweep.get("halving")
        if not spec:
            return None
        return cls(
            trials=int(sweep["trials"]),
            epochs=int(sweep["epochs"]),
            eta=int(spec.get("eta", 3)),
            min_epochs=int(spec["min_epochs"]),
            mode=str(spec.get("mode") or "sync"),
            grow=float(spec.get("grow") or 0.0),
        )

    @property
    def reserve(self) -> int:
        """How many configs a growing sweep samples beyond its trials."""
        return math.ceil(self.grow * self.trials)

    @property
    def levels(self) -> tuple[Level, ...]:
        """Epochs grow by eta from ``min_epochs`` until they reach ``epochs``; the count of
        configs shrinks by eta, never below one."""
        out, epochs = [], self.min_epochs
        while True:
            index = len(out)
            out.append(
                Level(
                    index=index,
                    epochs=min(epochs, self.epochs),
                    configs=max(1, self.trials // self.eta**index),
                )
            )
            if epochs >= self.epochs:
                return tuple(out)
            epochs *= self.eta

    @property
    def trial_epochs(self) -> int:
        """Epochs trained in all when every level is full: a continued config only adds
        the epochs from where it stopped."""
        total, before = 0, 0
        for level in self.levels:
            total += level.configs * (level.epochs - before)
            before = level.epochs
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "eta": self.eta,
            "min_epochs": self.min_epochs,
            "levels": [
                {"level": lv.index, "epochs": lv.epochs, "configs": lv.configs}
                for lv in self.levels
            ],
            "trial_epochs": self.trial_epochs,
            "full_trial_epochs": self.trials * self.epochs,
            # a synchronous plan is what it was before modes existed
            **({"mode": self.mode} if self.mode != "sync" else {}),
            **({"grow": self.grow} if self.grow else {}),
        }


def level_dir(level: int) -> str:
    """A level's folder, relative to its sweep's folder."""
    return f"{LEVELS_DIR}/{level}"


def trial_dir(index: int, epochs: int) -> str:
    """A config's trial folder at one level, relative to its sweep's folder."""
    return f"trials/{index}/e{epochs}"


def level_trial_dirs(row: Mapping[str, Any], furthest: str | None = None) -> list[str]:
    """Every trial folder of a rung's table row: for a sweep that halves, one per level
    its config reached (siblings ``e<epochs>`` of its furthest one), else its own.

    ``furthest`` is that folder where the row's ``dir`` no longer names it (the
    report resolves it from wherever ``results/`` now lives).
    """
    here = row["dir"] if furthest is None else furthest
    halving = row.get("halving")
    if not halving:
        return [here]
    parent = PurePosixPath(here).parent
    return [str(parent / f"e{level['epochs']}") for level in halving["levels"]]


def with_halving(plan: Mapping[str, Any], halving: Halving) -> dict[str, Any]:
    """A sweep's plan, halving: its trial folders are level 0's, and it records the levels."""
    first = halving.levels[0].epochs
    trials = [{**entry, "dir": trial_dir(entry["index"], first)} for entry in plan["trials"]]
    return {**plan, "halving": halving.to_json(), "trials": trials}


def continuing(
    rows: Sequence[Mapping[str, Any]], *, epochs: int, configs: int, mode: Direction | str
) -> list[Mapping[str, Any]]:
    """The rows of a level's table that go on to the next level, best first.

    Only configs still training can go on: ``ok``, not stopped by patience, and
    trained to the level's ``epochs``. They are compared at those equal epochs
    by their best val metric so far; ties keep ladder order.
    """
    able = [
        row
        for row in rows
        if row["status"] == "ok" and not row.get("stopped_early") and row["epochs_run"] == epochs
    ]
    return top(able, configs, mode, value=ok_value)


def plan_level(
    plan: Mapping[str, Any],
    level: int,
    previous: Sequence[Mapping[str, Any]] | None,
    mode: Direction | str,
) -> dict[str, Any]:
    """The trials of one level: every config at level 0, else those that continue.

    ``plan`` is the sweep's plan (:func:`with_halving`), ``previous`` the table
    of level ``level - 1`` (None at level 0). Entries keep the sweep's names and
    indices and are in ladder order; their folders are relative to the level's.
    """
    levels = plan["halving"]["levels"]
    if not 0 <= level < len(levels):
        raise ValueError(f"level must be in [0, {len(levels)}), got {level=}")
    here = levels[level]
    if level == 0:
        chosen, ranked = list(plan["trials"]), []
    else:
        if previous is None:
            raise ValueError(f"level {level} continues level {level - 1}: its table is needed")
        before = levels[level - 1]
        ranked = continuing(previous, epochs=before["epochs"], configs=here["configs"], mode=mode)
        names = {row["name"] for row in ranked}
        chosen = [entry for entry in plan["trials"] if entry["name"] in names]
    entries = [level_entry(plan, level, entry) for entry in chosen]
    return {
        "rung": plan["rung"],
        "level": level,
        "epochs": here["epochs"],
        "configs": here["configs"],
        "ranked": [row["name"] for row in ranked],  # who continued, best first
        "trials": entries,
    }


def level_entry(plan: Mapping[str, Any], level: int, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A config's trial at ``level``: its plan ``entry``, its folder relative to the
    level's folder, the epoch it stops at, and (past level 0) the trial it continues."""
    levels = plan["halving"]["levels"]
    up = "../../"  # from levels/<level>/ back to the sweep's folder
    here = levels[level]
    out = {
        **entry,
        "dir": up + trial_dir(entry["index"], here["epochs"]),
        "level": level,
        "budget": here["epochs"],
    }
    if level > 0:
        before = levels[level - 1]
        out["continues"] = {
            "dir": up + trial_dir(entry["index"], before["epochs"]),
            "budget": before["epochs"],
        }
    return out


def configs_of(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every config a sweep may train: its trials, then a growing sweep's reserve."""
    return [*plan["trials"], *plan.get("reserve", ())]


def asked_level(plan: Mapping[str, Any], level: int, names: Iterable[str]) -> dict[str, Any]:
    """A level's plan in a sweep that halves asynchronously: the configs asked there
    (:mod:`tuneladder.search.asha`), in ladder order, shaped as :func:`plan_level`'s."""
    asked = set(names)
    here = plan["halving"]["levels"][level]
    return {
        "rung": plan["rung"],
        "level": level,
        "epochs": here["epochs"],
        "configs": len(asked),
        "mode": "async",
        "ranked": [],
        "trials": [level_entry(plan, level, e) for e in configs_of(plan) if e["name"] in asked],
    }


class Levels:
    """A halving sweep's levels, one after the other, each planned from the table of the
    level before (:func:`plan_level`).

    Iterating gives each level's plan; before the next one is planned, :meth:`tell`
    must give the level's table (its rows, as ``collect_rung`` reads them). A
    caller may stop early: a worker with no trial at a level, or at the last one.

    Example::

        levels = Levels(plan, "max")
        for level_plan in levels:
            levels.tell(table_of(level_plan))
        rows = levels.merged()
    """

    def __init__(self, plan: Mapping[str, Any], mode: Direction | str) -> None:
        if not plan.get("halving"):
            raise ValueError(f"plan of {plan.get('rung')!r} does not halve: it has no levels")
        self._plan = plan
        self._mode = mode
        self._tables: list[list[Mapping[str, Any]]] = []

    def __len__(self) -> int:
        return len(self._plan["halving"]["levels"])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for level in range(len(self)):
            if len(self._tables) != level:
                raise RuntimeError(f"level {level - 1}'s table must be told before level {level}")
            yield plan_level(self._plan, level, self.previous, self._mode)

    @property
    def previous(self) -> list[Mapping[str, Any]] | None:
        """The table of the last level told; None before level 0's."""
        return self._tables[-1] if self._tables else None

    def is_last(self, level_plan: Mapping[str, Any]) -> bool:
        return level_plan["level"] == len(self) - 1

    def tell(self, table: Sequence[Mapping[str, Any]]) -> None:
        """The table of the level just planned: the next level continues its best."""
        self._tables.append(list(table))

    def merged(self) -> list[dict[str, Any]]:
        """The sweep's table, once every level is told (:func:`merge_levels`)."""
        return merge_levels(self._plan, self._tables)


def expected_seconds(
    previous: Sequence[Mapping[str, Any]] | None, level_plan: Mapping[str, Any]
) -> dict[str, float] | None:
    """How long each trial of a level will train, by name: its config's seconds per epoch
    at the level before (``previous``, that level's table), times the epochs it adds.

    Workers start the longest first, since a level ends when its last trial does;
    None at level 0, where nothing has been timed yet.
    """
    if not previous:
        return None
    per_epoch = {
        row["name"]: row["train_seconds"] / row["epochs_run"]
        for row in previous
        if row.get("train_seconds") and row.get("epochs_run")
    }
    return {
        entry["name"]: per_epoch.get(entry["name"], 0.0)
        * (entry["budget"] - entry["continues"]["budget"])
        for entry in level_plan["trials"]
    }


def merge_levels(
    plan: Mapping[str, Any], tables: Sequence[Sequence[Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """A halving sweep's table: each config's row from the furthest level it reached.

    ``tables`` are the levels' rows, level 0 first. Each row gains ``path``, its
    trial folder relative to the sweep's folder, and ``halving``: the level it
    stopped at, the last level, and per level reached its epochs, status and
    best val metric (so that configs can be compared at equal epochs).
    """
    levels = plan["halving"]["levels"]
    if len(tables) != len(levels):
        raise ValueError(f"{len(levels)} levels planned, got {len(tables)} tables")
    last = len(levels) - 1
    reached: dict[str, list[Mapping[str, Any]]] = {}
    for table in tables:
        for row in table:
            reached.setdefault(row["name"], []).append(row)
    out = []
    for entry in plan["trials"]:
        rows = reached.get(entry["name"])
        if not rows:
            raise ValueError(f"config {entry['name']} has no row at level 0")
        row = rows[-1]
        level = len(rows) - 1
        out.append(
            {
                **row,
                "path": trial_dir(entry["index"], levels[level]["epochs"]),
                "halving": {
                    "level": level,
                    "last_level": last,
                    "epochs": levels[level]["epochs"],
                    "levels": [
                        {
                            "level": i,
                            "epochs": levels[i]["epochs"],
                            "status": r["status"],
                            "best_val_metric": r["best_val_metric"],
                        }
                        for i, r in enumerate(rows)
                    ],
                },
            }
        )
    return out
