"""Losses and metrics: the device computations against scikit-learn, a task's own loss and
metrics through a trial, and the checks that refuse what cannot be computed."""

from __future__ import annotations

import csv
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn import metrics as sk

from helpers import REPO, results_of, snakemake
from tuneladder.core.errors import DataError, UserCodeError
from tuneladder.core.hparams import TrialConfig
from tuneladder.core.metric_table import BUILT_IN, Metric, built_in
from tuneladder.data import loader as loader_module
from tuneladder.data.prepared import load_test, load_train_val, prepare
from tuneladder.stages.final import trivial_predictor
from tuneladder.store.io import read_json
from tuneladder.tasks import DataInfo, Task
from tuneladder.training.metrics import Scorer, Scoring, Tally, roc_auc_per_column
from tuneladder.training.preflight import check_model
from tuneladder.training.runner import TrainingRun, evaluate_metrics, run_trial

CPU = torch.device("cpu")
MLP = {"arch": "mlp", "width": 32, "num_layers": 1, "channels": 8, "dropout": 0.0}


def scored(info: DataInfo, outputs, targets, names=None, scoring=None, batch=37) -> dict:
    """Metrics of outputs and targets fed to a tally in batches, as a pass over a split is."""
    scorer = Scorer.build(info, CPU, names, scoring)
    tally = scorer.tally()
    for start in range(0, len(targets), batch):
        out, target = outputs[start : start + batch], targets[start : start + batch]
        tally.add(out, target, scorer.loss(out, target))
    return tally.result()


def test_a_metric_name_means_one_metric_in_every_kind() -> None:
    # the config reads a built-in metric's direction by its name alone
    for metrics in BUILT_IN.values():
        for name, metric in metrics.items():
            assert built_in(name) == metric
    assert built_in("roc_auc").mode == "max" and built_in("loss").mode == "min"


def test_roc_auc_counts_tied_scores_as_half() -> None:
    # scikit-learn's documented example: 0.75
    scores = torch.tensor([[0.1], [0.4], [0.35], [0.8]])
    positive = torch.tensor([[False], [False], [True], [True]])
    assert roc_auc_per_column(scores, positive).tolist() == [0.75]
    # one tie between a positive and a negative: 3 of 4 pairs right and one half, 3.5 / 4
    scores = torch.tensor([[0.1, 1.0], [0.5, 1.0], [0.5, 1.0], [0.9, 1.0]])
    positive = torch.tensor([[False, False], [True, True], [False, False], [True, True]])
    assert roc_auc_per_column(scores, positive).tolist() == [0.875, 0.5]
    # a column without negatives has no area
    assert math.isnan(roc_auc_per_column(scores[:, :1], torch.ones(4, 1, dtype=torch.bool))[0])


