"""Stages: one Runtime for every rung that trains; the sanity rungs train in its precision."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
import torch

from helpers import needs_cpu_fp16
from tuneladder import stages
from tuneladder.infra import device
from tuneladder.infra.device import Runtime
from tuneladder.store.io import read_json


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
        Runtime(device="cpu", precision="fp8", threads=1)
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


class CountingScaler(torch.amp.GradScaler):
    """fp16's loss scaler, counting the losses it scaled."""

    losses = 0

    def scale(self, outputs):
        self.losses += 1
        return super().scale(outputs)


@pytest.mark.parametrize("precision", ["bf16", pytest.param("fp16", marks=needs_cpu_fp16)])
@pytest.mark.parametrize("stage", ["overfit_check", "lr_range_test"])
def test_sanity_rungs_learn_in_the_runtimes_precision(
    stage: str, precision: str, digits_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    """Both sanity rungs train in the sweeps' precision, and still learn in it.

    CUDA's autocast is played by the CPU's (the same autocast, another device), and so
    is fp16's loss scaler: the rungs must enter autocast around each forward pass, as
    the trials do, and in fp16 scale their losses. Wrapped around the backward pass and
    the optimizer step too, the digits CNN did not learn (its overfit check failed on
    an H200 in bf16).
    """
    entered: list[str] = []
    scaled: list[CountingScaler] = []
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def cpu_autocast(self: Runtime, torch_device):
        entered.append(self.precision)
        return torch.autocast("cpu", dtype=dtype)

    def cpu_scaler(self: Runtime, torch_device):
        if self.precision != "fp16":
            return None
        scaled.append(CountingScaler("cpu"))
        return scaled[-1]

    monkeypatch.setattr(Runtime, "autocast", cpu_autocast)
    monkeypatch.setattr(Runtime, "grad_scaler", cpu_scaler)
    runtime = Runtime(device="cpu", precision=precision, threads=1)
    cnn = {"epochs": 1, "arch": "cnn", "channels": 16, "lr": 1e-3}
    common = {"data_dir": digits_dir, "task": {"name": "digits"}, "train": cnn, "seed": 0}
    if stage == "overfit_check":
        overfit = {"subset": 64, "max_steps": 300, "lr": 1e-3, "loss_ratio": 0.05}
        stages.overfit_check_stage(
            **common,
            overfit={**overfit, "loss_threshold": None, "enforce": True},
            runtime=runtime,
            out=tmp_path / "overfit.json",
        )
        report = read_json(tmp_path / "overfit.json")
        assert report["passed"] and report["final_loss"] < 0.05 * report["initial_loss"]
    else:
        lr_range = {"start": 1e-5, "end": 1, "steps": 60, "smoothing": 0.1, "diverge_factor": 4}
        stages.lr_range_test_stage(
            **common,
            lr_range=lr_range,
            runtime=runtime,
            out=tmp_path / "lr_range.json",
            csv_out=tmp_path / "lr_range.csv",
        )
        result = read_json(tmp_path / "lr_range.json")
        # somewhere along the sweep the loss fell well below where it started
        assert min(result["smoothed"]) < 0.8 * result["smoothed"][0]
    assert entered == [precision]
    if precision == "fp16":  # one scaler for the rung, which scaled every step's loss
        assert len(scaled) == 1 and scaled[0].losses >= 10


def test_select_and_plan_fine_use_what_each_trial_sampled(tmp_path: Path) -> None:
    """The top-k narrow only on the values their trials sampled; a tpe fine plan starts
    from the ok coarse trials inside the fine space that trained as many epochs."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from tuneladder.search.space import space_to_json
    from tuneladder.store.io import write_json

    space = {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "arch": CategoricalDistribution(["mlp", "cnn"]),
        "channels": CategoricalDistribution([16, 32]),
    }

    def row(name, value, lr, arch, epochs=2, status="ok", **extra):
        sampled = {"lr": lr, "arch": arch, **extra}
        params = {"lr": lr, "arch": arch, "channels": 16, "epochs": epochs, **extra}
        return {"rung": "coarse", "name": name, "index": int(name), "status": status,
                "best_val_metric": value, "params": params, "sampled": sampled}  # fmt: skip

    rows = [
        row("0", 0.9, 1e-3, "cnn", channels=32),
        row("1", 0.8, 2e-3, "mlp"),  # channels not sampled: absent, not 16
        row("2", 0.7, 4e-3, "mlp", epochs=5),  # another length: not in the prior
        row("3", 0.1, 1e-1, "mlp"),  # outside the fine lr range
        row("4", None, 1e-3, "mlp", status="diverged"),
    ]
    write_json(tmp_path / "coarse.json", {"trials": rows})
    write_json(tmp_path / "plan.json", {"space": space_to_json(space), "conditions": {}})

    def select_top_3() -> dict:
        stages.select_top_k_stage(
            coarse=tmp_path / "coarse.json",
            plan=tmp_path / "plan.json",
            top_k=3,
            mode="max",
            topk_out=tmp_path / "topk.json",
            space_out=tmp_path / "space.json",
        )
        return read_json(tmp_path / "space.json")

    narrowed = select_top_3()
    assert narrowed["narrowing"]["channels"]["used_by"] == 1  # only trial 0 sampled it
    assert narrowed["narrowing"]["channels"]["note"].startswith("only 1 of the top 3")
    assert narrowed["conditions"] == {}
    stages.plan_fine_stage(
        space=tmp_path / "space.json",
        coarse=tmp_path / "coarse.json",
        task={"name": "digits", "options": {}},
        train={"epochs": 2},
        sweep={"trials": 4, "epochs": 2, "sampler": "tpe", "batch": 2},
        seed=0,
        out=tmp_path / "fine.json",
    )
    fine = read_json(tmp_path / "fine.json")
    assert [p["name"] for p in fine["prior"]] == ["0", "1"]
    assert fine["prior"][1]["sampled"] == {"lr": 2e-3, "arch": "mlp"}
    # rows collected before they recorded `sampled`: every searched value counts
    legacy = [{k: v for k, v in r.items() if k != "sampled"} for r in rows]
    write_json(tmp_path / "coarse.json", {"trials": legacy})
    assert select_top_3()["narrowing"]["channels"]["used_by"] == 3
