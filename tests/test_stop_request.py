"""A stop asked of a running ladder: the file, the SIGTERM it chains to, the watch."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tuneladder.store.io import write_json
from tuneladder.store.stop_request import STOP_FILE, StopFile


def test_a_new_run_clears_an_earlier_runs_stop_and_keeps_one_asked_as_it_started(
    tmp_path: Path,
) -> None:
    stop = StopFile(tmp_path)
    write_json(tmp_path / STOP_FILE, {"asked_at": 100.0, "by": "tuneladder stop"})
    stop.clear(before=200.0)  # asked of an earlier run
    assert not stop.asked()
    write_json(tmp_path / STOP_FILE, {"asked_at": 300.0, "by": "tuneladder stop"})
    stop.clear(before=200.0)  # asked while this run built its jobs: it holds
    assert stop.asked() and stop.read()["by"] == "tuneladder stop"
    (tmp_path / STOP_FILE).write_text("{torn")
    stop.clear(before=200.0)
    assert not stop.asked()


def test_sigterm_still_reaches_the_handler_before_when_the_file_cannot_be_written(
    tmp_path: Path,
) -> None:
    """A full or read-only disk must not keep Snakemake from its graceful stop."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        restore = StopFile(blocked / "results").on_sigterm()  # under a file: unwritable
        assert restore is not None
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert seen == [signal.SIGTERM]
        restore()
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert seen == [signal.SIGTERM] * 2  # the handler before, put back
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_stop_asked_from_elsewhere_becomes_a_sigterm_to_the_run(tmp_path: Path) -> None:
    """`tuneladder stop` writes the file; the run's watch sends itself SIGTERM (Snakemake's
    graceful stop, which retries no stopped job), and the file keeps who asked."""
    script = textwrap.dedent(f"""
        import signal, sys, time
        from tuneladder.store.stop_request import StopFile
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(7))  # Snakemake's, here
        stop = StopFile({str(tmp_path)!r})
        stop.on_sigterm()
        stop.watch(every_s=0.05)
        print("watching", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "watching"
        started = time.monotonic()
        StopFile(tmp_path).request("tuneladder stop")
        assert child.wait(timeout=20) == 7
        assert time.monotonic() - started < 10
    finally:
        child.kill()
        child.communicate()
    assert StopFile(tmp_path).read()["by"] == "tuneladder stop"