@pytest.mark.parametrize(("classes", "whole_matrix"), [(2, True), (5, True), (5, False)])
def test_classification_metrics_match_scikit_learn(classes: int, whole_matrix, monkeypatch):
    if not whole_matrix:  # as for a thousand classes: diagonal and marginals reduced on the device
        monkeypatch.setattr(Tally, "WHOLE_MATRIX", 0)
    rng = np.random.default_rng(classes)
    # imbalanced, a class that is never predicted right, and rounded scores with many ties
    y = rng.choice(
        classes, size=301, p=np.linspace(1, 0.2, classes) / np.linspace(1, 0.2, classes).sum()
    )
    logits = rng.normal(size=(301, classes)) + 1.5 * np.eye(classes)[y] * (y[:, None] != 1)
    logits = np.round(logits, 1).astype(np.float32)
    got = scored(DataInfo("classification", (3,), classes), torch.tensor(logits), torch.tensor(y))
    predicted = logits.argmax(axis=1)
    probabilities = torch.tensor(logits).double().softmax(dim=1).numpy()
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-12)
    balanced = sk.balanced_accuracy_score(y, predicted)
    assert got["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
    assert got["macro_f1"] == pytest.approx(sk.f1_score(y, predicted, average="macro"), abs=1e-12)
    auc = (
        sk.roc_auc_score(y, probabilities[:, 1])
        if classes == 2
        else sk.roc_auc_score(y, probabilities, multi_class="ovr")
    )
    assert got["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert got["loss"] == pytest.approx(sk.log_loss(y, probabilities), rel=1e-5)
    assert 0.5 < got["roc_auc"] < 1  # neither trivial nor perfect: the ranks matter


def test_classes_absent_from_a_split_are_left_out_as_scikit_learn_does() -> None:
    # class 3 is neither in the targets nor predicted; class 2 is predicted but never the target
    y = np.array([0, 0, 1, 1, 1, 0])
    logits = np.full((6, 4), -5.0, dtype=np.float32)
    logits[np.arange(6), [0, 2, 1, 1, 0, 0]] = 5.0
    got = scored(DataInfo("classification", (3,), 4), torch.tensor(logits), torch.tensor(y))
    predicted = logits.argmax(axis=1)
    with warnings.catch_warnings():  # scikit-learn warns of the class never in the targets
        warnings.simplefilter("ignore")
        f1, balanced = (
            sk.f1_score(y, predicted, average="macro"),
            sk.balanced_accuracy_score(y, predicted),
        )
    assert got["macro_f1"] == pytest.approx(f1)
    # recalls 2/3 (class 0) and 2/3 (class 1); classes 2 and 3 have no samples
    assert got["balanced_accuracy"] == pytest.approx(balanced) == pytest.approx(2 / 3)


def test_a_split_evaluated_in_many_folds_scores_as_in_one(digits, digits_task, monkeypatch):
    # evaluation runs under inference mode; sums folded there are updated in place only there
    torch.manual_seed(0)
    model = digits_task.build_model(digits_task.default_model, digits.info)
    whole = evaluate_metrics(model, digits.val, digits.info)
    monkeypatch.setattr(loader_module, "EVAL_BATCH", 40)  # 9 batches: one left over
    monkeypatch.setattr(Tally, "FOLD_BATCHES", 2)
    folded = evaluate_metrics(model, digits.val, digits.info)
    assert folded == pytest.approx(whole, rel=1e-6)
    assert set(folded) == {"loss", *BUILT_IN["classification"]}


def test_multilabel_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((200, 4)) < [0.5, 0.2, 0.05, 0.7]).astype(np.float32)
    logits = (rng.normal(size=(200, 4)) + 2.0 * (y - 0.5)).astype(np.float32)
    got = scored(DataInfo("multilabel", (3,), 4), torch.tensor(logits), torch.tensor(y))
    assert set(got) == {"loss", "macro_f1", "roc_auc"}
    assert got["macro_f1"] == pytest.approx(sk.f1_score(y, logits > 0, average="macro"))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, logits, average="macro"))
    expected = F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(y))
    assert got["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_a_tasks_metric_sees_the_whole_split_in_the_targets_units() -> None:
    # standardised targets and outputs; the metric must see them scaled back: y = 10 z + 100
    info = DataInfo("regression", (2,), 1, target_mean=(100.0,), target_std=(10.0,))
    z = torch.linspace(-2, 2, 90).unsqueeze(1)
    seen = []

    def largest_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        seen.append((len(outputs), float(targets.min()), float(targets.max())))
        return (outputs - targets).abs().max()

    scoring = Scoring(extra={"largest_error": Metric(fn=largest_error, mode="min")})
    got = scored(info, z + 0.03 * z**2, z, ["largest_error", "mae"], scoring, batch=20)
    assert seen == [(90, pytest.approx(80.0), pytest.approx(120.0))]  # once, all 90 samples
    assert got["largest_error"] == pytest.approx(10 * 0.03 * 4, rel=1e-5)
    assert got["mae"] == pytest.approx(10 * 0.03 * float((z**2).mean()), rel=1e-5)


def test_the_trivial_predictor_has_no_ranking(digits) -> None:
    model, _, _ = trivial_predictor(digits.train, digits.info)
    scores = evaluate_metrics(model, digits.val, digits.info)
    assert scores["roc_auc"] == 0.5  # one score for every sample: every pair a tie
    assert scores["balanced_accuracy"] == pytest.approx(1 / 10)


def test_a_trial_selects_on_roc_auc_as_scikit_learn_computes_it(tmp_path, digits, digits_task):
    config = TrialConfig(epochs=3, seed=0, lr=3e-3, batch_size=128, model=MLP)
    result = run_trial(
        TrainingRun(
            config=config, data=digits, task=digits_task, metric="roc_auc", mode="max", device=CPU
        ),
        tmp_path,
        save_model=True,
    )
    assert result["status"] == "ok" and result["metric"] == {"name": "roc_auc", "mode": "max"}
    model = digits_task.build_model(config.model, digits.info)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    with torch.no_grad():
        probabilities = model.eval()(digits.val.x).double().softmax(dim=1).numpy()
    expected = sk.roc_auc_score(digits.val.y.numpy(), probabilities, multi_class="ovr")
    assert result["best_val_metric"] == pytest.approx(expected, abs=1e-9)
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    # the train column is the same metric, over the epoch's training passes
    assert all(0.5 < float(r["train_metric"]) <= 1 for r in rows)


def smoothed_task(digits_task) -> Task:
    def top2_accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.topk(2, dim=1).indices == targets[:, None]).any(dim=1).double().mean()

    return Task(
        name="smoothed",
        kind="classification",
        load_arrays=digits_task.load_arrays,
        build_model=digits_task.build_model,
        default_model=digits_task.default_model,
        loss=lambda info: torch.nn.CrossEntropyLoss(label_smoothing=0.2),
        extra_metrics={"top2": Metric(fn=top2_accuracy, mode="max", bounds=(0.0, 1.0))},
    )


