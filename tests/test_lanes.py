"""Several trials side by side on one GPU: lane counts, the probe's choice, and lanes
that end with their job and hold its GPU claim while they run (fake GPUs on the CPU)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO
from tuneladder.execution.lanes import GpuShare, lane_count, lane_worker
from tuneladder.stages.gpu_probe import choose, memory_split, probe_levels
from tuneladder.store.io import write_json

TESTS = Path(__file__).parent


def test_lane_workers_cover_every_worker_index_once() -> None:
    seen = [lane_worker(w, 2, k, 3) for w in range(2) for k in range(3)]
    assert sorted(seen) == [(i, 6) for i in range(6)]
    with pytest.raises(ValueError, match="out of range"):
        lane_worker(0, 2, 3, 3)


def test_lane_count_reads_the_probe_and_never_exceeds_the_jobs_share(tmp_path: Path) -> None:
    probe = tmp_path / "gpu_probe.json"
    write_json(probe, {"chosen": 8})
    assert lane_count("auto", probe=probe, trials=100, workers=2) == 8
    assert lane_count(4, probe=None, trials=100, workers=2) == 4
    # 6 trials over 2 jobs: a third lane in a job would have nothing to train
    assert lane_count("auto", probe=probe, trials=6, workers=2) == 3
    assert lane_count(4, probe=None, trials=0, workers=1) == 1
    assert lane_count("auto", probe=tmp_path / "missing.json", trials=10, workers=1) == 1


def test_probe_levels_double_up_to_the_most() -> None:
    assert probe_levels(16) == [1, 2, 4, 8, 16]
    assert probe_levels(6) == [1, 2, 4, 6]
    assert probe_levels(1) == [1]


def test_the_probe_chooses_the_fewest_lanes_near_the_best_throughput() -> None:
    # the H200's figures for the digits CNN: 1: 28.8k, 2: 52.9k, 4: 102k, 8: 197k, 16: 213k
    rates = {1: 28759.0, 2: 52911.0, 4: 101738.0, 8: 196532.0, 16: 212592.0}
    chosen, rule = choose(rates, per_trial_mb=856.0, total_mb=143771.0)
    assert chosen == 8 and "90%" in rule  # 16 gains 8% for twice the processes
    # memory decides when it holds fewer: 80% of 4000 MB at 1000 MB a trial is 3
    chosen, rule = choose(rates, per_trial_mb=1000.0, total_mb=4000.0)
    assert chosen == 3 and "memory allows 3" in rule
    assert choose({}, per_trial_mb=None, total_mb=None)[0] == 1


def test_the_probe_leaves_what_other_processes_hold_on_the_gpu() -> None:
    # 8 lanes of 1000 MB beside a notebook holding 60,000 MB of an 80,000 MB GPU: the
    # first lane alone makes the device hold 61,000, all eight 68,000
    per_trial, others = memory_split(61000.0, 68000.0, 8)
    assert (per_trial, others) == (1000.0, 60000.0)
    rates = {1: 1.0, 2: 2.0, 4: 4.0, 8: 8.0, 16: 16.0}
    chosen, rule = choose(rates, per_trial_mb=per_trial, total_mb=80000.0, others_mb=others)
    # 80% of the GPU is 64,000 MB, of which 4,000 are free of the notebook's
    assert chosen == 4 and "less 60000 MB other processes hold" in rule
    # without the first lane's figure the whole use is the trials': overstated, not under
    assert memory_split(None, 68000.0, 8) == (8500.0, None)
    assert memory_split(61000.0, 61000.0, 1) == (61000.0, None)
    assert memory_split(None, None, 8) == (None, None)
    # others gave memory back between the two readings: no split, the whole use per lane
    assert memory_split(70000.0, 68000.0, 8) == (8500.0, None)


PARENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tuneladder.infra.device import claim_gpu
    from tuneladder.execution.lanes import run_lanes

    folder, locks = Path(sys.argv[1]), sys.argv[2]
    claim = claim_gpu(1, lock_dir=locks, timeout_s=10)
    specs = [{"lane": k, "pid_file": str(folder / f"pid-{k}"), "sleep": sys.argv[3]}
             for k in range(2)]
    codes = run_lanes(specs, folder / "specs", module="sleepy_lane", claim=claim)
    print(codes)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of an ended lane still answers signal 0: ask /proc what state it is in
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def _start(
    tmp_path: Path, sleep: str = "60", stdout: int = subprocess.DEVNULL
) -> tuple[subprocess.Popen, list[int]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path), str(tmp_path / "locks"), sleep],
        env=_env(),
        stdout=stdout,
        text=True,
    )
    deadline = time.monotonic() + 60
    pids: list[int] = []
    while len(pids) < 2 and time.monotonic() < deadline:
        pids = [int(p.read_text()) for p in tmp_path.glob("pid-*") if p.read_text()]
        time.sleep(0.05)
    assert len(pids) == 2, "the lanes did not start"
    return parent, pids


def _wait_gone(pids: list[int], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "a lane outlived its job"


def _locked(lock: Path) -> bool:
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_lanes_end_with_their_job_and_hold_its_gpu_until_then(how, tmp_path: Path) -> None:
    parent, pids = _start(tmp_path)
    lock = tmp_path / "locks" / "gpu0.lock"
    assert _locked(lock)
    os.kill(parent.pid, how)
    parent.wait(timeout=30)
    _wait_gone(pids)  # SIGKILL too: each lane asked the kernel to end it with the job
    assert not _locked(lock), "the GPU stayed claimed after the job and its lanes ended"


def test_every_lane_runs_to_its_end(tmp_path: Path) -> None:
    parent, pids = _start(tmp_path, sleep="0.5", stdout=subprocess.PIPE)
    out, _ = parent.communicate(timeout=60)
    assert out.strip() == "[0, 0]"
    _wait_gone(pids)


def test_a_trial_alone_waits_for_those_in_flight_and_holds_back_new_ones(tmp_path: Path) -> None:
    """Three lanes' turns, each with its own open lock files as separate processes have."""
    first, second, third = (GpuShare(tmp_path) for _ in range(3))
    spans: dict[str, tuple[float, float]] = {}
    started = threading.Event()

    def train(name: str, share: GpuShare, seconds: float, alone: bool = False) -> None:
        with share.trial():
            if name == "first":
                started.set()
            with share.alone() if alone else contextlib.nullcontext():
                begun = time.monotonic()
                time.sleep(seconds)
                spans[name] = (begun, time.monotonic())

    in_flight = threading.Thread(target=train, args=("first", first, 0.6))
    in_flight.start()
    started.wait(10)
    retried = threading.Thread(target=train, args=("alone", second, 0.3, True))
    retried.start()
    deadline = time.monotonic() + 10
    while not _locked(tmp_path / "gate.lock") and time.monotonic() < deadline:
        time.sleep(0.01)  # until the retry holds the gate
    assert _locked(tmp_path / "gate.lock"), "the trial to retry alone never took the gate"
    late = threading.Thread(target=train, args=("late", third, 0.1))
    late.start()
    for thread in (in_flight, retried, late):
        thread.join(20)
    assert spans["alone"][0] >= spans["first"][1], "it trained alone beside a trial in flight"
    assert spans["late"][0] >= spans["alone"][1], "a new trial started while one trained alone"
    for share in (first, second, third):
        share.close()


