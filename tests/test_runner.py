from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from helpers import needs_cpu_fp16
from tuneladder.core.curves import curve_summary
from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import TrainVal
from tuneladder.store.io import read_json
from tuneladder.training.metrics import Scorer
from tuneladder.training.runner import (
    HISTORY_COLUMNS,
    NORM_SAMPLES,
    Batches,
    Checkpoint,
    Outcome,
    TrainingRun,
    TrainState,
    run_epoch,
    run_trial,
    train,
    trial_key,
)

CPU = torch.device("cpu")
NO_AMP = contextlib.nullcontext()
MLP = {"arch": "mlp", "width": 32, "num_layers": 1, "channels": 8, "dropout": 0.1}


def accuracy_scorer(data: TrainVal) -> Scorer:
    return Scorer.build(data.info, CPU, ("accuracy",))


def config(**changes) -> TrialConfig:
    base = {"epochs": 3, "seed": 0, "lr": 3e-3, "batch_size": 128, "model": MLP}
    return TrialConfig(**{**base, **changes})


def accuracy_run(cfg: TrialConfig, data: TrainVal, task, **changes) -> TrainingRun:
    """A trial on the CPU that selects on accuracy."""
    return TrainingRun(
        config=cfg, data=data, task=task, metric="accuracy", mode="max", device=CPU, **changes
    )


def numbers(outcome: Outcome) -> list[dict[str, float]]:
    """A trial's history without its timings and memory, which no two runs share."""
    drop = {"epoch_seconds", "peak_memory_mb"}
    return [{k: v for k, v in row.items() if k not in drop} for row in outcome.history]


def history(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_trial_writes_config_history_and_result(tmp_path: Path, digits, digits_task) -> None:
    result = run_trial(
        TrainingRun(
            config=config(),
            data=digits,
            task=digits_task,
            metric="accuracy",
            mode="max",
            device=CPU,
            precision="tf32",  # asked for, and ignored on the CPU
        ),
        tmp_path,
        trial={"rung": "coarse", "index": 2},
    )
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "history.csv", "result.json"}
    saved = read_json(tmp_path / "result.json")
    assert saved == result
    assert saved["status"] == "ok" and saved["epochs_run"] == 3
    assert saved["best_val_metric"] > 0.8  # an MLP learns digits in three epochs
    assert saved["trial"] == {"rung": "coarse", "index": 2}
    for key in (
        "seed",
        "device",
        "versions",
        "git_commit",
        "host",
        "total_seconds",
        "best_epoch",
        "peak_memory_mb",
        "config",
    ):
        assert key in saved
    assert saved["versions"]["torch"] == torch.__version__
    assert (saved["precision"], saved["precision_asked"]) == ("fp32", "tf32")
    # the key ends with the fingerprint of the code that decided the numbers
    assert saved["code"]["task_module"] == "tuneladder.tasks.digits"
    assert saved["key"].endswith(":" + saved["code"]["fingerprint"])
    assert {"tuneladder.training.runner", "tuneladder.tasks.digits"} <= set(
        saved["code"]["modules"]
    )
    assert saved["config"]["model"] == MLP
    rows = history(tmp_path / "history.csv")
    assert list(rows[0]) == list(HISTORY_COLUMNS) and len(rows) == 3
    assert all(float(r["grad_norm"]) > 0 and float(r["weight_norm"]) > 0 for r in rows)
    assert TrialConfig.from_json(read_json(tmp_path / "config.json")) == config()
    # the curve's summary is the one its history.csv gives, read back as the report reads it
    losses = [[float(r[k]) for r in rows] for k in ("train_loss", "val_loss")]
    assert saved["curve"] == curve_summary(*losses) and saved["curve"]["judged"]


def test_same_config_and_seed_give_identical_history(digits, digits_task) -> None:
    timing = {"epoch_seconds", "peak_memory_mb"}

    def run(seed: int):
        outcome = train(
            TrainingRun(
                config=config(seed=seed, model={**MLP, "dropout": 0.3}),
                data=digits,
                task=digits_task,
                metric="accuracy",
                mode="max",
                device=CPU,
            )
        )
        return [{k: v for k, v in row.items() if k not in timing} for row in outcome.history]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw", "radam"])