def test_a_trial_trains_on_the_tasks_loss_and_selects_on_its_metric(
    tmp_path, digits, digits_task
) -> None:
    task = smoothed_task(digits_task)
    config = TrialConfig(epochs=3, seed=0, lr=3e-3, batch_size=128, model=MLP)
    result = run_trial(
        TrainingRun(config=config, data=digits, task=task, metric="top2", mode="max", device=CPU),
        tmp_path,
        save_model=True,
    )
    assert result["status"] == "ok"
    model = task.build_model(config.model, digits.info)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    with torch.no_grad():
        outputs = model.eval()(digits.val.x)
    top2 = outputs.topk(2, dim=1).indices.numpy()
    expected = np.mean([y in row for y, row in zip(digits.val.y.numpy(), top2, strict=True)])
    assert result["best_val_metric"] == pytest.approx(expected, abs=1e-12)
    # the recorded loss is the task's: cross-entropy with label smoothing, whose floor is
    # well above zero, and above the plain cross-entropy of the same outputs
    smoothed = F.cross_entropy(outputs, digits.val.y, label_smoothing=0.2).item()
    assert result["best_val_loss"] == pytest.approx(smoothed, rel=1e-5)
    assert smoothed > F.cross_entropy(outputs, digits.val.y).item() + 0.05
    # evaluation records every metric the task records, its own and the loss included
    scores = evaluate_metrics(model, digits.val, digits.info, Scoring.of(task))
    assert set(scores) == set(task.metrics) == {*BUILT_IN["classification"], "top2"}
    assert scores["top2"] == pytest.approx(expected) and scores["loss"] == pytest.approx(smoothed)


def test_a_tasks_metrics_and_loss_are_checked(digits_task) -> None:
    with pytest.raises(ValueError, match="metric 'accuracy' is built in"):
        Task(**_fields(digits_task), extra_metrics={"accuracy": Metric(fn=len, mode="max")})
    with pytest.raises(ValueError, match="letters, digits and _"):
        Task(**_fields(digits_task), extra_metrics={"top-2": Metric(fn=len, mode="max")})
    with pytest.raises(ValueError, match=r"must be a Metric with its fn"):
        Task(**_fields(digits_task), extra_metrics={"top2": Metric(mode="max")})
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got mode='up'"):
        Metric(fn=len, mode="up")
    with pytest.raises(ValueError, match="low < high"):
        Metric(mode="max", bounds=(1.0, 0.0))


def _fields(task: Task) -> dict:
    return {
        "name": task.name,
        "kind": task.kind,
        "load_arrays": task.load_arrays,
        "build_model": task.build_model,
        "default_model": task.default_model,
    }


def per_sample_loss(info: DataInfo) -> torch.nn.Module:
    return torch.nn.CrossEntropyLoss(reduction="none")


