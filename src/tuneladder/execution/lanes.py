"""Several trials side by side on one GPU: the lanes of a worker job.

A small trial leaves most of a large GPU idle: its kernels are short and the
host launches them one after another. A worker job that holds a GPU therefore
trains on ``N`` lanes: processes of their own, each with its own CUDA context
(and CUDA MPS where the machine runs it), each a worker of the rung that claims
trials like any other. Lane ``k`` of job ``w`` of ``W`` is worker ``w * N + k``
of ``W * N``, so the stripes, the stealing and the halving levels work as they
do between jobs. Snakemake still counts one job and one GPU.

The job's GPU claim is shared with its lanes: each inherits the lock's open
file, and the kernel drops the lock only when the last of them has ended, so
no other job stacks its lanes on that GPU meanwhile. The lanes end with their
job: a SIGTERM or SIGINT to the job is passed on, and each lane asks the kernel
to end it if the job dies first.

The lanes also take turns on their GPU (:class:`GpuShare`): a trial that runs
out of memory beside the others waits for the trials in flight to end, then
trains again alone, so that a config is never recorded as failed only because
of what its neighbours held.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.core.errors import StopRequested
from tuneladder.store.io import read_json

if TYPE_CHECKING:
    from tuneladder.infra.device import GpuClaim

__all__ = [
    "GpuShare",
    "clear",
    "die_with_parent",
    "lane_count",
    "lane_main",
    "lane_worker",
    "run_lanes",
]

log = logging.getLogger("tuneladder")

# how long a lane has to end after SIGTERM before it is killed
TERMINATE_S = 10.0

# a lane's exit code when it stopped because a stop of the ladder was asked
STOPPED_EXIT = 75  # EX_TEMPFAIL: the same command goes on


def lane_count(
    trials_per_gpu: int | str, *, probe: str | Path | None, trials: int, workers: int
) -> int:
    """How many lanes a worker job runs: the config's number, or what the probe chose
    for ``auto``; never more than the job could keep busy (its share of ``trials``)."""
    if trials_per_gpu == "auto":
        if probe is None or not Path(probe).is_file():
            log.warning("trials_per_gpu: auto without the GPU probe's result; one lane")
            wanted = 1
        else:
            wanted = int(read_json(probe)["chosen"])
    else:
        wanted = int(trials_per_gpu)
    share = math.ceil(trials / max(workers, 1)) if trials > 0 else 1
    return max(1, min(wanted, share))


def lane_worker(worker: int, workers: int, lane: int, lanes: int) -> tuple[int, int]:
    """(worker, workers) of lane ``lane`` of job ``worker`` of ``workers``."""
    if not (0 <= lane < lanes and 0 <= worker < workers):
        raise ValueError(f"lane {lane} of {lanes}, worker {worker} of {workers}: out of range")
    return worker * lanes + lane, workers * lanes


@dataclass(frozen=True)
class Lane:
    index: int
    process: subprocess.Popen
    spec: Path


def run_lanes(
    specs: Sequence[Mapping[str, Any]],
    folder: str | Path,
    *,
    module: str,
    claim: GpuClaim | None = None,
    threads: int = 1,
    log: str | Path | None = None,
) -> list[int]:
    """Run ``python -m module SPEC`` once per spec, side by side; wait for all of them.

    Each spec is written to ``folder`` as JSON; the lane reads it. The job's GPU
    ``claim`` stays held in every lane (its locked file is inherited). The lanes'
    output is appended to ``log`` (line by line, so lanes do not cut into each
    other's lines).
    Returns the exit codes; a SIGTERM or SIGINT to this process ends every lane
    first.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = claim.fileno() if claim is not None else None
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)  # the lanes share the job's cores
    lanes: list[Lane] = []

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    output = open(log, "a") if log is not None else None  # noqa: SIM115 - closed below
    try:
        for index, spec in enumerate(specs):
            path = folder / f"lane-{index}.json"
            path.write_text(json.dumps(dict(spec)))
            process = subprocess.Popen(
                [sys.executable, "-m", module, str(path)],
                env=env,
                pass_fds=(fd,) if fd is not None else (),
                stdout=output,
                stderr=output,
            )
            lanes.append(Lane(index, process, path))
        return [lane.process.wait() for lane in lanes]
    finally:
        _end(lanes)
        if output is not None:
            output.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class GpuShare:
    """The turns of the lanes of one GPU: trials side by side, or one trial alone.

    Every trial holds ``turns.lock`` shared while it trains. A lane whose trial ran
    out of memory takes ``gate.lock`` (no new trial starts), then ``turns.lock``
    exclusively (every trial in flight has ended and given back its memory), and
    trains again alone. A trial about to start passes the gate shared, for an
    instant, so it waits while one trains alone. ``flock`` locks belong to the
    open file: a lane that dies lets go of its turn with it.

    Example::

        share = GpuShare(folder)
        with share.trial():
            result = run_trial(..., retry_alone=share.alone)
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._gate = os.open(folder / "gate.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._turns = os.open(folder / "turns.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._in_turn = False

    @contextlib.contextmanager
    def trial(self) -> Iterator[None]:
        """Train beside the others; waits while a lane trains alone."""
        fcntl.flock(self._gate, fcntl.LOCK_SH)
        try:
            fcntl.flock(self._turns, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        self._in_turn = True
        try:
            yield
        finally:
            if self._in_turn:
                fcntl.flock(self._turns, fcntl.LOCK_UN)
                self._in_turn = False

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Train with the GPU to this lane alone: lets go of this lane's own turn, stops
        new trials at the gate, and waits for those in flight to end."""
        if self._in_turn:
            fcntl.flock(self._turns, fcntl.LOCK_UN)
            self._in_turn = False
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._turns, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._turns, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def close(self) -> None:
        for fd in (self._gate, self._turns):
            os.close(fd)


def clear(folder: str | Path) -> None:
    """Remove the lanes' folder (their specs, reports and meeting files), if there is one."""
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def _end(lanes: Sequence[Lane]) -> None:
    """SIGTERM to the lanes still running, then SIGKILL to any still there after a while."""
    running = [lane for lane in lanes if lane.process.poll() is None]
    for lane in running:
        lane.process.terminate()
    deadline = time.monotonic() + TERMINATE_S
    for lane in running:
        try:
            lane.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            lane.process.kill()
            lane.process.wait()


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def lane_main(argv: Sequence[str], run: Any) -> None:
    """A lane process's life: die with the job, log with its lane's name, run
    ``run(spec)``, and exit 1 (its traceback in the job's log) if that raises."""
    die_with_parent()
    spec = json.loads(Path(argv[1]).read_text())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s [lane {spec.get('lane')}] %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        run(spec)
    except StopRequested as err:
        log.warning("lane %s: %s", spec.get("lane"), err)
        raise SystemExit(STOPPED_EXIT) from None
    except Exception:
        log.exception("lane %s failed", spec.get("lane"))
        raise SystemExit(1) from None
