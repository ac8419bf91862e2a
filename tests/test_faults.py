"""Fault injection: trials that raise, go NaN, sleep or run out of memory, in a real ladder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fault_task import make_task

from helpers import results_of, snakemake, write_fault_ladder
from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.store.io import read_json
from tuneladder.training.runner import TrainingRun, run_trial

EXPECTED = {"none": "ok", "sleep": "ok", "nan": "diverged", "raise": "failed", "oom": "failed"}
REASONS = {"nan": "train_loss is nan at epoch 1", "raise": "injected fault at epoch 1",
           "oom": "can't allocate memory"}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_each_fault_becomes_a_status(fault: str, tmp_path: Path) -> None:
    task = make_task({})
    prepare(task, tmp_path / "data", seed=0)
    data = load_train_val(tmp_path / "data")
    model = {**task.default_model, "fault": fault}
    config = TrialConfig.from_json({"epochs": 3, "seed": 1, "lr": 0.05, "model": model})
    result = run_trial(
        TrainingRun(
            config=config,
            data=data,
            task=task,
            metric="accuracy",
            mode="max",
            device=torch.device("cpu"),
        ),
        tmp_path / "trial",
    )
    assert result["status"] == EXPECTED[fault]
    if fault in REASONS:
        assert REASONS[fault] in result["reason"]
        assert result["epochs_run"] <= 2
    assert (tmp_path / "trial" / "result.json").is_file()


@pytest.mark.parametrize(
    ("error", "is_oom"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("CUDA driver error: out of memory"), True),
        (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"), True),
        (RuntimeError("CUBLAS_STATUS_NOT_INITIALIZED when calling cublasCreate(handle)"), True),
        (RuntimeError("GET was unable to find an engine to execute this computation"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x3 and 4x2)"), False),
        (ValueError("out of memory"), False),  # not torch's: the user's own error
    ],
)
def test_the_errors_a_full_gpu_raises_are_told_apart(error: Exception, is_oom: bool) -> None:
    from tuneladder.training.runner import _out_of_memory

    assert _out_of_memory(error) is is_oom


def test_out_of_gpu_memory_with_the_device_to_itself_is_a_failure(tmp_path: Path) -> None:
    """Only lanes sharing a GPU retry a trial alone; one that has it alone already failed."""
    import fault_task

    fault_task._CROWDED.clear()  # the first crowded model of this process runs out
    task = make_task({})
    prepare(task, tmp_path / "data", seed=0)
    model = {**task.default_model, "fault": "crowded", "fault_epoch": 0}
    run = TrainingRun(
        config=TrialConfig.from_json({"epochs": 2, "seed": 1, "lr": 0.05, "model": model}),
        data=load_train_val(tmp_path / "data"),
        task=task,
        metric="accuracy",
        mode="max",
        device=torch.device("cpu"),
    )
    result = run_trial(run, tmp_path / "trial")
    assert result["status"] == "failed" and "CUDA out of memory" in result["reason"]
    assert result["retried_alone"] is None


@pytest.mark.slow
def test_ladder_with_faulty_trials_completes(tmp_path: Path) -> None:
    write_fault_ladder(tmp_path, workers=1)  # a failed trial ends it, not its lane
    snakemake(tmp_path)
    check_fault_ladder(results_of(tmp_path))


def check_fault_ladder(results: Path) -> None:
    rows = read_json(results / "coarse" / "results.json")["trials"]
    assert {r["params"]["fault"] for r in rows} == set(EXPECTED)  # every fault was drawn
    for row in rows:
        assert row["status"] == EXPECTED[row["params"]["fault"]], row
    bad = {r["name"] for r in rows if r["status"] != "ok"}
    # rankings ignore them: top-k, the fine space, the finalists
    top = read_json(results / "coarse" / "topk.json")["trials"]
    assert top and all(t["status"] == "ok" for t in top)
    assert not bad & {t["name"] for t in top}
    fine_fault = json.loads(read_json(results / "fine" / "space.json")["space"]["fault"])
    fine_faults = fine_fault["attributes"]["choices"]
    assert set(fine_faults) <= {"none", "sleep"}
    seeds = read_json(results / "seeds" / "results.json")["trials"]
    assert {r["params"]["fault"] for r in seeds} <= {"none", "sleep"}
    assert read_json(results / "final" / "summary.json")["best_config"]["fault"] in (
        "none",
        "sleep",
    )
    # the report lists them, with their reasons
    summary = read_json(results / "report" / "summary.json")
    counts = summary["trials"]["coarse"]["counts"]
    assert counts["failed"] == sum(r["status"] == "failed" for r in rows) > 0
    assert counts["diverged"] == sum(r["status"] == "diverged" for r in rows) > 0
    listed = {t["name"]: t for t in summary["failures"]["trials"] if t["rung"] == "coarse"}
    for name in bad:
        assert listed[name]["mode"] in ("failed", "diverged")
    page = (results / "report" / "index.html").read_text()
    assert "injected fault at epoch 1" in page