def broken_metric(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs[:, 99]


def test_the_model_check_runs_the_tasks_loss_and_metrics(digits, digits_task) -> None:
    hp = dict(digits_task.default_model)
    args = (digits_task.build_model, hp, digits.info, digits.train.x, digits.train.y)
    with pytest.raises(UserCodeError) as caught:
        check_model(*args, scoring=Scoring(loss=per_sample_loss))
    assert "the loss from test_metrics:per_sample_loss" in str(caught.value)
    assert "gives shape (8,)" in str(caught.value) and "reduction='mean'" in str(caught.value)
    bad = Scoring(extra={"broken": Metric(fn=broken_metric, mode="max")})
    with pytest.raises(UserCodeError) as caught:
        check_model(*args, scoring=bad)
    text = str(caught.value)
    assert text.startswith("metric 'broken' (test_metrics:broken_metric)")
    assert "raised IndexError at tests/test_metrics.py:" in text
    assert check_model(*args, scoring=Scoring.of(smoothed_task(digits_task))) == (8, 10)


def multilabel_task(labels) -> Task:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)

    def load():
        return x, labels(x)

    return Task(
        name="tags",
        kind="multilabel",
        load_arrays=load,
        build_model=lambda hp, info: torch.nn.Linear(info.input_shape[0], info.n_outputs),
    )


def test_a_multilabel_task_trains_on_binary_cross_entropy(tmp_path: Path) -> None:
    task = multilabel_task(lambda x: (x[:, :3] > [0.0, 1.0, -0.5]).astype(np.int64))
    prepare(task, tmp_path / "data", seed=0)
    data = load_train_val(tmp_path / "data")
    assert data.info.kind == "multilabel" and data.info.n_outputs == 3
    assert data.train.y.dtype == torch.float32 and data.info.target_std is None
    assert check_model(task.build_model, {}, data.info, data.train.x, data.train.y) == (8, 3)
    config = TrialConfig(epochs=20, seed=0, lr=3e-2, batch_size=64, model={})
    result = run_trial(
        TrainingRun(
            config=config, data=data, task=task, metric="macro_f1", mode="max", device=CPU
        ),
        tmp_path / "trial",
    )
    assert result["status"] == "ok" and result["best_val_metric"] > 0.8  # linear labels
    # the trivial predictor knows each label's frequency and nothing else
    model, name, _ = trivial_predictor(data.train, data.info)
    scores = evaluate_metrics(model, load_test(tmp_path / "data"), data.info)
    assert name == "label frequencies" and scores["roc_auc"] == 0.5
    rate = data.train.y.mean(dim=0).double()
    expected = F.binary_cross_entropy(
        rate.expand(len(load_test(tmp_path / "data")), 3), load_test(tmp_path / "data").y.double()
    )
    assert scores["loss"] == pytest.approx(expected.item(), rel=1e-4)
    meta = read_json(tmp_path / "data" / "meta.json")
    assert meta["info"]["kind"] == "multilabel" and meta["info"]["target_scale"] is None


def test_multilabel_targets_must_be_zero_or_one(tmp_path: Path) -> None:
    task = multilabel_task(lambda x: np.where(x[:, :2] > 0, 1.0, 0.5))
    with pytest.raises(
        DataError, match=r"task 'tags': label column 1 must be 0 or 1, got 0.5 \(sample 0\)"
    ):
        prepare(task, tmp_path, seed=0)


