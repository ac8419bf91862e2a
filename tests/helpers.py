"""Shared helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def tiny_config(**overrides) -> dict:
    """A ladder that runs in well under a minute: few trials, two epochs, MLPs."""
    config = {
        "experiment": "tiny",
        "seed": 0,
        "budget": "quick",
        "task": {"name": "digits", "options": {}},
        "metric": {"name": "accuracy"},
        "device": "cpu",
        "precision": "fp32",
        "threads": 1,
        # one lane a rung: each lane is a process that imports torch, which is most of a
        # tiny ladder's time; the tests of lanes (asha, halving, cluster, workflow) ask
        # for `auto`, and test_reproducible reruns this one with a job per trial
        "workers": 1,
        # every key dvc.yaml names as a param (test_dvc writes this as config/config.yaml)
        "data": {
            "materialize": "auto",
            "max_memory_mb": 1024,
            "num_workers": 0,
            "pin_memory": True,
        },
        "train": {"epochs": 2, "batch_size": 128, "width": 32, "num_layers": 1},
        "space": {
            "lr": "auto",
            "weight_decay": {"dist": "loguniform", "low": 1e-5, "high": 1e-2},
            "dropout": {"dist": "uniform", "low": 0.0, "high": 0.3},
            "num_layers": {"dist": "int", "low": 1, "high": 2},
            "batch_size": {"dist": "choice", "values": [64, 128]},
        },
        "overfit": {"subset": 32, "max_steps": 300},
        "lr_range": {"steps": 40},
        "coarse": {"trials": 4, "epochs": 2, "sampler": "sobol"},
        "select": {"top_k": 2},
        "fine": {"trials": 3, "epochs": 2},
        "seeds": {"finalists": 2, "seeds": 2, "epochs": 2},
        # off, as by default; written out because dvc.yaml's report stage reads the key
        "sensitivity": {"enabled": False},
    }
    for key, value in overrides.items():
        config[key] = value
    return config


def write_config(workdir: Path, **overrides) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(**overrides)))


def terminal_output(ladder: Path) -> Path:
    """Where the shared tiny ladder's run left what it printed (beside it, not in it)."""
    return ladder.parent / f"{ladder.name}-terminal.txt"


def results_of(workdir: Path) -> Path:
    """The folder a ladder in ``workdir`` writes to: ``results/<experiment>``."""
    experiment = yaml.safe_load((workdir / "config.yaml").read_text())["experiment"]
    return workdir / "results" / experiment


def rung_target(workdir: Path, rung: str) -> str:
    """A rung's ``results.json`` as a Snakemake target from ``workdir``: a run up to it."""
    return str(results_of(workdir).relative_to(workdir) / rung / "results.json")


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real Snakemake on the repository's workflow, in ``workdir``, on 2 cores."""
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--workflow-profile",
        str(REPO / "profiles" / "default"),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def tuneladder(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed `tuneladder` command; it must succeed."""
    command = [str(Path(sys.executable).parent / "tuneladder"), *args]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"tuneladder {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return proc


def fault_config(**overrides) -> dict:
    """A ladder on the test-only ``fault_task`` plugin (copy tests/fault_task.py beside it)."""
    config = {
        "experiment": "faults",
        "seed": 0,
        "task": {"name": "fault_task:make_task", "options": {}},
        "metric": {"name": "accuracy"},
        "device": "cpu",
        "threads": 1,
        "mlflow": {"enabled": False},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "fault_epoch": 1},
        "space": {
            "lr": {"dist": "loguniform", "low": 0.01, "high": 0.1},
            "fault": {"dist": "choice", "values": ["none", "raise", "nan", "sleep", "oom"]},
        },
        "overfit": {"subset": 32, "max_steps": 200, "enforce": False},
        "lr_range": {"steps": 20},
        "coarse": {"trials": 10, "sampler": "random"},
        "select": {"top_k": 2},
        "fine": {"trials": 2},
        "seeds": {"finalists": 1, "seeds": 2},
    }
    config.update(overrides)
    return config


def write_fault_ladder(workdir: Path, **overrides) -> None:
    """A work directory holding the fault plugin and its config."""
    import shutil

    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "tests" / "fault_task.py", workdir / "fault_task.py")
    (workdir / "config.yaml").write_text(yaml.safe_dump(fault_config(**overrides)))


def copy_ladder(workdir: Path, dest: Path) -> Path:
    """Copy ``workdir`` (config, ``.snakemake`` metadata, results; file times kept) to ``dest``.

    The MLflow store is left behind: its database records artifact folders by
    absolute path, so a rerun in the copy would write into the original. The
    copy's workers start a store of their own and log their trials into it.
    """
    import shutil

    shutil.copytree(workdir, dest, symlinks=True)
    for path in results_of(dest).glob("mlflow.db*"):
        path.unlink()
    shutil.rmtree(dest / "mlruns", ignore_errors=True)
    return dest


def copy_checkout(root: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked, or new and not
    ignored), copied to ``root``: what a user who clones it starts from."""
    import shutil

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    return root


def planned_jobs(output: str) -> dict[str, int]:
    """The jobs of a ``snakemake -n`` by rule, from its job stats (none: nothing to do)."""
    import re

    if "Job stats:" not in output:
        return {}
    table = output[output.index("Job stats:") :]
    jobs = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}
    jobs.pop("total", None)
    return jobs


def _cpu_fp16_autocast() -> bool:
    """Whether the CPU has an fp16 autocast (torch 2.4 on): the tests of the fp16 path
    play CUDA's with it. Where it has none, torch warns and autocasts nothing."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            torch.autocast("cpu", dtype=torch.float16)
        except (UserWarning, RuntimeError):
            return False
    return True


needs_cpu_fp16 = pytest.mark.skipif(
    not _cpu_fp16_autocast(), reason="this torch has no fp16 autocast on the CPU (2.4 on has)"
)
