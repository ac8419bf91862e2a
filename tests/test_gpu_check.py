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


@pytest.mark.slow
def test_the_gpu_check_runs_its_checks_on_the_cpu(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "run", "--dry", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for check in ("provenance", "ladder_fp32", "probe_fp32", "lanes_1", "lanes_2"):
        assert any(line.startswith(f"PASS {check}:") for line in lines), (check, proc.stdout)
    assert "SKIP host_syncs: needs CUDA" in lines
    report = json.loads((out / "gpu_check.json").read_text())
    # two trials side by side on the fake GPU: two processes trained the sweep's trials
    assert report["lanes_1"]["processes"] == 1 and report["lanes_2"]["processes"] == 2
    assert report["lanes_2"]["trials_ok"] == report["lanes_1"]["trials_ok"] == 6
    probe = report["probe_fp32"]
    assert [level["trials"] for level in probe["levels"]][0] == 1
    assert probe["chosen"] in [level["trials"] for level in probe["levels"]]
    assert all(level["samples_per_s"] > 0 for level in probe["levels"])
