"""An asynchronous sweep's promotion log, shared by workers through files and claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneladder.execution.promotions import PROMOTIONS_FILE, AsyncSweep, read_log, replay
from tuneladder.search.asha import Ask
from tuneladder.search.halving import Halving, with_halving
from tuneladder.store.claims import ClaimBook


def plan(trials: int = 4) -> dict:
    halving = Halving(trials=trials, epochs=2, eta=2, min_epochs=1, mode="async")
    entries = [{"name": str(i), "index": i} for i in range(trials)]
    return with_halving({"rung": "coarse", "trials": entries}, halving)


def row(name: str, value: float, epochs: int) -> dict:
    return {"name": name, "status": "ok", "best_val_metric": value, "epochs_run": epochs}


class Worker:
    """One worker's view: its own replica of the log and its own claims, on a clock."""

    def __init__(self, folder: Path, host: str, clock) -> None:
        self.sweep = AsyncSweep(plan(), folder, mode="max", clock=clock, look_every_s=1e9)
        self.books = {
            level: ClaimBook(
                folder / f"levels/{level}/claims", stale_s=60, host=host, pid=1, clock=clock
            )
            for level in (0, 1)
        }

    def next(self, **kw) -> Ask | None:
        return self.sweep.next(lambda level: self.books[level], **kw)


def test_two_workers_share_the_asks_and_a_dead_workers_trial_is_taken_over(tmp_path: Path):
    now = [0.0]
    a, b = Worker(tmp_path, "a", lambda: now[0]), Worker(tmp_path, "b", lambda: now[0])
    asks = [a.next(), b.next(), a.next(), b.next()]
    assert [x.name for x in asks] == ["0", "1", "2", "3"]  # none asked twice
    assert b.next() is None
    for name, value in (("0", 0.9), ("1", 0.1), ("2", 0.2)):
        a.sweep.tell(0, row(name, value, 1))
    assert b.next() == Ask(1, "0")  # b replays a's results: "0" is in the best half of 3
    # b dies holding "0" at level 1 and "3" at level 0; a finds them once their claims
    # go stale, and not before
    assert a.next() is None
    now[0] += 61
    assert {a.next(), a.next()} == {Ask(1, "0"), Ask(0, "3")}
    a.sweep.tell(0, row("3", 0.3, 1))
    a.sweep.tell(1, row("0", 0.95, 2))
    assert a.next() == Ask(1, "3") and b.next() is None
    a.sweep.tell(1, row("3", 0.5, 2))
    assert a.sweep.done and b.sweep.done
    rule = replay(plan(), tmp_path, "max")
    assert rule.done and rule.asked_at(1) == {"0", "3"}


def test_an_ask_whose_name_another_process_holds_is_not_trained_twice(tmp_path: Path):
    """A live claim on a name the rule asks next (a run of the same folder left it): the
    worker does not train it beside its holder, and takes it over once the claim is stale."""
    now = [0.0]
    a, b = Worker(tmp_path, "a", lambda: now[0]), Worker(tmp_path, "b", lambda: now[0])
    assert b.books[0].try_claim("0")
    assert a.next() is None
    # the rule goes on with the next configs; "0" waits while its claim is live
    assert [a.next() for _ in range(3)] == [Ask(0, "1"), Ask(0, "2"), Ask(0, "3")]
    assert a.next() is None
    now[0] += 61
    assert a.next() == Ask(0, "0") and a.books[0].holder("0") == ("a", 1)


def test_a_line_torn_by_a_crash_is_skipped_and_the_log_goes_on(tmp_path: Path):
    clock = lambda: 0.0  # noqa: E731
    a = Worker(tmp_path, "a", clock)
    assert a.next() == Ask(0, "0")
    with open(tmp_path / PROMOTIONS_FILE, "a") as handle:
        handle.write('{"ask": 0, "na')  # a worker died mid-append
    b = Worker(tmp_path, "b", clock)
    assert b.next() == Ask(0, "1")
    # b has read up to the end, torn bytes included: it replays no record twice
    assert b.sweep._offset == (tmp_path / PROMOTIONS_FILE).stat().st_size
    assert a.next() == Ask(0, "2")
    assert [r["name"] for r in read_log(tmp_path / PROMOTIONS_FILE)] == ["0", "1", "2"]


