"""Stages: one Runtime for every rung that trains; the sanity rungs train in its precision."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

import pytest

from tuneladder import device, stages
from tuneladder.device import Runtime
from tuneladder.io import read_json


def test_runtime_from_the_rules_param_and_the_jobs_threads() -> None:
    params = {
        "device": "cpu",
        "precision": "bf16",
        "gpus": 0,
        "checkpoint_every_s": 5,
        "stale_claim_s": 30,
    }
    runtime = Runtime.from_params(params, threads=3)
    assert (runtime.threads, runtime.precision, runtime.stale_claim_s) == (3, "bf16", 30)
    with pytest.raises(ValueError, match="precision must be one of"):
        Runtime(device="cpu", precision="fp16", threads=1)
    with pytest.raises(ValueError, match=r"threads must be >= 1, got self.threads=0"):
        Runtime(device="cpu", precision="fp32", threads=0)
    with pytest.raises(ValueError, match="device must be one of"):
        Runtime(device="tpu", precision="fp32", threads=1)
    with pytest.raises(TypeError):
        Runtime("cpu", "fp32", 1)  # keyword-only


def test_a_claimed_gpu_stays_claimed_while_the_job_runs(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # so that teardown restores what was there
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(device.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(device, "_HELD", [])
    # "auto" with a GPU budget claims one; without CUDA the device resolves to the CPU
    Runtime(device="auto", precision="fp32", threads=1, gpus=1).start()
    lock = next(tmp_path.glob("tuneladder-gpus-*/gpu0.lock"))
    with open(lock, "a+") as handle, pytest.raises(BlockingIOError):
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another worker cannot take it
    device._HELD[0].release()


@pytest.mark.parametrize("stage", ["overfit_check", "lr_range_test"])
def test_sanity_rungs_train_under_the_runtimes_precision(
    stage: str, digits_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    seen = []

    @contextlib.contextmanager
    def fake_autocast(self: Runtime, torch_device):
        seen.append(("enter", self.precision))
        yield
        seen.append(("exit", self.precision))

    def fake_rung(*args, **kwargs):
        seen.append(("train", kwargs["device"].type))
        if stage == "overfit_check":
            return {"passed": True, "final_loss": 0.0, "steps": 1, "initial_loss": 1.0,
                    "loss_threshold": 0.05}  # fmt: skip
        return {"lrs": [1e-3], "losses": [1.0], "smoothed": [1.0], "smoothed_zero_lag": [1.0],
                "suggestion": 1e-3, "range": [1e-4, 1e-2], "divergence_lr": None}  # fmt: skip

    monkeypatch.setattr(Runtime, "autocast", fake_autocast)
    module = {"overfit_check": "overfit", "lr_range_test": "lr_range"}[stage]
    monkeypatch.setattr(f"tuneladder.{module}.{stage}", fake_rung)
    runtime = Runtime(device="cpu", precision="bf16", threads=1)
    common = {"data_dir": digits_dir, "task": {"name": "digits"}, "train": {"epochs": 1}}
    if stage == "overfit_check":
        overfit = {"subset": 8, "max_steps": 1, "lr": 0.1, "loss_ratio": 0.05}
        stages.overfit_check_stage(
            **common,
            seed=0,
            overfit={**overfit, "loss_threshold": None, "enforce": True},
            runtime=runtime,
            out=tmp_path / "overfit.json",
        )
    else:
        lr_range = {"start": 1e-5, "end": 1, "steps": 4, "smoothing": 0.9, "diverge_factor": 4}
        stages.lr_range_test_stage(
            **common,
            seed=0,
            lr_range=lr_range,
            runtime=runtime,
            out=tmp_path / "lr_range.json",
            csv_out=tmp_path / "lr_range.csv",
        )
        assert (tmp_path / "lr_range.csv").is_file()
    assert seen == [("enter", "bf16"), ("train", "cpu"), ("exit", "bf16")]
    assert read_json(next(tmp_path.glob("*.json")))
