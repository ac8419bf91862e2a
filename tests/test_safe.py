"""Safe by construction: safe YAML, weights-only torch.load, no shell, config paths checked."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers import REPO, tiny_config
from tuneladder.ladder.config import ConfigError, resolve_config

PY_FILES = sorted([*(REPO / "src").rglob("*.py"), *(REPO / "workflow").rglob("*.py")])
SMK_FILES = sorted([REPO / "workflow" / "Snakefile", *(REPO / "workflow").rglob("*.smk")])
YAML_ALLOWED = {"safe_load", "safe_dump", "dump", "YAMLError"}


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                yield owner.id, node.func.attr, node


def test_there_is_code_to_scan() -> None:
    assert len(PY_FILES) > 30 and len(SMK_FILES) > 5


@pytest.mark.parametrize("path", PY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_is_safe_and_torch_load_is_weights_only(path: Path) -> None:
    for owner, attr, node in calls(path):
        where = f"{path.relative_to(REPO)}:{node.lineno}"
        if owner == "yaml":
            assert attr in YAML_ALLOWED, f"{where}: yaml.{attr}"
        if owner == "torch" and attr == "load":
            flags = {k.arg: k.value for k in node.keywords}
            flag = flags.get("weights_only")
            assert isinstance(flag, ast.Constant) and flag.value is True, where
        if owner == "subprocess":
            shell = {k.arg: k.value for k in node.keywords}.get("shell")
            assert shell is None or (isinstance(shell, ast.Constant) and not shell.value), where
        assert (owner, attr) not in {("os", "system"), ("os", "popen"), ("pickle", "load")}, where
    tree = ast.parse(path.read_text())
    bare = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert not bare & {"eval", "exec"}, path
    assert "Loader=" not in path.read_text(), path


@pytest.mark.parametrize("path", SMK_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_rule_runs_a_shell_command(path: Path) -> None:
    # config values reach jobs as params of Python scripts, never through a shell line
    text = path.read_text()
    assert not re.search(r"^\s+(shell|run):", text, re.M), path


def test_csv_path_is_resolved_and_must_be_a_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.csv").write_text("a,label\n1,0\n2,1\n")
    task = {"name": "csv", "options": {"path": "sub/../sub/t.csv", "target": "label"}}
    config = {**tiny_config(), "task": task, "space": {"lr": "auto"}}
    resolve_config(config)  # relative paths are read from the directory of the run
    from tuneladder.tasks import load_task

    assert load_task("csv", task["options"]).name == "csv:t.csv"
    for bad, message in (("sub", "is a directory"), ("../nowhere.csv", "data file not found")):
        options = {"path": bad, "target": "label"}
        with pytest.raises(ConfigError, match=message) as caught:
            resolve_config({**config, "task": {"name": "csv", "options": options}})
        assert str(tmp_path.parent) in str(caught.value)  # the resolved path is named
