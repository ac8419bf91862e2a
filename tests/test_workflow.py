"""The real Snakemake on a tiny ladder: every rung's outputs, reruns, and the DAG's shape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import snakemake, tiny_config, write_config
from tuneladder.io import read_json


def planned_jobs(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:") :]
    jobs = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}
    jobs.pop("total", None)
    return jobs


@pytest.fixture(scope="module")
def ladder(tiny_ladder: Path) -> Path:
    return tiny_ladder  # shared with the report's tests: one tiny ladder per session


@pytest.mark.slow
def test_every_rung_leaves_its_outputs(ladder: Path) -> None:
    results = ladder / "results"
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
    for key in (
        "best_config",
        "metric",
        "mode",
        "val_mean",
        "val_std",
        "val_ci95",
        "test_mean",
        "test_std",
        "baseline",
        "p_value_vs_runner_up",
        "distinguishable_from_runner_up",
    ):
        assert key in summary
    assert 0.5 < summary["test_mean"] <= 1.0
    assert summary["baseline"]["test"]["n"] == 2
    assert (results / "final" / "model.pt").is_file()
    assert "| tuned |" in (results / "final" / "summary.md").read_text()
    logs = {p.name for p in (results / "logs").rglob("*.log")}
    assert {"prepare.log", "overfit_check.log", "lr_range_test.log", "final.log"} <= logs


@pytest.mark.slow
def test_complete_ladder_has_nothing_to_do(ladder: Path) -> None:
    proc = snakemake(ladder, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_more_fine_trials_rerun_only_fine_and_after(ladder: Path) -> None:
    results = ladder / "results"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    write_config(ladder, fine={"trials": 4, "epochs": 2})
    planned = planned_jobs(snakemake(ladder, "-n").stdout)
    assert set(planned) == {
        "plan_fine",
        "sweep_worker",
        "collect_rung",
        "plan_seeds",
        "final",
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
    write_config(ladder)  # back, for the other tests of this module


@pytest.mark.slow
def test_workers_follow_cores_or_config(tmp_path: Path) -> None:
    write_config(tmp_path)
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
