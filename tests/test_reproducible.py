"""Two runs of the tiny ladder, same config and seed, on CPU: the same results, bar timings."""

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
def test_two_runs_give_identical_results(tiny_ladder: Path, tmp_path: Path) -> None:
    # the session's tiny ladder is the first run; a second, same config, in another folder
    write_config(tmp_path)
    assert (tmp_path / "config.yaml").read_text() == (tiny_ladder / "config.yaml").read_text()
    snakemake(tmp_path)
    first, second = results_of(tiny_ladder), results_of(tmp_path)
    assert len(result_files(first)) > 40
    assert differences(first, second) == []
    for name in ("train.pt", "val.pt", "test.pt"):  # the prepared data, byte for byte
        assert (first / "data" / name).read_bytes() == (second / "data" / name).read_bytes()
