"""The real Snakemake on a tiny ladder: every rung's outputs, reruns, and the DAG's shape."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from helpers import (
    copy_ladder,
    planned_jobs,
    results_of,
    rung_target,
    snakemake,
    tiny_config,
    write_config,
    write_fault_ladder,
)
from tuneladder.store.io import read_json


@pytest.fixture(scope="module")
def ladder(tiny_ladder: Path) -> Path:
    return tiny_ladder  # shared with the report's tests: one tiny ladder per session


@pytest.mark.slow
def test_every_rung_leaves_its_outputs(ladder: Path) -> None:
    results = results_of(ladder)
    for name in ("train.pt", "val.pt", "test.pt", "meta.json"):
        assert (results / "data" / name).is_file()
    assert read_json(results / "sanity" / "overfit.json")["passed"]
    lr_range = read_json(results / "sanity" / "lr_range.json")
    low, high = lr_range["range"]
    coarse_plan = read_json(results / "coarse" / "plan.json")
    assert len(coarse_plan["trials"]) == 4
    for entry in coarse_plan["trials"]:
        assert low <= entry["config"]["lr"] <= high  # lr: auto took the range test's range
        trial = results / "coarse" / "trials" / entry["name"]
        assert {"config.json", "history.csv", "result.json"} <= {p.name for p in trial.iterdir()}
    assert len(read_json(results / "coarse" / "topk.json")["trials"]) == 2
    fine_space = read_json(results / "fine" / "space.json")
    assert set(fine_space["space"]) == set(tiny_config()["space"])
    assert len(read_json(results / "fine" / "results.json")["trials"]) == 3
    seeds = read_json(results / "seeds" / "results.json")["trials"]
    assert sorted(r["name"] for r in seeds) == [
        "0-0",
        "0-1",
        "1-0",
        "1-1",
        "default-0",
        "default-1",
    ]
    assert all(
        (results / "seeds" / r["name"] / "model.pt").is_file()
        for r in seeds
        if r["status"] == "ok"
    )
    summary = read_json(results / "final" / "summary.json")
    assert 0.5 < summary["test_mean"] <= 1.0
    assert summary["baseline"]["test"]["n"] == 2
    assert (results / "final" / "model.pt").is_file()
    assert "| tuned |" in (results / "final" / "summary.md").read_text()
    logs = {p.name for p in (results / "logs").rglob("*.log")}
    assert {"prepare.log", "overfit_check.log", "lr_range_test.log", "final.log"} <= logs


def seed_values(results: Path, group: str) -> np.ndarray:
    """``best_val_metric`` of a finalist's ok seed trials, read from their own result.json."""
    values = []
    for entry in read_json(results / "seeds" / "plan.json")["trials"]:
        if entry["group"] == group:
            result = read_json(results / "seeds" / entry["dir"] / "result.json")
            if result["status"] == "ok":
                values.append(result["best_val_metric"])
    return np.asarray(values, dtype=float)


@pytest.mark.slow
def test_final_statistics_follow_from_the_seed_trials(ladder: Path) -> None:
    results = results_of(ladder)
    summary = read_json(results / "final" / "summary.json")
    best = seed_values(results, summary["best_group"])
    runner_up = seed_values(results, summary["runner_up"]["group"])
    n = len(best)
    assert n == summary["seeds"] == 2
    assert summary["val_values"] == pytest.approx(best.tolist())
    assert summary["val_mean"] == pytest.approx(best.mean())
    assert summary["val_std"] == pytest.approx(best.std(ddof=1))
    # t-interval of the mean, then clipped to accuracy's [0, 1]
    half = stats.t.ppf(0.975, n - 1) * best.std(ddof=1) / math.sqrt(n)
    low, high = best.mean() - half, best.mean() + half
    assert summary["val_ci95"] == pytest.approx([max(low, 0.0), min(high, 1.0)])
    assert summary["val_ci95_clipped"] == (low < 0.0 or high > 1.0)
    assert 0.0 <= summary["val_ci95"][0] <= summary["val_ci95"][1] <= 1.0
    welch = stats.ttest_ind(best, runner_up, equal_var=False)
    assert summary["p_value_vs_runner_up"] == pytest.approx(welch.pvalue)
    assert summary["distinguishable_from_runner_up"] == (welch.pvalue < 0.05)
    # the chosen one has the better mean: no tie here, so no tie-break to report
    assert best.mean() > runner_up.mean() and summary["tie"] is None


@pytest.mark.slow
def test_final_summary_names_the_trial_shows_what_applies_and_the_trivial_baseline(
    ladder: Path,
) -> None:
    results = results_of(ladder)
    summary = read_json(results / "final" / "summary.json")
    finalist = read_json(results / "seeds" / "plan.json")["finalists"][int(summary["best_group"])]
    label = f"{finalist['rung']} #{finalist['name']}"
    assert summary["best_origin"]["label"] == label
    # adamw with a constant schedule, an MLP: no momentum, no step or warm-up settings,
    # no guard, no CNN channels
    assert summary["best_config"]["optimizer"] == "adamw"
    assert summary["best_config"]["schedule"] == "constant"
    assert summary["best_config"]["arch"] == "mlp"
    for name in (
        "channels",
        "diverge_factor",
        "momentum",
        "nesterov",
        "gamma",
        "step_epochs",
        "warmup_epochs",
    ):
        assert name not in summary["best_config"] and name in summary["not_applicable"]
    assert {"lr", "weight_decay", "batch_size", "dropout", "num_layers"} <= set(
        summary["best_config"]
    )
    # majority class of the train split, scored on val and test by hand
    split = {
        name: torch.load(results / "data" / f"{name}.pt", weights_only=True)["y"].numpy()
        for name in ("train", "val", "test")
    }
    majority = np.bincount(split["train"]).argmax()
    trivial = summary["trivial"]
    assert trivial["name"] == "majority class"
    assert trivial["val"]["accuracy"] == pytest.approx(np.mean(split["val"] == majority))
    assert trivial["test"]["accuracy"] == pytest.approx(np.mean(split["test"] == majority))
    markdown = (results / "final" / "summary.md").read_text()
    assert f"Chosen config: {label} (finalist {summary['best_group']})" in markdown
    assert f"| trivial: majority class | {np.mean(split['val'] == majority):.4f} |" in markdown
    listed = {line[2:].split(":")[0] for line in markdown.splitlines() if line.startswith("- ")}
    assert listed == set(summary["best_config"])
    clipped = "(clipped to accuracy's range [0, 1])" in markdown
    assert clipped == summary["val_ci95_clipped"]


