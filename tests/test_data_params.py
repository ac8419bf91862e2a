"""Data hyperparameters: searched like the model's, each value prepared once and shared."""

from __future__ import annotations

import multiprocessing
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from helpers import REPO, results_of, snakemake
from tuneladder.data.prepared import data_for, load_info, load_train_val, prepare
from tuneladder.store.io import read_json
from tuneladder.tasks import DataInfo, Task
from tuneladder.training.preflight import unread_hyperparameters


def _windows(calls: Path | None = None):
    """load_arrays of a series cut into windows of ``window`` steps (same targets for all)."""

    def load(data: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if calls is not None:
            with open(calls, "a") as handle:
                handle.write(f"{data['window']}\n")
        series = np.sin(np.arange(300) / 5.0).astype(np.float32)
        steps = np.arange(16, 300)
        x = np.stack([series[t - int(data["window"]) : t] for t in steps])
        return x, series[steps]

    return load


def _mlp(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    return nn.Sequential(nn.Linear(info.input_shape[0], int(hp["width"])), nn.ReLU(),
                         nn.Linear(int(hp["width"]), info.n_outputs))  # fmt: skip


def _task(calls: Path | None = None, **extra: Any) -> Task:
    return Task(
        name="windows",
        kind="regression",
        load_arrays=_windows(calls),
        build_model=_mlp,
        default_model={"width": 8},
        data_params={"window": 4},
        **extra,
    )


def test_a_hyperparameter_is_the_models_or_the_datas_not_both() -> None:
    with pytest.raises(ValueError, match="'window' is in both data_params and default_model"):
        Task(name="t", kind="regression", load_arrays=_windows(), build_model=_mlp,
             default_model={"window": 4}, data_params={"window": 4})  # fmt: skip
    task = _task(applies=lambda hp: {"width"})
    assert task.model_params == {"width", "window"}
    assert task.defaults == {"width": 8, "window": 4}
    # a task's applies speaks for its model; its data hyperparameters always apply
    assert task.applies({"width": 8, "window": 16}) == {"width", "window"}


def test_each_value_is_prepared_once_beside_the_data_and_keeps_the_split(tmp_path: Path):
    calls = tmp_path / "calls.txt"
    task = _task(calls)
    data_dir = tmp_path / "results" / "x" / "data"
    prepare(task, data_dir, seed=0, data_values={"window": 8})
    assert read_json(data_dir / "meta.json")["data_params"] == {"window": 8}
    # prepare's values are the experiment's own folder; others a copy of their own
    assert data_for(data_dir, task, {"window": 8, "width": 32}) == data_dir
    copy = data_for(data_dir, task, {"window": 16, "width": 32})
    assert copy.parent == data_dir.parent / "data-variants"
    again = data_for(data_dir, task, {"window": 16, "width": 64})
    assert again == copy and calls.read_text().split() == ["8", "16"]  # prepared once
    # the variant's folder is all it leaves: its lock goes once it is made
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]
    base, other = load_train_val(data_dir), load_train_val(copy)
    assert (base.info.input_shape, other.info.input_shape) == ((8,), (16,))
    # the same targets in every split, whatever the window: scores compare like for like
    assert torch.equal(base.train.y, other.train.y) and torch.equal(base.val.y, other.val.y)
    assert load_info(copy).input_shape == (16,)
    assert read_json(copy / "meta.json")["seed"] == 0


def _prepare_in(args: tuple[str, str]) -> str:
    data_dir, calls = args
    return str(data_for(Path(data_dir), _task(Path(calls)), {"window": 12}))


def test_processes_that_need_the_same_value_at_once_prepare_it_once(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    data_dir = tmp_path / "data"
    prepare(_task(calls), data_dir, seed=0)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        folders = pool.map(_prepare_in, [(str(data_dir), str(calls))] * 4)
    assert len(set(folders)) == 1 and calls.read_text().split() == ["4", "12"]
    assert sorted(p.name for p in Path(folders[0]).iterdir()) == [
        "meta.json", "test.pt", "train.pt", "val.pt"
    ]  # fmt: skip


def test_a_two_argument_train_transform_gets_the_data_values(tmp_path: Path) -> None:
    seen = []

    def transform(x: torch.Tensor, data: Mapping[str, Any]) -> torch.Tensor:
        seen.append(data["window"])
        return x

    task = _task(train_transform=transform)
    prepare(task, tmp_path / "data", seed=0, data_values={"window": 6})
    train = load_train_val(tmp_path / "data", task).train
    next(iter(train.batches([torch.arange(4)])))
    assert seen and set(seen) == {6}


def _factory(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    width = int(hp["width"])
    if hp["arch"] == "wide":  # channels is read only by this arch
        width *= int(hp["channels"])
    return nn.Linear(info.input_shape[0], width)


def test_a_searched_model_hyperparameter_the_factory_never_reads_is_found() -> None:
    info = DataInfo("regression", (3,), 1)
    base = {"width": 4, "arch": "narrow", "channels": 2, "window": 8}
    configs = [
        ({**base, "width": 8}, {"width", "window"}),
        ({**base, "arch": "wide", "channels": 3}, {"arch", "channels", "window"}),
    ]
    assert unread_hyperparameters(_factory, configs, info) == ["window"]
    # channels, sampled only where it is read, is not taken for unread
    assert unread_hyperparameters(_factory, configs[1:], info) == ["window"]
    assert unread_hyperparameters(_factory, [(base, {"width"})], info) == []


SERIES_LADDER = {
    "experiment": "windows",
    "budget": "quick",
    "task": {"name": "examples.series_task:make_task", "options": {"length": 300}},
    "metric": {"name": "rmse"},
    "device": "cpu",
    "mlflow": {"enabled": False},
    "train": {"epochs": 2, "batch_size": 64, "window": 8},
    "space": {
        "lr": {"dist": "loguniform", "low": 1.0e-3, "high": 1.0e-2},
        "window": {"dist": "choice", "values": [4, 8, 16]},
        "jitter": {"dist": "choice", "values": [0.0, 0.2]},
    },
    "overfit": {"subset": 32, "max_steps": 300},
    "lr_range": {"steps": 40},
    "coarse": {"trials": 6, "epochs": 2, "sampler": "random"},
    "select": {"top_k": 2},
    "fine": {"trials": 2, "epochs": 2},
    "seeds": {"finalists": 1, "seeds": 2, "epochs": 2},
}


def _ladder(workdir: Path, config: Mapping[str, Any]) -> None:
    (workdir / "examples").mkdir(parents=True)
    for name in ("__init__.py", "series_task.py"):
        (workdir / "examples" / name).write_text((REPO / "examples" / name).read_text())
    (workdir / "config.yaml").write_text(yaml.safe_dump(dict(config)))


@pytest.mark.slow
def test_a_ladder_searches_the_window_and_tests_the_chosen_one(tmp_path: Path) -> None:
    _ladder(tmp_path, SERIES_LADDER)
    snakemake(tmp_path)
    results = results_of(tmp_path)
    trials = [
        read_json(p.parent / "config.json")["model"]
        for rung in ("coarse", "fine")
        for p in (results / rung / "trials").glob("*/result.json")
    ]
    values = {(t["window"], t["jitter"]) for t in trials}
    # one prepared copy per value a trial needed, beside prepare's (window 8, jitter 0)
    copies = {
        tuple(read_json(meta)["data_params"].values())
        for meta in (results / "data-variants").glob("*/meta.json")
    }
    assert copies == values - {(8, 0.0)} and copies
    # each seed model was trained on its window: its first layer takes that many inputs
    seed_models = sorted((results / "seeds").glob("*/model.pt"))
    ok = [p for p in (results / "seeds").glob("*/result.json") if read_json(p)["status"] == "ok"]
    assert len(seed_models) == len(ok) > 0
    for model in seed_models:
        window = read_json(model.parent / "config.json")["model"]["window"]
        state = torch.load(model, weights_only=True)
        assert state["0.weight"].shape[1] == window
    summary = read_json(results / "final" / "summary.json")
    chosen = summary["best_config"]["window"]
    state = torch.load(results / "final" / "model.pt", weights_only=True)
    assert state["0.weight"].shape[1] == chosen
    assert summary["test_mean"] is not None and np.isfinite(summary["test_mean"])


UNREAD_TASK = """
from torch import nn
from tuneladder.tasks import Task
from examples.series_task import make_task as series


def make_task(options):
    # "window" handed to the model, whose factory never reads it: tuned for nothing
    base = series(options)
    return Task(name="unread", kind="regression", load_arrays=base.load_arrays,
                build_model=build, default_model={"width": 16, "lookback": 8},
                data_params={"window": 8, "jitter": 0.0}, standardize=True)


def build(hp, info):
    return nn.Linear(info.input_shape[0], info.n_outputs) if hp["width"] else None
"""


@pytest.mark.slow
def test_a_searched_hyperparameter_the_model_never_reads_stops_the_ladder(tmp_path: Path):
    config = {
        **SERIES_LADDER,
        "task": {"name": "unread_task:make_task", "options": {"length": 300}},
        "overfit": {"subset": 32, "max_steps": 50, "enforce": False},  # a linear model
        "space": {
            "lr": {"dist": "loguniform", "low": 1e-3, "high": 1e-2},
            "lookback": {"dist": "choice", "values": [4, 8, 16]},
        },  # fmt: skip
    }
    _ladder(tmp_path, config)
    (tmp_path / "unread_task.py").write_text(textwrap.dedent(UNREAD_TASK))
    proc = snakemake(tmp_path, check=False, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode != 0
    assert (
        "tuneladder: config error: space.lookback: searched, but the model factory"
        " unread_task:build never reads it"
    ) in proc.stderr, proc.stderr[-3000:]
    results = results_of(tmp_path)
    assert not (results / "coarse" / "plan.json").exists()
    assert not (results / "coarse" / "trials").exists()  # no trial trained


def test_data_prepared_again_never_trains_on_a_copy_of_the_old(tmp_path: Path) -> None:
    from tuneladder.stages.prepare import prepare_stage

    task = {"name": "examples.series_task:make_task", "options": {"length": 200}}
    data_dir = tmp_path / "results" / "x" / "data"

    def window_16(seed: int) -> Path:
        prepare_stage(task=task, seed=seed, data_dir=data_dir, train={"width": 4})
        return data_for(data_dir, _task_of(task), {"window": 16, "jitter": 0.0, "width": 4})

    first = window_16(0)
    assert read_json(first / "meta.json")["seed"] == 0
    stale = first / "made-by-old-code"  # what a copy of the task's old code would hold
    stale.write_text("")
    second = window_16(1)  # prepared again, as for a new seed or a code change
    assert read_json(second / "meta.json")["seed"] == 1 and not stale.exists()
    assert torch.equal(load_train_val(second).val.y, load_train_val(data_dir).val.y)


def _task_of(task: Mapping[str, Any]) -> Task:
    from tuneladder.tasks import load_task

    return load_task(task["name"], task["options"])