def test_every_optimizer_trains(digits, digits_task, optimizer: str) -> None:
    lr = {"sgd": 0.3, "momentum": 0.05, "radam": 1e-2}.get(optimizer, 3e-3)
    cfg = config(optimizer=optimizer, lr=lr, nesterov=optimizer == "momentum", batch_size=32)
    outcome = train(
        TrainingRun(
            config=cfg, data=digits, task=digits_task, metric="accuracy", mode="max", device=CPU
        )
    )
    assert outcome.status == "ok"
    assert outcome.history[-1]["train_loss"] < outcome.history[0]["train_loss"]
    assert outcome.best_val_metric > 0.5


# The LR recorded for each epoch is the one its first step used: base LR x the
# schedule's multiplier after 0, 2, ..., 10 optimizer steps (20 samples in batches of
# 10, 6 epochs: 12 steps in all; step_epochs=2 is every 4 steps, warmup_epochs=2 is 4
# steps). Multipliers worked out by hand from each schedule's definition.
SCHEDULE_MULTIPLIERS = {
    "constant": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    # gamma (0.5) to the number of completed 4-step periods
    "step": [1.0, 1.0, 0.5, 0.5, 0.25, 0.25],
    # gamma to the number of epochs (2 steps each)
    "exponential": [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125],
    # (1 + cos(pi * s / 12)) / 2
    "cosine": [1.0, 0.933013, 0.75, 0.5, 0.25, 0.0669873],
    # cosine from 1/25 up to 1 over the first 3 steps (30% of 12), then down to 1/25e4
    "onecycle": [0.04, 0.76, 0.969846, 0.750001, 0.413177, 0.116982],
    # linear warm-up (s + 1) / 4 over 4 steps, then cosine over the remaining 8
    "warmup_cosine": [0.25, 0.75, 1.0, 0.853553, 0.5, 0.146447],
}


@pytest.mark.parametrize("schedule", sorted(SCHEDULE_MULTIPLIERS))
def test_schedules_shape_the_recorded_lr(digits, digits_task, schedule: str) -> None:
    small = TrainVal(digits.train.subset(20), digits.val, digits.info, digits.fingerprint)
    outcome = train(
        TrainingRun(
            config=config(
                schedule=schedule, epochs=6, batch_size=10, step_epochs=2, warmup_epochs=2
            ),
            data=small,
            task=digits_task,
            metric="accuracy",
            mode="max",
            device=CPU,
        )
    )
    lrs = [row["lr"] for row in outcome.history]
    expected = [3e-3 * m for m in SCHEDULE_MULTIPLIERS[schedule]]
    assert lrs == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_a_precision_that_does_not_exist_is_refused(digits, digits_task) -> None:
    with pytest.raises(
        ValueError, match="precision must be one of fp32, tf32, bf16, fp16, got 'fp8'"
    ):
        accuracy_run(config(), digits, digits_task, precision="fp8")


def test_nan_loss_is_diverged_not_an_exception(digits, digits_task) -> None:
    outcome = train(
        TrainingRun(
            config=config(lr=1e6, optimizer="sgd", epochs=5),
            data=digits,
            task=digits_task,
            metric="accuracy",
            mode="max",
            device=CPU,
        )
    )
    assert outcome.status == "diverged"
    assert "first loss" in outcome.reason or "nan" in outcome.reason.lower()
    assert len(outcome.history) < 5


def test_exception_in_training_is_failed_with_the_error(tmp_path, digits, digits_task) -> None:
    def broken(hp, info):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    task = dataclasses.replace(digits_task, build_model=broken)
    result = run_trial(
        TrainingRun(
            config=config(), data=digits, task=task, metric="accuracy", mode="max", device=CPU
        ),
        tmp_path,
    )
    assert result["status"] == "failed"
    assert "out of memory" in result["reason"]
    assert read_json(tmp_path / "result.json")["status"] == "failed"


