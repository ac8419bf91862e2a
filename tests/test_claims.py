from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

from tuneladder.claims import ClaimBook


def _claim_all(directory: str, names: list[str], out: str, barrier) -> None:
    book = ClaimBook(directory, stale_s=60)
    won = [n for n in names if book.try_claim(n)]
    Path(out).write_text(json.dumps(won))
    barrier.wait(timeout=60)  # stay alive: a dead holder's claims are rightly taken over


def test_concurrent_workers_never_claim_one_trial_twice(tmp_path: Path) -> None:
    names = [str(i) for i in range(200)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    procs = [
        ctx.Process(
            target=_claim_all,
            args=(str(tmp_path / "claims"), names, str(tmp_path / f"won{i}.json"), barrier),
        )
        for i in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    won = [n for i in range(8) for n in json.loads((tmp_path / f"won{i}.json").read_text())]
    assert sorted(won, key=int) == names  # every trial exactly once


def test_claim_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    book = ClaimBook(tmp_path, stale_s=3600)
    book.path("7").write_text(json.dumps({"host": os.uname().nodename, "pid": pid}))
    assert book.is_stale("7")
    assert book.try_claim("7")
    assert book.holder("7") == (os.uname().nodename, os.getpid())


def test_live_claim_is_respected_and_stale_heartbeat_is_not(tmp_path: Path) -> None:
    book = ClaimBook(tmp_path, stale_s=30)
    other = {"host": "another-node", "pid": 1}
    book.path("a").write_text(json.dumps(other))
    assert not book.try_claim("a")  # another host, fresh heartbeat
    old = time.time() - 120
    os.utime(book.path("a"), (old, old))
    assert book.try_claim("a")  # heartbeat older than stale_s


def test_release_only_removes_own_claim(tmp_path: Path) -> None:
    book = ClaimBook(tmp_path)
    book.path("x").write_text(json.dumps({"host": "elsewhere", "pid": 5}))
    book.release("x")
    assert book.path("x").exists()
    assert book.try_claim("y")
    book.release("y")
    assert not book.path("y").exists()


def test_worker_order_takes_own_stripe_then_steals_from_the_end() -> None:
    from tuneladder.worker import worker_order  # here: spawned claimers need not load torch

    assert worker_order(7, worker=1, workers=3, steal=False) == [1, 4]
    assert worker_order(7, worker=1, workers=3, steal=True) == [1, 4, 6, 5, 3, 2, 0]
    every = set()
    for w in range(3):
        every |= set(worker_order(7, worker=w, workers=3, steal=False))
    assert every == set(range(7))
