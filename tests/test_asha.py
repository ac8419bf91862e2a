"""Asynchronous successive halving: the promotion rule, as ask and tell."""

from __future__ import annotations

import math
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


def growing(trials: int, reserve: int, epochs: int = 3) -> dict:
    """A sweep of ``trials`` configs, levels at 1, 3 (and ``epochs``) epochs, and a reserve."""
    plan = sweep(trials + reserve, epochs=epochs, eta=3, min_epochs=1)
    plan["reserve"], plan["trials"] = plan["trials"][trials:], plan["trials"][:trials]
    return plan


def test_a_growing_sweep_fills_idle_time_with_reserve_configs_that_end_in_time() -> None:
    asha = Asha(growing(2, reserve=3), "max")
    assert [asha.ask(0.0), asha.ask(0.0)] == [Ask(0, "0"), Ask(0, "1")]
    asha.tell(0, row("0", 0.5, 1, train_seconds=1.0))
    assert asha.ask(1.0) is None  # "1", as slow as the slowest seen, ends now: nothing fits
    asha.tell(0, row("1", 0.9, 1, train_seconds=10.0))
    # the planned sweep goes on as without growth: "1" to 3 epochs, 2 x 10 s, until t=30
    assert asha.ask(10.0) == Ask(1, "1")
    # a new config is as slow as the slowest tenth seen (10 s an epoch): it fits twice
    assert asha.ask(10.0) == Ask(0, "2", grown=True)
    assert asha.ask(11.0) == Ask(0, "3", grown=True)
    assert asha.ask(21.0) is None  # 21 + 10 > 30
    asha.tell(0, row("2", 0.95, 1, train_seconds=10.0))
    # "2" is the best third of level 0 now, but 2 epochs at its pace end at 41, after 30
    assert asha.ask(21.0) is None
    assert asha.ask(None) is None and not asha.done  # without a clock nothing grows
    asha.tell(1, row("1", 0.93, 3, train_seconds=30.0))
    # the trials are done: "3", still running, is cut at its next epoch's end
    assert asha.settled and not asha.done
    asha.cut(0, "3")
    assert asha.done and asha.grown == ["2"]
    assert asha.asked_at(0) == {"0", "1", "2"} and asha.asked_at(1) == {"1"}
    assert asha.ask(40.0) is None  # a cut training is never asked again


def test_grown_configs_never_take_a_trials_promotion() -> None:
    rng = random.Random(3)
    # the grown configs rank above every trial: were they counted with the trials, they
    # would take the trials' promotions
    values = {str(i): rng.random() + (i >= 10) for i in range(40)}

    def promoted(reserve: int) -> set[str]:
        asha, now, running = Asha(growing(10, reserve, epochs=4), "max"), 0.0, []
        while not asha.done:  # as many workers as it asks for
            while (ask := asha.ask(now)) is not None:
                running.append((now + 1.0 + int(ask.name) % 3, ask))
            running.sort(key=lambda item: item[0])
            now, ask = running.pop(0)
            epochs = asha.epochs(ask.level)
            asha.tell(
                ask.level,
                row(ask.name, values[ask.name] + ask.level, epochs, train_seconds=float(epochs)),
            )
        assert len(asha.grown) >= reserve // 2  # it grew
        return {n for lv in (1, 2) for n in asha.asked_at(lv) if int(n) < 10}

    # every trial that went on without growth goes on with it (growth may add more)
    assert promoted(0) <= promoted(30)