def test_a_gpu_a_failed_trial_breaks_for_good_ends_the_process(
    tmp_path, digits, digits_task, monkeypatch
) -> None:
    """After a device-side assert every CUDA call of the process fails: the trial's
    result is written, then the process stops, rather than fail each trial after it.
    CUDA is stood in for: this machine has none."""
    from tuneladder.training import runner

    calls = []

    def lost(device):
        calls.append(device)
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(torch.cuda, "synchronize", lost)
    cuda = torch.device("cuda")
    assert runner._give_back_memory(cuda, collect=True) == (
        "RuntimeError: CUDA error: device-side assert triggered"
    )
    assert runner._give_back_memory(CPU, collect=True) is None and calls == [cuda]

    def broken(hp, info):
        raise RuntimeError("CUDA error: device-side assert triggered")

    # the trial runs on the CPU; the device it leaves behind is read as the broken GPU
    give_back = runner._give_back_memory
    monkeypatch.setattr(
        runner, "_give_back_memory", lambda device, collect: give_back(cuda, collect=collect)
    )
    task = dataclasses.replace(digits_task, build_model=broken)
    run = TrainingRun(
        config=config(), data=digits, task=task, metric="accuracy", mode="max", device=CPU
    )
    with pytest.raises(runner.DeviceLost, match="left the GPU unusable to this process"):
        run_trial(run, tmp_path)
    assert read_json(tmp_path / "result.json")["status"] == "failed"


def test_early_stopping_on_the_val_metric(digits, digits_task) -> None:
    # an LR of zero learns nothing: the val metric never improves after epoch 0
    outcome = train(
        TrainingRun(
            config=config(lr=1e-12, epochs=20, patience=2),
            data=digits,
            task=digits_task,
            metric="loss",
            mode="min",
            device=CPU,
        )
    )
    # epoch 0 is the best; epochs 1 and 2 do not improve on it: patience 2 runs out there
    assert outcome.stopped_early and outcome.best_epoch == 0
    assert [row["epoch"] for row in outcome.history] == [0, 1, 2]


