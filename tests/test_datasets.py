"""Tasks on torch Datasets: splits, what prepare stores, the DataLoader path, and the test part."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from dataset_task import read_count

from helpers import REPO, results_of, snakemake, tiny_config
from tuneladder.core.errors import DataError, UserCodeError
from tuneladder.core.hparams import TrialConfig
from tuneladder.data.loader import DatasetSplit, Loading
from tuneladder.data.prepared import Split, load_test, load_train_val, materialise, prepare
from tuneladder.sanity.lr_range import LRRangeSettings, lr_range_test
from tuneladder.sanity.overfit import OverfitSettings, overfit_check
from tuneladder.store.io import read_json
from tuneladder.tasks import Task, load_task
from tuneladder.training.runner import Checkpoint, TrainingRun, evaluate_metrics, train

CPU = torch.device("cpu")
MODEL = {"width": 16, "dropout": 0.2}


def blobs(tmp_path: Path, **options):
    record = tmp_path / "test_reads.log"
    return load_task("dataset_task:make_task", {"record": str(record), **options}), record


def config(**changes) -> TrialConfig:
    base = {"epochs": 3, "seed": 4, "lr": 3e-3, "batch_size": 32, "model": MODEL}
    return TrialConfig(**{**base, **changes})


def histories(outcome) -> list[dict[str, float]]:
    drop = {"epoch_seconds", "peak_memory_mb"}
    return [{k: v for k, v in row.items() if k not in drop} for row in outcome.history]


@pytest.mark.parametrize("materialize", ["never", "always"])
def test_the_test_part_is_read_by_load_test_only(tmp_path: Path, materialize: str) -> None:
    task, record = blobs(tmp_path)
    meta = prepare(task, tmp_path / "data", seed=0, materialize=materialize)
    assert meta["sizes"] == {"train": 240, "val": 60, "test": 60}
    assert meta["materialized"] is (materialize == "always")
    data = load_train_val(tmp_path / "data", task, loading=Loading(num_workers=2))
    cfg = config()
    overfit_check(
        cfg,
        data,
        task.build_model,
        OverfitSettings(subset=32, max_steps=20, lr=1e-2, loss_ratio=0.5),
        device=CPU,
    )
    lr_range_test(
        cfg,
        data,
        task.build_model,
        LRRangeSettings(start=1e-5, end=1.0, steps=20, smoothing=0.1, diverge_factor=4.0),
        device=CPU,
    )
    outcome = train(
        TrainingRun(config=cfg, data=data, task=task, metric="accuracy", mode="max", device=CPU)
    )
    assert outcome.status == "ok", outcome.reason
    assert read_count(record) == 0  # prepare and every rung before the final one: no test read
    test = load_test(tmp_path / "data", task, loading=Loading(num_workers=2))
    assert isinstance(test, DatasetSplit) and len(test) == 60
    model = task.build_model(MODEL, data.info)
    scores = evaluate_metrics(model, test, data.info)
    assert 0 <= scores["accuracy"] <= 1
    reads = [int(line.split()[0]) for line in record.read_text().splitlines()]
    assert sorted(reads) == list(range(60))  # each test sample once, by the evaluation


def test_workers_and_materialising_change_no_number(tmp_path: Path) -> None:
    """With augmentation, the history is the same with 0 or 2 workers, and held in memory."""
    task, _ = blobs(tmp_path)
    prepare(task, tmp_path / "never", seed=0, materialize="never")
    prepare(task, tmp_path / "always", seed=0, materialize="always")
    runs = {}
    for folder, workers in (("never", 0), ("never", 2), ("always", 0), ("always", 2)):
        data = load_train_val(tmp_path / folder, task, loading=Loading(num_workers=workers))
        assert isinstance(data.train, DatasetSplit)  # augmentation reads through a loader
        outcome = train(
            TrainingRun(
                config=config(), data=data, task=task, metric="accuracy", mode="max", device=CPU
            )
        )
        assert outcome.status == "ok", outcome.reason
        runs[(folder, workers)] = histories(outcome)
    first = runs[("never", 0)]
    assert len(first) == 3
    assert all(run == first for run in runs.values())


def test_the_loader_path_trains_as_the_in_memory_path(tmp_path: Path) -> None:
    """Without augmentation: a Dataset read by a loader and the same data held as tensors."""
    task, _ = blobs(tmp_path, augment=False, kind="regression")
    prepare(task, tmp_path / "never", seed=0, materialize="never")
    prepare(task, tmp_path / "always", seed=0, materialize="always")
    lazy = load_train_val(tmp_path / "never", task)
    held = load_train_val(tmp_path / "always", task)
    assert isinstance(lazy.train, DatasetSplit) and isinstance(held.train, Split)
    # the stored targets are standardised with train statistics; the loader scales as it reads
    assert held.train.y.mean().item() == pytest.approx(0.0, abs=1e-5)
    _, y = next(lazy.val.eval_batches())
    assert torch.allclose(y, held.val.y[: len(y)], atol=1e-5)
    runs = [
        TrainingRun(config=config(), data=d, task=task, metric="rmse", mode="min", device=CPU)
        for d in (lazy, held)
    ]
    out = [histories(train(run)) for run in runs]
    for lazy_row, held_row in zip(*out, strict=True):
        assert lazy_row == pytest.approx(held_row, rel=1e-4)


def test_augmentation_reaches_training_samples_only(tmp_path: Path) -> None:
    task, _ = blobs(tmp_path)
    prepare(task, tmp_path / "data", seed=0, materialize="never")
    data = load_train_val(tmp_path / "data", task)
    raw = torch.stack([data.train.dataset[i][0] for i in range(4)])
    order = [torch.arange(4)]
    first = next(data.train.batches(order, seed=1))[0]
    again = next(data.train.batches(order, seed=1))[0]
    other = next(data.train.batches(order, seed=2))[0]
    assert torch.equal(first, again)  # a pure function of the seed and the sample
    assert not torch.allclose(first, raw) and not torch.allclose(first, other)
    assert (first - raw).abs().max() < 1.0  # jitter of std 0.1
    assert torch.equal(data.train.take(torch.arange(4)).x, raw)  # the overfit check's read
    val_x, _ = next(data.val.eval_batches())
    assert torch.equal(val_x, torch.stack([data.val.dataset[i][0] for i in range(len(val_x))]))


def test_a_resumed_trial_draws_the_same_augmentation(tmp_path: Path) -> None:
    task, _ = blobs(tmp_path)
    prepare(task, tmp_path / "data", seed=0, materialize="never")
    data = load_train_val(tmp_path / "data", task, loading=Loading(num_workers=1))
    cfg = config(epochs=4)
    run = TrainingRun(config=cfg, data=data, task=task, metric="accuracy", mode="max", device=CPU)
    full = train(run)
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", "key", every_s=0)

    def interrupt(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run, checkpoint=checkpoint, on_epoch=interrupt)
    resumed = train(run, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 1
    assert histories(resumed) == histories(full)


def test_one_dataset_is_split_stratified_by_seed(tmp_path: Path) -> None:
    task, record = blobs(tmp_path, single=True, samples=300)
    meta = prepare(task, tmp_path / "a", seed=0)
    assert meta["source"] == "dataset" and meta["sizes"] == {"train": 180, "val": 60, "test": 60}
    parts = {
        n: torch.load(tmp_path / "a" / f"{n}.pt")["indices"] for n in ("train", "val", "test")
    }
    every = torch.cat(list(parts.values()))
    assert sorted(every.tolist()) == list(range(300))  # disjoint, and nothing left out
    data = load_train_val(tmp_path / "a", task)
    # 100 samples of each class: 60/20/20 of each in train/val/test
    assert torch.bincount(data.train.y).tolist() == [60, 60, 60]
    assert torch.bincount(data.val.y).tolist() == [20, 20, 20]
    prepare(task, tmp_path / "b", seed=1)
    assert not torch.equal(torch.load(tmp_path / "b" / "test.pt")["indices"], parts["test"])
    assert read_count(record) == 0


def test_without_a_val_part_val_is_cut_from_train(tmp_path: Path) -> None:
    class NoVal:
        def __init__(self, inner: Task) -> None:
            self.inner = inner

        def __call__(self):
            parts = self.inner.load_datasets()
            return {"train": parts["train"], "test": parts["test"]}

    task, _ = blobs(tmp_path)
    task = replace(task, load_datasets=NoVal(task))
    meta = prepare(task, tmp_path / "data", seed=0)
    # split 0.6/0.2/0.2: val is 0.2 / 0.8 of train's 240, stratified (80 a class)
    assert meta["sizes"] == {"train": 180, "val": 60, "test": 60}
    assert meta["parts"] == {"train": "train", "val": "train", "test": "test"}
    train_idx = torch.load(tmp_path / "data" / "train.pt")["indices"]
    val_idx = torch.load(tmp_path / "data" / "val.pt")["indices"]
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())


def test_the_materialise_rule() -> None:
    mib = 2**20
    assert materialise("auto", samples=1024, sample_bytes=1024, max_memory_mb=1)
    assert not materialise("auto", samples=1024, sample_bytes=1025, max_memory_mb=1)
    assert materialise("always", samples=10**9, sample_bytes=mib, max_memory_mb=1)
    assert not materialise("never", samples=1, sample_bytes=4, max_memory_mb=1)


def test_prepare_materialises_by_size(tmp_path: Path) -> None:
    task, _ = blobs(tmp_path)
    # 300 train+val samples of 8 float32 = 9600 bytes
    small = prepare(task, tmp_path / "a", seed=0, max_memory_mb=9600 / 2**20)
    large = prepare(task, tmp_path / "b", seed=0, max_memory_mb=9599 / 2**20)
    assert small["materialized"] and not large["materialized"]
    assert "x" in torch.load(tmp_path / "a" / "train.pt") and "x" not in torch.load(
        tmp_path / "a" / "test.pt"
    )


def test_prepared_datasets_need_their_task_to_load(tmp_path: Path) -> None:
    task, _ = blobs(tmp_path)
    prepare(task, tmp_path / "data", seed=0, materialize="never")
    with pytest.raises(ValueError, match="pass the task"):
        load_train_val(tmp_path / "data")
    assert read_json(tmp_path / "data" / "meta.json")["source"] == "fixed splits"


def _task_returning(value) -> Task:
    return Task(
        name="bad", kind="classification", load_datasets=lambda: value, build_model=lambda h, i: 0
    )


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({"train": [(np.zeros(2), 0)]}, UserCodeError, r"got keys \['train'\]"),
        (42, UserCodeError, "returned int, expected a Dataset"),
        ([(np.zeros(2), 0), (np.ones(2), 1)] * 20, None, None),
        ([np.zeros(2)] * 40, DataError, "expected a pair"),
        ([("text", 0), ("more", 1)] * 20, DataError, "expected a tensor or array"),
    ],
)
def test_bad_datasets_are_named(tmp_path: Path, value, error, message) -> None:
    task = _task_returning(value)
    if error is None:  # a list of pairs is a Dataset as far as the library is concerned
        assert prepare(task, tmp_path, seed=0)["sizes"]["train"] == 24
        return
    with pytest.raises(error, match=message):
        prepare(task, tmp_path, seed=0)


def test_a_task_gives_one_form_of_data() -> None:
    with pytest.raises(ValueError, match="exactly one of load_arrays and load_datasets"):
        Task(name="x", kind="classification", build_model=lambda h, i: None)
    with pytest.raises(ValueError, match="standardize applies to load_arrays"):
        Task(
            name="x",
            kind="classification",
            load_datasets=list,
            build_model=lambda h, i: None,
            standardize=True,
        )


@pytest.mark.slow
def test_a_ladder_on_fixed_splits_reads_test_in_the_final_rung_only(tmp_path: Path) -> None:
    """The workflow end to end, through DataLoader workers: no test sample is read by
    prepare, the sanity rungs or any sweep; the final rung reads each once per model."""
    shutil.copy(REPO / "tests" / "dataset_task.py", tmp_path / "dataset_task.py")
    config = tiny_config(
        experiment="blobs",
        task={"name": "dataset_task:make_task", "options": {}},
        data={"materialize": "never", "num_workers": 1},
        train={"epochs": 2, "batch_size": 32, "width": 16},
        space={
            "lr": "auto",
            "width": {"dist": "choice", "values": [8, 16]},
            "dropout": {"dist": "uniform", "low": 0.0, "high": 0.3},
        },
        overfit={"subset": 32, "max_steps": 300, "lr": 1.0e-2},
        coarse={"trials": 3, "epochs": 2, "sampler": "sobol"},
        fine={"trials": 2, "epochs": 2},
        seeds={"finalists": 1, "seeds": 2, "epochs": 2},
        mlflow={"enabled": False},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    record = tmp_path / "test_reads.log"
    snakemake(tmp_path, "results/blobs/seeds/results.json")
    results = results_of(tmp_path)
    assert read_json(results / "data" / "meta.json")["materialized"] is False
    assert (results / "seeds" / "results.json").is_file() and not (results / "final").exists()
    assert read_count(record) == 0
    snakemake(tmp_path)
    summary = read_json(results / "final" / "summary.json")
    # the chosen config's two seed models and the baseline's two, then the trivial predictor
    models = len(summary["test_values"]) + summary["baseline"]["test"]["n"] + 1
    reads = [int(line.split()[0]) for line in record.read_text().splitlines()]
    assert sorted(reads) == sorted(list(range(60)) * models)


def test_a_val_part_of_one_class_is_accepted_but_not_a_train_part(tmp_path: Path) -> None:
    two = [(np.zeros(2), 0), (np.ones(2), 1)] * 10
    one = [(np.zeros(2), 0)] * 6
    meta = prepare(_task_returning({"train": two, "val": one, "test": two}), tmp_path, seed=0)
    assert meta["sizes"] == {"train": 20, "val": 6, "test": 20}
    with pytest.raises(DataError, match="train: the target has a single class"):
        prepare(_task_returning({"train": one, "val": two, "test": two}), tmp_path, seed=0)


def test_a_multilabel_dataset_keeps_its_labels_and_their_count(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    labels = (torch.rand(200, 5, generator=gen) < 0.3).float()
    task = Task(
        name="tags",
        kind="multilabel",
        load_datasets=lambda: torch.utils.data.TensorDataset(x, labels),
        build_model=lambda hp, info: torch.nn.Linear(4, info.n_outputs),
        default_model={},
    )
    meta = prepare(task, tmp_path, seed=0, materialize="always")
    assert meta["info"]["n_outputs"] == 5 and meta["info"]["target_scale"] is None
    data = load_train_val(tmp_path, task)
    assert set(torch.unique(data.train.y).tolist()) == {0.0, 1.0}  # BCE's targets, unscaled
