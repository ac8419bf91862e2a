"""Claim files: how worker jobs share one rung's trials without a coordinator.

A claim is created with ``O_CREAT | O_EXCL``, which is atomic on local disks
and on NFS (v3 and later), so two workers never run the same trial. A claim is
stale when its process is gone (same host) or its heartbeat (the file's mtime)
is older than ``stale_s`` (any host). The holder touches it from a thread of its
own (:meth:`ClaimBook.beating`) every ``stale_s / 4`` seconds at most, whatever
an epoch takes, so a long epoch never looks like a dead worker to another host.
Taking over a stale claim happens under a lock on the rung's claim folder, so two
workers cannot both take over the same one.

Time and identity are seams: ``clock`` (``time.time`` unless given) stamps and ages
the claims, and ``host``/``pid`` name the holder, so ``bench/scale_sim.py`` runs
this same code for a thousand simulated workers on a virtual clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["ClaimBook"]


class ClaimBook:
    """The claims of one rung, seen from one worker process."""

    def __init__(
        self,
        directory: str | Path,
        *,
        stale_s: float = 600.0,
        host: str | None = None,
        pid: int | None = None,
        clock: Callable[[], float] = time.time,
        where: str | None = None,
    ) -> None:
        """``host`` names this process's machine (the host name unless given), ``pid``
        the holder on it (this process's unless given), ``clock`` the time in seconds
        that claims are stamped and aged by (a file's mtime is on the same clock),
        ``where`` the device on that machine its trials train on, for status to show
        (``GPU 1``; None: not said, as on the CPU)."""
        if stale_s <= 0:
            raise ValueError(f"stale_s must be > 0, got {stale_s=}")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._stale_s = stale_s
        self._host = host or socket.gethostname()
        self._pid = os.getpid() if pid is None else pid
        self._clock = clock
        self._where = where

    @contextlib.contextmanager
    def beating(self, name: str) -> Iterator[None]:
        """Keep the claim on ``name`` fresh while the block runs (training it)."""
        stop = threading.Event()
        every = min(self._stale_s / 4, 30.0)

        def beat() -> None:
            while not stop.wait(every):
                self.heartbeat(name)

        thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def path(self, name: str) -> Path:
        return self._dir / f"{name}.claim"

    def try_claim(self, name: str) -> bool:
        """True when this process now holds ``name``."""
        if self._create(name):
            return True
        with self._folder_lock():
            if not self.is_stale(name):
                return False
            self.path(name).unlink(missing_ok=True)
            return self._create(name)

    def heartbeat(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._touch(self.path(name))

    def release(self, name: str) -> None:
        path = self.path(name)
        if self.holder(name) == (self._host, self._pid):
            path.unlink(missing_ok=True)

    def holder(self, name: str) -> tuple[str, int] | None:
        data = self._record(name)
        try:
            return data["host"], int(data["pid"])
        except (ValueError, KeyError, TypeError):
            return None

    def where(self, name: str) -> tuple[str, str] | None:
        """The host and device its holder trains ``name`` on; None when the claim does
        not say (a CPU, or a claim written before claims said) or is gone."""
        data = self._record(name)
        host, where = data.get("host"), data.get("where")
        if isinstance(host, str) and isinstance(where, str) and where:
            return host, where
        return None  # not said, or not by a worker of ours

    def _record(self, name: str) -> dict[str, Any]:
        """A claim's JSON; empty when it is gone, torn, or not a mapping."""
        try:
            data = json.loads(self.path(name).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_stale(self, name: str) -> bool:
        path = self.path(name)
        try:
            age = self._clock() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if age > self._stale_s:
            return True
        holder = self.holder(name)
        if holder is None:
            # being written this instant, or torn by a crash: only age can tell
            return age > 5.0
        host, pid = holder
        return host == self._host and not _alive(pid)

    def _create(self, name: str) -> bool:
        try:
            fd = os.open(self.path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            held = {"host": self._host, "pid": self._pid, "since": self._clock()}
            json.dump(held if self._where is None else {**held, "where": self._where}, handle)
        if self._clock is not time.time:
            self._touch(self.path(name))
        return True

    def _touch(self, path: Path) -> None:
        """Stamp a claim's heartbeat: on the real clock the file system's own time (the
        server's on NFS, as every host reads it), on another clock that clock's time."""
        if self._clock is time.time:
            os.utime(path)
        else:
            now = self._clock()
            os.utime(path, (now, now))

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[None]:
        with open(self._dir / ".lock", "a") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)  # lockf: POSIX locks, which NFS carries
            try:
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