def test_collect_refuses_a_sweep_whose_log_is_not_done(tmp_path: Path):
    from tuneladder.execution.collect import IncompleteRung, collect_halving

    now = [0.0]
    a = Worker(tmp_path, "a", lambda: now[0])
    a.next()
    with pytest.raises(IncompleteRung, match="3 configs not started, 1 trainings not finished"):
        collect_halving(plan(), tmp_path, data_fingerprint="d", metric="accuracy", mode="max")


def test_a_log_of_another_plan_is_set_aside_and_never_replayed(tmp_path: Path):
    now = [0.0]
    a = Worker(tmp_path, "a", lambda: now[0])
    asks = [a.next() for _ in range(4)]
    for ask in asks:
        a.sweep.tell(0, row(ask.name, float(ask.name), 1))
        a.books[0].release(ask.name)  # as a worker does once the trial is told
    assert a.next() == Ask(1, "3")
    assert replay(plan(), tmp_path, "max").asked_at(1) == {"3"}
    written = (tmp_path / PROMOTIONS_FILE).read_text()
    # the same names now stand for other configs: the sweep was planned again
    replanned = plan()
    for entry in replanned["trials"]:
        entry["config"] = {"lr": 0.1 * (entry["index"] + 1)}
    assert replay(replanned, tmp_path, "max").asked_at(0) == set()
    b = AsyncSweep(replanned, tmp_path, mode="max", clock=lambda: now[0], look_every_s=1e9)
    assert b.next(lambda level: a.books[level]) == Ask(0, "0")
    assert [(r.get("ask"), r["name"]) for r in read_log(tmp_path / PROMOTIONS_FILE)] == [(0, "0")]
    assert (tmp_path / "levels" / "promotions.replaced.jsonl").read_text() == written
    # a worker of the same plan, started later, carries on from the new log
    c = AsyncSweep(replanned, tmp_path, mode="max", clock=lambda: now[0], look_every_s=1e9)
    assert c.next(lambda level: a.books[level]) == Ask(0, "1")
    assert replay(replanned, tmp_path, "max").asked_at(0) == {"0", "1"}


def test_a_cut_grown_training_is_replayed_as_neither_running_nor_asked(tmp_path: Path):
    grown_plan = plan(2)
    grown_plan["reserve"] = [{"name": "2", "index": 2}]
    now = [0.0]
    a = AsyncSweep(grown_plan, tmp_path, mode="max", clock=lambda: now[0], look_every_s=1e9)
    books = {lv: ClaimBook(tmp_path / f"levels/{lv}/claims", stale_s=60) for lv in (0, 1)}
    asks = [a.next(lambda lv: books[lv]) for _ in range(2)]
    assert asks == [Ask(0, "0"), Ask(0, "1")]
    a.tell(0, row("0", 0.9, 1) | {"train_seconds": 1.0})
    now[0] = 1.0
    a.tell(0, row("1", 0.1, 1) | {"train_seconds": 1.0})
    assert a.next(lambda lv: books[lv]) == Ask(1, "0")  # ends at 2: a 1 s config fits
    assert a.next(lambda lv: books[lv]) == Ask(0, "2", grown=True)
    a.tell(1, row("0", 0.95, 2) | {"train_seconds": 2.0})
    assert a.rule.settled and not a.done  # the grown "2" still trains
    assert not a.keeps(0.5)  # it goes no further: the trials are done
    a.cut(0, "2")
    assert a.done
    rule = replay(grown_plan, tmp_path, "max")
    assert rule.done and rule.grown == [] and rule.asked_at(0) == {"0", "1"}
    assert rule.is_grown(0, "2")
