"""The final rung on hand-made seed trials: what its summary says and shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_info, load_test, load_train_val, prepare, split_indices
from tuneladder.stages.final import Evaluator, finalize, trivial_predictor
from tuneladder.store.io import read_json, write_json
from tuneladder.tasks import Task, load_task
from tuneladder.training.runner import evaluate_metrics

# finalist 0 came from coarse #8, finalist 1 from fine #2 (the seeds plan's order)
FINALISTS = [
    {"rung": "coarse", "name": "8", "best_val_metric": 0.97, "params": {}},
    {"rung": "fine", "name": "2", "best_val_metric": 0.96, "params": {}},
]
CONFIGS = {
    # an MLP with a step schedule and plain SGD
    "0": {"optimizer": "sgd", "schedule": "step", "model": {"arch": "mlp"}},
    # a CNN with momentum and a warm-up
    "1": {"optimizer": "momentum", "schedule": "warmup_cosine", "model": {"arch": "cnn"}},
    "default": {"optimizer": "adamw", "schedule": "constant", "model": {"arch": "mlp"}},
}
VALUES = {  # val accuracy and val loss per seed: finalists 0 and 1 tie on every seed
    "0": ([1.0, 1.0, 1.0], [0.05, 0.04, 0.06]),
    "1": ([1.0, 1.0, 1.0], [0.02, 0.01, 0.03]),
    "default": ([0.93, 0.99, 0.97], [0.2, 0.1, 0.15]),
}


def seed_trials(rung_dir: Path) -> list[dict]:
    """Seed-rerun rows as the seeds rung collects them, with a model and config per trial."""
    digits = load_task("digits")
    info = None
    rows = []
    for group, config in CONFIGS.items():
        model_params = {**digits.default_model, "width": 16, "channels": 4, **config["model"]}
        for seed, (value, loss) in enumerate(zip(*VALUES[group], strict=True)):
            trial = TrialConfig(
                epochs=2,
                seed=seed,
                optimizer=config["optimizer"],
                schedule=config["schedule"],
                model=model_params,
            )
            trial_dir = rung_dir / f"{group}-{seed}"
            trial_dir.mkdir(parents=True)
            write_json(trial_dir / "config.json", trial.to_json())
            torch.manual_seed(seed)
            info = info or load_info(rung_dir.parent / "data")
            torch.save(digits.build_model(model_params, info).state_dict(), trial_dir / "model.pt")
            rows.append(
                {
                    "rung": "seeds",
                    "name": f"{group}-{seed}",
                    "dir": str(trial_dir),
                    "group": group,
                    "status": "ok",
                    "best_val_metric": value,
                    "best_val_loss": loss,
                    "params": trial.flat(),
                }
            )
    return rows


@pytest.fixture()
def summary(digits_dir: Path, tmp_path: Path) -> dict:
    (tmp_path / "data").symlink_to(digits_dir)  # read-only: prepared once per session
    rows = seed_trials(tmp_path / "seeds")
    write_json(tmp_path / "seeds" / "plan.json", {"finalists": FINALISTS, "trials": []})
    evaluator = Evaluator(
        task=load_task("digits"), data_dir=tmp_path / "data", device=torch.device("cpu")
    )
    return finalize(
        rows,
        tmp_path / "final",
        evaluator=evaluator,
        metric="accuracy",
        mode="max",
        experiment="hand-made",
    )


def test_a_tie_on_every_seed_goes_to_the_lower_val_loss_and_is_reported(
    summary: dict, tmp_path: Path
) -> None:
    assert summary["best_group"] == "1"  # not finalist 0: the same accuracy, a lower loss
    tie = summary["tie"]
    assert tie["identical"] and tie["decided_by"] == "val_loss" and tie["groups"] == ["1", "0"]
    assert "all 2 finalists tie on val accuracy over 3 seeds" in tie["sentence"].lower()
    assert "fine #2 (finalist 1), the one with the best mean val loss" in tie["sentence"]
    markdown = (tmp_path / "final" / "summary.md").read_text()
    assert f"Tie: {tie['sentence']}" in markdown


def test_a_finalist_better_on_the_seeds_that_finished_is_passed_over_and_named(
    digits_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "data").symlink_to(digits_dir)
    rows = seed_trials(tmp_path / "seeds")
    for row in rows:
        if row["name"] == "0-2":  # finalist 0 diverged on its third seed
            row.update(status="diverged", best_val_metric=None, best_val_loss=None)
        elif row["group"] == "1":
            row["best_val_metric"] = 0.99
    write_json(tmp_path / "seeds" / "plan.json", {"finalists": FINALISTS, "trials": []})
    evaluator = Evaluator(
        task=load_task("digits"), data_dir=tmp_path / "data", device=torch.device("cpu")
    )
    summary = finalize(
        rows, tmp_path / "final", evaluator=evaluator, metric="accuracy", mode="max",
        experiment="hand-made",
    )  # fmt: skip
    assert summary["best_group"] == "1"
    assert [(p["group"], p["failed_seeds"]) for p in summary["passed_over"]] == [("0", 1)]
    markdown = (tmp_path / "final" / "summary.md").read_text()
    assert "Passed over coarse #8 (finalist 0), val 1" in markdown
    assert "1 of its 3 seeds diverged or failed." in markdown


def test_the_winner_is_named_by_its_sweep_trial(summary: dict, tmp_path: Path) -> None:
    assert summary["best_origin"] == {
        "rung": "fine",
        "name": "2",
        "label": "fine #2",
        "search_value": 0.96,
    }
    assert summary["runner_up"]["origin"]["label"] == "coarse #8"
    assert [f["origin"]["label"] for f in summary["finalists"]] == ["fine #2", "coarse #8"]
    markdown = (tmp_path / "final" / "summary.md").read_text()
    assert "Chosen config: fine #2 (finalist 1), accuracy over 3 seeds:" in markdown
    assert "the runner-up, coarse #8 (finalist 0):" in markdown


def test_only_what_applies_is_listed(summary: dict, tmp_path: Path) -> None:
    chosen = summary["best_config"]  # a CNN trained with momentum and a warm-up
    assert {"momentum", "nesterov", "warmup_epochs", "channels", "width"} <= set(chosen)
    assert {"diverge_factor", "gamma", "step_epochs"}.isdisjoint(chosen)
    assert set(summary["not_applicable"]) == {"diverge_factor", "gamma", "step_epochs"}
    runner_up = summary["runner_up"]["params"]  # an MLP with plain SGD and a step schedule
    assert {"gamma", "step_epochs"} <= set(runner_up)
    assert {"momentum", "nesterov", "warmup_epochs", "channels", "diverge_factor"}.isdisjoint(
        runner_up
    )
    assert "channels" not in summary["baseline"]["params"]
    assert "seed" not in summary["baseline"]["params"]
    # best_config.json stays the full config: it is what reruns the chosen model
    full = read_json(tmp_path / "final" / "best_config.json")
    assert full["diverge_factor"] == 5.0 and full["model"]["channels"] == 4
    markdown = (tmp_path / "final" / "summary.md").read_text()
    assert "- diverge_factor" not in markdown and "- momentum: 0.9" in markdown


def test_intervals_are_clipped_to_the_metric_range(summary: dict, tmp_path: Path) -> None:
    base = summary["baseline"]["val"]  # 0.93, 0.99, 0.97: the t-interval reaches past 1
    assert base["ci95_clipped"] and base["ci95"][1] == 1.0 and base["ci95"][0] < base["mean"]
    assert summary["metric_bounds"] == [0.0, 1.0]
    assert summary["val_ci95"] == [1.0, 1.0] and not summary["val_ci95_clipped"]  # no spread
    for finalist in summary["finalists"]:
        low, high = finalist["val"]["ci95"]
        assert 0.0 <= low <= high <= 1.0


def test_majority_class_baseline_beside_the_tuned_rows(
    summary: dict, digits_dir: Path, tmp_path: Path
) -> None:
    split = {
        name: torch.load(digits_dir / f"{name}.pt", weights_only=True)["y"].numpy()
        for name in ("train", "val", "test")
    }
    majority = int(np.bincount(split["train"]).argmax())
    trivial = summary["trivial"]
    assert trivial["name"] == "majority class"
    assert trivial["predicts"] == f"always class {majority}, the train split's most frequent"
    for name in ("val", "test"):
        assert trivial[name]["accuracy"] == pytest.approx(np.mean(split[name] == majority))
    markdown = (tmp_path / "final" / "summary.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == [
        "| tuned",
        "| untuned default",
        "| trivial: majority class",
    ]
    metrics = read_json(tmp_path / "final" / "summary.json")["trivial"]
    assert metrics == trivial


def regression_task(standardize_target: bool) -> Task:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (500.0 + 40.0 * x[:, :1] + rng.normal(scale=5.0, size=(200, 1))).astype(np.float32)
    return Task(
        name="line",
        kind="regression",
        load_arrays=lambda: (x, y),
        build_model=lambda hp, info: torch.nn.Linear(3, 1),
        standardize_target=standardize_target,
    )


@pytest.mark.parametrize("standardize_target", [True, False])
def test_mean_predictor_scores_in_the_targets_own_units(
    tmp_path: Path, standardize_target: bool
) -> None:
    task = regression_task(standardize_target)
    prepare(task, tmp_path, seed=0)
    data = load_train_val(tmp_path)
    model, name, _ = trivial_predictor(data.train, data.info)
    assert name == "mean predictor"
    # the same split by hand, on the raw targets
    _, y = task.load_arrays()
    train, val, test = split_indices(np.zeros(len(y)), task.split, seed=0, stratify=False)
    mean = y[train].astype(np.float64).mean()
    for idx, split in ((val, data.val), (test, load_test(tmp_path))):
        error = y[idx].astype(np.float64) - mean
        scores = evaluate_metrics(model, split, data.info)
        assert scores["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-4)
        assert scores["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-4)
        # r2 against the split's own mean: 0 up to how far it lies from the train mean
        r2 = 1 - np.mean(error**2) / np.var(y[idx].astype(np.float64))
        assert scores["r2"] == pytest.approx(r2, abs=1e-4) and scores["r2"] <= 1e-6


def test_every_metric_the_task_records_is_measured_on_test(summary: dict, tmp_path: Path) -> None:
    from sklearn import metrics as sk

    from tuneladder.stages.final import write_views

    test = load_test(tmp_path / "data")
    info = load_info(tmp_path / "data")
    digits = load_task("digits")
    scores = []
    for seed in range(3):  # the chosen group's seed models, scored by scikit-learn
        trial_dir = tmp_path / "seeds" / f"1-{seed}"
        config = TrialConfig.from_json(read_json(trial_dir / "config.json"))
        model = digits.build_model(config.model, info)
        model.load_state_dict(torch.load(trial_dir / "model.pt", weights_only=True))
        with torch.no_grad():
            logits = model.eval()(test.x).double()
        y, predicted = test.y.numpy(), logits.argmax(dim=1).numpy()
        probabilities = logits.softmax(dim=1).numpy()
        scores.append(
            {
                "accuracy": sk.accuracy_score(y, predicted),
                "balanced_accuracy": sk.balanced_accuracy_score(y, predicted),
                "macro_f1": sk.f1_score(y, predicted, average="macro", zero_division=0),
                "roc_auc": sk.roc_auc_score(y, probabilities, multi_class="ovr"),
                "loss": sk.log_loss(y, probabilities, labels=list(range(10))),
            }
        )
    measured = summary["test_metrics"]
    assert list(measured) == ["loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc"]
    for name, value in measured.items():
        assert value == pytest.approx(np.mean([s[name] for s in scores]), rel=1e-5), name
    assert measured["accuracy"] == pytest.approx(summary["test_mean"])
    (Path(summary["best_seed_dir"]) / "history.csv").write_text("epoch\n0\n")  # copied along
    write_views(summary, [], tmp_path / "final")
    assert read_json(tmp_path / "final" / "metrics.json")["test_metrics"] == measured
    # strict JSON for DVC: a metric that is NaN (an r2 on a constant target) is null
    write_views({**summary, "val_std": float("nan")}, [], tmp_path / "final")
    text = (tmp_path / "final" / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["val_std"] is None


def test_a_tuned_config_no_better_than_the_trivial_predictor_is_warned_of() -> None:
    from tuneladder.stages.final import no_better_than_trivial

    summary = {
        "metric": "accuracy",
        "mode": "max",
        "test_mean": 0.3333,
        "trivial": {"name": "majority class", "test": {"accuracy": 0.3333}},
    }
    warning = no_better_than_trivial(summary)
    assert warning.startswith("the tuned config scores no better on test than the majority")
    assert "(accuracy 0.3333 against 0.3333)" in warning
    assert no_better_than_trivial({**summary, "test_mean": 0.9}) is None
    # where lower is better, 0.9 is worse than the trivial predictor's 0.3333, and 0.1 better
    lower = {**summary, "mode": "min", "metric": "error", "trivial": {"test": {"error": 0.3333}}}
    assert no_better_than_trivial({**lower, "test_mean": 0.9}) is not None
    assert no_better_than_trivial({**lower, "test_mean": 0.1}) is None


def test_a_chosen_config_the_untuned_default_beats_on_val_is_warned_of() -> None:
    from tuneladder.stages.final import behind_the_default

    summary = {"metric": "rmse", "mode": "min", "val_mean": 195.7,
               "baseline": {"val": {"mean": 171.2}}}  # fmt: skip
    warning = behind_the_default(summary)
    assert warning.startswith("the untuned default scores better on val than the chosen")
    assert "(rmse 171.2 against 195.7 over the same seeds)" in warning
    assert behind_the_default({**summary, "val_mean": 150.0}) is None
    # ahead on val, behind on test: the choice did not carry over (a seed that collapsed)
    baseline = {"val": {"mean": 0.9722}, "test": {"mean": 0.9905, "std": 0.016}}
    summary = {"metric": "accuracy", "mode": "max", "val_mean": 0.9907, "test_mean": 0.9238,
               "test_std": 0.087, "baseline": baseline}  # fmt: skip
    warning = behind_the_default(summary)
    assert warning.startswith("the untuned default scores better on test than the chosen")
    assert "(accuracy 0.9905 ± 0.0160 against 0.9238 ± 0.0870 over the same seeds)" in warning
    assert behind_the_default({**summary, "test_mean": 0.995}) is None


def test_the_summary_warns_of_models_that_learnt_nothing(summary: dict, tmp_path: Path) -> None:
    # the hand-made seed models are untrained: on test they score chance (0.099), under
    # the majority class (0.1)
    (warning,) = summary["warnings"]  # the default scores chance too: no better on val
    assert warning.startswith("the tuned config scores no better on test")
    markdown = (tmp_path / "final" / "summary.md").read_text()
    assert f"**Warning:** {warning}." in markdown