def test_gradient_clipping_bounds_the_update(digits, digits_task) -> None:
    # plain SGD moves the weights by lr * |clipped grad| <= lr * clip per step
    cfg = config(grad_clip=1e-3, optimizer="sgd", lr=0.5, weight_decay=0.0)
    torch.manual_seed(cfg.seed)
    start = torch.linalg.vector_norm(
        torch.stack(
            [
                p.detach().norm()
                for p in digits_task.build_model(cfg.model, digits.info).parameters()
            ]
        )
    )
    steps = cfg.epochs * -(-len(digits.train) // cfg.batch_size)
    bound = steps * cfg.lr * cfg.grad_clip
    clipped = train(
        TrainingRun(
            config=cfg, data=digits, task=digits_task, metric="accuracy", mode="max", device=CPU
        )
    )
    free = train(
        TrainingRun(
            config=TrialConfig(**{**cfg.to_json(), "grad_clip": None}),
            data=digits,
            task=digits_task,
            metric="accuracy",
            mode="max",
            device=CPU,
        )
    )
    assert abs(clipped.history[-1]["weight_norm"] - float(start)) <= bound + 1e-6
    assert abs(free.history[-1]["weight_norm"] - float(start)) > bound
    assert clipped.history[0]["grad_norm"] > cfg.grad_clip  # recorded before clipping


def test_resume_from_checkpoint_continues_the_same_history(tmp_path, digits, digits_task, caplog):
    cfg = config(epochs=6, model={**MLP, "dropout": 0.3})
    full = train(accuracy_run(cfg, digits, digits_task))

    key = trial_key(cfg, digits.fingerprint, "accuracy")
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", key, every_s=0)
    stop_after = 3

    def interrupt(row):
        if row["epoch"] == stop_after - 1:
            raise KeyboardInterrupt  # like a kill between epochs

    with pytest.raises(KeyboardInterrupt):
        train(
            accuracy_run(cfg, digits, digits_task),
            checkpoint=checkpoint,
            on_epoch=interrupt,
        )
    # the checkpoint is written after the callback, so the last one is from epoch 1
    with caplog.at_level("INFO", logger="tuneladder"):
        resumed = train(accuracy_run(cfg, digits, digits_task), checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 2
    assert "resumed from its checkpoint after epoch 2" in caplog.text  # the log says where
    assert numbers(resumed) == numbers(full)


def test_a_stop_asked_saves_the_epoch_it_stopped_at(tmp_path, digits, digits_task) -> None:
    """A stop asked of the ladder (tuneladder stop) is looked at after each epoch: the
    checkpoint then holds that epoch, whatever checkpoint_every_s says, and the trial
    goes on from it to the same numbers."""
    from tuneladder.core.errors import StopRequested

    cfg = config(epochs=5, model={**MLP, "dropout": 0.3})
    full = train(accuracy_run(cfg, digits, digits_task))
    key = trial_key(cfg, digits.fingerprint, "accuracy")
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", key, every_s=3600)  # never due
    epochs_seen = []

    def stop_after_three() -> bool:  # asked before the first epoch, then after each
        epochs_seen.append(len(epochs_seen))
        return len(epochs_seen) == 4

    with pytest.raises(StopRequested, match="stopped after epoch 2"):
        train(accuracy_run(cfg, digits, digits_task), checkpoint=checkpoint,
              stop_asked=stop_after_three)  # fmt: skip
    resumed = train(accuracy_run(cfg, digits, digits_task), checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 3
    assert numbers(resumed) == numbers(full)


def test_a_checkpoint_from_a_gpu_resumes_on_the_cpu(
    tmp_path, digits, digits_task, caplog, monkeypatch
):
    """A trial killed on a GPU node and rerun on a CPU one: weights, optimizer and history
    go on; the batch order's generator (a CUDA one saves 16 bytes of seed and offset) is
    seeded afresh, and the resumed run repeats."""
    from tuneladder.training import runner

    cfg = config(epochs=4, model={**MLP, "dropout": 0.3})
    key = trial_key(cfg, digits.fingerprint, "accuracy")
    run = TrainingRun(
        config=cfg, data=digits, task=digits_task, metric="accuracy", mode="max", device=CPU
    )

    def stop(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run, checkpoint=Checkpoint(tmp_path / "cpu.pt", key, every_s=0), on_epoch=stop)
    state = torch.load(tmp_path / "cpu.pt", weights_only=True)
    # as saved on CUDA: a Philox state, the CUDA generator's own, fused optimizer kernels
    optimizer = state["optimizer"]
    groups = [{**g, "fused": True} for g in optimizer["param_groups"]]
    gpu_state = {
        **state,
        "shuffle": torch.zeros(16, dtype=torch.uint8),
        "cuda_rng": None,
        "optimizer": {**optimizer, "param_groups": groups},
    }
    built = []
    real_setup = runner.setup

    def setup(*args, **kwargs):  # the optimizer as this device builds it, for the check
        model, optimizer = real_setup(*args, **kwargs)
        built.append(optimizer)
        return model, optimizer

    monkeypatch.setattr(runner, "setup", setup)
    resumed = []
    for name in ("a", "b"):
        Checkpoint(tmp_path / f"{name}.pt", key, 0).save(gpu_state)
        with caplog.at_level("WARNING", logger="tuneladder"):
            outcome = train(run, checkpoint=Checkpoint(tmp_path / f"{name}.pt", key, every_s=0))
        assert outcome.status == "ok", outcome.reason
        assert outcome.resumed_from_epoch == 2 and len(outcome.history) == 4
        assert [g["fused"] for g in built[-1].param_groups] == [None] * len(groups)
        resumed.append([{k: r[k] for k in ("train_loss", "val_loss")} for r in outcome.history])
    assert resumed[0] == resumed[1]
    assert "made on another kind of device than cpu" in caplog.text


def test_checkpoint_of_another_config_is_ignored(tmp_path, digits, digits_task) -> None:
    cfg = config(epochs=2)
    Checkpoint(tmp_path / "c.pt", "other-key", 0).save({"history": []})
    outcome = train(
        TrainingRun(
            config=cfg, data=digits, task=digits_task, metric="accuracy", mode="max", device=CPU
        ),
        checkpoint=Checkpoint(tmp_path / "c.pt", "mine", 0),
    )
    assert outcome.resumed_from_epoch is None and len(outcome.history) == 2


def test_result_files_honour_the_umask(tmp_path: Path) -> None:
    import os

    from tuneladder.store.io import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_an_epoch_returns_its_numbers_by_name(digits, digits_task) -> None:
    cfg = config(epochs=1, batch_size=100, grad_clip=10.0)
    batches = Batches.plan(len(digits.train), cfg)
    state = TrainState.start(cfg, digits.info, digits_task.build_model, CPU, batches, Outcome())
    epoch = run_epoch(
        state, digits, batches, amp=NO_AMP, scorer=accuracy_scorer(digits), clip=cfg.grad_clip
    )
    assert set(epoch.train) == set(epoch.val) == {"loss", "accuracy"}
    assert 0 < epoch.val["accuracy"] <= 1 and epoch.train["loss"] < epoch.first_loss
    assert epoch.first_loss == pytest.approx(math.log(10), rel=0.1)  # untrained: ln(classes)
    assert epoch.grad_norm > 0 and epoch.weight_norm > 0 and epoch.seconds > 0
    assert batches.norm_steps == batches.steps  # clipping measures every step
    assert Batches.plan(len(digits.train), config(batch_size=100)).norm_steps == NORM_SAMPLES
    row = epoch.row(0, "accuracy", lr=state.lr, peak_memory_mb=1.0)
    assert tuple(row) == HISTORY_COLUMNS and row["val_metric"] == epoch.val["accuracy"]


def test_train_state_round_trips_through_its_state_dict(tmp_path, digits, digits_task):
    cfg = config(epochs=4, schedule="cosine", model={**MLP, "dropout": 0.3})
    batches = Batches.plan(len(digits.train), cfg)

    def start() -> TrainState:
        return TrainState.start(cfg, digits.info, digits_task.build_model, CPU, batches, Outcome())

    def epoch(state: TrainState) -> dict:
        numbers = run_epoch(
            state, digits, batches, amp=NO_AMP, scorer=accuracy_scorer(digits), clip=None
        )
        row = numbers.row(state.epoch, "accuracy", lr=state.lr, peak_memory_mb=0.0)
        row["epoch_seconds"] = 0.0
        state.outcome.history.append(row)
        if state.outcome.first_loss is None:
            state.outcome.first_loss = numbers.first_loss
        state.track_best(row, mode="max", keep_weights=True)
        return row

    first = start()
    epoch(first)
    torch.save(first.state_dict(), tmp_path / "state.pt")  # through the file, as checkpoints do
    going_on = epoch(first)  # the global RNG (dropout) is part of the state: one at a time
    second = start()
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert second.epoch == 1 and second.outcome.history == first.outcome.history[:1]
    assert second.outcome.best_epoch == 0 and second.epochs_since_best == 0
    assert second.outcome.first_loss == first.outcome.first_loss
    assert epoch(second) == going_on  # same weights, optimizer, schedule and RNGs
    assert second.lr == first.lr and second.outcome.history == first.outcome.history
    weights = zip(second.weights().values(), first.weights().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)


def test_a_grown_training_cut_at_an_epochs_end_leaves_no_result(tmp_path, digits, digits_task):
    """A growing async sweep cuts its grown trainings once the planned ones are done: the
    worker's per-epoch callback raises SweepSettled, which training's error handling (it
    turns errors into a failed trial) must let through, with no result written."""
    from tuneladder.execution.worker import SweepSettled, _progress
    from tuneladder.store.claims import ClaimBook

    asked: list[float] = []
    claims = ClaimBook(tmp_path / "claims", stale_s=60)
    claims.try_claim("7")

    def settled(seconds_left: float) -> bool:
        asked.append(seconds_left)
        return True

    run = TrainingRun(
        config=config(epochs=3),
        data=digits,
        task=digits_task,
        metric="accuracy",
        mode="max",
        device=CPU,
    )
    with pytest.raises(SweepSettled):
        run_trial(run, tmp_path / "7", on_epoch=_progress(claims, "fine", "7", 3, settled))
    # asked once, after the first epoch, with the two epochs left at its pace
    assert len(asked) == 1 and asked[0] > 0
    assert not (tmp_path / "7" / "result.json").exists()
    # the last epoch's end is not asked: the training is as good as finished
    asked.clear()
    result = run_trial(
        dataclasses.replace(run, config=config(epochs=1)),
        tmp_path / "8",
        on_epoch=_progress(claims, "fine", "8", 1, settled),
    )
    assert result["status"] == "ok" and asked == []


def play_fp16_on_cpu(monkeypatch, init_scale: float) -> list[torch.amp.GradScaler]:
    """fp16 on CUDA, played by the CPU's fp16 autocast and loss scaler; the scalers the
    trials make, in order."""
    from tuneladder.training import runner

    scalers: list[torch.amp.GradScaler] = []

    def cpu_scaler(device, precision):
        scalers.append(torch.amp.GradScaler("cpu", init_scale=init_scale))
        return scalers[-1]

    monkeypatch.setattr(
        runner, "autocast", lambda device, precision: torch.autocast("cpu", dtype=torch.float16)
    )
    monkeypatch.setattr(runner, "grad_scaler", cpu_scaler)
    return scalers


@needs_cpu_fp16
def test_an_fp16_trial_skips_overflowed_steps_and_resumes_with_its_loss_scale(
    tmp_path, digits, digits_task, monkeypatch
):
    """The scaler starts high enough that the first steps overflow and are skipped, as
    AMP's first steps often are (the schedule's first step then comes before any update,
    which torch warns of: not here). The epochs' gradient norms leave those steps out,
    the trial still learns, and a run killed halfway resumes with the scale it had, so
    its history is the unbroken one's (with the scale reset, other steps are skipped)."""
    scalers = play_fp16_on_cpu(monkeypatch, init_scale=2.0**24)
    cfg = config(epochs=6, lr=3e-3, schedule="cosine")
    run = accuracy_run(cfg, digits, digits_task, precision="fp16")
    full = train(run)
    assert full.status == "ok", full.reason
    assert scalers[0].get_scale() < 2.0**24  # steps overflowed, the scale came down
    assert all(math.isfinite(row["grad_norm"]) for row in full.history)
    assert full.history[-1]["val_metric"] > 0.5  # it learnt (chance is 0.1)

    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", run.inputs().key, every_s=0)

    def interrupt(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run, checkpoint=checkpoint, on_epoch=interrupt)
    assert torch.load(checkpoint.path, weights_only=True)["scaler"]["scale"] < 2.0**24
    resumed = train(run, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 2
    assert numbers(resumed) == numbers(full)
    assert scalers[-1].get_scale() == scalers[0].get_scale()


class OverflowingLoss(torch.nn.Module):
    """Cross-entropy a billion times over: its gradients overflow float16 at any scale."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1e9 * torch.nn.functional.cross_entropy(output, target)


@needs_cpu_fp16
def test_an_fp16_trial_whose_gradients_overflow_unscaled_is_diverged(
    digits, digits_task, monkeypatch
):
    """Every update is skipped and the loss stays where it was, finite: without a look at
    the scale the trial would train to its end as ok, having learnt nothing."""
    scalers = play_fp16_on_cpu(monkeypatch, init_scale=2.0**16)
    task = dataclasses.replace(digits_task, loss=lambda info: OverflowingLoss())
    outcome = train(accuracy_run(config(epochs=6), digits, task, precision="fp16"))
    assert outcome.status == "diverged"
    assert outcome.reason.startswith("fp16 loss scale fell to")
    assert "float16 even unscaled" in outcome.reason
    assert scalers[0].get_scale() < 1.0 and len(outcome.history) < 6
    # the same config in fp32 trains on: the loss is large, not broken
    assert train(accuracy_run(config(epochs=1), digits, task)).status == "ok"


class ShiftedLoss(torch.nn.Module):
    """Cross-entropy less 10: a loss below zero from the start (as a negative
    log-likelihood's can be), with cross-entropy's gradients."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, target) - 10.0


def test_a_loss_below_zero_that_falls_is_not_diverged(digits, digits_task) -> None:
    task = dataclasses.replace(digits_task, loss=lambda info: ShiftedLoss())
    outcome = train(accuracy_run(config(epochs=2), digits, task))
    assert outcome.status == "ok", outcome.reason
    assert outcome.history[-1]["train_loss"] < outcome.first_loss < 0


def test_a_nan_metric_is_the_best_only_until_a_finite_one(digits, digits_task) -> None:
    cfg = config(epochs=4)
    batches = Batches.plan(len(digits.train), cfg)
    state = TrainState.start(cfg, digits.info, digits_task.build_model, CPU, batches, Outcome())
    for epoch, value in enumerate([math.nan, 0.5, 0.9, 0.4]):
        state.track_best(
            {"epoch": epoch, "val_metric": value, "val_loss": 1.0}, mode="max", keep_weights=False
        )
    assert (state.outcome.best_epoch, state.outcome.best_val_metric) == (2, 0.9)
    assert state.epochs_since_best == 1
