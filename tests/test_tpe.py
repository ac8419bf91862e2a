"""TPE in rounds: each round is asked from the files before it, and workers run the rounds."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution

from helpers import copy_ladder, results_of, snakemake, tiny_config, write_config
from tuneladder.execution.collect import collect_rung
from tuneladder.execution.worker import TrialSetup, Worker, WorkerRuntime
from tuneladder.search.plan import ConfigMaker
from tuneladder.search.tpe import ask_round, inside, plan_tpe, resolved_entries, rounds
from tuneladder.store.io import read_json, write_json
from tuneladder.store.trials import base_params
from tuneladder.tasks.digits import DEFAULT_MODEL, applies

SPACE = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "arch": CategoricalDistribution(["mlp", "cnn"]),
    "channels": CategoricalDistribution([4, 8]),
    "schedule": CategoricalDistribution(["constant", "warmup_cosine"]),
    "warmup_epochs": FloatDistribution(0.5, 2.0),
}
TRAIN = {"epochs": 1, "batch_size": 256, "width": 8, "num_layers": 1, "channels": 4}
BASE = base_params(TRAIN, DEFAULT_MODEL)


def plan(trials: int = 4, batch: int = 2, prior: list | None = None) -> dict:
    return plan_tpe(
        "fine",
        SPACE,
        trials=trials,
        batch=batch,
        configs=ConfigMaker(base=BASE, epochs=1),
        ladder_seed=0,
        prior=prior or [],
    )


def peaked_prior(n: int) -> list[dict]:
    """Finished trials whose value peaks at lr = 1e-2, spread over the whole lr range."""
    out = []
    for i in range(n):
        lr = 10 ** (-4 + 3 * i / (n - 1))
        sampled = {"lr": lr, "arch": "mlp", "schedule": "constant"}
        value = 1.0 - abs(math.log10(lr) + 2.0)
        out.append({"name": str(i), "sampled": sampled, "status": "ok", "best_val_metric": value})
    return out


def finish(rung_dir: Path, entries: list[dict], values: list[float]) -> None:
    """Result files for asked trials, as a worker leaves them (only what the asks read)."""
    for entry, value in zip(entries, values, strict=True):
        write_json(
            rung_dir / entry["dir"] / "result.json", {"status": "ok", "best_val_metric": value}
        )


def test_rounds_follow_the_batch() -> None:
    grouped = rounds(plan(trials=5, batch=2))
    assert [[e["name"] for e in r] for r in grouped] == [["0", "1"], ["2", "3"], ["4"]]
    assert all("config" not in e for r in grouped for e in r)  # asked when the round comes


def test_a_round_is_asked_from_the_files_before_it(tmp_path: Path) -> None:
    tpe = plan(prior=peaked_prior(12))
    first = ask_round(tpe, tmp_path, 0, mode="max", model_applies=applies)
    assert ask_round(tpe, tmp_path, 0, mode="max", model_applies=applies) == first
    assert read_json(tmp_path / "rounds" / "0.json")["trials"] == first
    finish(tmp_path, first, [0.5, 0.6])
    second = ask_round(tpe, tmp_path, 1, mode="max", model_applies=applies)
    assert ask_round(tpe, tmp_path, 1, mode="max", model_applies=applies) == second
    assert read_json(tmp_path / "rounds" / "1.json")["observed"] == 12 + 2
    # another result before it (trial 1 now the best of all): another round
    finish(tmp_path, first, [0.5, 2.0])
    assert ask_round(tpe, tmp_path, 1, mode="max", model_applies=applies) != second
    # collect sees every asked config
    assert [e["config"]["seed"] for e in resolved_entries(tpe, tmp_path)] == [
        e["seed"] for e in tpe["trials"]
    ]
    for entry in [*first, *second]:
        sampled, config = entry["sampled"], entry["config"]
        assert config["lr"] == sampled["lr"] and config["epochs"] == 1
        # conditional: channels for the cnn, warm-up for warmup_cosine, nothing else
        assert ("channels" in sampled) == (sampled["arch"] == "cnn")
        assert ("warmup_epochs" in sampled) == (sampled["schedule"] == "warmup_cosine")
        assert config["model"]["channels"] == sampled.get("channels", TRAIN["channels"])


def test_the_prior_steers_the_first_round(tmp_path: Path) -> None:
    """With enough finished trials TPE asks near their best (lr 1e-2 here) at once; the
    space spans three decades, so random asks would lie 0.75 decades from it on average."""
    asked = ask_round(plan(trials=8, batch=8, prior=peaked_prior(16)), tmp_path, 0, mode="max")
    distance = [abs(math.log10(e["sampled"]["lr"]) + 2.0) for e in asked]
    assert sorted(distance)[len(distance) // 2] < 0.4
    # the constant liar keeps one round from asking one point eight times
    assert len({e["sampled"]["lr"] for e in asked}) == 8
    # maximising and minimising the same values ask different points
    assert asked != ask_round(
        plan(trials=8, batch=8, prior=peaked_prior(16)), tmp_path, 0, mode="min"
    )


def test_only_trials_inside_the_fine_space_join_the_study() -> None:
    assert inside(SPACE, {"lr": 1e-3, "arch": "cnn", "channels": 8})
    assert not inside(SPACE, {"lr": 1.0})
    assert not inside(SPACE, {"channels": 16})
    assert not inside(SPACE, {"width": 8})


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def work(tpe: dict, rung_dir: Path, digits, digits_task, *, worker=0, workers=1) -> dict:
    setup = TrialSetup(task=digits_task, data=digits, metric="accuracy", mode="max")
    runtime = WorkerRuntime(device=torch.device("cpu"))
    return Worker(
        tpe, rung_dir, setup=setup, runtime=runtime, worker=worker, workers=workers
    ).run()


def test_a_worker_runs_the_rounds_and_takes_over_a_dead_claim(
    tmp_path: Path, digits, digits_task
) -> None:
    tpe = plan(trials=4, batch=2)
    (tmp_path / "claims").mkdir()
    claim = {"host": os.uname().nodename, "pid": dead_pid()}
    (tmp_path / "claims" / "1.claim").write_text(json.dumps(claim))
    report = work(tpe, tmp_path, digits, digits_task)
    assert sorted(report["ran"]) == ["0", "1", "2", "3"]
    rows = collect_rung(tpe, tmp_path, data_fingerprint=digits.fingerprint, metric="accuracy")
    assert [(r["name"], r["round"]) for r in rows] == [("0", 0), ("1", 0), ("2", 1), ("3", 1)]
    asked = {e["name"]: e for e in resolved_entries(tpe, tmp_path)}
    for r in rows:
        assert r["sampled"] == asked[r["name"]]["sampled"]
        assert r["params"]["lr"] == r["sampled"]["lr"]
    # round 1 was asked from round 0's results: the same again, so every trial is reused
    files = {p.name: p.read_bytes() for p in (tmp_path / "rounds").iterdir()}
    again = work(tpe, tmp_path, digits, digits_task)
    assert again["ran"] == [] and sorted(again["reused"]) == ["0", "1", "2", "3"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "rounds").iterdir()} == files


def test_one_job_per_trial_cannot_wait_forever(tmp_path: Path, digits, digits_task) -> None:
    """Trial 3's own job starts first (a scheduler may do that): it trains round 0, which
    nobody holds, before its own trial, and leaves trial 2 of its round to trial 2's job."""
    tpe = plan(trials=4, batch=2)
    report = work(tpe, tmp_path, digits, digits_task, worker=3, workers=4)
    assert sorted(report["ran"]) == ["0", "1", "3"]
    assert not (tmp_path / "trials" / "2" / "result.json").exists()
    assert work(tpe, tmp_path, digits, digits_task, worker=2, workers=4)["ran"] == ["2"]


