"""bench/gpu_check.sh in its CPU dry mode: the GPU checks' own code, with a fake GPU.

On a GPU machine the same script climbs the ladders on the GPU (docs/benchmarks.md
has its figures); here it climbs them on the CPU under `--resources gpu=1`, which
runs the GPU probe and the lanes as on a GPU, and judges what a CPU can show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@pytest.mark.slow
def test_the_gpu_check_runs_its_checks_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "run", "--dry", "--out", str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for check in ("provenance", "ladder_fp32", "probe_fp32", "lanes_1", "lanes_2", "oom_retry"):
        assert any(line.startswith(f"PASS {check}:") for line in lines), (check, proc.stdout)
    assert "SKIP host_syncs: needs CUDA" in lines and "SKIP host_syncs_fp16: needs CUDA" in lines
    report = json.loads((out / "gpu_check.json").read_text())
    # two trials side by side on the fake GPU: two processes trained the sweep's trials
    assert report["lanes_1"]["processes"] == 1 and report["lanes_2"]["processes"] == 2
    assert report["lanes_2"]["trials_ok"] == report["lanes_1"]["trials_ok"] == 6
    probe = report["probe_fp32"]
    assert [level["trials"] for level in probe["levels"]][0] == 1
    assert probe["chosen"] in [level["trials"] for level in probe["levels"]]
    assert all(level["samples_per_s"] > 0 for level in probe["levels"])
    # the ladder's report shows what the probe measured and chose
    report_dir = out / "work" / "results" / "gpu-fp32" / "report"
    shown = json.loads((report_dir / "summary.json").read_text())["sanity"]["gpu_probe"]
    assert shown["chosen"] == probe["chosen"]
    assert [level["trials"] for level in shown["levels"]] == [
        level["trials"] for level in probe["levels"]
    ]
    chosen = "1 trial" if probe["chosen"] == 1 else f"{probe['chosen']} trials side by side"
    assert f"GPU probe: {chosen} on each GPU" in (report_dir / "index.html").read_text()


def test_nothing_to_install_passes_and_no_time_left_skips(tmp_path: Path) -> None:
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir()
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "run", "--wheels", str(wheels)]
        + ["--dry", "--budget-s", "5", "--out", str(out), "--only", "provenance", "lanes"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS install: 0 wheels" in proc.stdout
    for check in ("provenance", "lanes"):
        assert f"SKIP {check}: out of time: 5 s budget (--budget-s)" in proc.stdout


def test_a_command_past_its_time_is_ended_with_all_it_started(tmp_path: Path) -> None:
    """A Snakemake killed alone would leave its jobs, and their hold on the GPU, behind."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    marker = "617.25"  # a sleep no other process runs
    starts_a_child = f"import subprocess, time; subprocess.Popen(['sleep', '{marker}']);"
    rc, wall, _ = gpu_check._run(
        [sys.executable, "-c", starts_a_child + " time.sleep(600)"], tmp_path / "log", timeout=3
    )
    assert rc == 124 and wall < 30
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", left.stdout


def test_a_command_the_budget_cuts_is_skipped_not_failed(tmp_path: Path, monkeypatch) -> None:
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setattr(gpu_check, "MIN_CHECK_S", 0.5)
    gpu_check.BUDGET.deadline = time.monotonic() + 1.5
    with pytest.raises(gpu_check.OutOfTime, match="the budget ended it"):
        gpu_check._run([sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / "log")
    gpu_check.BUDGET.deadline = None  # its own limit, not the budget: a failure to judge
    rc, _, _ = gpu_check._run(
        [sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / "log", timeout=1
    )
    assert rc == 124
