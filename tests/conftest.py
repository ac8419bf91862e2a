from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from helpers import snakemake, terminal_output, write_config
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.tasks import load_task


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true a skip is a failure: CI promises to run every test (SLURM, Chromium)."""
    report = yield
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where this test must run: {reason}"
    return report


# The files that take longest run first (seconds in a process of two, 2026-12-08: 237,
# 235, 163, 134, 121, 106, 104, 78, 72). With a process per core and each file whole in
# one (decision 050), a long file started last would run alone at the end.
LONGEST_FIRST = (
    "test_readme.py",
    "test_cluster.py",
    "test_dvc.py",
    "test_asha.py",
    "test_interrupt.py",
    "test_gpu_check.py",
    "test_workflow.py",
    "test_halving.py",
    "test_tracking.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # results must not depend on how many cores the test machine has
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _gpu_claims_stay_in_their_test() -> Iterator[None]:
    """A GPU claimed in the test's own process sets ``CUDA_VISIBLE_DEVICES`` there (as in
    a job): put it back, or every Snakemake a later test starts inherits the claim."""
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    yield
    if saved is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = saved


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


def _climb_tiny_ladder(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    write_config(workdir)
    proc = snakemake(workdir)
    # what the run printed, beside the ladder (not in it): test_terminal reads it; written
    # last, it also marks the ladder finished for the processes that share it
    terminal_output(workdir).write_text(proc.stdout + proc.stderr)


# what a reader of the MLflow store (SQLite) may open beside it
READERS_FILES = ("-journal", "-wal", "-shm")


def _snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """Each file's size and time, but Snakemake's own folder and the files a reader of the
    MLflow store may open beside it (another test process can be reading meanwhile)."""
    found = {}
    for path in workdir.rglob("*"):
        name = str(path.relative_to(workdir))
        if ".snakemake" in path.relative_to(workdir).parts or name.endswith(READERS_FILES):
            continue
        with contextlib.suppress(FileNotFoundError):  # a reader's file, gone meanwhile
            if path.is_file():
                stat = path.stat()
                found[name] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished tiny ladder, report included; run once and shared by every module, and
    by the test processes of one run (pytest-xdist's workers share the base temp's parent).

    Read-only: a test that changes it would make others depend on the order they
    run in, so a test copies it first, and the session fails if any file changed.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # one process: its own ladder
        workdir = tmp_path_factory.mktemp("ladder")
        _climb_tiny_ladder(workdir)
    else:
        shared = tmp_path_factory.getbasetemp().parent
        workdir, failed = shared / "tiny-ladder", shared / "tiny-ladder-failed.txt"
        with FileLock(shared / "tiny-ladder.lock"):  # the first process climbs, the rest wait
            if failed.exists():  # not again, on what the failed climb left
                pytest.fail(
                    f"the shared tiny ladder failed in another process:\n{failed.read_text()}"
                )
            if not terminal_output(workdir).exists():
                try:
                    _climb_tiny_ladder(workdir)
                except BaseException as err:
                    failed.write_text(str(err))
                    raise
    before = _snapshot(workdir)
    yield workdir
    changed = sorted(set(before.items()).symmetric_difference(_snapshot(workdir).items()), key=str)
    assert not changed, f"a test changed the shared tiny ladder: {changed[:5]}"
