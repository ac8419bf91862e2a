"""DVC wraps the Snakemake targets: real git, real dvc, a tiny ladder in a scratch repo."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, copy_checkout, tiny_config

BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


RESULTS = "results/tiny"  # the tiny config's experiment folder


def sh(cwd: Path, *command: str, check: bool = True) -> str:
    proc = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's files in a fresh git repo, with the tiny ladder as its config,
    reproduced once by `dvc repro` and committed. Tests that change it use a copy."""
    root = tmp_path_factory.mktemp("dvc") / "project"
    copy_checkout(root)
    # the fine sweep does not halve: dvc.yaml still lists fine/levels, where the sweep
    # then leaves a note (with halving, the default config's case, it holds the levels)
    (root / "config" / "config.yaml").write_text(
        yaml.safe_dump(tiny_config(mlflow={"enabled": False}))
    )
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "project")
    (root.parent / "repro.log").write_text(sh(root, "dvc", "repro"))
    sh(root, "git", "add", "dvc.lock")
    sh(root, "git", "commit", "-qm", "baseline ladder")
    return root


def _copy(project: Path, tmp_path: Path) -> Path:
    """A private copy of the reproduced project: git history, DVC cache and results."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    return copy


@pytest.mark.slow
def test_repro_runs_the_ladder_and_a_second_repro_does_nothing(project: Path) -> None:
    metrics = json.loads((project / RESULTS / "final" / "metrics.json").read_text())
    assert 0.5 < metrics["test_mean"] <= 1.0 and metrics["trials"] == 7
    # no output DVC warns of: the fine sweep's levels/ holds a note, not nothing
    assert "is empty" not in (project.parent / "repro.log").read_text()
    assert (project / RESULTS / "fine" / "levels" / "README").is_file()
    # the mlflow stage ran too; with mlflow off its marker says so
    marker = json.loads((project / RESULTS / "mlflow.json").read_text())
    assert marker == {"run_id": None, "trials": 0, "error": "mlflow is disabled in the config"}
    # the plots: LR range on log10(lr), and the report's figures as images
    plots = sh(project, "dvc", "plots", "show", "--json")
    assert "log10_lr" in plots and f"{RESULTS}/report/figures/lr_range.png" in plots
    assert "Data and pipelines are up to date" in sh(project, "dvc", "repro")
    assert "Data and pipelines are up to date" in sh(project, "dvc", "status")
    dry_run = sh(project, "snakemake", "-n")
    assert "Nothing to be done" in dry_run, dry_run


@pytest.mark.slow
def test_pull_into_a_fresh_clone_has_nothing_to_rerun(project: Path, tmp_path: Path) -> None:
    origin = _copy(project, tmp_path)
    remote = tmp_path / "remote"
    sh(origin, "dvc", "remote", "add", "-d", "store", str(remote))
    sh(origin, "git", "commit", "-qam", "remote")
    sh(origin, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / RESULTS / "final" / "model.pt").is_file()
    # checkout writes files in any order: put Snakemake's timestamps back in order
    sh(clone, "snakemake", "--touch")  # same --cores as the run: the DAG depends on it
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "status")
    dry_run = sh(clone, "snakemake", "-n")
    assert "Nothing to be done" in dry_run, dry_run


def _coarse_results(project: Path) -> dict[str, bytes]:
    trials = project / RESULTS / "coarse" / "trials"
    return {p.parent.name: p.read_bytes() for p in sorted(trials.glob("*/result.json"))}


@pytest.mark.slow
def test_experiment_with_more_trials_and_its_comparison(project: Path, tmp_path: Path) -> None:
    project = _copy(project, tmp_path)
    before = _coarse_results(project)
    assert sorted(before) == ["0", "1", "2", "3"]
    sh(
        project,
        "dvc",
        "exp",
        "run",
        "-n",
        "more-coarse",
        "-S",
        "config/config.yaml:coarse.trials=5",
    )
    # the four finished coarse trials were reused untouched; only the fifth trained
    after = _coarse_results(project)
    assert sorted(after) == ["0", "1", "2", "3", "4"]
    assert {name: after[name] for name in before} == before
    workers = [
        json.loads(p.read_text())
        for p in (project / RESULTS / "coarse" / "workers").glob("*.json")
    ]
    assert sorted(name for w in workers for name in w["ran"]) == ["4"]
    # every worker passes over the finished trials (and may find the fifth done by another)
    assert {name for w in workers for name in w["reused"]} - {"4"} == {"0", "1", "2", "3"}

    table = list(csv.DictReader(io.StringIO(sh(project, "dvc", "exp", "show", "--csv"))))
    names = {row["Experiment"] for row in table}
    assert "more-coarse" in names
    assert all("test_mean" in row for row in table)
    assert all(row["chosen.arch"] in ("mlp", "cnn") for row in table)  # what each chose
    assert any(row["Experiment"] == "more-coarse" and row["trials"] == "8" for row in table)
    diff = sh(project, "dvc", "metrics", "diff", "HEAD", "more-coarse", "--json")
    assert f"{RESULTS}/final/metrics.json" in json.loads(diff)
    plots = tmp_path / "plots"
    sh(project, "dvc", "plots", "diff", "HEAD", "more-coarse", "-o", str(plots))
    assert (plots / "index.html").is_file()


@pytest.mark.slow
def test_repro_with_halving_tpe_and_sensitivity(tmp_path: Path) -> None:
    """The sweep settings the fixture's config leaves out: a coarse sweep that halves
    (its levels are an output), a fine sweep of TPE rounds (no levels), and the
    sensitivity rung, which the report stage runs through Snakemake."""
    root = tmp_path / "project"
    copy_checkout(root)
    config = tiny_config(
        experiment="settings",
        mlflow={"enabled": False},
        coarse={
            "trials": 4,
            "epochs": 2,
            "sampler": "sobol",
            "halving": {"eta": 2, "min_epochs": 1},
        },
        fine={"trials": 4, "epochs": 2, "sampler": "tpe", "batch": 2},
        seeds={"finalists": 1, "seeds": 2, "epochs": 2},
        sensitivity={"enabled": True, "values": 3, "seeds": 2},
    )
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "project")
    sh(root, "dvc", "repro")
    results = root / "results" / "settings"
    assert sorted(p.name for p in (results / "coarse" / "levels").iterdir()) == ["0", "1"]
    assert json.loads((results / "fine" / "plan.json").read_text())["sampler"] == "tpe"
    sensitivity = json.loads((results / "sensitivity" / "results.json").read_text())
    assert sensitivity["trials"] and (results / "report" / "index.html").is_file()
    assert "Data and pipelines are up to date" in sh(root, "dvc", "repro")
    dry_run = sh(root, "snakemake", "-n")
    assert "Nothing to be done" in dry_run, dry_run


def _imports(node: ast.AST, package: str) -> set[str]:
    """tuneladder modules imported anywhere under ``node`` (lazy ones too, not TYPE_CHECKING)."""
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if isinstance(child, ast.Import):
            found |= {a.name for a in child.names if a.name.startswith("tuneladder")}
        elif isinstance(child, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - child.level + 1]
            module = ".".join([*base, child.module] if child.level else [child.module or ""])
            if module.startswith("tuneladder"):
                for alias in child.names:
                    sub = f"{module}.{alias.name}"
                    found.add(sub if _source(sub).exists() else module)
        found |= _imports(child, package)
    return found


def _source(module: str) -> Path:
    path = REPO / "src" / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _modules_run_by(script: Path) -> set[str]:
    """Every module a workflow script's stage functions import, followed through imports.

    A script imports ``tuneladder.stages``, which loads each rung's stage module: their
    module-level imports run, and of their functions only those the script calls (and
    the helpers those call) import more.
    """
    package = ast.parse(_source("tuneladder.stages").read_text())
    stage_modules = [n.module for n in package.body if isinstance(n, ast.ImportFrom)]
    functions: dict[str, ast.FunctionDef] = {}
    todo = _imports(ast.parse(script.read_text()), "")
    for stage_module in stage_modules:
        tree = ast.parse(_source(stage_module).read_text())
        functions |= {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        for node in tree.body:  # a stage module's own imports run whatever it is used for
            if isinstance(node, ast.Import | ast.ImportFrom):
                todo |= _imports(ast.Module(body=[node], type_ignores=[]), "tuneladder.stages")
    called = [a.name for a in _import_nodes(script) if a.name in functions]
    seen_functions: set[str] = set()
    while called:  # the stage functions, and the helpers they call
        name = called.pop()
        if name not in seen_functions:
            seen_functions.add(name)
            todo |= _imports(functions[name], "tuneladder")
            called += [
                c.func.id
                for c in ast.walk(functions[name])
                if isinstance(c, ast.Call)
                and isinstance(c.func, ast.Name)
                and c.func.id in functions
            ]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or module == "tuneladder":  # the package's __init__: a version
            continue
        seen.add(module)
        source = _source(module)
        package = module if source.name == "__init__.py" else module.rpartition(".")[0]
        if module not in ("tuneladder.stages", *stage_modules):
            todo |= _imports(ast.parse(source.read_text()), package)
        parts = module.split(".")
        todo |= {".".join(parts[:i]) for i in range(2, len(parts))}  # parent packages
    return seen


def _import_nodes(script: Path) -> list[ast.alias]:
    tree = ast.parse(script.read_text())
    return [a for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]


def test_each_stage_depends_on_the_code_its_rules_run() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = []
    for name, stage in stages.items():
        deps = [REPO / d for d in stage["deps"] if not d.startswith("results/")]
        scripts = [d for d in deps if d.parent == REPO / "workflow" / "scripts"]
        assert scripts, f"{name}: no workflow script among its deps"
        for script in scripts:
            for module in sorted(_modules_run_by(script)):
                source = _source(module)
                if not any(source == d or d in source.parents for d in deps):
                    missing.append(f"{name}: {script.name} runs {module}")
    assert not missing, "dvc.yaml stages lack deps: " + "; ".join(missing)


def test_every_param_a_stage_reads_is_in_the_shipped_config() -> None:
    """`dvc repro` on the config as shipped: DVC refuses a stage whose param the file
    lacks (the tests' own configs write every section, so only this finds it)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = []
    for name, stage in stages.items():
        for group in stage.get("params", []):
            for key in group.get("config/config.yaml", []):
                node = config
                for part in key.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node is None:
                    missing.append(f"{name}: {key}")
    assert not missing, "config/config.yaml lacks: " + "; ".join(missing)
