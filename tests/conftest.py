from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import snakemake, write_config
from tuneladder.data import load_train_val, prepare
from tuneladder.tasks import load_task


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # results must not depend on how many cores the test machine has
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    prepare(load_task("digits"), out, seed=0)
    return out


@pytest.fixture(scope="session")
def digits(digits_dir: Path):
    return load_train_val(digits_dir)


@pytest.fixture()
def digits_task():
    return load_task("digits")


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny ladder, report included; run once and shared by every module."""
    workdir = tmp_path_factory.mktemp("ladder")
    write_config(workdir)
    snakemake(workdir)
    return workdir
