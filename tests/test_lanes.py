"""Several trials side by side on one GPU: lane counts, the probe's choice, and lanes
that end with their job and hold its GPU claim while they run (fake GPUs on the CPU)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import REPO
from tuneladder.execution.lanes import lane_count, lane_worker
from tuneladder.stages.gpu_probe import choose, probe_levels
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