@pytest.mark.parametrize("bad", [0, -1])
def test_batch_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="batch must be >= 1"):
        plan(batch=bad)


# --- a tiny ladder with conditional parameters and a tpe fine sweep -------------------------


def conditional_config() -> dict:
    return tiny_config(
        experiment="tpe",
        space={
            "lr": "auto",
            "arch": {"dist": "choice", "values": ["mlp", "cnn"]},
            "channels": {"dist": "choice", "values": [4, 8]},  # the cnn reads it (applies)
            "num_layers": {"dist": "int", "low": 1, "high": 2},
            "dropout": {"dist": "uniform", "low": 0.0, "high": 0.3, "when": {"num_layers": 2}},
            "schedule": {"dist": "choice", "values": ["constant", "warmup_cosine"]},
            "warmup_epochs": {"dist": "uniform", "low": 0.5, "high": 1.5},
        },
        train={"epochs": 2, "batch_size": 128, "width": 32, "num_layers": 1, "channels": 4},
        coarse={"trials": 6, "epochs": 2, "sampler": "sobol"},
        select={"top_k": 3},
        fine={"trials": 4, "epochs": 2, "sampler": "tpe", "batch": 2},
        seeds={"finalists": 1, "seeds": 2, "epochs": 2},
    )


def assert_conditions_hold(sampled: dict) -> None:
    assert ("channels" in sampled) == (sampled.get("arch", "mlp") == "cnn")
    assert ("warmup_epochs" in sampled) == (sampled["schedule"] == "warmup_cosine")
    assert ("dropout" in sampled) == (sampled.get("num_layers", 1) == 2)


@pytest.mark.slow
def test_a_ladder_with_conditions_and_tpe_is_reproducible(tmp_path: Path) -> None:
    first = tmp_path / "first"
    write_config(first, **conditional_config())
    snakemake(first)
    results = results_of(first)
    for rung in ("coarse", "fine"):
        for row in read_json(results / rung / "results.json")["trials"]:
            assert_conditions_hold(row["sampled"])
            for name, value in row["sampled"].items():
                assert row["params"][name] == value
    fine_space = read_json(results / "fine" / "space.json")
    assert fine_space["conditions"] == {"dropout": {"num_layers": [2]}}
    assert set(fine_space["narrowing"]) == set(conditional_config()["space"])
    tpe = read_json(results / "fine" / "plan.json")
    assert tpe["sampler"] == "tpe" and [e["round"] for e in tpe["trials"]] == [0, 0, 1, 1]
    observed = [read_json(results / "fine" / "rounds" / f"{r}.json")["observed"] for r in (0, 1)]
    assert observed == [len(tpe["prior"]), len(tpe["prior"]) + 2]
    summary = read_json(results / "report" / "summary.json")
    assert set(summary["importance"]["conditional"]) <= {"channels", "dropout", "warmup_epochs"}
    # the fine rung from scratch: the same rounds ask the same trials
    second = copy_ladder(first, tmp_path / "second")
    for name in ("trials", "rounds", "workers", "claims", "results.json"):
        path = results_of(second) / "fine" / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    snakemake(second, str(Path("results") / "tpe" / "fine" / "results.json"))
    for r in (0, 1):
        again = read_json(results_of(second) / "fine" / "rounds" / f"{r}.json")
        assert again == read_json(results / "fine" / "rounds" / f"{r}.json")
