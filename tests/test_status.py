"""`tuneladder status` on a finished tiny ladder and on one stopped half-way."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import tuneladder
from helpers import results_of, snakemake, tiny_config, write_config
from tuneladder.execution.status import (
    MIRROR_PER_TRIAL_S,
    MIRROR_STARTUP_S,
    format_status,
    ladder_status,
    stop_line,
)
from tuneladder.execution.terminal import progress_line
from tuneladder.ladder.config import resolve_config
from tuneladder.ladder.job_times import read_benchmarks
from tuneladder.store.claims import ClaimBook
from tuneladder.store.io import read_json, write_json

TUNELADDER = str(Path(sys.executable).parent / "tuneladder")


def _status(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`tuneladder status` as a user runs it, from the folder the ladder ran in."""
    return subprocess.run(
        [TUNELADDER, "status", "--config", "config.yaml", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_run_config_from_an_older_version_is_read_with_todays_defaults(tmp_path):
    """A key added since the run started gets its default; one that no longer resolves
    is no config (status then counts by the config file)."""
    from tuneladder.execution.status import RUN_CONFIG_FILE, run_config

    assert run_config(tmp_path) is None
    saved = resolve_config(tiny_config())
    del saved["mlflow"], saved["sensitivity"]
    write_json(tmp_path / RUN_CONFIG_FILE, saved)
    read = run_config(tmp_path)
    assert read["mlflow"]["live"] is False and read["sensitivity"]["enabled"] is False
    assert read["coarse"] == saved["coarse"]
    write_json(tmp_path / RUN_CONFIG_FILE, {**saved, "coarse": {"trials": -1}})
    assert run_config(tmp_path) is None


@pytest.mark.slow
def test_status_of_a_finished_ladder(tiny_ladder: Path) -> None:
    results = results_of(tiny_ladder)
    status = json.loads(_status(tiny_ladder, "--json").stdout)
    assert status["experiment"] == "tiny"
    assert status["state"] == "finished" and status["report"]
    for rung in status["rungs"]:
        planned = len(read_json(results / rung["rung"] / "plan.json")["trials"])
        assert (rung["done"], rung["total"], rung["state"]) == (planned, planned, "done")
    sweep = [
        r
        for rung in ("coarse", "fine")
        for r in read_json(results / rung / "results.json")["trials"]
    ]
    best = max(r["best_val_metric"] for r in sweep if r["status"] == "ok")
    assert status["best"]["value"] == best
    # of trials that tie, the one that got there first: later ties leave the line as it is
    tied = [
        (read_json(results / r["rung"] / "trials" / r["name"] / "result.json"), r)
        for r in sweep
        if r["status"] == "ok" and r["best_val_metric"] == best
    ]
    first = min(tied, key=lambda pair: pair[0]["started_at"] + pair[0]["total_seconds"])[1]
    assert (status["best"]["rung"], status["best"]["name"]) == (first["rung"], first["name"])
    text = _status(tiny_ladder).stdout
    assert text.startswith("experiment tiny in results/tiny: finished")
    assert "finished" in text and "best so far: val accuracy" in text
    assert "report: " in text and "elapsed: " in text
    # what the seeds chose, which the best single sweep trial seldom is
    summary = read_json(results / "final" / "summary.json")
    label = f"{summary['best_origin']['label']} (finalist {summary['best_group']})"
    assert f"  chosen: {label}, test accuracy {summary['test_mean']:.4g} ± " in text
    # counted by the config the run resolved, whatever the config file says now: a run
    # with overrides (--config, the Python API), or an edit after the run
    assert read_json(results / "run_config.json")["experiment"] == "tiny"
    elsewhere = tiny_ladder.parent / f"{tiny_ladder.name}-elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "config.yaml").write_text("coarse: {trials: 40}\n")  # not what ran
    text = _status(elsewhere, "--results", str(results)).stdout
    assert text.startswith(f"experiment tiny in {results}: finished"), text
    # from another folder, its config file names the experiment and the folder it is in
    text = _status(elsewhere, "--config", str(tiny_ladder / "config.yaml")).stdout
    assert text.startswith(f"experiment tiny in {results}: finished"), text


@pytest.mark.slow
def test_status_of_a_ladder_stopped_half_way(tiny_ladder: Path, tmp_path: Path) -> None:
    write_config(tmp_path)
    source, results = results_of(tiny_ladder), results_of(tmp_path)
    for part in ("data", "sanity"):
        shutil.copytree(source / part, results / part)
    (results / "benchmarks").mkdir()
    for job in ("prepare", "overfit_check", "lr_range_test", "plan_coarse"):
        shutil.copy(source / "benchmarks" / f"{job}.tsv", results / "benchmarks")
    (results / "coarse").mkdir()
    shutil.copy(source / "coarse" / "plan.json", results / "coarse" / "plan.json")
    for name in ("0", "1"):
        shutil.copytree(source / "coarse" / "trials" / name, results / "coarse" / "trials" / name)
    claims = results / "coarse" / "claims"
    claims.mkdir()
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": 0}
    (claims / "2.claim").write_text(json.dumps(holder))  # a live worker holds trial 2

    config = resolve_config(tiny_config())
    status = ladder_status(results, config=config)
    assert status["state"] == "running"
    coarse, fine, seeds = status["rungs"]
    assert (coarse["done"], coarse["total"], coarse["running"]) == (2, 4, 1)
    assert fine["state"] == seeds["state"] == "not started"
    assert (fine["total"], seeds["total"]) == (3, 6)  # from the config
    assert status["trials_left"] == 2 + 3 + 6
    # training left: every planned trial-epoch at the seconds per epoch measured so far
    seconds = sum(t["total_seconds"] for t in coarse["trials"])
    per_epoch = seconds / sum(t["epochs_trained"] for t in coarse["trials"])
    epochs = {"coarse": 2 * 2, "fine": 3 * 2, "seeds": 6 * 2}  # tiny: 2 epochs a trial
    assert {r["rung"]: r["epochs_left"] for r in status["rungs"]} == epochs
    training = per_epoch * sum(epochs.values()) / status["workers"]
    assert status["estimate_training_s"] == pytest.approx(training)
    # the jobs left, one after another, each at what the jobs that ran took: the
    # workers' start-up (no rung finished yet) and select's are unknown, the rest
    # cost a typical job of the four that ran
    ran = read_benchmarks(source / "benchmarks")
    typical = sum(ran[job] for job in ("prepare", "overfit_check", "lr_range_test", "plan_coarse"))
    typical, plan = typical / 4, ran["plan_coarse"]
    steps = {
        "coarse collect": typical,
        "select": typical,
        "fine": plan + 2 * typical,
        "seeds": plan + 2 * typical,
        "final": typical,
        # and the MLflow mirror beside it: never run here, so it costs its start-up
        # and each trial it will log (13 trainings)
        "report": max(typical, MIRROR_STARTUP_S + MIRROR_PER_TRIAL_S * 13),
    }
    assert status["estimate_jobs_s"] == pytest.approx(sum(steps.values()))
    assert status["estimate_left_s"] == pytest.approx(training + sum(steps.values()))
    # workers that mirror live leave the mirror its start-up; without MLflow, the report
    for mlflow, closing in (
        ({"live": True}, max(typical, MIRROR_STARTUP_S)),
        ({"enabled": False}, typical),
    ):
        other = ladder_status(results, config=resolve_config(tiny_config(mlflow=mlflow)))
        jobs = sum(steps.values()) - steps["report"] + closing
        assert other["estimate_jobs_s"] == pytest.approx(jobs)
    text = format_status(status)
    assert "coarse   2/4 done (1 running)" in text and "fine     not started (3 trials)" in text
    assert "left: ~" in text
    assert status["running_on"] == {} and "on GPUs" not in text  # a CPU worker's claim

    # workers on GPUs say which in their claims: status shows every GPU at work
    (claims / "2.claim").write_text(json.dumps({**holder, "where": "GPU 1"}))
    assert ClaimBook(claims, stale_s=60, where="GPU 0").try_claim("3")
    on_gpus = ladder_status(results, config=config)
    assert on_gpus["running_on"] == {"GPU 0": 1, "GPU 1": 1}
    assert "  on GPUs: GPU 0 (1 running), GPU 1 (1 running)\n" in format_status(on_gpus)
    assert "coarse 2/4 trials (2 running on 2 GPUs)" in (progress_line(on_gpus) or "")
    # GPU 2 before GPU 10; on two hosts (a cluster), each GPU with its host
    for hosts, shown in (
        (("node-b", "node-b"), [("GPU 2", 1), ("GPU 10", 1)]),
        (("node-a", "node-b"), [("node-a GPU 10", 1), ("node-b GPU 2", 1)]),
    ):
        for name, gpu, host in zip(("3", "2"), ("GPU 10", "GPU 2"), hosts, strict=True):
            far = {"host": host, "pid": 1, "since": 0, "where": gpu}
            (claims / f"{name}.claim").write_text(json.dumps(far))
        on_hosts = ladder_status(results, config=config)
        assert list(on_hosts["running_on"].items()) == shown
    assert "coarse 2/4 trials (2 running on 2 GPUs)" in (progress_line(on_hosts) or "")
    (claims / "3.claim").write_text(json.dumps({**far, "where": "GPU 2"}))  # both on one
    assert "(2 running on GPU 2)" in (progress_line(ladder_status(results, config=config)) or "")
    (claims / "2.claim").write_text(json.dumps(holder))  # one says no GPU: none is said
    assert "coarse 2/4 trials (2 running) |" in (
        progress_line(ladder_status(results, config=config)) or ""
    )
    (claims / "3.claim").unlink()

    (claims / "2.claim").unlink()  # the worker was killed: the ladder stopped half-way
    # with trial 2's checkpoint, which the next run goes on from
    stopped_trial = results / "coarse" / "trials" / "2"
    stopped_trial.mkdir()
    (stopped_trial / "checkpoint.pt").write_bytes(b"")
    without_config = ladder_status(results)
    assert without_config["state"] == "stopped"
    assert without_config["unplanned"] == ["fine", "seeds"] and without_config["trials_left"] == 2
    text = _status(tmp_path, "--results", str(results)).stdout
    assert "stopped" in text and "fine     not started (3 trials)" in text
    assert "coarse   2/4 done (1 stopped mid-way, to go on from its checkpoint)" in text
    assert "left for a rerun: ~" in text and "  left: ~" not in text


@pytest.mark.slow
def test_a_stale_final_summary_is_not_finished(tiny_ladder: Path, tmp_path: Path) -> None:
    """The final rung of an earlier, smaller ladder does not make a larger one finished."""
    write_config(tmp_path, fine={"trials": 5, "epochs": 2})
    shutil.copytree(results_of(tiny_ladder), results_of(tmp_path))
    status = json.loads(_status(tmp_path, "--json").stdout)
    assert status["state"] == "stopped"
    fine, seeds = status["rungs"][1:3]
    # the 3 trials of the old plan on disk, of the 5 the config plans now
    assert (fine["done"], fine["total"]) == (3, 5)
    # seeds will be planned again from the larger fine sweep: its old plan's reruns
    # are not done trials of this run (they read "6/6 done, left <1s")
    assert (seeds["state"], seeds["done"]) == ("not started", 0)


def test_trials_of_a_config_the_rung_was_planned_away_from_are_not_done(
    tiny_ladder: Path, tmp_path: Path
) -> None:
    """A run that planned the coarse sweep again with more epochs, then stopped: the old
    trials on disk are another config's, to be trained again, and so is a trial whose
    data was prepared again since."""
    write_config(tmp_path)
    shutil.copytree(results_of(tiny_ladder), results_of(tmp_path))
    plan_path = results_of(tmp_path) / "coarse" / "plan.json"
    plan = read_json(plan_path)
    for entry in plan["trials"][:2]:
        entry["config"]["epochs"] += 1
    write_json(plan_path, plan)
    third = results_of(tmp_path) / "coarse" / plan["trials"][2]["dir"] / "result.json"
    write_json(third, {**read_json(third), "data_fingerprint": "prepared-before"})
    status = json.loads(_status(tmp_path, "--json").stdout)
    coarse = status["rungs"][0]
    total = len(plan["trials"])
    assert (coarse["done"], coarse["total"], coarse["stale"]) == (total - 3, total, 3)
    assert coarse["stale_why"] == ["config", "data"]
    text = _status(tmp_path).stdout
    assert "3 to retrain: the config and the data changed since they ran" in text


def test_status_before_anything_ran(tmp_path: Path) -> None:
    write_config(tmp_path, experiment="fresh")
    assert ladder_status(tmp_path / "results" / "fresh")["state"] == "not started"
    text = _status(tmp_path).stdout
    assert text == "experiment fresh in results/fresh: not started\n"


def write_halving_sweep(results: Path, done_at_level_1: int) -> None:
    """A coarse sweep of 6 configs halved to 2 (levels of 3 and 9 epochs), as workers leave it."""
    levels = [{"level": 0, "epochs": 3, "configs": 6}, {"level": 1, "epochs": 9, "configs": 2}]
    coarse = results / "coarse"
    # a level's plan names trial folders from its own folder, levels/<n>/
    trials = [{"name": str(i), "dir": f"../../trials/{i}/e3"} for i in range(6)]
    write_json(coarse / "plan.json", {"trials": trials, "halving": {"levels": levels}})
    write_json(coarse / "levels" / "0" / "plan.json", {"trials": trials})
    promoted = [{"name": str(i), "dir": f"../../trials/{i}/e9"} for i in (4, 5)]
    write_json(coarse / "levels" / "1" / "plan.json", {"trials": promoted})
    finished = [*trials, *promoted[:done_at_level_1]]
    for n, entry in enumerate(finished):
        result = {
            "status": "ok",
            "best_val_metric": 0.5 + n / 100,
            "total_seconds": 1.0,
            "started_at": 1000.0 + n,
            "metric": {"name": "accuracy", "mode": "max"},
        }
        write_json(coarse / "levels" / "0" / entry["dir"] / "result.json", result)


def test_best_so_far_keeps_a_config_that_still_trains_its_next_level(tmp_path: Path) -> None:
    """Config 5 went on to level 1 and trains there: its level-0 value counts as the best
    so far, not config 4's lower one at level 1; config 3, stopped at level 0, does not."""
    results = tmp_path / "results" / "x"
    write_halving_sweep(results, done_at_level_1=1)
    for name, level, value in (("4", "e9", 0.545), ("3", "e3", 0.99)):
        path = results / "coarse" / "trials" / name / level / "result.json"
        write_json(path, {**read_json(path), "best_val_metric": value})
    best = ladder_status(results)["best"]
    assert (best["name"], best["value"]) == ("5", 0.55)


@pytest.mark.parametrize(("done_at_level_1", "done", "left"), [(0, 4, 2), (1, 5, 1), (2, 6, 0)])
def test_a_halving_sweep_is_counted_in_configs(tmp_path: Path, done_at_level_1, done, left):
    results = tmp_path / "results" / "x"
    write_halving_sweep(results, done_at_level_1)
    (coarse,) = [r for r in ladder_status(results)["rungs"] if r["rung"] == "coarse"]
    # the 4 configs left out of level 1 are done; the 2 promoted ones when they finish it
    assert (coarse["done"], coarse["total"], coarse["trials_left"]) == (done, 6, left)
    assert [(lv["done"], lv["total"]) for lv in coarse["levels"]] == [(6, 6), (done_at_level_1, 2)]
    # the progress line counts configs done, and the trainings of the level under way
    line = progress_line(ladder_status(results), "coarse") or ""
    assert line.startswith(
        f"tuneladder: coarse {done}/6 configs done, level 1 {done_at_level_1}/2"
    )


def start_async_sweep(coarse: Path, levels: int, epochs: int):
    """An async coarse sweep of 4 configs (eta 2) planned in ``coarse``: its plan, one
    worker's view of its log, and that worker's claims per level."""
    from tuneladder.execution.promotions import AsyncSweep
    from tuneladder.search.halving import Halving, with_halving

    halving = Halving(trials=4, epochs=epochs, eta=2, min_epochs=1, mode="async")
    entries = [{"name": str(i), "index": i} for i in range(4)]
    plan = with_halving({"rung": "coarse", "trials": entries}, halving)
    write_json(coarse / "plan.json", plan)
    books = {lv: ClaimBook(coarse / "levels" / str(lv) / "claims") for lv in range(levels)}
    return plan, AsyncSweep(plan, coarse, mode="max"), books


def test_a_running_async_sweep_is_read_from_its_log(tmp_path: Path) -> None:
    """Its workers write no level plans while they ask (collect writes them): status finds
    the configs asked at each level, and the trials training, in the promotion log."""
    results = tmp_path / "results" / "x"
    coarse = results / "coarse"
    _, sweep, books = start_async_sweep(coarse, levels=2, epochs=2)
    asks = [sweep.next(books.__getitem__) for _ in range(4)]
    assert [(a.level, a.name) for a in asks] == [(0, "0"), (0, "1"), (0, "2"), (0, "3")]
    for name, value in (("0", 0.9), ("1", 0.5)):  # two finish level 0; "2" and "3" train
        result = {"status": "ok", "best_val_metric": value, "epochs_run": 1}
        write_json(coarse / "trials" / name / "e1" / "result.json", result)
        books[0].release(name)
        sweep.tell(0, {"name": name, **result})
    assert sweep.next(books.__getitem__).name == "0"  # the best of two goes on: training
    assert not list(coarse.glob("levels/*/plan.json"))
    (rung,) = [r for r in ladder_status(results)["rungs"] if r["rung"] == "coarse"]
    assert rung["running"] == 3  # "2" and "3" at level 0, "0" at level 1
    assert [(lv["level"], lv["done"], lv["running"]) for lv in rung["levels"]] == [
        (0, 2, 2),
        (1, 0, 1),
    ]
    assert rung["halving_mode"] == "async"


def test_a_collected_async_sweep_counts_a_level_no_config_reached(tmp_path: Path) -> None:
    """Both configs at level 1 stopped by patience: none goes on to level 2, the rule is
    done and collect wrote level 2's plan, empty. Status reads the collected plans: the
    sweep is done, not waiting for a level 2 that will never come."""
    from tuneladder.execution.promotions import asked_by_level
    from tuneladder.search.halving import asked_level

    results = tmp_path / "results" / "x"
    coarse = results / "coarse"
    plan, sweep, books = start_async_sweep(coarse, levels=3, epochs=4)
    while (ask := sweep.next(books.__getitem__)) is not None:
        epochs = (1, 2)[ask.level]
        result = {"status": "ok", "best_val_metric": int(ask.name) / 10, "epochs_run": epochs}
        result["stopped_early"] = ask.level == 1
        write_json(coarse / "trials" / ask.name / f"e{epochs}" / "result.json", result)
        books[ask.level].release(ask.name)
        sweep.tell(ask.level, {"name": ask.name, **result})
    reached = [len(names) for names in asked_by_level(plan, coarse)]
    assert sweep.done and reached[0] == 4 and reached[1] >= 2 and reached[2] == 0
    # as collect leaves it: every level's plan from the log, then the sweep's table
    for level, names in enumerate(asked_by_level(plan, coarse)):
        write_json(coarse / "levels" / str(level) / "plan.json", asked_level(plan, level, names))
    write_json(coarse / "results.json", {"trials": []})
    (rung,) = [r for r in ladder_status(results)["rungs"] if r["rung"] == "coarse"]
    assert (rung["state"], rung["done"], rung["total"]) == ("done", 4, 4)
    assert [(lv["level"], lv["done"]) for lv in rung["levels"]] == [*enumerate(reached)]
    # a level's total is what it planned, or what it took where ASHA promoted more
    assert [lv["total"] for lv in rung["levels"]] == [4, max(2, reached[1]), 1]


def test_a_tie_for_the_best_names_the_trial_that_got_there_first(tmp_path: Path) -> None:
    """Trial 1 reached 0.9 before trial 0 did; folders list 0 first. Then the time left:
    one trial to go trains alone, whatever the run planned."""
    results = tmp_path / "results" / "x"
    trials = [{"name": str(i), "dir": f"trials/{i}"} for i in range(4)]
    write_json(results / "coarse" / "plan.json", {"trials": trials})
    metric = {"name": "accuracy", "mode": "max"}
    for name, value, started in (("0", 0.9, 50.0), ("1", 0.9, 10.0), ("2", 0.5, 0.0)):
        result = {"status": "ok", "best_val_metric": value, "total_seconds": 5.0}
        result |= {"started_at": started, "metric": metric, "epochs_run": 5}
        write_json(results / "coarse" / "trials" / name / "result.json", result)
    status = ladder_status(results)
    assert (status["best"]["name"], status["best"]["value"]) == ("1", 0.9)
    write_json(results / "run_slots.json", {"workers": {"coarse": 8}, "trials_per_gpu": 1})
    status = ladder_status(results)
    assert status["workers"] == 1
    assert status["estimate_training_s"] == pytest.approx(5.0)  # one trial, not an 8th of it


def test_seed_reruns_are_estimated_finalist_by_finalist(tmp_path: Path) -> None:
    """Finalists train in rank order and differ in size: the first one's reruns do not set
    the pace of the rest; each unfinished finalist trains at its sweep trial's pace, scaled
    by how the finished finalist's reruns compared with their own sweep trial."""
    results = tmp_path / "results" / "x"

    def finished(folder: Path, seconds: float, started: float) -> None:
        result = {"status": "ok", "total_seconds": seconds, "epochs_run": 10}
        write_json(folder / "result.json", {**result, "started_at": started})

    sweep = [{"name": "0", "dir": "trials/0"}, {"name": "1", "dir": "trials/1"}]
    write_json(results / "coarse" / "plan.json", {"trials": sweep})
    finished(results / "coarse" / "trials" / "0", 10.0, 0.0)  # a wide net: 1 s an epoch
    finished(results / "coarse" / "trials" / "1", 1.0, 20.0)  # a narrow one: 0.1 s
    reruns = [
        {"name": f"{g}-{s}", "dir": f"{g}-{s}", "group": str(g), "config": {"epochs": 10}}
        for g in (0, 1)
        for s in (0, 1)
    ]
    finalists = [{"rung": "coarse", "name": "0"}, {"rung": "coarse", "name": "1"}]
    write_json(results / "fine" / "plan.json", {"trials": []})  # the rung before, planned
    write_json(results / "seeds" / "plan.json", {"trials": reruns, "finalists": finalists})
    finished(results / "seeds" / "0-0", 20.0, 30.0)  # twice its sweep trial's time

    status = ladder_status(results)
    assert status["workers"] == 1
    # finalist 0: one rerun left at its own 2 s an epoch; finalist 1: two at 0.1 x 2
    assert status["estimate_training_s"] == pytest.approx(10 * 2.0 + 2 * 10 * 0.2)
    # the run planned 3 worker jobs for the seed reruns (on --cores 3, say), where the one
    # rerun done ran alone: the three left train at once, as far as the time left goes
    write_json(results / "run_slots.json", {"workers": {"seeds": 3}, "trials_per_gpu": 1})
    status = ladder_status(results)
    assert status["workers"] == 3
    assert status["estimate_training_s"] == pytest.approx((10 * 2.0 + 2 * 10 * 0.2) / 3)
    # two trials side by side on each worker's GPU, as the probe chose: twice as many
    write_json(results / "run_slots.json", {"workers": {"seeds": 1}, "trials_per_gpu": "auto"})
    write_json(results / "sanity" / "gpu_probe.json", {"chosen": 2})
    assert ladder_status(results)["workers"] == 2
    # never more at once than the rung has trials left: 3 of its 4
    write_json(results / "run_slots.json", {"workers": {"seeds": 8}, "trials_per_gpu": 4})
    assert ladder_status(results)["workers"] == 3


def test_status_json_read_by_head_ends_quietly(tmp_path: Path) -> None:
    write_config(tmp_path, experiment="big")
    coarse = tmp_path / "results" / "big" / "coarse"
    # 600 trials: well over the 64 KiB a pipe holds
    trials = [{"name": str(i), "dir": f"trials/{i}"} for i in range(600)]
    write_json(coarse / "plan.json", {"trials": trials})
    for entry in trials:
        write_json(coarse / entry["dir"] / "result.json", {"status": "ok", "total_seconds": 1.0})
    proc = subprocess.Popen(
        [TUNELADDER, "status", "--config", "config.yaml", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "{\n"
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == ""
    proc.stderr.close()


def test_version() -> None:
    out = subprocess.run([TUNELADDER, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"tuneladder {tuneladder.__version__}"


def test_a_failed_prepare_is_named_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,label\n1,0\n2,0\n3,0\n")
    write_config(tmp_path, task={"name": "csv", "options": {"path": "t.csv", "target": "label"}})
    run = snakemake(tmp_path, check=False)
    assert run.returncode != 0
    status = json.loads(_status(tmp_path, "--json").stdout)
    assert status["state"] == "failed"
    (failed,) = status["failed_jobs"]
    assert failed["job"] == "prepare"
    assert "target 'label' has a single class (0)" in failed["reason"]
    text = _status(tmp_path).stdout
    assert text.startswith("experiment tiny in results/tiny: failed")
    assert f"FAILED prepare: {tmp_path / 't.csv'}: target 'label' has a single class" in text
    assert "left: ~" not in text
    # a stopped ladder's clock stopped with it
    assert json.loads(_status(tmp_path, "--json").stdout)["elapsed_s"] == status["elapsed_s"]


def test_the_stop_line_names_a_job_that_failed_in_this_run_only(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "coarse" / "worker-3-of-4.log"
    log.parent.mkdir(parents=True)
    log.write_text("x ERROR worker 3: lane 0 exit code 1\n")
    os.utime(log, (1000.0, 1000.0))  # from an earlier run (four workers then)
    status = {
        "rungs": [{"rung": "coarse", "done": 3, "total": 8}],
        "failed_jobs": [{"job": "coarse/worker-3-of-4", "reason": "lane 0", "log": str(log)}],
    }
    earlier = stop_line({**status, "results": "results/dq2"}, "snakemake --cores 2", since=2000.0)
    assert earlier.startswith("stopped before the end (trials kept: coarse 3/8)")
    # the run's own folder: `tuneladder status` alone reads config/config.yaml's experiment
    assert earlier.endswith(
        "`tuneladder status --results results/dq2` shows where the ladder stands"
    )
    now = stop_line(status, "snakemake --cores 2", since=500.0)
    assert now.startswith(f"stopped: coarse/worker-3-of-4 failed (its reason above, and in {log})")
    assert now.endswith("Once that is fixed, `snakemake --cores 2` goes on from there")


def test_the_stop_line_counts_a_halving_sweeps_trainings_and_a_stop_asked() -> None:
    """Stopped in the first level of a sweep that halves, no config is through every
    level, yet 18 trainings are kept: the line says so, not "no trial had finished"."""
    coarse = {"rung": "coarse", "done": 0, "total": 30,
              "levels": [{"level": 0, "done": 18}, {"level": 1, "done": 0}]}  # fmt: skip
    fine = {"rung": "fine", "done": 0, "total": 20, "levels": []}
    status = {"rungs": [coarse, fine], "results": "results/x"}
    line = stop_line(status, "snakemake --cores 2")
    assert line.startswith(
        "stopped before the end (trials kept: coarse 0/30 configs, 18 trainings);"
    )
    nothing = stop_line({"rungs": [{**coarse, "levels": []}, fine]}, "snakemake")
    assert nothing.startswith("stopped before the end (no trial had finished)")
    asked = {**status, "stop_asked": {"asked_at": 0.0, "by": "tuneladder stop"}}
    assert stop_line(asked, "snakemake").startswith("stopped as asked, by tuneladder stop (")


def test_what_the_gpu_probe_chose_is_said_once_on_the_terminal_and_in_status(
    tmp_path: Path,
) -> None:
    from tuneladder.execution.terminal import LadderProgress

    results = tmp_path / "results" / "x"
    write_json(results / "coarse" / "plan.json", {"trials": [{"name": "0", "dir": "trials/0"}]})
    metric = {"name": "accuracy", "mode": "max"}
    result = {"status": "ok", "best_val_metric": 0.9, "total_seconds": 5.0, "epochs_run": 5}
    write_json(results / "coarse" / "trials" / "0" / "result.json", {**result, "metric": metric})
    progress = LadderProgress(results, resolve_config(tiny_config(experiment="x")))
    assert not any("GPU probe" in line for line in progress.poll())  # none ran
    assert "gpu " not in format_status(ladder_status(results))
    levels = [{"trials": k, "speedup": s} for k, s in ((1, 1.0), (2, 1.8), (4, 3.5), (8, 5.3))]
    probe = {"chosen": 8, "levels": levels, "per_trial_mb": 856.2, "device_name": "NVIDIA H200"}
    write_json(results / "sanity" / "gpu_probe.json", probe)
    # a run that sets the number, or trains on the CPU (trials_per_gpu 1), ran no lanes
    # by it: an earlier run's probe is not theirs
    write_json(results / "run_slots.json", {"workers": {"coarse": 1}, "trials_per_gpu": 4})
    assert not any("GPU probe" in line for line in progress.poll())
    assert "gpu " not in format_status(ladder_status(results))
    write_json(results / "run_slots.json", {"workers": {"coarse": 1}, "trials_per_gpu": "auto"})
    said = (
        "8 trials side by side on each GPU"
        " (5.3x the throughput of one, 856 MB a trial, NVIDIA H200)"
    )
    assert progress.poll() == [f"tuneladder: GPU probe chose {said}"]
    assert progress.poll() == []  # once
    assert f"  gpu      probe chose {said}\n" in format_status(ladder_status(results))
