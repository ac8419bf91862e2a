from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO

TUNELADDER = str(Path(sys.executable).parent / "tuneladder")


def test_trial_command_prints_one_line_per_epoch(tmp_path: Path, digits_dir: Path) -> None:
    proc = subprocess.run(
        [
            TUNELADDER,
            "trial",
            "--config",
            str(REPO / "config" / "config.yaml"),
            "--set",
            "lr=1e-3",
            "--set",
            "epochs=3",
            "--set",
            "arch=mlp",
            "--seed",
            "0",
            "--out",
            str(tmp_path / "trial"),
            "--data",
            str(digits_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 3 and "val_accuracy" in epochs[0]
    result = json.loads((tmp_path / "trial" / "result.json").read_text())
    assert result["config"]["lr"] == 1e-3 and result["status"] == "ok"


def test_trial_command_reports_a_bad_override_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            TUNELADDER,
            "trial",
            "--config",
            str(REPO / "config" / "config.yaml"),
            "--set",
            "lr=-1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tuneladder: error: train.lr must be > 0, got -1"


def test_config_command_writes_a_whole_experiment_dvc_can_read(tmp_path: Path) -> None:
    """A partial experiment file, resolved: every key filled, and every key dvc.yaml's
    stages name as params present, so the output can be the config DVC versions."""
    import yaml

    from tuneladder.ladder.config import resolve_config

    command = [TUNELADDER, "config", "--config", str(REPO / "config/examples/csv.yaml")]
    proc = subprocess.run([*command, "--set", "coarse.trials=7"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    full = yaml.safe_load(proc.stdout)
    raw = yaml.safe_load((REPO / "config/examples/csv.yaml").read_text())
    assert full["experiment"] == raw["experiment"] and full["coarse"]["trials"] == 7
    assert resolve_config(full) == full  # already whole: resolving it changes nothing
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    named = {
        key
        for stage in stages.values()
        for group in stage.get("params", [])
        for key in group.get("config/config.yaml", [])
    }
    for key in sorted(named):
        node = full
        for part in key.split("."):
            assert part in node, f"dvc.yaml's param {key} is not in the resolved config"
            node = node[part]
    bad = subprocess.run([*command, "--set", "coarse.trials=-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "coarse.trials" in bad.stderr


def test_trial_path_imports_no_pandas_matplotlib_or_sklearn() -> None:
    code = (
        "import sys\n"
        "import tuneladder.execution.worker, tuneladder.training.runner\n"
        "import tuneladder.data.prepared, tuneladder.tasks.digits\n"
        "import tuneladder.stages.common, tuneladder.infra.device\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'sklearn', 'optuna', 'scipy')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_stop_asks_nothing_of_a_ladder_that_does_not_run_there(tmp_path: Path) -> None:
    """Never started, not running, or the run here works on another experiment: the
    stop is refused with the reason, and no file is written (no folder made)."""

    def stop(results: Path) -> subprocess.CompletedProcess:
        command = [TUNELADDER, "stop", "--results", str(results)]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)

    typo = tmp_path / "results" / "typo"
    said = stop(typo)
    assert said.returncode == 1 and f"no ladder has started in {typo}" in said.stderr
    assert not typo.exists()
    idle = tmp_path / "results" / "idle"
    idle.mkdir(parents=True)
    (idle / "run_config.json").write_text("{}")
    said = stop(idle)
    assert said.returncode == 1
    assert f"no Snakemake process runs the ladder in {idle}: nothing to stop" in said.stderr
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/other/coarse/results.json\n")
    said = stop(idle)
    assert said.returncode == 1 and "works on another experiment's folder" in said.stderr
    assert not (idle / "stop-requested.json").exists()
    (locks / "0.output.lock").write_text("results/idle/coarse/results.json\n")
    said = stop(idle)  # a run here (on a cluster's node, its lock is all that shows)
    assert said.returncode == 0 and (idle / "stop-requested.json").is_file()
