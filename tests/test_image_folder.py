"""The built-in image_folder task, on PNG files of shapes that the tests draw."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers import REPO, results_of, snakemake, tiny_config
from tuneladder.data.loader import DatasetSplit
from tuneladder.data.prepared import load_test, load_train_val, prepare
from tuneladder.store.io import read_json
from tuneladder.tasks import TaskError, load_task
from tuneladder.tasks.image_folder import folder_signature

pytest.importorskip("torchvision", reason="the image_folder task needs the images extra")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # examples/ is found from the checkout's root, as users run it

from examples.shapes_task import CLASSES, write_folder  # noqa: E402


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<class>/<i>.png``: 20 images of each of the three shapes, 12 x 12."""
    return write_folder(tmp_path_factory.mktemp("flat") / "shapes", per_class=20, size=12)


@pytest.fixture(scope="module")
def own_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/<class>/`` (30 each) and ``test/<class>/`` (8 each), 16 x 16."""
    return write_folder(tmp_path_factory.mktemp("own") / "shapes", per_class=30, test=8)


def test_a_flat_folder_is_split_stratified_and_resized(flat: Path, tmp_path: Path) -> None:
    task = load_task("image_folder", {"path": str(flat), "image_size": 16, "channels": 1})
    meta = prepare(task, tmp_path, seed=0)
    assert meta["sizes"] == {"train": 36, "val": 12, "test": 12}
    assert meta["info"]["input_shape"] == [1, 16, 16] and meta["info"]["n_outputs"] == 3
    assert meta["info"]["class_names"] == sorted(CLASSES)  # the folders', ImageFolder's order
    data = load_train_val(tmp_path, task)
    assert torch.bincount(data.train.y).tolist() == [12, 12, 12]
    assert data.train.x.shape == (36, 1, 16, 16)  # small: held in memory
    assert 0.0 <= data.train.x.min() and data.train.x.max() <= 1.0


def test_the_folders_own_split_keeps_trains_class_numbers(own_split: Path, tmp_path: Path):
    # a test folder without one class: the others keep train's numbers
    root = tmp_path / "shapes"
    shutil.copytree(own_split, root)
    shutil.rmtree(root / "test" / CLASSES[1])
    task = load_task("image_folder", {"path": str(root), "channels": 1, "image_size": 16})
    meta = prepare(task, tmp_path / "data", seed=0)
    assert meta["parts"] == {"train": "train", "val": "train", "test": "test"}
    assert meta["info"]["class_names"] == sorted(CLASSES)  # train's, test missing one
    # val is 0.2 / 0.8 of train: of 90, 67.5 stay (rounded to even: 68) and 22 go
    assert meta["sizes"] == {"train": 68, "val": 22, "test": 16}
    test = load_test(tmp_path / "data", task)
    labels = torch.cat([y for _, y in test.eval_batches()])
    assert sorted(set(labels.tolist())) == [0, 2]


def test_augmentation_reads_train_through_a_loader(own_split: Path, tmp_path: Path) -> None:
    task = load_task(
        "image_folder", {"path": str(own_split), "augment": ["crop", "flip"], "channels": 1}
    )
    prepare(task, tmp_path, seed=0)
    data = load_train_val(tmp_path, task)
    assert isinstance(data.train, DatasetSplit) and data.info.input_shape == (1, 32, 32)
    x, y = next(data.train.batches([torch.arange(8)], seed=3))
    assert x.shape == (8, 1, 32, 32) and y.tolist() == data.train.y[:8].tolist()


def test_a_factory_of_ones_own(own_split: Path, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_models.py").write_text(
        "import math\n"
        "from torch import nn\n"
        "def tiny(hp, info):\n"
        "    features = math.prod(info.input_shape)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(features, info.n_outputs))\n"
    )
    monkeypatch.chdir(tmp_path)
    options = {"path": str(own_split), "model": "my_models:tiny", "default_model": {}}
    task = load_task("image_folder", options)
    assert task.build_model.__module__ == "my_models" and task.model_params == frozenset()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "task.options.path is required"),
        ({"path": "no/such/folder"}, "image folder not found"),
        ({"path": "."}, None),
        ({"path": ".", "augment": ["rotate"]}, "augment may list crop, flip"),
        ({"path": ".", "channels": 2}, "channels must be 1 or 3"),
        ({"path": ".", "image_size": 2}, "image_size must be an int >= 4"),
        ({"path": ".", "colour": 1}, "unknown option task.options.colour"),
        ({"path": ".", "model": "no_such_module_q:f"}, "cannot import 'no_such_module_q'"),
    ],
)
def test_options_are_checked_when_the_config_is_read(options, message) -> None:
    if message is None:
        assert load_task("image_folder", options).kind == "classification"
        return
    with pytest.raises(TaskError, match=message):
        load_task("image_folder", options)


def test_the_folders_signature_changes_with_any_image(flat: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(flat, tmp_path / "shapes")
    before = folder_signature(folder)
    assert folder_signature(folder) == before
    image = sorted(folder.glob("*/*.png"))[0]
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    edited = folder_signature(folder)
    assert edited != before  # rewritten in place: the folder's own time stays as it was
    (folder / CLASSES[0] / "new.png").write_bytes(image.read_bytes())
    assert folder_signature(folder) not in (before, edited)
    # a class folder that is a link to one elsewhere: ImageFolder reads through it
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / CLASSES[1]).symlink_to(folder / CLASSES[1], target_is_directory=True)
    through = folder_signature(linked)
    (folder / CLASSES[1] / "new.png").write_bytes(image.read_bytes())
    assert folder_signature(linked) != through


@pytest.mark.slow
def test_the_image_folder_task_climbs_the_ladder(flat: Path, tmp_path: Path) -> None:
    flat = shutil.copytree(flat, tmp_path / "shapes")  # this test edits its images
    config = tiny_config(
        experiment="shapes",
        task={
            "name": "image_folder",
            "options": {"path": str(flat), "channels": 1, "image_size": 16},
        },
        train={"epochs": 2, "batch_size": 16, "width": 16, "channels": 8, "lr": 3e-3},
        space={
            "lr": "auto",
            "arch": {"dist": "choice", "values": ["cnn", "mlp"]},
            "dropout": {"dist": "uniform", "low": 0.0, "high": 0.3},
        },
        overfit={"subset": 16, "max_steps": 200},
        coarse={"trials": 3, "epochs": 2, "sampler": "sobol"},
        fine={"trials": 2, "epochs": 2},
        seeds={"finalists": 1, "seeds": 2, "epochs": 2},
        mlflow={"enabled": False},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    results = results_of(tmp_path)
    meta = read_json(results / "data" / "meta.json")
    assert meta["task"] == "image_folder:shapes" and meta["materialized"] is True
    summary = read_json(results / "final" / "summary.json")
    assert 0 <= summary["test_mean"] <= 1 and len(summary["test_values"]) == 2
    assert (results / "report" / "index.html").is_file()
    # an image replaced in place re-prepares: a Snakemake folder input would not see it
    assert "Nothing to be done" in snakemake(tmp_path, "-n").stdout
    first, second = sorted(flat.glob(f"{CLASSES[0]}/*.png"))[:2]
    mtime = first.stat().st_mtime_ns
    first.write_bytes(second.read_bytes())
    os.utime(first, ns=(mtime + 10**9, mtime + 10**9))
    dry = snakemake(tmp_path, "-n")
    out = dry.stdout + dry.stderr
    assert re.search(r"params have changed since last execution:\s+prepare", out)
