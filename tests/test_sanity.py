from __future__ import annotations

import numpy as np
import pytest
import torch

from tuneladder.data import Split, TrainVal
from tuneladder.hparams import TrialConfig
from tuneladder.lr_range import analyse, coarse_range, lr_range_test
from tuneladder.overfit import failure_message, overfit_check

CPU = torch.device("cpu")
MLP = {"arch": "mlp", "width": 64, "num_layers": 1, "channels": 8, "dropout": 0.5}


def test_overfit_check_passes_on_a_working_pipeline(digits, digits_task) -> None:
    report = overfit_check(
        TrialConfig(model=MLP, weight_decay=0.1),
        digits,
        digits_task.build_model,
        subset=32,
        max_steps=400,
        lr=1e-2,
        loss_threshold=0.05,
        device=CPU,
    )
    assert report["passed"] and report["final_loss"] < 0.05
    assert report["config"]["model"]["dropout"] == 0.0  # regularisation off
    assert report["config"]["weight_decay"] == 0.0
    assert report["curve"][0]["step"] == 1 and len(report["curve"]) >= 2


def test_overfit_check_fails_on_shuffled_labels_and_says_what_to_check(digits, digits_task):
    # labels that do not belong to their inputs cannot be learned by a tiny model quickly
    g = torch.Generator().manual_seed(0)
    noise = Split(torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g))
    broken = TrainVal(noise, digits.val, digits.info, "x")
    report = overfit_check(
        TrialConfig(model={**MLP, "width": 4}),
        broken,
        digits_task.build_model,
        subset=64,
        max_steps=30,
        lr=1e-3,
        loss_threshold=0.05,
        device=CPU,
    )
    assert not report["passed"]
    message = failure_message(report)
    assert "labels match" in message and "overfit.enforce: false" in message


def synthetic_curve(noise: float = 0.0, seed: int = 0):
    """A loss that falls fastest near 1e-3, bottoms out at 1e-2 and explodes after."""
    lrs = np.logspace(-6, 0, 200)
    x = np.log10(lrs)
    loss = 2.0 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -2, (x + 2) ** 2 * 8, 0)
    rng = np.random.default_rng(seed)
    return lrs, loss + noise * rng.standard_normal(len(lrs)) * (x < -5)


def test_suggestion_is_the_steepest_descent() -> None:
    lrs, loss = synthetic_curve()
    result = analyse(lrs, loss, smoothing=0.3, diverge_factor=4.0)
    assert 3e-4 < result["suggestion"] < 3e-3
    assert 3e-3 < result["min_loss_lr"] < 3e-2
    assert result["divergence_lr"] is not None and result["divergence_lr"] > result["min_loss_lr"]
    low, high = result["range"]
    assert low < result["suggestion"] < high <= result["min_loss_lr"]


@pytest.mark.parametrize("seed", range(5))
def test_noisy_early_steps_do_not_move_the_suggestion(seed: int) -> None:
    lrs, loss = synthetic_curve(noise=0.5, seed=seed)
    result = analyse(lrs, loss, smoothing=0.05, diverge_factor=4.0)
    assert 3e-4 < result["suggestion"] < 3e-3


def test_range_rule_is_at_least_a_decade() -> None:
    assert coarse_range(1e-3, 1e-1) == (1e-4, 1e-2)
    low, high = coarse_range(1e-3, 2e-3)
    assert high == 2e-3 and high / low >= 10 - 1e-9


def test_range_test_on_digits_stops_at_divergence(digits, digits_task) -> None:
    result = lr_range_test(
        TrialConfig(model=MLP),
        digits,
        digits_task.build_model,
        start=1e-6,
        end=100.0,
        steps=120,
        smoothing=0.05,
        diverge_factor=4.0,
        device=CPU,
    )
    assert result["steps_run"] < 120  # adamw at lr 100 diverges
    assert 1e-5 < result["suggestion"] < 1.0
    assert result["range"][0] < result["suggestion"] < result["range"][1] * 1.0001