@pytest.mark.slow
def test_complete_ladder_has_nothing_to_do(ladder: Path, tmp_path: Path) -> None:
    copy = copy_ladder(ladder, tmp_path / "ladder")  # even a dry run writes Snakemake's log
    proc = snakemake(copy, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_more_fine_trials_rerun_only_fine_and_after(ladder: Path, tmp_path: Path) -> None:
    ladder = copy_ladder(ladder, tmp_path / "ladder")
    results = results_of(ladder)
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    write_config(ladder, fine={"trials": 4, "epochs": 2})
    planned = planned_jobs(snakemake(ladder, "-n").stdout)
    assert set(planned) == {
        "plan_fine",
        "sweep_worker",
        "collect_rung",
        "plan_seeds",
        "final",
        "log_mlflow",
        "report_sweeps",
        "report",
        "all",
    }
    snakemake(ladder)
    after = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    unchanged = [p for p in before if after.get(p) == before[p]]
    for path in unchanged:
        assert "final" not in path.parts
    for rung in ("sanity", "coarse", "data"):
        for path in before:
            if rung in path.relative_to(results).parts[:1]:
                assert after[path] == before[path], f"{path} was rewritten"
    for i in range(3):  # finished fine trials were reused, not retrained
        path = results / "fine" / "trials" / str(i) / "result.json"
        assert after[path] == before[path]
    assert (results / "fine" / "trials" / "3" / "result.json").is_file()


@pytest.mark.slow
def test_workers_follow_cores_or_config(tmp_path: Path) -> None:
    write_config(tmp_path, workers="auto")  # one a core
    assert planned_jobs(snakemake(tmp_path, "-n").stdout)["sweep_worker"] == 2 * 3
    write_config(tmp_path, workers="per-trial")
    per_trial = planned_jobs(snakemake(tmp_path, "-n").stdout)["sweep_worker"]
    assert per_trial == 4 + 3 + (2 + 1) * 2
    write_config(tmp_path, workers=1)
    assert planned_jobs(snakemake(tmp_path, "-n").stdout)["sweep_worker"] == 3


@pytest.mark.slow
def test_bad_config_stops_before_any_job(tmp_path: Path) -> None:
    write_config(tmp_path, space={"lr": {"dist": "loguniform", "low": -1, "high": 1}})
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "space.lr.low must be > 0, got -1" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_fix_to_the_tasks_code_shows_in_a_dry_run_and_retrains(tmp_path: Path) -> None:
    """The trials' code is part of the workers' params: -n names the workers to rerun."""
    write_fault_ladder(tmp_path, workers=1, coarse={"trials": 2, "sampler": "random", "epochs": 1})
    target = rung_target(tmp_path, "coarse")
    snakemake(tmp_path, target)
    assert "Nothing to be done" in snakemake(tmp_path, "-n", target).stdout
    (tmp_path / "fault_helper.py").write_text("WIDTH = 8\n")
    with open(tmp_path / "fault_task.py", "a") as plugin:
        plugin.write(
            "\n# a fix to the model code, with a module of its own\nimport fault_helper\n"
        )
    trials = sorted((results_of(tmp_path) / "coarse" / "trials").glob("*/result.json"))
    assert len(trials) == 2
    for fix in ("the task's module", "a module the task imports"):
        dry = snakemake(tmp_path, "-n", target)
        out = dry.stdout + dry.stderr
        # the task's code reads the data too: it re-prepares, and every job after it
        # reruns (a fix to the training code alone reruns the checks, not prepare)
        assert re.search(r"params have changed since last execution:\s+prepare", out), fix
        planned = planned_jobs(dry.stdout)
        assert planned.get("overfit_check") == 1 and planned.get("sweep_worker") == 1, fix
        # status counts the old code's trials as to be trained again, not as done
        status = subprocess.run(
            [Path(sys.executable).parent / "tuneladder", "status", "--config", "config.yaml"]
            + ["--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        coarse = json.loads(status.stdout)["rungs"][0]
        assert (coarse["rung"], coarse["done"], coarse["stale"]) == ("coarse", 0, 2), fix
        keys = [read_json(trial)["key"] for trial in trials]
        snakemake(tmp_path, target)
        for trial, key in zip(trials, keys, strict=True):
            result = read_json(trial)
            assert result["key"] != key, fix  # trained again
            assert result["code"]["task_module"] == "fault_task"
            assert "fault_helper" in result["code"]["modules"]
        (tmp_path / "fault_helper.py").write_text("WIDTH = 16\n")
