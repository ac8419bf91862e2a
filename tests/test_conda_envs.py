"""`--software-deployment-method conda` installs this project from its own checkout.

Conda's channels cannot be reached from the test machines, so the environments are
not built here: these tests check the file Snakemake is handed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import REPO, snakemake, write_config
from tuneladder.infra.conda_envs import write_env_file


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_the_env_file_installs_the_checkout_by_absolute_path(kind: str, tmp_path: Path) -> None:
    template = REPO / "envs" / f"tuneladder-{kind}.yaml"
    out = write_env_file(template, REPO, tmp_path)
    spec, source = yaml.safe_load(out.read_text()), yaml.safe_load(template.read_text())
    (pip,) = [e["pip"] for e in spec["dependencies"] if isinstance(e, dict)]
    assert pip == ["--no-deps", f"-e {REPO.resolve()}"]
    # every conda package of the template is kept, in order
    assert [e for e in spec["dependencies"] if isinstance(e, str)] == [
        e for e in source["dependencies"] if isinstance(e, str)
    ]
    assert spec["channels"] == source["channels"]
    # parsing again (every cluster job does) leaves the file, and so the env's hash, alone
    before = out.stat().st_mtime_ns
    assert write_env_file(template, REPO, tmp_path) == out and out.stat().st_mtime_ns == before


def test_a_template_without_the_placeholder_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "env.yaml"
    template.write_text("dependencies:\n  - python=3.11\n  - pip:\n    - ..\n")
    with pytest.raises(ValueError, match="no pip entry '<checkout>'"):
        write_env_file(template, REPO, tmp_path / "out")


def test_rules_get_the_written_env_file(tmp_path: Path) -> None:
    write_config(tmp_path)
    proc = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert proc.returncode == 0
    written = tmp_path / ".snakemake" / "tuneladder-envs" / "tuneladder-cpu.yaml"
    assert f"-e {REPO.resolve()}" in written.read_text()
