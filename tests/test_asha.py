"""Asynchronous successive halving: the promotion rule, as ask and tell."""

from __future__ import annotations

import random

import pytest

from tuneladder.search.asha import Asha, Ask, mode_of
from tuneladder.search.halving import Halving, with_halving


def sweep(trials: int, epochs: int = 9, eta: int = 3, min_epochs: int = 1) -> dict:
    halving = Halving(trials=trials, epochs=epochs, eta=eta, min_epochs=min_epochs)
    plan = {"rung": "coarse", "trials": [{"name": str(i), "index": i} for i in range(trials)]}
    return with_halving(plan, halving)


def row(name: str, value: float | None, epochs: int, status: str = "ok", **extra) -> dict:
    return {"name": name, "status": status, "best_val_metric": value, "epochs_run": epochs} | extra


def test_new_configs_come_in_ladder_order_and_none_while_nothing_can_start() -> None:
    asha = Asha(sweep(3), "max")
    assert [asha.ask() for _ in range(4)] == [Ask(0, "0"), Ask(0, "1"), Ask(0, "2"), None]
    assert asha.running(0) == {"0", "1", "2"} and not asha.done


def test_a_config_goes_on_as_soon_as_it_is_in_the_top_third_of_its_level() -> None:
    asha = Asha(sweep(9), "max")
    for _ in range(3):
        asha.ask()
    asha.tell(0, row("0", 0.5, 1))
    asha.tell(0, row("1", 0.7, 1))
    assert asha.ask() == Ask(0, "3")  # 2 finished: the top 2 // 3 = 0 go on
    asha.tell(0, row("2", 0.6, 1))
    assert asha.ask() == Ask(1, "1")  # 3 finished: the best one goes on at once
    assert asha.ask() == Ask(0, "4")  # it was promoted once; new configs meanwhile


def test_the_highest_level_is_served_first_and_min_mode_ranks_the_smallest_best() -> None:
    asha = Asha(sweep(9, eta=3), "min")
    for _ in range(9):
        asha.ask()
    for i in range(9):
        asha.tell(0, row(str(i), float(i), 1))
    promoted = [asha.ask() for _ in range(3)]
    assert promoted == [Ask(1, "0"), Ask(1, "1"), Ask(1, "2")]
    for i in range(3):
        asha.tell(1, row(str(i), float(i), 3))
    assert asha.ask() == Ask(2, "0")  # level 2 before anything else


def test_failed_stopped_and_short_trials_never_go_on_but_count_in_the_level() -> None:
    asha = Asha(sweep(6, eta=3), "max")
    for _ in range(6):
        asha.ask()
    asha.tell(0, row("0", 0.99, 1, status="diverged"))
    asha.tell(0, row("1", 0.98, 1, stopped_early=True))
    asha.tell(0, row("2", 0.97, 0))  # did not reach the level's epoch
    asha.tell(0, row("3", None, 1))
    asha.tell(0, row("4", 0.5, 1))
    asha.tell(0, row("5", 0.4, 1))
    # 6 finished: the top 2 of those able to go on (only 4 and 5 are)
    assert [asha.ask(), asha.ask(), asha.ask()] == [Ask(1, "4"), Ask(1, "5"), None]


def test_a_retrained_trial_replaces_its_row() -> None:
    asha = Asha(sweep(3), "max")
    for _ in range(3):
        asha.ask()
    asha.tell(0, row("0", 0.9, 1))
    asha.tell(0, row("0", 0.1, 1))
    asha.tell(0, row("1", 0.5, 1))
    asha.tell(0, row("2", 0.2, 1))
    assert asha.ask() == Ask(1, "1")


def test_when_the_configs_run_out_the_best_of_a_small_level_still_goes_on() -> None:
    # 4 configs, eta 3: level 1 gets 1, and level 2 would get 1 // 3 = 0 without the rule
    asha = Asha(sweep(4, eta=3), "max")
    for _ in range(4):
        asha.ask()
    for i in range(4):
        asha.tell(0, row(str(i), i / 10, 1))
    assert asha.ask() == Ask(1, "3")
    assert asha.ask() is None and not asha.done
    asha.tell(1, row("3", 0.5, 3))
    assert asha.ask() == Ask(2, "3")
    asha.tell(2, row("3", 0.6, 9))
    assert asha.ask() is None and asha.done


def test_a_replayed_log_gives_the_same_next_ask_as_the_process_that_wrote_it() -> None:
    rng = random.Random(0)
    live, log, done = Asha(sweep(27), "max"), [], []
    values = {str(i): rng.random() for i in range(27)}
    while not live.done:
        ask = None if done and rng.random() < 0.5 else live.ask()
        if ask is None:
            level, name = done.pop(rng.randrange(len(done)))
            epochs = live.epochs(level)
            live.tell(level, row(name, values[name] + epochs, epochs))
            log.append(("tell", level, name))
            continue
        log.append(("ask", ask.level, ask.name))
        done.append((ask.level, ask.name))
    replay = Asha(sweep(27), "max")
    for kind, level, name in log:
        if kind == "ask":
            replay.asked(Ask(level, name))
        else:
            epochs = replay.epochs(level)
            replay.tell(level, row(name, values[name] + epochs, epochs))
    assert replay.done and replay.ask() is None
    # every config trained once at level 0, and each level above took a subset of the one below
    asked = [{n for k, lv, n in log if k == "ask" and lv == level} for level in range(3)]
    assert len(asked[0]) == 27 and asked[2] <= asked[1] <= asked[0] and asked[2]
    assert len([1 for k, lv, n in log if k == "ask"]) == sum(map(len, asked))


def test_asking_a_config_without_a_result_below_is_refused() -> None:
    asha = Asha(sweep(3), "max")
    with pytest.raises(ValueError, match="no result at level 0"):
        asha.asked(Ask(1, "0"))
    with pytest.raises(ValueError, match="not in the plan"):
        asha.asked(Ask(0, "x"))


def test_the_mode_is_sync_unless_the_sweep_says_async() -> None:
    assert mode_of(None) is None
    assert mode_of({"eta": 3, "min_epochs": 1}) == "sync"
    assert mode_of({"eta": 3, "min_epochs": 1, "mode": "async"}) == "async"
