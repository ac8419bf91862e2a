"""Two runs of the tiny ladder, same config and seed, on CPU: the same results, bar timings.

The second runs on other cores and workers, so how the work is split changes nothing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers import results_of, snakemake, write_config

# what may differ between two identical runs: clocks, memory, processes, which worker ran it
VOLATILE = {
    "epoch_seconds",
    "peak_memory_mb",
    "total_seconds",
    "train_seconds",
    "seconds",
    "job_seconds",
    "started_at",
    "finished_at",
    "elapsed_s",
    "pid",
    "host",
    "hostname",
    "worker",
    "dir",  # absolute paths: the two runs live in different directories
    "path",
    "command",
    "source_commit",  # provenance: HEAD may move between the runs in a shared checkout
    "created",
    "generated_at",
    "run_id",  # MLflow's run ids are random (mlflow.json)
}
SKIP_DIRS = {"logs", "benchmarks", "workers", "claims", "figures", "mlartifacts"}


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def read(path: Path) -> Any:
    if path.suffix == ".json":
        return normalise(json.loads(path.read_text()))
    if path.suffix == ".csv":
        rows = list(csv.DictReader(path.read_text().splitlines()))
        return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]
    if path.suffix == ".pt":
        state = torch.load(path, weights_only=True)
        return {k: v.tolist() for k, v in state.items()}
    raise AssertionError(path)


def result_files(results: Path) -> list[Path]:
    return sorted(
        p.relative_to(results)
        for p in results.rglob("*")
        if p.is_file()
        and p.suffix in (".json", ".csv", ".pt")
        and not SKIP_DIRS & set(p.relative_to(results).parts)
        and p.parent.name != "data"
    )


def differences(a: Path, b: Path) -> list[str]:
    files = result_files(a)
    assert files == result_files(b)
    return [str(f) for f in files if read(a / f) != read(b / f)]


@pytest.mark.slow
def test_two_runs_give_identical_results_whatever_the_cores_and_workers(
    tiny_ladder: Path, tmp_path: Path
) -> None:
    # the session's tiny ladder is the first run (2 cores, one worker a rung trains its
    # trials one after another); the second, in another folder, runs on 1 core with one
    # job per trial, so every trial is trained by a different process in a different order
    write_config(tmp_path, workers="per-trial")
    snakemake(tmp_path, "--cores", "1")
    first, second = results_of(tiny_ladder), results_of(tmp_path)
    assert len(result_files(first)) > 40
    # the report's summary records the config and the jobs each rung took, and each run
    # keeps the config it started with: only those differ
    assert differences(first, second) == [
        "report/summary.json",
        "run_config.json",
        "run_slots.json",
    ]
    # the worker jobs each run planned: one a rung; one per trial
    slots = [read(results / "run_slots.json")["workers"] for results in (first, second)]
    assert slots[0]["coarse"] == 1 and slots[1]["coarse"] == 4
    configs = [read(results / "run_config.json") for results in (first, second)]
    assert [c.pop("workers") for c in configs] == [1, "per-trial"]
    assert configs[0] == configs[1]
    summaries = [read(results / "report" / "summary.json") for results in (first, second)]
    assert [s["reproducibility"]["config"].pop("workers") for s in summaries] == [1, "per-trial"]
    for summary in summaries:
        del summary["reproducibility"]["experiment_hash"]
        for rung in summary["ladder"]["rungs"]:
            rung.pop("jobs")
    assert summaries[0] == summaries[1]
    for name in ("train.pt", "val.pt", "test.pt"):  # the prepared data, byte for byte
        assert (first / "data" / name).read_bytes() == (second / "data" / name).read_bytes()
    # the two runs did split the work differently
    assert workers_of(first) == {"coarse": 1, "fine": 1, "seeds": 1}
    assert workers_of(second) == {"coarse": 4, "fine": 3, "seeds": 6}


def workers_of(results: Path) -> dict[str, int]:
    return {
        rung: len(list((results / rung / "workers").glob("*.json")))
        for rung in ("coarse", "fine", "seeds")
    }
