"""What a user runs, as the docs write it, from the root of a fresh clone.

Every `snakemake ...` command in README.md, the guide (docs/guide/) and the example
configs' headers is
dry-run from the clone's root exactly as written; each example config climbs the
whole ladder at a tiny size; a regression CSV with a target in the hundreds climbs
it through the csv route. So the docs cannot drift from the code again.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO, SNAKEMAKE, copy_checkout, planned_jobs
from tuneladder.ladder.config import resolve_config
from tuneladder.store.io import read_json

# Commands a dry run cannot check, and why: Snakemake's own report needs a finished
# run (test_report checks the figures it collects).
NOT_DRY_RUN = ("snakemake --report report.zip",)
TINY = {
    "budget": "quick",
    "train": {"epochs": 2},
    "overfit": {"max_steps": 300},
    "lr_range": {"steps": 100},  # fewer steps can miss the descent and suggest the start
    "coarse": {"trials": 3, "epochs": 2},
    "select": {"top_k": 2},
    "fine": {"trials": 2, "epochs": 2},
    "seeds": {"finalists": 1, "seeds": 2, "epochs": 2},
    "mlflow": {"enabled": False},
    "workers": 1,  # one lane a rung: fewer processes, each importing torch
}


def _user_docs(root: Path) -> str:
    """What a user reads: README.md and the guide's pages, one after the other."""
    pages = [root / "README.md", *sorted((root / "docs" / "guide").glob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def _documented_commands() -> list[str]:
    """`snakemake ...` as written: code blocks, inline code, and `&&` chains in both."""
    texts = [_user_docs(REPO)]
    texts += [path.read_text() for path in sorted((REPO / "config" / "examples").glob("*.yaml"))]
    found: set[str] = set()
    for text in texts:
        for match in re.finditer(r"(?:^|`|&& |:\s+)(snakemake [^`&#\n]*)", text, re.MULTILINE):
            found.add(match.group(1).strip())
    return sorted(found)


COMMANDS = [c for c in _documented_commands() if c not in NOT_DRY_RUN]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as a fresh clone has them: tracked and not ignored, plus
    the README's Dataset module saved where the README says (its config names it)."""
    root = tmp_path_factory.mktemp("readme") / "tuneladder"
    copy_checkout(root)
    (root / "my_shapes.py").write_text(_dataset_module(_user_docs(root)))
    return root


def _dataset_module(readme: str) -> str:
    """The Python code block of the README's section on Datasets."""
    section = readme.split("## Tuning a model on your Dataset", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]


def _run(clone: Path, args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, *args],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_docs_show_the_commands_users_need() -> None:
    assert set(NOT_DRY_RUN) <= set(_documented_commands())
    assert "snakemake --cores all" in COMMANDS  # README command 1
    for example in ("csv", "plugin", "dataset"):
        assert f"snakemake --cores all --configfile config/examples/{example}.yaml" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_command_dry_runs_from_the_root(clone: Path, command: str) -> None:
    args = shlex.split(command)[1:]
    proc = _run(clone, [*args, "-n", "--quiet", "rules"], timeout=300)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    if "--touch" not in command:
        assert "tuneladder: experiment " in proc.stderr, proc.stderr[-2000:]


def test_yaml_configs_in_the_readme_resolve_alone(clone: Path, monkeypatch) -> None:
    """A config copied from the README is a whole experiment: it resolves on its own."""
    monkeypatch.chdir(clone)  # task paths and plugins are found from the root
    blocks = re.findall(r"```yaml\n(.*?)```", _user_docs(clone), re.DOTALL)
    configs = [yaml.safe_load(b) for b in blocks if re.search(r"^experiment: ", b, re.M)]
    assert len(configs) >= 3
    for folder in {c["task"]["options"]["path"] for c in configs if _images(c)}:
        # the image folder as the guide makes it, a few images a class
        command = [sys.executable, "-m", "examples.shapes_task", folder, "--per-class", "3"]
        subprocess.run(command, cwd=clone, check=True, capture_output=True)
    assert any(_images(c) for c in configs)
    for raw in configs:
        resolved = resolve_config(raw)
        assert resolved["experiment"] == raw["experiment"]


def _images(config: dict) -> bool:
    return (config.get("task") or {}).get("name") == "image_folder"


def test_trial_command_runs_as_written_from_the_root(clone: Path) -> None:
    """README's one-config debug command, verbatim, in a fresh clone (no ladder run yet)."""
    written = re.findall(r"^(tuneladder trial .*)$", _user_docs(REPO), re.M)
    assert len(written) == 1, written
    args = shlex.split(written[0])
    out = clone / args[args.index("--out") + 1]
    proc = subprocess.run(
        [str(Path(SNAKEMAKE).parent / "tuneladder"), *args[1:]],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("epoch")]
    config = read_json(out / "config.json")
    assert len(epochs) == config["epochs"] == 30  # the default config's epochs
    assert (config["lr"], config["model"]["arch"], config["seed"]) == (1e-3, "cnn", 0)
    result = read_json(out / "result.json")
    assert result["status"] == "ok" and result["best_val_metric"] > 0.9  # digits: easy
    assert proc.stdout.splitlines()[-1].startswith(
        f"ok: best val_accuracy {result['best_val_metric']:.4f} at epoch"
    )
    # no ladder had prepared the data, so the trial prepared its own beside it
    assert (out / "data" / "meta.json").is_file()
    assert not (clone / "results" / "digits-demo").exists()


def _tiny_copy(clone: Path, example: str) -> str:
    """The example at a tiny size, beside it: the counts, epochs and lanes are all that change."""
    raw = yaml.safe_load((clone / "config" / "examples" / f"{example}.yaml").read_text())
    tiny = {**raw, **TINY, "experiment": f"{raw['experiment']}-tiny"}
    tiny["train"] = {**raw.get("train", {}), **TINY["train"]}
    path = f"config/examples/{example}-tiny.yaml"
    (clone / path).write_text(yaml.safe_dump(tiny))
    return path


def test_the_readmes_dataset_module_trains(clone: Path, monkeypatch) -> None:
    """The module the README asks users to copy is complete: it prepares and trains."""
    import torch

    from tuneladder.core.hparams import TrialConfig
    from tuneladder.data.loader import DatasetSplit
    from tuneladder.data.prepared import load_train_val, prepare
    from tuneladder.tasks import load_task
    from tuneladder.training.runner import TrainingRun, train

    monkeypatch.chdir(clone)
    task = load_task("my_shapes:make_task", {"samples": 60})
    meta = prepare(task, clone / "my-data", seed=0)
    assert meta["source"] == "fixed splits" and meta["sizes"] == {
        "train": 60,
        "val": 12,
        "test": 12,
    }
    data = load_train_val(clone / "my-data", task)
    assert isinstance(data.train, DatasetSplit)  # its augmentation reads through a loader
    config = TrialConfig(epochs=1, batch_size=16, model=task.default_model)
    outcome = train(
        TrainingRun(
            config=config,
            data=data,
            task=task,
            metric="accuracy",
            mode="max",
            device=torch.device("cpu"),
        )
    )
    assert outcome.status == "ok", outcome.reason


@pytest.mark.slow
@pytest.mark.parametrize("example", ["csv", "plugin", "dataset"])
def test_example_climbs_the_ladder_from_the_root(clone: Path, example: str) -> None:
    config = _tiny_copy(clone, example)
    proc = _run(clone, ["--cores", "2", "--configfile", config])
    assert proc.returncode == 0, proc.stderr[-4000:]
    experiment = yaml.safe_load((clone / config).read_text())["experiment"]
    results = clone / "results" / experiment
    summary = read_json(results / "final" / "summary.json")
    assert summary["experiment"] == experiment
    assert (results / "report" / "index.html").is_file()
    # nothing of the default experiment leaked in: its folder was never made
    assert not (clone / "results" / "digits-demo").exists()
    page_command = read_json(results / "report" / "summary.json")["reproducibility"]["command"]
    assert page_command == f"snakemake --cores all --configfile {config}"
    # an edit of the data re-prepares; one of the model's code reruns its checks
    edited = {"csv": "examples/wine.csv", "plugin": "examples/sine_task.py"}.get(example)
    if edited is not None:
        rerun = {"csv": "prepare", "plugin": "overfit_check"}[example]
        assert rerun not in planned_jobs(_run(clone, ["-n", "--configfile", config]).stdout)
        path = clone / edited
        original = path.read_text()
        try:
            path.write_text(original + ("\n" if example == "csv" else "\n_EDITED = 1\n"))
            dry = _run(clone, ["-n", "--configfile", config])
            assert rerun in planned_jobs(dry.stdout), dry.stdout[-3000:]
        finally:
            path.write_text(original)


def _hundreds_csv(path: Path) -> None:
    """A regression table whose target runs over the hundreds, as real ones do."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=(600, 3))
    y = 200 + 80 * np.sin(1.5 * x[:, 0]) + 30 * x[:, 1] * x[:, 2] + 5 * rng.standard_normal(600)
    rows = ["a,b,c,price"] + [
        f"{a:.5f},{b:.5f},{c:.5f},{t:.3f}" for (a, b, c), t in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_regression_csv_on_raw_targets_beats_the_untuned_default(clone: Path) -> None:
    _hundreds_csv(clone / "prices.csv")
    config = {
        "experiment": "prices",
        "task": {
            "name": "csv",
            "options": {"path": "prices.csv", "target": "price", "kind": "regression"},
        },
        "metric": {"name": "rmse"},
        "space": {
            "lr": "auto",
            "width": {"dist": "choice", "values": [64, 128]},
            "num_layers": {"dist": "int", "low": 1, "high": 3},
        },
        **TINY,
        "train": {"epochs": 20, "batch_size": 32},
        "coarse": {"trials": 4, "epochs": 20},
        "fine": {"trials": 2, "epochs": 20},
        "seeds": {"finalists": 1, "seeds": 2, "epochs": 20},
    }
    (clone / "prices.yaml").write_text(yaml.safe_dump(config))
    proc = _run(clone, ["--cores", "2", "--configfile", "prices.yaml"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = clone / "results" / "prices"
    assert read_json(results / "sanity" / "overfit.json")["passed"]
    summary = read_json(results / "final" / "summary.json")
    assert summary["mode"] == "min"
    # in the target's own units: its std is about 70, the mean predictor's rmse too
    assert 1 < summary["test_mean"] < 40
    assert summary["test_mean"] < summary["baseline"]["test"]["mean"]


@pytest.mark.slow
def test_the_readmes_python_example_runs_from_the_root(clone: Path) -> None:
    section = _user_docs(clone).split("## From Python", 1)[1].split("\n## ")[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    run = subprocess.run(
        [sys.executable, "-c", example],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ok 0.")  # the one trial: its status and best val accuracy
    assert "coarse" in run.stdout and "seeds" in run.stdout  # the trials, by rung
    assert 0.5 < float(lines[-1]) <= 1.0  # the chosen config's test accuracy
    trials = read_json(clone / "results" / "digits-api" / "coarse" / "results.json")["trials"]
    assert len(trials) == 4 and all(t["status"] == "ok" for t in trials)
