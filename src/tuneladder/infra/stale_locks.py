"""Snakemake's locks left behind by a run that was killed, and whether anything still holds them.

Snakemake locks a working directory's outputs in ``.snakemake/locks`` and frees
them as it exits; a ``kill -9`` or an out-of-memory kill leaves them, and the
next run stops with ``LockException`` until ``snakemake --unlock``. The locks
record no process, so this looks for one: a live Snakemake process (or one of
its jobs) whose working directory is this one. Without any, the locks are stale
and are removed, which is what ``--unlock`` does. Where processes cannot be
inspected (not Linux, another user's process), nothing is removed and the
caller says what to run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["clear_stale_locks", "lock_holders"]

LOCKS = Path(".snakemake") / "locks"


def clear_stale_locks(
    workdir: Path, *, say_holders: bool = True, results: Path | None = None
) -> str | None:
    """Remove ``workdir``'s Snakemake locks when no process holds them; one line on what was done.

    None when there were no locks. Live ones stay (a second run on the same outputs
    must stop, and Snakemake says so): with ``say_holders``, the line names the
    processes, which after a ``kill -9`` of Snakemake alone are its jobs, still
    training, that ``--unlock`` would leave racing a rerun for the same trials. Only
    where the locked outputs lie in ``results`` (when given): a run of another
    experiment in the same folder goes on beside them.
    """
    files = _lock_files(workdir)
    if not files:
        return None
    holders = lock_holders(workdir)
    if holders is None:
        return (
            "a Snakemake lock from an earlier run is in .snakemake/locks; if no Snakemake"
            " runs here any more, `snakemake --unlock` removes it"
        )
    if holders:
        if not say_holders or (results is not None and not _locks_under(files, workdir, results)):
            return None
        pids = " ".join(map(str, holders))
        return (
            f"Snakemake processes still work in this folder (PIDs {pids}: a run, or the jobs"
            " of one killed earlier): wait for them to end, or stop them with"
            f" `kill {pids}`, then rerun; `--unlock` now would let them and the rerun train"
            " the same trials"
        )
    for file in files:
        file.unlink(missing_ok=True)
    return "removed the lock of an earlier run that was killed (no Snakemake process holds it)"


def locks_outputs_under(workdir: Path, results: Path) -> bool | None:
    """Whether a Snakemake lock in ``workdir`` holds outputs in ``results``: a run works on
    that ladder. None when there is no lock at all."""
    files = _lock_files(workdir)
    return _locks_under(files, workdir, results) if files else None


def _lock_files(workdir: Path) -> list[Path]:
    locks = workdir / LOCKS
    return sorted(locks.glob("*.lock")) if locks.is_dir() else []


def _locks_under(files: list[Path], workdir: Path, results: Path) -> bool:
    """Whether a lock file lists an output in ``results`` (paths as Snakemake wrote them:
    relative to ``workdir``, or absolute)."""
    folder = (workdir / results).resolve()
    for file in files:
        if not file.name.endswith(".output.lock"):
            continue
        try:
            lines = file.read_text().splitlines()
        except OSError:
            continue
        for line in filter(None, map(str.strip, lines)):
            if (workdir / line).resolve().is_relative_to(folder):
                return True
    return False


def lock_holders(workdir: Path, proc: Path = Path("/proc")) -> list[int] | None:
    """Snakemake processes, other than this one and its parents, working in ``workdir``.

    None when that cannot be known: no ``/proc``, or a Snakemake process whose
    working directory may not be read (another user's).
    """
    if not proc.is_dir():
        return None
    here = workdir.resolve()
    mine = set(_ancestors(proc))
    holders: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone since the listing
            continue
        if b"snakemake" not in command:
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except FileNotFoundError:
            continue
        except OSError:
            return None
        if cwd == here:
            holders.append(int(entry.name))
    return holders


def _ancestors(proc: Path) -> Iterator[int]:
    """This process and its parents: a wrapper (a shell, ``dvc repro``) that started this run."""
    pid = os.getpid()
    while pid > 1:
        yield pid
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            return
        # "pid (command) state ppid ...": the command may hold spaces and parentheses
        pid = int(stat.rsplit(")", 1)[1].split()[1])