class DefinitionAsha(Asha):
    """The rule with its running sets and promotions recomputed from their definitions
    at every call, as the rule did before it kept them as they change."""

    def running(self, level: int) -> set[str]:
        return self._asked[level] - self._rows[level].keys() - self._cut[level]

    @property
    def settled(self) -> bool:
        self._skip_asked()
        planned_running = any(
            (level, name) not in self._optional
            for level in range(len(self))
            for name in self.running(level)
        )
        promotable = any(self._promotable(level) for level in range(len(self) - 1))
        return self._next == len(self._names) and not planned_running and not promotable

    @property
    def done(self) -> bool:
        return self.settled and not any(self.running(level) for level in range(len(self)))

    def _promotable(self, level):
        finished = self._finished_planned[level]
        quota = finished // self._eta
        if quota == 0 and finished and self._closed(level):
            quota = 1
        above = self._asked[level + 1]
        ranked = self._ranked_planned[level][:quota]
        return next((name for _, _, name in ranked if name not in above), None)

    def _growth(self, level, now, ends):
        above = self._asked[level + 1]
        for _, _, name in self._ranked[level][: len(self._rows[level]) // self._eta]:
            if name not in above and self._fits(level + 1, name, now, ends):
                return name
        return None

    def _running_ends_at(self, *, planned_only: bool = False):
        ends = None
        for (level, name), started in self._started.items():
            if planned_only and (level, name) in self._optional:
                continue
            seconds = self._seconds(level, name)
            if seconds is None:
                return None
            ends = max(ends or -math.inf, started + seconds)
        return ends


@pytest.mark.parametrize("seed", range(20))
def test_the_rule_kept_as_it_changes_asks_what_its_definition_asks(seed: int) -> None:
    # random workers over a growing sweep, with retrained trials, failures and cuts: the
    # rule that keeps its running sets and promotion scans as they change asks, settles
    # and ends exactly as the one that recomputes them at every call
    rng = random.Random(seed)
    plan = growing(rng.randint(3, 30), reserve=rng.randint(0, 40), epochs=rng.choice([3, 9]))
    mode = rng.choice(["max", "min"])
    rules = [Asha(plan, mode), DefinitionAsha(plan, mode)]
    values = {e["name"]: rng.random() for e in plan["trials"] + plan.get("reserve", [])}
    now, running, events = 0.0, [], 0
    while not rules[0].done and events < 2000:
        events += 1
        for _ in range(rng.randint(1, 4)):  # workers free now
            asks = [rule.ask(now) for rule in rules]
            assert asks[0] == asks[1]
            if asks[0] is None:
                break
            running.append((now + rng.uniform(0.5, 5.0), asks[0]))
        assert [r.settled for r in rules] == [rules[1].settled] * 2
        if not running:
            now += 1.0
            continue
        running.sort(key=lambda item: item[0])
        now, ask = running.pop(0)
        if ask.grown and rng.random() < 0.2:
            for rule in rules:
                rule.cut(ask.level, ask.name)
            continue
        epochs = rules[0].epochs(ask.level)
        status = "failed" if rng.random() < 0.05 else "ok"
        told = row(ask.name, values[ask.name] + rng.gauss(0, 0.1) * ask.level, epochs,
                   status=status, train_seconds=epochs * rng.uniform(0.5, 2.0))  # fmt: skip
        retrained = rng.random() < 0.1  # a new row replaces the old
        for rule in rules:
            rule.tell(ask.level, told)
            if retrained:
                rule.tell(ask.level, {**told, "best_val_metric": values[ask.name] / 2})
        if rng.random() < 0.1:  # a trial finished long ago, retrained (its code changed)
            level = rng.randrange(len(rules[0]))
            if finished := sorted(rules[0].finished(level)):
                again = {**rules[0].finished(level)[rng.choice(finished)]}
                again["best_val_metric"] = rng.random()
                for rule in rules:
                    rule.tell(level, again)
        for level in range(len(rules[0])):
            assert rules[0].running(level) == rules[1].running(level)
        assert rules[0].keeps(now, 1.0) == rules[1].keeps(now, 1.0)
    assert rules[0].done and rules[1].done
    assert rules[0].grown == rules[1].grown


def test_a_row_told_again_leaves_no_old_ranking_behind() -> None:
    # a replayed log where a trial told as planned is then asked as grown and told again
    # (no worker writes this order; a hand-edited or merged log could): its first row
    # must not stay ranked, or the config would be promoted over and over
    plan = sweep(2, epochs=2, eta=2, min_epochs=1)
    asha = Asha(plan, "max")
    asha.ask(), asha.ask()
    asha.tell(0, row("0", 0.9, 1))
    asha.asked(Ask(0, "0", grown=True))
    asha.tell(0, row("0", 0.9, 1, stopped_early=True))
    asha.tell(0, row("1", 0.5, 1))
    asks = [asha.ask(), asha.ask(), asha.ask()]
    assert asks.count(Ask(1, "0")) <= 1


def test_the_mode_is_sync_unless_the_sweep_says_async() -> None:
    assert mode_of(None) is None
    assert mode_of({"eta": 3, "min_epochs": 1}) == "sync"
    assert mode_of({"eta": 3, "min_epochs": 1, "mode": "async"}) == "async"


# --- a tiny real ladder whose sweeps halve asynchronously, mirrored live to MLflow ----

ASYNC_HALVING = {"eta": 2, "min_epochs": 1, "mode": "async"}
ASYNC_LADDER = {
    "experiment": "asha",
    "workers": "auto",  # two lanes (2 cores) ask and promote side by side
    # each worker mirrors its trials as they finish, levels in the order they were asked
    "mlflow": {"enabled": True, "live": True},
    # 6 configs for 1 epoch; a config goes on to 2 epochs once in the best half so far
    "coarse": {"trials": 6, "epochs": 2, "sampler": "sobol", "halving": ASYNC_HALVING},
    # 4 configs (and 4 in reserve, grown while a worker would wait) for 1 epoch, the
    # best third to 3
    "fine": {
        "trials": 4,
        "epochs": 3,
        "halving": {"eta": 3, "min_epochs": 1, "mode": "async", "grow": 1},
    },
}


@pytest.fixture(scope="module")
def async_ladder(tmp_path_factory: pytest.TempPathFactory):
    from helpers import snakemake, write_config

    workdir = tmp_path_factory.mktemp("asha")
    write_config(workdir, **ASYNC_LADDER)
    snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_an_async_ladder_promotes_as_trials_finish_and_trains_each_once(async_ladder, tmp_path):
    from helpers import copy_ladder, results_of, snakemake, tiny_config
    from tuneladder.execution.promotions import PROMOTIONS_FILE, read_log
    from tuneladder.execution.status import format_status, ladder_status
    from tuneladder.ladder.config import resolve_config
    from tuneladder.store.io import read_json

    coarse = results_of(async_ladder) / "coarse"
    records = read_log(coarse / PROMOTIONS_FILE)
    asks = [(r["ask"], r["name"]) for r in records if "ask" in r]
    dones = [(r["done"], r["row"]["name"]) for r in records if "done" in r]
    # every config once at level 0; each promotion once; every ask told once
    assert sorted(n for lv, n in asks if lv == 0) == [str(i) for i in range(6)]
    assert len(set(asks)) == len(asks) and sorted(asks) == sorted(dones)
    promoted = {n for lv, n in asks if lv == 1}
    assert promoted and len(promoted) <= 6
    # each promotion was in the best half of the configs finished at level 0 before it
    finished: list[tuple[str, float]] = []
    for r in records:
        if r.get("done") == 0:
            finished.append((r["row"]["name"], r["row"]["best_val_metric"]))
        elif r.get("ask") == 1:
            ranked = [n for n, _ in sorted(finished, key=lambda p: -p[1])]
            assert r["name"] in ranked[: max(1, len(finished) // 2)]
    # the workers trained each training once, between them
    markers = [read_json(p) for p in sorted((coarse / "workers").glob("*.json"))]
    ran = [n for m in markers for n in m["ran"]]
    assert len(ran) == len(asks)
    for name in promoted:
        result = read_json(coarse / "trials" / name / "e2" / "result.json")
        assert result["resumed_from_epoch"] == 1 and result["epochs_run"] == 2
    table = read_json(coarse / "results.json")["trials"]
    assert {r["name"]: r["epochs_run"] for r in table} == {
        str(i): 2 if str(i) in promoted else 1 for i in range(6)
    }
    plans = [read_json(coarse / "levels" / str(lv) / "plan.json") for lv in (0, 1)]
    assert {e["name"] for e in plans[1]["trials"]} == promoted
    text = format_status(
        ladder_status(results_of(async_ladder), config=resolve_config(tiny_config(**ASYNC_LADDER)))
    )
    levels = f"6/6 to 1, {len(promoted)}/{len(promoted)} to 2 epochs"
    assert f"halving levels (async: promoted as trials finish): {levels}" in text, text
    assert "async" in (results_of(async_ladder) / "report" / "index.html").read_text()
    # a rerun replays the log: nothing to do; a lost level-1 result is trained again,
    # from level 0's state, and nothing else is
    ladder = copy_ladder(async_ladder, tmp_path / "copy")
    coarse = results_of(ladder) / "coarse"
    lost = sorted(promoted)[0]
    before = {p: p.stat().st_mtime_ns for p in coarse.glob("trials/*/*/result.json")}
    for path in [coarse / "trials" / lost / "e2" / "result.json", coarse / "results.json"]:
        path.unlink()
    for path in (coarse / "workers").glob("*.json"):
        path.unlink()
    snakemake(ladder)
    after = {p: p.stat().st_mtime_ns for p in coarse.glob("trials/*/*/result.json")}
    redone = coarse / "trials" / lost / "e2" / "result.json"
    assert {p for p in after if after[p] != before.get(p)} == {redone}
    assert read_json(redone)["resumed_from_epoch"] == 1
    assert read_log(coarse / PROMOTIONS_FILE)[: len(records)] == records


@pytest.mark.slow
def test_an_async_rerun_after_a_code_change_retrains_the_stale_and_keeps_the_promotions(
    async_ladder, tmp_path
):
    from helpers import copy_ladder, results_of, snakemake
    from tuneladder.execution.promotions import PROMOTIONS_FILE, read_log
    from tuneladder.store.io import read_json, write_json

    ladder = copy_ladder(async_ladder, tmp_path / "copy")
    coarse = results_of(ladder) / "coarse"
    records = read_log(coarse / PROMOTIONS_FILE)
    promoted = sorted(r["name"] for r in records if r.get("ask") == 1)
    stopped = sorted({str(i) for i in range(6)} - set(promoted))[0]
    # two results as older code left them: one that stopped at level 0, one at level 1
    stale = {coarse / "trials" / stopped / "e1", coarse / "trials" / promoted[0] / "e2"}
    for trial in stale:
        result = read_json(trial / "result.json")
        result["key"] = result["key"].partition(":")[0] + ":older-code"
        write_json(trial / "result.json", result)
    before = {p: p.stat().st_mtime_ns for p in coarse.glob("trials/*/*/result.json")}
    for path in [coarse / "results.json", *(coarse / "workers").glob("*.json")]:
        path.unlink()
    snakemake(ladder)
    after = {p: p.stat().st_mtime_ns for p in coarse.glob("trials/*/*/result.json")}
    assert {p.parent for p in after if after[p] != before.get(p)} == stale
    markers = [read_json(p) for p in (coarse / "workers").glob("*.json")]
    retrained = {name: why for m in markers for name, why in m["stale"].items()}
    assert retrained.keys() == {stopped, promoted[0]}
    assert all(why.startswith("stale: code changed") for why in retrained.values())
    # the log keeps every ask as it was and learns the two new results; nobody is promoted
    # again or anew, so the table has the same configs at the same levels
    log = read_log(coarse / PROMOTIONS_FILE)
    assert log[: len(records)] == records
    assert sorted((r["done"], r["row"]["name"]) for r in log[len(records) :]) == sorted(
        [(0, stopped), (1, promoted[0])]
    )
    table = read_json(coarse / "results.json")["trials"]
    assert {r["name"] for r in table if r["epochs_run"] == 2} == set(promoted)


@pytest.mark.slow
def test_each_config_of_an_async_sweep_is_one_mlflow_run_over_the_levels_it_reached(
    async_ladder,
):
    from mlflow import MlflowClient

    from helpers import results_of
    from tuneladder.execution.promotions import PROMOTIONS_FILE, read_log
    from tuneladder.store.io import read_json
    from tuneladder.tracking.mirror import CONFIG_TAG, LEVEL_TAG

    results = results_of(async_ladder)
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(results.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    configs = [r for r in runs if CONFIG_TAG in r.data.tags]
    by_config = {r.data.tags[CONFIG_TAG]: r for r in configs}
    grown = [r["name"] for r in read_json(results / "fine" / "results.json")["trials"][4:]]
    assert len(configs) == len(by_config) == 6 + 4 + len(grown)  # one run a config
    for rung, names in (("coarse", range(6)), ("fine", [*range(4), *map(int, grown)])):
        promoted = {r["name"] for r in read_log(results / rung / PROMOTIONS_FILE) if r.get("ask")}
        assert promoted, rung
        for i in names:
            run = by_config.pop(f"{rung}/{i}")
            levels = 2 if str(i) in promoted else 1
            assert {k for k in run.data.tags if k.startswith(LEVEL_TAG)} == {
                f"{LEVEL_TAG}.{lv}" for lv in range(levels)
            }, (rung, i)
            # one point an epoch, over the levels: 1 then 2 epochs (coarse), 1 then 3 (fine)
            epochs = {"coarse": (1, 2), "fine": (1, 3)}[rung][levels - 1]
            curve = client.get_metric_history(run.info.run_id, "val_accuracy")
            assert sorted(m.step for m in curve) == list(range(epochs)), (rung, i)
            assert run.info.status == "FINISHED"
    assert not by_config
    marker = read_json(results / "mlflow.json")
    assert marker["error"] is None
    assert marker["rungs"]["coarse"] == {"trials": 6, "runs": 6}
    assert marker["rungs"]["fine"] == {"trials": 4 + len(grown), "runs": 4 + len(grown)}


@pytest.mark.slow
def test_a_growing_sweep_tables_reports_and_counts_its_grown_configs_apart(async_ladder):
    from helpers import results_of, tiny_config
    from tuneladder.execution.promotions import PROMOTIONS_FILE, read_log
    from tuneladder.execution.status import format_status, ladder_status
    from tuneladder.ladder.config import resolve_config
    from tuneladder.store.io import read_json

    results = results_of(async_ladder)
    plan = read_json(results / "fine" / "plan.json")
    assert [e["name"] for e in plan["reserve"]] == ["4", "5", "6", "7"]
    # the reserve is the sampler's next configs, after the trials
    assert len({str(e["sampled"]) for e in plan["trials"] + plan["reserve"]}) == 8
    table = read_json(results / "fine" / "results.json")["trials"]
    records = read_log(results / "fine" / PROMOTIONS_FILE)
    asked = [r["name"] for r in records if r.get("ask") == 0]
    grown = [name for name in asked if int(name) >= 4]
    # the trials, then the reserve configs asked, in plan order, flagged
    assert [r["name"] for r in table] == ["0", "1", "2", "3", *sorted(grown, key=int)]
    assert [bool(r.get("grown")) for r in table] == [False] * 4 + [True] * len(grown)
    # with 4 trials and eta 3 the best trial goes on as without growth
    trials = [r for r in table if not r.get("grown")]
    best = max(trials, key=lambda r: r["halving"]["levels"][0]["best_val_metric"])
    assert best["halving"]["level"] == 1
    summary = read_json(results / "report" / "summary.json")
    assert summary["halving"]["fine"]["grown"] == grown
    page = (results / "report" / "index.html").read_text()
    text = format_status(
        ladder_status(results, config=resolve_config(tiny_config(**ASYNC_LADDER)))
    )
    assert "fine     4/4 done" in text, text
    if grown:
        assert f"{len(grown)} configs beyond its 4 trials" in page
        assert f"(with {len(grown)} grown configs)" in text, text
    else:
        assert "The sweep grew" not in page


@pytest.mark.slow
def test_the_logged_check_walks_every_level_and_every_grown_config(async_ladder, tmp_path):
    from helpers import copy_ladder, results_of
    from tuneladder.report._contents import report_inputs
    from tuneladder.report._load import load_run
    from tuneladder.report._summary import _logs
    from tuneladder.store.io import read_json

    def logs_of(workdir):
        return _logs(load_run(report_inputs(results_of(workdir)), histories=False))

    results = results_of(async_ladder)
    logs = logs_of(async_ladder)
    assert logs["missing"] == []
    # every config counts once, the fine sweep's grown ones too
    rows = sum(len(read_json(p)["trials"]) for p in results.glob("*/results.json"))
    assert logs["planned"] == logs["complete"] == rows
    # a promoted config's last level lost its history, and its first level its config:
    # the check names the config once
    table = read_json(results / "coarse" / "results.json")["trials"]
    promoted = next(r for r in table if r["halving"]["level"] > 0)
    copy = copy_ladder(async_ladder, tmp_path / "copy")
    last_level = results_of(copy) / "coarse" / promoted["path"]
    (last_level / "history.csv").unlink()
    missing = [f"coarse/{promoted['name']}"]
    assert logs_of(copy)["missing"] == missing
    (last_level.parent / "e1" / "config.json").unlink()
    assert logs_of(copy)["missing"] == missing
    # and so is a grown config's
    grown = [r for r in read_json(results / "fine" / "results.json")["trials"] if r.get("grown")]
    for row in grown[:1]:
        (results_of(copy) / "fine" / row["path"] / "result.json").unlink()
        missing.append(f"fine/{row['name']}")
    assert logs_of(copy)["missing"] == missing
