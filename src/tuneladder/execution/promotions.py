"""Asynchronous halving shared by a sweep's workers: an append-only log of asks and results.

Every worker replays ``<sweep>/levels/promotions.jsonl`` into its own
:class:`~tuneladder.search.asha.Asha` and, under a lock on the log, asks the rule
for the next training, appends the ask and claims its trial before letting go,
so two workers never ask the same training and a killed worker's trial keeps
its claim until the claim goes stale. A finished trial is appended with the
row the rule ranks it by. The log is the record of the order things happened
in, which decides what was promoted: a rerun replays it, so it neither loses
nor repeats a trial, and ``collect`` reads from it which configs reached which
level. Its first line names the plan it was written for (:func:`plan_digest`):
a sweep planned again (a new space, seed or coarse table) names other configs
by the same names, so a log of another plan is set aside, never replayed. It
lives in ``levels/``, which ``dvc.yaml`` declares for both sweeps. Reads and
writes JSON only; no torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from tuneladder.core.direction import Direction
from tuneladder.search.asha import Asha, Ask
from tuneladder.search.halving import LEVELS_DIR, configs_of
from tuneladder.store.claims import ClaimBook

__all__ = [
    "PROMOTIONS_FILE",
    "ROW_KEYS",
    "AsyncSweep",
    "asked_by_level",
    "plan_digest",
    "read_log",
    "replay",
]

PROMOTIONS_FILE = f"{LEVELS_DIR}/promotions.jsonl"
# beside it, a log written for another plan, kept for whoever wants to read it
REPLACED_NAME = "promotions.replaced.jsonl"
# what the rule ranks a finished trial by; the log keeps only these
# (its pace too: a growing sweep times trainings by it)
ROW_KEYS = ("name", "status", "best_val_metric", "epochs_run", "stopped_early", "train_seconds")

# the claims of a level's trials, by level
Claims = Callable[[int], ClaimBook]


def plan_digest(plan: Mapping[str, Any]) -> str:
    """What a log's names refer to: each config by name, and the levels they climb."""
    halving = plan["halving"]
    body = {
        "trials": [(entry["name"], entry.get("config")) for entry in configs_of(plan)],
        "levels": [level["epochs"] for level in halving["levels"]],
        "eta": halving["eta"],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The asks and results of a promotion log, oldest first (none when there is no log);
    the first line, which names the plan, is left out."""
    return [record for record in _records(path) if "plan" not in record]


def replay(plan: Mapping[str, Any], folder: str | Path, mode: Direction | str) -> Asha:
    """The rule as a sweep's log leaves it: who was asked where, and every result told.
    A log of another plan counts as none: nothing asked yet."""
    rule = Asha(plan, mode)
    records = _records(Path(folder) / PROMOTIONS_FILE)
    if not records or records[0].get("plan") != plan_digest(plan):
        return rule
    for record in records[1:]:
        _replay(rule, record)
    return rule


def asked_by_level(plan: Mapping[str, Any], folder: str | Path) -> list[set[str]]:
    """The configs asked at each level so far (``Asha.asked_at`` of the replayed rule),
    read from the log without ranking anything: what ``tuneladder status`` shows of a
    sweep that is running. A log of another plan counts as none."""
    levels = len(plan["halving"]["levels"])
    asked: list[set[str]] = [set() for _ in range(levels)]
    cut: list[set[str]] = [set() for _ in range(levels)]
    records = _records(Path(folder) / PROMOTIONS_FILE)
    if not records or records[0].get("plan") != plan_digest(plan):
        return asked
    for record in records[1:]:
        if "ask" in record:
            asked[int(record["ask"])].add(record["name"])
        elif "done" in record:
            asked[int(record["done"])].add(record["row"]["name"])
        elif "cut" in record:
            cut[int(record["cut"])].add(record["name"])
    return [names - stopped for names, stopped in zip(asked, cut, strict=True)]


def _records(path: str | Path) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # a record torn by a crash mid-append
            records.append(json.loads(line))
    return records


def _replay(rule: Asha, record: Mapping[str, Any]) -> None:
    if "ask" in record:
        ask = Ask(int(record["ask"]), record["name"], grown=bool(record.get("grown")))
        rule.asked(ask, at=record.get("at"))
    elif "done" in record:
        rule.tell(int(record["done"]), record["row"])
    elif "cut" in record:
        rule.cut(int(record["cut"]), record["name"])


class AsyncSweep:
    """One worker's view of a sweep that halves asynchronously.

    Args:
        plan: the sweep's plan (``halving`` with ``mode: async``).
        folder: the sweep's folder, where the log is.
        mode: which way the metric is better.
        clock: the time the log's records are stamped with.
        look_every_s: how often, at most, an ask also looks for trials whose worker
            died (their claims went stale); it always does when nothing else is left.
    """

    def __init__(
        self,
        plan: Mapping[str, Any],
        folder: str | Path,
        *,
        mode: Direction | str,
        clock: Callable[[], float] = time.time,
        look_every_s: float = 150.0,
    ) -> None:
        self._asha = Asha(plan, mode)
        self._digest = plan_digest(plan)
        self._look_every_s = look_every_s
        self._looked = -float("inf")
        self._path = Path(folder) / PROMOTIONS_FILE
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = 0  # bytes of the log replayed so far
        self._torn = 0  # bytes of a record a crash cut short, at the log's end
        self._clock = clock

    @property
    def rule(self) -> Asha:
        """The rule as of the last record read."""
        return self._asha

    @property
    def done(self) -> bool:
        with self._locked():
            return self._asha.done

    @contextlib.contextmanager
    def locked(self) -> Iterator[Asha]:
        """The rule, with every record so far replayed, while holding the log's lock."""
        with self._locked():
            yield self._asha

    def next(self, claims: Claims, *, worker: int = 0, orphans_first: bool = False) -> Ask | None:
        """The next training for this worker, its claim held: a new ask of the rule, else a
        trial asked before whose worker died (its claim went stale: it resumes from its
        checkpoint). ``orphans_first``: look for those first (a worker's first call,
        after a run was stopped). None: nothing to do now."""
        with self._locked():
            if orphans_first or self._clock() - self._looked >= self._look_every_s:
                # a dead worker's trial holds back its config's promotions: take it first
                if (found := self._orphan(claims)) is not None:
                    return found
            ask = self._asha.ask(self._clock())
            if ask is not None:
                grown = {"grown": True} if ask.grown else {}
                self._append({"ask": ask.level, "name": ask.name, "worker": worker, **grown})
                if claims(ask.level).try_claim(ask.name):
                    return ask
                # a live claim on a name just asked: left there by a run of the same folder
                # (its log set aside); the ask waits, as an orphan, for that claim to go stale
                return None
            return self._orphan(claims)

    def tell(self, level: int, row: Mapping[str, Any]) -> None:
        """A finished trial of ``level``: the rule and the log learn its row."""
        with self._locked():
            kept = {key: row.get(key) for key in ROW_KEYS}
            self._asha.tell(level, kept)
            self._append({"done": level, "row": kept})

    def cut(self, level: int, name: str) -> None:
        """A grown training this worker stopped (:meth:`Asha.keeps` said so)."""
        with self._locked():
            self._asha.cut(level, name)
            self._append({"cut": level, "name": name})

    def keeps(self, seconds_left: float) -> bool:
        """Whether a grown training with ``seconds_left`` goes on (:meth:`Asha.keeps`)."""
        with self._locked():
            return self._asha.keeps(self._clock(), seconds_left)

    def _orphan(self, claims: Claims) -> Ask | None:
        self._looked = self._clock()
        for level in reversed(range(len(self._asha))):
            for name in sorted(self._asha.running(level)):
                if claims(level).try_claim(name):
                    return Ask(level, name, grown=self._asha.is_grown(level, name))
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the log's lock, with every record appended so far replayed."""
        with open(self._path, "a+") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)  # lockf: POSIX locks, which NFS carries
            try:
                if self._offset == 0:
                    self._start(handle)
                handle.seek(self._offset)
                self._torn = 0
                for line in handle.read().splitlines(keepends=True):
                    if not line.endswith("\n"):
                        # cut short by a crash, its writer dead mid-line: its bytes are
                        # counted when the next append ends the line
                        self._torn = len(line.encode())
                        break
                    self._offset += len(line.encode())
                    with contextlib.suppress(ValueError):  # an earlier torn record
                        _replay(self._asha, json.loads(line))
                self._handle = handle
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)

    def _start(self, handle: IO[str]) -> None:
        """Begin the log with the plan it is for; a log of another plan is set aside and
        this one starts empty (its trials are reused where their results still hold)."""
        handle.seek(0)
        first = handle.readline()
        with contextlib.suppress(ValueError):
            if json.loads(first).get("plan") == self._digest:
                return
        if first:
            handle.seek(0)
            self._path.with_name(REPLACED_NAME).write_text(handle.read())
            handle.truncate(0)
        handle.write(json.dumps({"plan": self._digest}) + "\n")
        handle.flush()

    def _append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps({**record, "at": self._clock()}, sort_keys=True) + "\n"
        if self._torn:  # end the torn record's line: replays skip it
            line, self._offset, self._torn = "\n" + line, self._offset + self._torn, 0
        self._handle.seek(0, 2)
        self._handle.write(line)
        self._handle.flush()
        self._offset += len(line.encode())