def imbalanced_ladder(workdir: Path) -> None:
    """The ``imbalanced_task`` plugin beside a tiny config that selects on ROC-AUC."""
    workdir.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "imbalanced_task.py", workdir / "imbalanced_task.py")
    config = {
        "experiment": "imbalanced",
        "seed": 0,
        "workers": 1,
        "task": {"name": "imbalanced_task:make_task", "options": {}},
        "metric": {"name": "roc_auc"},  # the mode is left to follow it
        "device": "cpu",
        "threads": 1,
        "mlflow": {"enabled": False},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.01},
        "space": {
            "lr": {"dist": "loguniform", "low": 1e-3, "high": 0.1},
            "width": {"dist": "choice", "values": [4, 16]},
        },
        "overfit": {"subset": 32, "max_steps": 300, "lr": 0.01},
        "lr_range": {"steps": 20},
        "coarse": {"trials": 4, "sampler": "random"},
        "select": {"top_k": 2},
        "fine": {"trials": 2},
        "seeds": {"finalists": 2, "seeds": 2},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def sklearn_auc(trial_dir: Path, split: Path) -> float:
    """ROC-AUC of a trial's saved model on a prepared split, by scikit-learn."""
    from imbalanced_task import build_model

    config = TrialConfig.from_json(read_json(trial_dir / "config.json"))
    info = DataInfo.from_json(read_json(split.parent / "meta.json")["info"])
    model = build_model(config.model, info)
    model.load_state_dict(torch.load(trial_dir / "model.pt", weights_only=True))
    data = torch.load(split, weights_only=True)
    with torch.no_grad():
        probabilities = model.eval()(data["x"]).double().softmax(dim=1)[:, 1].numpy()
    return float(sk.roc_auc_score(data["y"].numpy(), probabilities))


@pytest.mark.slow
def test_an_imbalanced_binary_task_is_selected_on_roc_auc(tmp_path: Path) -> None:
    workdir = tmp_path / "ladder"
    imbalanced_ladder(workdir)
    snakemake(workdir)
    results = results_of(workdir)
    summary = read_json(results / "final" / "summary.json")
    assert (summary["metric"], summary["mode"], summary["metric_bounds"]) == (
        "roc_auc",
        "max",
        [0.0, 1.0],
    )
    # every trial selected its best epoch on val ROC-AUC, the largest
    trials = [p.parent for p in sorted(results.glob("*/trials/*/result.json"))]
    trials += [p.parent for p in sorted((results / "seeds").glob("*/result.json"))]
    assert len(trials) == 4 + 2 + 3 * 2
    for trial_dir in trials:
        result = read_json(trial_dir / "result.json")
        assert result["metric"] == {"name": "roc_auc", "mode": "max"}, trial_dir
        with open(trial_dir / "history.csv") as handle:
            values = [float(row["val_metric"]) for row in csv.DictReader(handle)]
        assert result["best_val_metric"] == max(values) == values[result["best_epoch"]]

    # the final choice: the finalist with the largest mean val ROC-AUC over its seeds
    rows = read_json(results / "seeds" / "results.json")["trials"]
    means = {}
    for group in {row["group"] for row in rows} - {"default"}:
        means[group] = np.mean([r["best_val_metric"] for r in rows if r["group"] == group])
    assert summary["best_group"] == max(means, key=means.get)
    assert summary["val_mean"] == pytest.approx(means[summary["best_group"]])

    # scikit-learn, on each chosen seed model's saved weights and the prepared splits
    data = results / "data"
    chosen = [workdir / r["dir"] for r in rows if r["group"] == summary["best_group"]]
    assert summary["val_values"] == pytest.approx(
        [sklearn_auc(d, data / "val.pt") for d in chosen]
    )
    assert summary["test_values"] == pytest.approx(
        [sklearn_auc(d, data / "test.pt") for d in chosen]
    )
    assert 0.6 < summary["val_mean"] < 1.0  # overlapping classes: ranked, not separated

    # why not accuracy: predicting the majority class scores 0.9 of it, and no ROC-AUC at all
    trivial = summary["trivial"]
    assert trivial["val"]["roc_auc"] == trivial["test"]["roc_auc"] == 0.5
    assert trivial["val"]["accuracy"] > 0.85
    assert set(summary["test_metrics"]) == {
        "loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "positive_recall"
    }  # fmt: skip
    assert summary["test_metrics"]["roc_auc"] == pytest.approx(np.mean(summary["test_values"]))

    # the report's verdicts read the same metric and direction
    report = read_json(results / "report" / "summary.json")
    assert report["metric"] == {"name": "roc_auc", "mode": "max"}
    sweep = [read_json(d / "result.json") for d in trials if d.parent.name == "trials"]
    best = max(r["best_val_metric"] for r in sweep if r["status"] == "ok")
    assert report["diminishing_returns"]["best"] == pytest.approx(best)
    assert "roc_auc" in (results / "report" / "index.html").read_text()
