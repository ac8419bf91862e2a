"""A stop asked of a running ladder: one file in its results folder.

Snakemake stops gracefully on SIGTERM: it starts no new job and waits for the
running ones. A sweep worker is one job that trains trials until its rung is
done, so that wait could last the whole sweep; on a cluster the workers are
processes on other machines besides. A file in the shared results folder
reaches them all: each looks at it before it claims a trial and at every
epoch's end, and stops there with the trial's state saved, so the same command
goes on from that epoch.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from tuneladder.store.io import read_json, write_json

__all__ = ["STOP_FILE", "StopFile"]

STOP_FILE = "stop-requested.json"


class StopFile:
    """The stop request of the ladder whose results are in ``results``.

    Example::

        StopFile("results/digits-default").request("tuneladder stop")
        StopFile("results/digits-default").asked()  # True, in every worker
    """

    def __init__(self, results: str | Path) -> None:
        self.path = Path(results) / STOP_FILE

    def request(self, by: str) -> None:
        """Ask every worker of the ladder to stop; ``by`` says who asked (for the logs)."""
        write_json(self.path, {"asked_at": time.time(), "by": by})

    def asked(self) -> bool:
        """Whether a stop is asked: one ``stat``, cheap enough for every epoch. A file
        system that cannot answer (an NFS hiccup) asks nothing: training goes on."""
        try:
            return self.path.exists()
        except OSError:
            return False

    def read(self) -> dict[str, Any] | None:
        """When and by whom the stop was asked; None when none is (or it went meanwhile)."""
        try:
            return dict(read_json(self.path))
        except (OSError, ValueError, TypeError):
            return None

    def asked_since(self, since: float) -> bool:
        """Whether a stop was asked at ``since`` or after: of the run that started then,
        not one an earlier run left."""
        asked = self.read()
        at = asked.get("asked_at") if asked is not None else None
        return isinstance(at, (int, float)) and at >= since

    def clear(self, before: float | None = None) -> None:
        """A new run starts: a stop asked of an earlier one does not hold for it. With
        ``before`` (when this run started), a stop asked since stays: the run was asked
        to stop while it built its jobs, and its workers stop as they start."""
        if before is not None and self.asked_since(before):
            return
        self.path.unlink(missing_ok=True)

    def on_sigterm(self) -> Callable[[], None] | None:
        """SIGTERM to this process (Snakemake's graceful stop) asks the workers to stop
        too, then does what it did before. Returns what puts the handler before back;
        None outside the main thread, where handlers cannot be set."""
        try:
            previous = signal.getsignal(signal.SIGTERM)

            def ask(signum: int, frame: FrameType | None) -> None:
                try:
                    if not self.asked():
                        self.request(f"SIGTERM to process {os.getpid()}")
                except OSError:  # a full or read-only disk: Snakemake still stops
                    pass
                finally:
                    if callable(previous):
                        previous(signum, frame)
                    elif previous == signal.SIG_DFL:
                        signal.signal(signal.SIGTERM, signal.SIG_DFL)
                        os.kill(os.getpid(), signal.SIGTERM)

            signal.signal(signal.SIGTERM, ask)
        except ValueError:  # not the main thread
            return None
        return lambda: signal.signal(signal.SIGTERM, previous)

    def watch(self, every_s: float = 2.0) -> Callable[[], None]:
        """Once a stop is asked from elsewhere (``tuneladder stop``), send this process
        SIGTERM: Snakemake then stops gracefully, submitting no more jobs and retrying
        none of the stopped ones (on a cluster, ``retries`` would queue each again).
        Call it after :meth:`on_sigterm`. Returns what ends the watch."""
        import threading

        done = threading.Event()

        def look() -> None:
            while not done.wait(every_s):
                if self.asked():
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

        threading.Thread(target=look, name="tuneladder-stop-watch", daemon=True).start()
        return done.set