def test_out_of_memory_beside_others_trains_again_alone(monkeypatch, tmp_path: Path) -> None:
    """Two lanes on a (fake) GPU; trial 0 runs out of memory on its first try. It waits
    for the other lane's trial in flight, trains alone, and no trial overlaps that."""
    import shutil

    from fault_task import DEFAULT_MODEL, make_task

    from tuneladder.core.hparams import TrialConfig
    from tuneladder.data.prepared import prepare
    from tuneladder.infra.device import Runtime
    from tuneladder.stages.sweep import WorkerJob, sweep_worker_stage
    from tuneladder.store.io import read_json

    shutil.copy(TESTS / "fault_task.py", tmp_path / "fault_task.py")
    monkeypatch.chdir(tmp_path)  # where the lanes find the plugin
    prepare(make_task({}), tmp_path / "data", seed=0)
    entries = []
    for index in range(6):
        model = {**DEFAULT_MODEL, "fault": "crowded" if index == 0 else "none", "fault_epoch": 0}
        model["sleep_s"] = 0.15
        config = {"epochs": 3, "seed": index, "lr": 0.05, "batch_size": 64, "model": model}
        entries.append(
            {
                "name": str(index),
                "index": index,
                "dir": f"trials/{index}",
                "config": TrialConfig.from_json(config).to_json(),
            }
        )
    rung = tmp_path / "coarse"
    write_json(rung / "plan.json", {"rung": "coarse", "trials": entries})
    sweep_worker_stage(
        plan=rung / "plan.json",
        data_dir=tmp_path / "data",
        task={"name": "fault_task:make_task", "options": {}},
        metric={"name": "accuracy", "mode": "max"},
        runtime=Runtime(device="cpu", precision="fp32", threads=2, trials_per_gpu=2),
        job=WorkerJob(worker=0, workers=1, out=rung / "workers" / "0-of-1.json"),
    )
    results = {e["name"]: read_json(rung / e["dir"] / "result.json") for e in entries}
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(results, "ok")
    retried = results["0"]["retried_alone"]
    assert retried is not None and "CUDA out of memory" in retried["reason"]
    assert all(r["retried_alone"] is None for name, r in results.items() if name != "0")
    report = read_json(rung / "workers" / "0-of-1.json")
    assert report["retried_alone"] == ["0"]
    # what a lane found its neighbour had finished is not reused: the job trained it
    assert sorted(report["ran"]) == sorted(results) and report["reused"] == []
    assert len({r["trial"]["worker"] for r in results.values()}) == 2  # two lanes trained them
    alone = (retried["started_at"], retried["started_at"] + retried["seconds"])
    for name, r in results.items():
        if name != "0":
            span = (r["started_at"], r["started_at"] + r["total_seconds"])
            assert span[1] <= alone[0] or span[0] >= alone[1], f"trial {name} overlapped it"
    assert not (rung / "workers" / "0-of-1.lanes").exists()  # the lock files went with it
