from __future__ import annotations

import numpy as np
import pytest
import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import Split, TrainVal
from tuneladder.sanity.lr_range import LRRangeSettings, analyse, coarse_range, lr_range_test
from tuneladder.sanity.overfit import OverfitSettings, failure_message, overfit_check
from tuneladder.training.metrics import Scoring

CPU = torch.device("cpu")
MLP = {"arch": "mlp", "width": 64, "num_layers": 1, "channels": 8, "dropout": 0.5}


def test_overfit_check_passes_on_a_working_pipeline(digits, digits_task) -> None:
    report = overfit_check(
        TrialConfig(model=MLP, weight_decay=0.1),
        digits,
        digits_task.build_model,
        OverfitSettings(subset=32, max_steps=400, lr=1e-2, loss_ratio=0.05),
        device=CPU,
    )
    assert report["passed"] and report["criterion"] == "ratio"
    # cross-entropy of an untrained 10-class model is about ln(10) = 2.30
    assert 2.0 < report["initial_loss"] < 2.6
    assert report["loss_threshold"] == pytest.approx(0.05 * report["initial_loss"])
    assert report["final_loss"] < report["loss_threshold"]
    assert report["final_ratio"] == pytest.approx(report["final_loss"] / report["initial_loss"])
    assert report["target_scale"] is None  # classification
    assert report["config"]["model"]["dropout"] == 0.0  # regularisation off
    assert report["config"]["weight_decay"] == 0.0
    assert report["curve"][0]["step"] == 1 and len(report["curve"]) >= 2


def shuffled(data: TrainVal) -> TrainVal:
    """The same inputs with their labels permuted: nothing left to learn but memory."""
    perm = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    return TrainVal(Split(data.train.x, data.train.y[perm]), data.val, data.info, "shuffled")


# Measured on 4 model seeds: true labels get under 0.05 x the untrained loss in 70-90
# steps (and classify all 512 right by step 150); shuffled ones end at 0.5-0.7 x it,
# with 44-60% of the 512 right. A width-16 MLP cannot memorise 512 random labels in
# 200 steps, but learns the real ones.
SMALL = {**MLP, "width": 16}


def check_small(data: TrainVal, build_model, **changes) -> dict:
    settings = {"subset": 512, "max_steps": 200, "lr": 1e-2, "loss_ratio": 0.05, **changes}
    return overfit_check(
        TrialConfig(model=SMALL), data, build_model, OverfitSettings(**settings), device=CPU
    )


def test_overfit_check_passes_on_true_labels_and_fails_on_shuffled_ones(digits, digits_task):
    true = check_small(digits, digits_task.build_model)
    broken = check_small(shuffled(digits), digits_task.build_model)
    assert true["passed"] and true["steps"] < 150
    assert not broken["passed"] and broken["steps"] == 200
    assert broken["final_ratio"] > 0.2 and broken["final_accuracy"] < 0.9
    message = failure_message(broken)
    assert "labels match" in message and "overfit.enforce: false" in message
    ratio = f"is {broken['final_ratio']:.3g} x the untrained loss {broken['initial_loss']:.4g}"
    assert ratio in message and "needs < 0.05 x" in message
    assert "standardised" not in message  # the target scale is for regression only


def test_absolute_threshold_replaces_the_ratio_when_set(digits, digits_task) -> None:
    # 1e-6 is out of reach in 20 steps, and 20 steps cannot classify all 512 right
    report = check_small(digits, digits_task.build_model, max_steps=20, loss_threshold=1e-6)
    assert not report["passed"] and report["criterion"] == "absolute"
    assert report["loss_threshold"] == 1e-6 and report["final_ratio"] < 0.95
    assert "needs < 1e-06, overfit.loss_threshold" in failure_message(report)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1])
def test_loss_ratio_outside_zero_one_is_refused(digits, digits_task, ratio: float) -> None:
    with pytest.raises(ValueError, match="loss_ratio must be in"):
        check_small(digits, digits_task.build_model, loss_ratio=ratio)


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


# a 50-step test (lr_range.steps: 50) of a small image model, as recorded: flat, then a
# descent to 0.116 at step 32 (lr 0.017), then a blow-up
SHORT_TEST = [
    1.086, 1.14, 1.069, 1.114, 1.081, 1.14, 1.112, 1.104, 1.106, 1.081, 1.13, 1.089, 1.109,
    1.126, 1.09, 1.046, 1.076, 1.109, 1.093, 1.103, 1.09, 1.072, 1.019, 0.965, 0.948, 0.861,
    0.724, 0.59, 0.587, 0.372, 0.238, 0.273, 0.116, 0.901, 1.331, 2.113, 6.854, 10.242,
    4.012, 2.433, 1.508, 7.996, 2.201, 1.405, 4.224, 1.022, 19.307, 10.961,
]  # fmt: skip


def test_a_short_test_reads_its_range_off_its_descent() -> None:
    settings = LRRangeSettings(start=1e-7, end=10.0, steps=50, smoothing=0.05, diverge_factor=4)
    lrs = 1e-7 * (10.0 / 1e-7) ** (np.arange(50) / 49)
    # at 0.05 a step the average spanned the descent; the range was [1e-8, 1e-7]
    assert settings.smoothing_used == pytest.approx(0.2)
    found = analyse(lrs[:48], np.array(SHORT_TEST), smoothing=settings.smoothing_used,
                    diverge_factor=4.0)  # fmt: skip
    low, high = found["range"]
    assert 1e-5 < low and 1e-3 < high <= 0.02 and 1e-3 < found["min_loss_lr"] < 0.02
    # the setting is for 200 steps: the default test is read as before
    assert LRRangeSettings(start=1e-7, end=10.0, steps=200, smoothing=0.05,
                           diverge_factor=4).smoothing_used == 0.05  # fmt: skip


def test_range_rule_is_at_least_a_decade() -> None:
    assert coarse_range(1e-3, 1e-1) == (1e-4, 1e-2)
    low, high = coarse_range(1e-3, 2e-3)
    assert high == 2e-3 and high / low >= 10 - 1e-9


def test_range_test_on_digits_stops_at_divergence(digits, digits_task) -> None:
    result = lr_range_test(
        TrialConfig(model=MLP),
        digits,
        digits_task.build_model,
        LRRangeSettings(start=1e-6, end=100.0, steps=120, smoothing=0.05, diverge_factor=4.0),
        device=CPU,
    )
    assert result["steps_run"] < 120  # adamw at lr 100 diverges
    assert 1e-5 < result["suggestion"] < 1.0
    assert result["range"][0] < result["suggestion"] < result["range"][1] * 1.0001


def test_a_label_smoothed_loss_passes_on_accuracy_and_says_so(digits, digits_task) -> None:
    """Label smoothing keeps the loss far above 5% of its start: every sample right is
    what passes, and the report says so rather than 'passed' beside a loss 5x over."""
    smoothed = Scoring(loss=lambda info: torch.nn.CrossEntropyLoss(label_smoothing=0.1))
    report = overfit_check(
        TrialConfig(model=MLP),
        digits,
        digits_task.build_model,
        OverfitSettings(subset=32, max_steps=200, lr=1e-2, loss_ratio=0.05),
        device=CPU,
        scoring=smoothed,
    )
    assert report["passed"] and report["passed_by"] == "accuracy"
    assert report["final_loss"] > report["loss_threshold"] and report["final_accuracy"] == 1.0
