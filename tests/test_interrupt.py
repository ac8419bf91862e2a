"""Stop Snakemake and its trial processes mid-sweep (SIGKILL, Ctrl-C, SIGTERM to Snakemake
alone, `tuneladder stop`), then rerun."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import (
    REPO,
    SNAKEMAKE,
    results_of,
    rung_target,
    snakemake,
    tuneladder,
    write_fault_ladder,
)
from tuneladder import cli
from tuneladder.store.io import read_json

EPOCHS = 6
FIRST_RUN = "first-run.log"  # what the interrupted run printed


def slow_ladder(workdir: Path) -> None:
    """Coarse trials of ~0.3 s an epoch that checkpoint every epoch."""
    write_fault_ladder(
        workdir,
        checkpoint_every_s=0,
        train={"epochs": 2, "batch_size": 64, "lr": 0.05},
        space={
            "lr": {"dist": "loguniform", "low": 0.01, "high": 0.1},
            "sleep_s": {"dist": "choice", "values": [0.3]},
        },
        coarse={"trials": 4, "epochs": EPOCHS, "sampler": "random"},
        fine={"trials": 1, "epochs": 1},
        seeds={"finalists": 1, "seeds": 1, "epochs": 1},
    )


def start(workdir: Path, *args: str) -> subprocess.Popen:
    profile = str(REPO / "profiles" / "default")
    command = [SNAKEMAKE, "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
               "--workflow-profile", profile, "--cores", "2", *args]  # fmt: skip
    with open(workdir / FIRST_RUN, "w") as log:  # the child holds its own copy of the file
        return subprocess.Popen(
            command,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers are in it too
        )


def _epochs_saved(checkpoint: Path) -> int | None:
    try:
        return len(torch.load(checkpoint, weights_only=True)["history"])
    except Exception:  # gone or replaced this instant: look again
        return None


def wait_for_mid_sweep(workdir: Path, proc: subprocess.Popen) -> tuple[set[Path], Path]:
    """Until one coarse trial is finished and another is early in its epochs.

    Early enough (at most half its epochs saved) that the kill lands before it
    ends: a trial caught in its last epoch would finish and leave nothing to resume.
    """
    trials = results_of(workdir) / "coarse" / "trials"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, "snakemake ended before it could be interrupted"
        done = {p.parent for p in trials.glob("*/result.json")}
        running = [
            p.parent
            for p in trials.glob("*/checkpoint.pt")
            if p.parent not in done and 1 <= (_epochs_saved(p) or 0) <= EPOCHS // 2
        ]
        if done and running:
            time.sleep(0.4)  # one more epoch into the running trial
            return done, running[0]
        time.sleep(0.05)
    raise AssertionError("no coarse trial finished while another was early in its epochs")


def fingerprints(dirs: set[Path]) -> dict[Path, tuple[int, str]]:
    return {
        p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for d in dirs
        for p in d.iterdir()
        if p.is_file()
    }


def rerun_coarse(workdir: Path) -> subprocess.CompletedProcess:
    """The rerun, as far as the interrupted rung: the rungs after it are as in any ladder
    (the SIGKILL test alone climbs on to the report)."""
    return snakemake(workdir, rung_target(workdir, "coarse"))


def check_resumed_ladder(workdir: Path, done: set[Path], before: dict, running: Path) -> None:
    results = results_of(workdir)
    assert fingerprints(done) == before, "a finished trial was retrained"
    for entry in read_json(results / "coarse" / "results.json")["trials"]:
        assert entry["status"] == "ok"
        assert entry["epochs_run"] == EPOCHS
    result = read_json(running / "result.json")
    assert result["resumed_from_epoch"] is not None and result["resumed_from_epoch"] >= 1
    epochs = [
        int(line.split(",")[0]) for line in (running / "history.csv").read_text().split()[1:]
    ]
    assert epochs == list(range(EPOCHS))
    assert not (running / "checkpoint.pt").exists()


def interrupt_and_rerun(workdir: Path, sig: signal.Signals) -> None:
    slow_ladder(workdir)
    proc = start(workdir)
    try:
        done, running = wait_for_mid_sweep(workdir, proc)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.5)  # the group's last processes are gone
    # whatever was left on disk: every result.json there is whole, never half a file
    for path in (results_of(workdir) / "coarse" / "trials").glob("*/result.json"):
        assert read_json(path)["key"]
    before = fingerprints(done)
    if sig == signal.SIGKILL:
        assert list((workdir / ".snakemake" / "locks").glob("*.lock"))  # left behind
    else:  # Ctrl-C: no traceback, no replayed log, one line on what was kept and what next
        printed = (workdir / FIRST_RUN).read_text()
        assert "Traceback" not in printed and "KeyboardInterrupt" not in printed
        assert "Logfile" not in printed
        said = [line for line in printed.splitlines() if line.startswith("tuneladder: stopped")]
        assert len(said) == 1 and "trials kept: coarse " in said[0], printed[-3000:]
        assert "goes on from there" in said[0]
        # this run's folder, whole: under --directory the shell may be elsewhere
        assert f"`tuneladder status --results {results_of(workdir).resolve()}`" in said[0]
    # no --unlock: nothing holds the lock any more
    rerun = snakemake(workdir) if sig == signal.SIGKILL else rerun_coarse(workdir)
    killed = "removed the lock of an earlier run that was killed" in rerun.stderr
    assert killed == (sig == signal.SIGKILL)
    check_resumed_ladder(workdir, done, before, running)
    if sig == signal.SIGKILL:
        assert (results_of(workdir) / "report" / "index.html").is_file()


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun(tmp_path: Path) -> None:
    interrupt_and_rerun(tmp_path, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_mid_sweep_then_rerun(tmp_path: Path) -> None:
    interrupt_and_rerun(tmp_path, signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "tuneladder stop"])
def test_graceful_stop_mid_sweep_then_rerun(tmp_path: Path, how: str, capsys) -> None:
    """Snakemake's graceful stop (SIGTERM to it alone: the workers get no signal) and
    `tuneladder stop` stop the trials in training at their epoch's end, not once the
    rung is done: the running trial leaves its checkpoint, and the rerun resumes it."""
    slow_ladder(tmp_path)
    # as the config file says: an override with a space, which the last line must quote
    proc = start(tmp_path, "--config", "mlflow={enabled: false}")
    try:
        done, running = wait_for_mid_sweep(tmp_path, proc)
        if how == "sigterm":
            os.kill(proc.pid, signal.SIGTERM)
        else:  # in this process: a fresh interpreter's start-up could outlast the trial
            assert cli.main(["stop", "--results", str(results_of(tmp_path))]) == 0
            said = capsys.readouterr().out
            assert "each worker stops at its trial's next epoch end" in said
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert not (running / "result.json").exists(), "the running trial trained to its end"
    assert (running / "checkpoint.pt").is_file()
    printed = (tmp_path / FIRST_RUN).read_text()
    by = "SIGTERM to process" if how == "sigterm" else "tuneladder stop"
    said = [line for line in printed.splitlines() if line.startswith("tuneladder: stopped")]
    assert len(said) == 1 and f"stopped as asked, by {by}" in said[0], printed[-3000:]
    assert "trials kept: coarse " in said[0] and "goes on from there" in said[0]
    assert " --config 'mlflow={enabled: false}'` goes on from there" in said[0]
    status = tuneladder("status", "--results", str(results_of(tmp_path)), cwd=tmp_path)
    assert "stopped (as asked at " in status.stdout and by in status.stdout
    before = fingerprints(done)
    rerun_coarse(tmp_path)  # the stop asked of the first run does not hold for this one
    check_resumed_ladder(tmp_path, done, before, running)
    assert not (results_of(tmp_path) / "stop-requested.json").exists()
