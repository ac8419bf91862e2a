from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tuneladder.store.claims import ClaimBook


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


def test_a_claim_says_where_its_holder_trains_when_told(tmp_path: Path) -> None:
    on_gpu, on_cpu = ClaimBook(tmp_path, where="GPU 1"), ClaimBook(tmp_path)
    assert on_gpu.try_claim("a") and on_cpu.try_claim("b")
    assert on_cpu.where("a") == (socket.gethostname(), "GPU 1")
    assert on_gpu.where("b") is None and on_gpu.where("gone") is None
    for odd in ({"host": "h", "where": 5}, {"host": ["h"], "where": "GPU 0"}, [1], "x"):
        on_gpu.path("odd").write_text(json.dumps(odd))  # not a claim of ours: not said
        assert on_gpu.where("odd") is None
    assert on_cpu.holder("a") == (socket.gethostname(), os.getpid())  # as before


def test_release_only_removes_own_claim(tmp_path: Path) -> None:
    book = ClaimBook(tmp_path)
    book.path("x").write_text(json.dumps({"host": "elsewhere", "pid": 5}))
    book.release("x")
    assert book.path("x").exists()
    assert book.try_claim("y")
    book.release("y")
    assert not book.path("y").exists()


def test_worker_order_takes_own_stripe_then_steals_from_the_end() -> None:
    from tuneladder.execution.worker import (
        worker_order,  # here: spawned claimers need not load torch
    )

    assert worker_order(7, worker=1, workers=3, steal=False) == [1, 4]
    assert worker_order(7, worker=1, workers=3, steal=True) == [1, 4, 6, 5, 3, 2, 0]
    every = set()
    for w in range(3):
        every |= set(worker_order(7, worker=w, workers=3, steal=False))
    assert every == set(range(7))


class _Slow(torch.nn.Module):
    """A linear model whose every forward pass waits: an epoch longer than stale_s."""

    def __init__(self, features: int, outputs: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(1.0)
        return self.linear(x.flatten(1))


def _slow_model(hp, info) -> torch.nn.Module:
    return _Slow(int(torch.tensor(info.input_shape).prod()), info.n_outputs)


def _train_slowly(rung_dir: str, digits, done) -> None:
    import dataclasses

    from tuneladder.core.hparams import TrialConfig
    from tuneladder.execution.worker import TrialSetup, Worker, WorkerRuntime
    from tuneladder.tasks import load_task

    config = TrialConfig(epochs=1, batch_size=512, model={})
    plan = {"rung": "coarse", "trials": [{"name": "0", "index": 0, "dir": "trials/0",
                                          "config": config.to_json()}]}  # fmt: skip
    task = dataclasses.replace(load_task("digits"), build_model=_slow_model)
    setup = TrialSetup(task=task, data=digits, metric="accuracy", mode="max")
    # said to train on a GPU, as a worker on one is: its claims say which
    runtime = WorkerRuntime(device=torch.device("cpu"), stale_claim_s=1.0, where="GPU 1")
    report = Worker(plan, rung_dir, setup=setup, runtime=runtime).run()
    done.put(report["ran"])


def test_a_claim_outlives_an_epoch_longer_than_stale_s(tmp_path: Path, digits) -> None:
    """Another host may take a claim over once its heartbeat is stale_s old: the worker
    training the trial keeps it fresh from a thread, so an epoch of several seconds
    (stale_s is 1 s here) is trained once, by the worker that claimed it."""
    ctx = mp.get_context("fork")
    done = ctx.Queue()
    worker = ctx.Process(target=_train_slowly, args=(str(tmp_path), digits, done))
    worker.start()
    elsewhere = ClaimBook(tmp_path / "claims", stale_s=1.0, host="another-node")
    held_for, said = 0.0, set()
    start = time.monotonic()
    while worker.is_alive() and time.monotonic() - start < 120:
        if elsewhere.path("0").exists():
            assert not elsewhere.try_claim("0"), "a live worker's claim was taken over"
            held_for = time.monotonic() - start
            said.add(elsewhere.where("0"))
        time.sleep(0.1)
    worker.join(timeout=60)
    assert worker.exitcode == 0 and done.get(timeout=5) == ["0"]
    assert held_for > 2.5  # the claim was held (and tried) for over 2.5 x stale_s
    assert (socket.gethostname(), "GPU 1") in said - {None}  # None: gone as it was read
    assert (tmp_path / "trials" / "0" / "result.json").is_file()


def test_claims_age_on_the_clock_they_are_given(tmp_path: Path) -> None:
    now = [1000.0]
    mine = ClaimBook(tmp_path, stale_s=60, host="sim-0", pid=1, clock=lambda: now[0])
    other = ClaimBook(tmp_path, stale_s=60, host="sim-1", pid=1, clock=lambda: now[0])
    assert mine.try_claim("t") and not other.try_claim("t")
    now[0] += 50
    mine.heartbeat("t")
    now[0] += 50  # 100 s since the claim, 50 since its heartbeat: still held
    assert not other.try_claim("t")
    now[0] += 11  # its holder stopped beating: taken over
    assert other.try_claim("t") and other.holder("t") == ("sim-1", 1)


def test_a_worker_asked_to_stop_claims_nothing_and_keeps_what_it_trained(
    tmp_path: Path, digits
) -> None:
    """A stop file in the ladder's folder: the worker stops before its next claim (and
    gives back the claim it stopped at), with the trials it finished kept."""
    from tuneladder.core.errors import StopRequested
    from tuneladder.core.hparams import TrialConfig
    from tuneladder.execution.worker import TrialSetup, Worker, WorkerRuntime
    from tuneladder.store.stop_request import StopFile
    from tuneladder.tasks import load_task

    task = load_task("digits")
    config = TrialConfig(epochs=2, batch_size=512, model={**task.defaults, "arch": "mlp"})
    trials = [
        {"name": str(i), "index": i, "dir": f"trials/{i}", "config": config.to_json()}
        for i in range(3)
    ]
    stop = StopFile(tmp_path)
    asked = []

    def stop_after_one() -> bool:  # the first trial's epoch ends, then the stop is asked
        if (tmp_path / "trials" / "0" / "result.json").is_file() and not asked:
            stop.request("a test")
            asked.append(True)
        return stop.asked()

    setup = TrialSetup(task=task, data=digits, metric="accuracy", mode="max")
    runtime = WorkerRuntime(device=torch.device("cpu"), stop_asked=stop_after_one)
    plan = {"rung": "coarse", "trials": trials}
    with pytest.raises(StopRequested, match="no new trial starts"):
        Worker(plan, tmp_path, setup=setup, runtime=runtime).run()
    assert [p.parent.name for p in tmp_path.glob("trials/*/result.json")] == ["0"]
    assert not list((tmp_path / "claims").glob("*.claim"))
    assert stop.read()["by"] == "a test"
    stop.clear()
    report = Worker(plan, tmp_path, setup=setup, runtime=runtime).run()
    assert (report["reused"], report["ran"]) == (["0"], ["1", "2"])
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("trials/*/result.json"))]
    assert [(r["status"], r["epochs_run"]) for r in results] == [("ok", 2)] * 3
