"""Snakemake's locks after a kill: removed when no Snakemake process works in the folder."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuneladder.infra.stale_locks import clear_stale_locks, lock_holders

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes in /proc")


def locked(workdir: Path) -> Path:
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("a\n")
    (locks / "0.output.lock").write_text("results/exp/coarse/results.json\n")
    return locks


def stand_in(cwd: Path) -> subprocess.Popen:
    """A process whose command line names snakemake, as a run's main process and jobs do."""
    script = "import sys, time; print('up', flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "snakemake"], cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "up\n"
    return proc


def test_a_lock_nothing_holds_is_removed(tmp_path: Path) -> None:
    locks = locked(tmp_path)
    said = clear_stale_locks(tmp_path)
    assert said is not None and "removed the lock" in said
    assert not list(locks.iterdir())
    assert clear_stale_locks(tmp_path) is None  # no lock, nothing to say


def test_a_lock_a_live_run_holds_stays(tmp_path: Path) -> None:
    locks = locked(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs_here, runs_elsewhere = stand_in(tmp_path), stand_in(elsewhere)
    try:
        assert lock_holders(tmp_path) == [runs_here.pid]
        # the lock stays (Snakemake says it is locked, as it should), and the line names
        # what holds it: after a kill -9 of Snakemake alone, its jobs, still training
        said = clear_stale_locks(tmp_path)
        assert said is not None and f"PIDs {runs_here.pid}" in said
        assert f"`kill {runs_here.pid}`" in said and "`--unlock` now would" in said
        assert clear_stale_locks(tmp_path, say_holders=False) is None  # a dry run
        assert f"PIDs {runs_here.pid}" in clear_stale_locks(tmp_path, results=Path("results/exp"))
        # a run of another experiment beside it: its outputs are not locked
        assert clear_stale_locks(tmp_path, results=Path("results/other")) is None
        assert len(list(locks.iterdir())) == 2
    finally:
        for proc in (runs_here, runs_elsewhere):
            proc.kill()
            proc.communicate()
    time.sleep(0.1)
    assert lock_holders(tmp_path) == []
    assert clear_stale_locks(tmp_path) is not None and not list(locks.iterdir())


def test_without_proc_it_says_what_to_run(tmp_path: Path, monkeypatch) -> None:
    """Where processes cannot be read (no /proc), a lock may be a live run's: it stays,
    and the line says what removes it."""
    assert lock_holders(tmp_path, proc=tmp_path / "no-proc") is None
    locks = locked(tmp_path)
    blind = functools.partial(lock_holders, proc=tmp_path / "no-proc")
    monkeypatch.setattr("tuneladder.infra.stale_locks.lock_holders", blind)
    said = clear_stale_locks(tmp_path)
    assert said is not None and "`snakemake --unlock` removes it" in said
    assert sorted(p.name for p in locks.iterdir()) == ["0.input.lock", "0.output.lock"]
