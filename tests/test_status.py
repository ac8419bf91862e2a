"""`tuneladder status` on a finished tiny ladder and on one stopped half-way."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import results_of, tiny_config, write_config
from tuneladder.config import resolve_config
from tuneladder.io import read_json
from tuneladder.status import format_status, ladder_status

TUNELADDER = str(Path(sys.executable).parent / "tuneladder")


def _status(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`tuneladder status` as a user runs it, from the folder the ladder ran in."""
    return subprocess.run(
        [TUNELADDER, "status", "--config", "config.yaml", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.slow
def test_status_of_a_finished_ladder(tiny_ladder: Path) -> None:
    results = results_of(tiny_ladder)
    status = json.loads(_status(tiny_ladder, "--json").stdout)
    assert status["experiment"] == "tiny"
    assert status["state"] == "finished" and status["report"]
    for rung in status["rungs"]:
        planned = len(read_json(results / rung["rung"] / "plan.json")["trials"])
        assert (rung["done"], rung["total"], rung["state"]) == (planned, planned, "done")
    sweep = [
        r
        for rung in ("coarse", "fine")
        for r in read_json(results / rung / "results.json")["trials"]
    ]
    assert status["best"]["value"] == max(
        r["best_val_metric"] for r in sweep if r["status"] == "ok"
    )
    text = _status(tiny_ladder).stdout
    assert text.startswith("experiment tiny in results/tiny: finished")
    assert "finished" in text and "best so far: val accuracy" in text
    assert "report: " in text and "elapsed: " in text


@pytest.mark.slow
def test_status_of_a_ladder_stopped_half_way(tiny_ladder: Path, tmp_path: Path) -> None:
    write_config(tmp_path)
    source, results = results_of(tiny_ladder), results_of(tmp_path)
    for part in ("data", "sanity"):
        shutil.copytree(source / part, results / part)
    (results / "coarse").mkdir()
    shutil.copy(source / "coarse" / "plan.json", results / "coarse" / "plan.json")
    for name in ("0", "1"):
        shutil.copytree(source / "coarse" / "trials" / name, results / "coarse" / "trials" / name)
    claims = results / "coarse" / "claims"
    claims.mkdir()
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": 0}
    (claims / "2.claim").write_text(json.dumps(holder))  # a live worker holds trial 2

    config = resolve_config(tiny_config())
    status = ladder_status(results, config=config)
    assert status["state"] == "running"
    coarse, fine, seeds = status["rungs"]
    assert (coarse["done"], coarse["total"], coarse["running"]) == (2, 4, 1)
    assert fine["state"] == seeds["state"] == "not started"
    assert (fine["total"], seeds["total"]) == (3, 6)  # from the config
    assert status["trials_left"] == 2 + 3 + 6
    coarse_mean = sum(t["total_seconds"] for t in coarse["trials"]) / 2
    expected = (coarse_mean * 2 + status["mean_trial_s"] * 9) / status["workers"]
    assert status["estimate_left_s"] == pytest.approx(expected)
    text = format_status(status)
    assert "coarse   2/4 done (1 running)" in text and "fine     not started (3 trials)" in text
    assert "left: ~" in text

    (claims / "2.claim").unlink()  # the worker was killed: the ladder stopped half-way
    without_config = ladder_status(results)
    assert without_config["state"] == "stopped"
    assert without_config["unplanned"] == ["fine", "seeds"] and without_config["trials_left"] == 2
    text = _status(tmp_path, "--results", str(results)).stdout
    assert "stopped" in text and "fine     not started (3 trials)" in text


@pytest.mark.slow
def test_a_stale_final_summary_is_not_finished(tiny_ladder: Path, tmp_path: Path) -> None:
    """The final rung of an earlier, smaller ladder does not make a larger one finished."""
    write_config(tmp_path, fine={"trials": 5, "epochs": 2})
    shutil.copytree(results_of(tiny_ladder), results_of(tmp_path))
    status = json.loads(_status(tmp_path, "--json").stdout)
    assert status["state"] == "stopped"
    fine = status["rungs"][1]
    # the 3 trials of the old plan on disk, of the 5 the config plans now
    assert (fine["done"], fine["total"]) == (3, 5)


def test_status_before_anything_ran(tmp_path: Path) -> None:
    write_config(tmp_path, experiment="fresh")
    assert ladder_status(tmp_path / "results" / "fresh")["state"] == "not started"
    text = _status(tmp_path).stdout
    assert text == "experiment fresh in results/fresh: not started\n"
