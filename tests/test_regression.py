"""Regression on a raw target in the hundreds: standardised for training, reported in its units."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_test, load_train_val, prepare, split_indices
from tuneladder.sanity.overfit import OverfitSettings, failure_message, overfit_check
from tuneladder.store.io import read_json
from tuneladder.tasks import DataInfo, Task, load_task
from tuneladder.training.metrics import Scorer
from tuneladder.training.runner import TrainingRun, evaluate_metrics, run_trial

CPU = torch.device("cpu")
ROWS = 400


def target_in_the_hundreds(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """y = 200 + 80 sin(x1) + 30 x2 + noise: from about 45 to 350, std about 63."""
    rng = np.random.default_rng(seed)
    x = np.stack([rng.uniform(-3, 3, ROWS), rng.normal(0, 1, ROWS)], axis=1)
    y = 200 + 80 * np.sin(x[:, 0]) + 30 * x[:, 1] + 5 * rng.standard_normal(ROWS)
    return x, y


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = target_in_the_hundreds()
    path = tmp_path_factory.mktemp("regression") / "table.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "y"])
        writer.writerows(
            [f"{a:.6f}", f"{b:.6f}", f"{c:.6f}"] for (a, b), c in zip(x, y, strict=True)
        )
    return path


@pytest.fixture(scope="module")
def task(table: Path) -> Task:
    return load_task("csv", {"path": str(table), "target": "y", "kind": "regression"})


@pytest.fixture(scope="module")
def prepared(task: Task, table: Path) -> Path:
    out = table.parent / "data"
    prepare(task, out, seed=0)
    return out


@pytest.fixture(scope="module")
def raw_y(table: Path) -> np.ndarray:
    with open(table) as handle:
        return np.array([float(row["y"]) for row in csv.DictReader(handle)])


def test_targets_are_saved_standardised_with_train_statistics(prepared, task, raw_y) -> None:
    meta = read_json(prepared / "meta.json")
    train, val, _ = split_indices(np.zeros(ROWS), task.split, seed=0, stratify=False)
    mean, std = raw_y[train].mean(), raw_y[train].std()
    assert meta["info"]["target_scale"]["mean"] == [pytest.approx(mean, rel=1e-5)]
    assert meta["info"]["target_scale"]["std"] == [pytest.approx(std, rel=1e-5)]
    data = load_train_val(prepared)
    assert data.info.target_std == pytest.approx((std,), rel=1e-5)
    assert data.train.y.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert data.train.y.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    expected_val = (raw_y[val] - mean) / std
    assert data.val.y[:, 0].numpy() == pytest.approx(expected_val, abs=1e-4)


def test_overfit_check_passes_whatever_the_targets_units(prepared, task) -> None:
    data = load_train_val(prepared)
    settings = {"subset": 64, "lr": 1e-3, "loss_ratio": 0.05}
    config = TrialConfig(model=task.default_model)
    report = overfit_check(
        config, data, task.build_model, OverfitSettings(max_steps=500, **settings), device=CPU
    )
    # on the raw target the untrained loss was in the tens of thousands; standardised, about 1
    assert report["passed"] and 0.3 < report["initial_loss"] < 3.0
    assert report["final_loss"] < 0.05 * report["initial_loss"]
    scale = read_json(prepared / "meta.json")["info"]["target_scale"]
    assert report["target_scale"] == {**scale, "standardised": True}

    stopped = overfit_check(
        config, data, task.build_model, OverfitSettings(max_steps=1, **settings), device=CPU
    )
    message = failure_message(stopped)
    assert not stopped["passed"] and "is 1 x the untrained loss" in message
    mean, std = scale["mean"][0], scale["std"][0]
    assert f"mean {mean:.4g} and std {std:.4g}" in message and "standardised" in message


def test_training_reports_metrics_in_the_targets_units(tmp_path, prepared, task, raw_y):
    data = load_train_val(prepared)
    std = float(raw_y.std())  # about 63
    config = TrialConfig(model=task.default_model, epochs=20, lr=3e-3, batch_size=32, seed=0)
    result = run_trial(
        TrainingRun(config=config, data=data, task=task, metric="rmse", mode="min", device=CPU),
        tmp_path,
        save_model=True,
    )
    saved = read_json(tmp_path / "result.json")
    assert saved["status"] == "ok" and saved == result
    # the noise has std 5: a trained model is far below the target's std, and far above
    # what an rmse on the standardised target would read (about 0.1)
    assert 2.0 < saved["best_val_metric"] < 0.25 * std
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and float(rows[0]["train_metric"]) > 0.5 * std
    best = rows[saved["best_epoch"]]
    assert float(best["val_metric"]) == pytest.approx(saved["best_val_metric"])
    # the recorded loss is the training objective: MSE on the standardised target
    target_std = data.info.target_std[0]
    for row in rows:
        assert float(row["val_loss"]) * target_std**2 == pytest.approx(
            float(row["val_metric"]) ** 2, rel=1e-3
        )

    # the final rung's evaluation gives the same numbers as training recorded
    model = task.build_model(config.model, data.info)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    val = evaluate_metrics(model, data.val, data.info)
    assert val["rmse"] == pytest.approx(saved["best_val_metric"], rel=1e-5)
    test = evaluate_metrics(model, load_test(prepared), data.info)
    assert 2.0 < test["rmse"] < 0.25 * std and test["mae"] < test["rmse"] and test["r2"] > 0.9

    # predicting the train mean (zero on the standardised scale) scores about the std
    mean_predictor = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(mean_predictor.weight)
    torch.nn.init.zeros_(mean_predictor.bias)
    baseline = evaluate_metrics(mean_predictor, data.val, data.info)
    assert 0.8 * std < baseline["rmse"] < 1.2 * std and abs(baseline["r2"]) < 0.1


def regression_metrics(output, target, std=None) -> dict[str, float]:
    info = DataInfo(
        "regression",
        (1,),
        target.shape[1],
        target_mean=None if std is None else (0.0,) * len(std),
        target_std=std,
    )
    scorer = Scorer.build(info, CPU)
    tally = scorer.tally()
    tally.add(output, target, torch.zeros(()))
    return tally.result()


def test_regression_errors_are_scaled_back_per_output() -> None:
    # standardised errors [[1, 0.5], [-1, 0]] with stds [2, 10] are [[2, 5], [-2, 0]]
    output = torch.tensor([[1.0, 0.5], [-1.0, 0.0]])
    metrics = regression_metrics(output, torch.zeros(2, 2), (2.0, 10.0))
    assert metrics["rmse"] == pytest.approx(math.sqrt((4 + 25 + 4 + 0) / 4))
    assert metrics["mae"] == pytest.approx((2 + 5 + 2 + 0) / 4)
    # r2 of a single output does not depend on the scale: targets with variance 1.125,
    # errors [-0.25, 0.5, -0.5, -0.5] with mean square 0.203125, r2 = 1 - 0.203125 / 1.125
    y = torch.tensor([[0.5], [-1.0], [1.5], [-1.0]])
    p = torch.tensor([[0.25], [-0.5], [1.0], [-1.5]])
    for std, rmse in ((None, 0.450694), ((40.0,), 18.02776)):
        metrics = regression_metrics(p, y, std)
        assert metrics["rmse"] == pytest.approx(rmse, rel=1e-5)
        assert metrics["r2"] == pytest.approx(0.819444, rel=1e-5)


def test_a_task_may_keep_its_raw_target(tmp_path: Path, task) -> None:
    x, y = target_in_the_hundreds(seed=1)
    raw = Task(
        name="raw",
        kind="regression",
        load_arrays=lambda: (x.astype(np.float32), y.astype(np.float32)),
        build_model=task.build_model,
        default_model=task.default_model,
        standardize=True,
        standardize_target=False,
    )
    meta = prepare(raw, tmp_path, seed=0)
    assert meta["info"]["target_scale"] is None
    data = load_train_val(tmp_path)
    assert data.info.target_std is None and data.train.y.mean().item() > 100
    report = overfit_check(
        TrialConfig(model=task.default_model),
        data,
        raw.build_model,
        OverfitSettings(subset=64, max_steps=1, lr=1e-3, loss_ratio=0.05),
        device=CPU,
    )
    assert report["target_scale"]["standardised"] is False
    assert "in the target's own units" in failure_message(report)


def test_r2_holds_for_a_raw_target_far_from_zero() -> None:
    # a target kept in its own units, mean 1e5 and std about 10: its variance is a
    # hundred-millionth of its mean square, which float32 sums lose
    gen = torch.Generator().manual_seed(0)
    y = 1e5 + 10 * torch.randn(50_000, 1, generator=gen)
    p = y + 3 * torch.randn(50_000, 1, generator=gen)
    expected = 1 - ((p - y).double().pow(2).mean() / y.double().var(correction=0)).item()
    assert regression_metrics(p, y, None)["r2"] == pytest.approx(expected, abs=1e-4)


def test_a_target_and_a_feature_far_from_zero_keep_their_spread(tmp_path: Path) -> None:
    # a Unix time and a value on top of it: float32 steps 128 apart at 1.7e9, so cast
    # before they are standardised, 1,200 targets kept 3 distinct values
    gen = np.random.default_rng(0)
    x = gen.normal(size=(1200, 1))
    y = 1.7e9 + 30.0 * x[:, 0]
    features = np.column_stack([x[:, 0], 1.7e9 + 30.0 * x[:, 0]])
    task = Task(name="far", kind="regression", load_arrays=lambda: (features, y),
                build_model=lambda hp, info: torch.nn.Linear(2, 1), default_model={},
                standardize=True)  # fmt: skip
    meta = prepare(task, tmp_path, seed=0)
    data = load_train_val(tmp_path)
    (std,) = meta["info"]["target_scale"]["std"]
    assert std == pytest.approx(30.0, rel=0.1)
    assert len(torch.unique(data.train.y)) == len(data.train.y)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.float32
    # the offset feature is the first one again, once standardised
    assert torch.allclose(data.train.x[:, 1], data.train.x[:, 0], atol=1e-3)
