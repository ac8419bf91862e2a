from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tuneladder.infra.device import (
    autocast,
    claim_gpu,
    claimable_gpus,
    grad_scaler,
    peak_memory_mb,
    resolve_device,
    visible_gpus,
)

HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from tuneladder.infra.device import claim_gpu
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    n = int(sys.argv[1])  # fake GPUs, whatever this machine has
    claim = claim_gpu(n, lock_dir=sys.argv[2], timeout_s=60, poll_s=0.01,
                      candidates=[str(i) for i in range(n)])
    with open(sys.argv[3], "a") as log:
        log.write(f"start {claim.gpu} {time.monotonic()}\\n")
    time.sleep(float(sys.argv[4]))
    with open(sys.argv[3], "a") as log:
        log.write(f"end {claim.gpu} {time.monotonic()}\\n")
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def test_many_processes_never_share_a_fake_gpu(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, "2", str(tmp_path / "locks"), str(log), "0.3"],
            env=_env(),
        )
        for _ in range(6)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    events = []
    for line in log.read_text().split("\n"):
        if line:
            kind, gpu, at = line.split()
            events.append((float(at), kind, int(gpu)))
    holders: dict[int, int] = {0: 0, 1: 0}
    for _, kind, index in sorted(events, key=lambda e: (e[0], e[1] == "start")):
        holders[index] += 1 if kind == "start" else -1
        assert holders[index] <= 1, "two processes held one GPU index"
    assert len(events) == 12  # everyone got a GPU eventually: no deadlock


def test_a_killed_holder_frees_its_index(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "1", str(tmp_path), str(log), "60"], env=_env()
    )
    deadline = time.monotonic() + 30
    # the file exists as soon as the holder opens it: wait for its line, not the file
    while "start" not in (log.read_text() if log.exists() else "") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    waiter = subprocess.run(
        [sys.executable, "-c", HOLDER, "1", str(tmp_path), str(log), "0"], env=_env(), timeout=60
    )
    assert waiter.returncode == 0
    assert log.read_text().count("start 0") == 2


def test_scheduler_assignment_is_respected(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    claim = claim_gpu(4, lock_dir=tmp_path)
    assert claim.gpu is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not list(tmp_path.iterdir())


def test_claim_sets_visible_devices(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("TUNELADDER_VISIBLE_GPUS", "2")  # a machine of two, here or on a GPU
    claim = claim_gpu(2, lock_dir=tmp_path)
    try:
        assert claim.gpu == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    finally:
        claim.release()
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_a_worker_on_a_claimed_gpu_names_it_as_the_machine_does(monkeypatch) -> None:
    """A job that claimed GPU 3 trains on cuda:0; its claims tell status "GPU 3"."""
    from tuneladder.execution.worker import WorkerRuntime
    from tuneladder.infra.device import Runtime

    job = Runtime(device="cuda", precision="fp32", threads=1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert WorkerRuntime.of(job, torch.device("cuda")).where == "GPU 3"
    assert WorkerRuntime.of(job, torch.device("cpu")).where is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1a2b,MIG-3c4d")
    assert WorkerRuntime.of(job, torch.device("cuda:1")).where == "MIG-3c4d"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")  # cuda:1 is not in the list: not named
    assert WorkerRuntime.of(job, torch.device("cuda:1")).where is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert WorkerRuntime.of(job, torch.device("cuda:1")).where == "GPU 1"


def test_a_slurm_jobs_gpus_are_claimed_apart_from_another_jobs(monkeypatch, tmp_path):
    """Under SLURM each job may see its own GPUs numbered from 0: their locks live apart."""
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    claims = []
    try:
        for job in ("101", "102"):
            monkeypatch.setenv("SLURM_JOB_ID", job)
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
            claims.append(claim_gpu(2, timeout_s=0))
        assert [c.gpu for c in claims] == ["0", "0"]  # each job's own GPU 0
        assert {p.name for p in (tmp_path / f"tuneladder-gpus-{os.getuid()}").iterdir()} == {
            "slurm-101",
            "slurm-102",
        }
    finally:
        for claim in claims:
            claim.release()


def test_several_listed_gpus_are_claimed_one_each(monkeypatch, tmp_path: Path) -> None:
    """A job given several GPUs (salloc --gpus=2, or a narrowed workstation) spreads its
    workers over them: each claims one of those listed, never all of them the first."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f1c-aa,GPU-3b7d-bb")
    claims = []
    try:
        for _ in range(2):
            claims.append(claim_gpu(2, lock_dir=tmp_path, timeout_s=0))
            os.environ["CUDA_VISIBLE_DEVICES"] = (
                "GPU-8f1c-aa,GPU-3b7d-bb"  # as the next worker sees it
            )
        assert [c.gpu for c in claims] == ["GPU-8f1c-aa", "GPU-3b7d-bb"]
        with pytest.raises(TimeoutError, match="no free GPU among GPU-8f1c-aa, GPU-3b7d-bb"):
            claim_gpu(2, lock_dir=tmp_path, timeout_s=0)
    finally:
        for claim in claims:
            claim.release()


def test_claims_go_by_the_machines_gpus_not_the_runs_limit() -> None:
    """gpu=1 on a machine of two: a second run there takes the other GPU, not a wait for
    GPU 0; gpu=4 on it: claims stay on GPUs that exist."""
    two = {"TUNELADDER_VISIBLE_GPUS": "2"}
    assert claimable_gpus(1, two) == ["0", "1"]
    assert claimable_gpus(4, two) == ["0", "1"]
    assert claimable_gpus(2, {"CUDA_VISIBLE_DEVICES": "1"}) == []  # the scheduler chose
    assert claimable_gpus(2, {"CUDA_VISIBLE_DEVICES": "1, 3"}) == ["1", "3"]
    assert claimable_gpus(2, {"CUDA_VISIBLE_DEVICES": "1,3,-1,2"}) == ["1", "3"]
    assert claimable_gpus(2, {"CUDA_VISIBLE_DEVICES": "3,-1,2"}) == []  # one: it is chosen


def test_cpu_device_precision_and_memory() -> None:
    cpu = resolve_device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for precision in ("bf16", "fp16"):  # autocast is a CUDA feature here: a no-op on CPU
        with autocast(cpu, precision):
            assert torch.nn.Linear(2, 2)(torch.ones(2)).dtype == torch.float32
        assert grad_scaler(cpu, precision) is None  # and so is fp16's loss scaler
    gpu = torch.device("cuda", 0)
    for precision, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        with _without_cuda(gpu):  # made, not entered
            assert autocast(gpu, precision).fast_dtype == dtype
    with _without_cuda(gpu):
        assert isinstance(grad_scaler(gpu, "fp16"), torch.amp.GradScaler)
    assert grad_scaler(gpu, "bf16") is None and grad_scaler(gpu, "fp32") is None
    assert peak_memory_mb(cpu) > 10
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


def _without_cuda(gpu: torch.device) -> contextlib.AbstractContextManager:
    """Where CUDA is missing, torch warns as it makes CUDA's autocast or loss scaler."""
    if torch.cuda.is_available():
        return contextlib.nullcontext()
    return pytest.warns(UserWarning, match="CUDA is not available|CUDA.* not available")


def machine(root: Path, gpus: int | None = None, nodes: tuple[str, ...] = ()) -> Path:
    """A stand-in filesystem root: Linux's /proc, with an NVIDIA driver's GPUs if given."""
    (root / "proc").mkdir(parents=True)
    (root / "dev").mkdir()
    if gpus is not None:
        for i in range(gpus):
            (root / "proc" / "driver" / "nvidia" / "gpus" / f"0000:0{i}:00.0").mkdir(parents=True)
    for node in nodes:
        (root / "dev" / node).touch()
    return root


@pytest.mark.parametrize(
    ("gpus", "nodes", "environ", "expected"),
    [
        (None, (), {}, 0),  # Linux, no driver, no device node: no GPU, for sure
        (4, (), {}, 4),
        (4, (), {"CUDA_VISIBLE_DEVICES": "1,3"}, 2),
        (4, (), {"CUDA_VISIBLE_DEVICES": ""}, 0),
        (4, (), {"CUDA_VISIBLE_DEVICES": "-1"}, 0),
        (4, (), {"CUDA_VISIBLE_DEVICES": "0,-1,1"}, 1),  # CUDA stops at the first invalid one
        (2, (), {"CUDA_VISIBLE_DEVICES": "1,5,0"}, 1),  # 5: past the machine's GPUs
        (4, (), {"CUDA_VISIBLE_DEVICES": "2,3,2"}, 0),  # listed twice: none at all
        (4, (), {"CUDA_VISIBLE_DEVICES": "1gpu,2"}, 2),  # read like strtoul
        (4, (), {"CUDA_VISIBLE_DEVICES": "GPU-8f2a,GPU-77c1"}, 2),  # UUIDs count
        (1, (), {"CUDA_VISIBLE_DEVICES": "GPU-8f2a,GPU-77c1"}, 1),  # up to the machine's
        (4, (), {"CUDA_VISIBLE_DEVICES": "0,GPU-77c1,1"}, 1),  # a UUID ends a list of indices
        (4, (), {"CUDA_VISIBLE_DEVICES": "MIG-a,GPU-b"}, 1),  # as another prefix ends UUIDs
        (None, ("nvidia0",), {}, None),  # a device node without the driver's list: torch decides
        (None, ("nvidia3",), {}, None),  # a container given another GPU's node alone
        (None, ("kfd",), {}, None),  # AMD's ROCm, which torch.cuda also drives
        (None, (), {"TUNELADDER_VISIBLE_GPUS": "2"}, 2),  # planning a GPU run elsewhere
        (8, (), {"TUNELADDER_VISIBLE_GPUS": "0"}, 0),
    ],
)
def test_visible_gpus_are_counted_without_torch(tmp_path, gpus, nodes, environ, expected):
    root = machine(tmp_path, gpus, nodes)
    assert visible_gpus({"PATH": "", **environ}, root=root) == expected


def test_visible_gpus_leave_other_systems_to_torch(tmp_path: Path) -> None:
    assert visible_gpus({"PATH": ""}, root=tmp_path) is None  # no /proc: not Linux
    with pytest.raises(ValueError, match="TUNELADDER_VISIBLE_GPUS must be a number"):
        visible_gpus({"TUNELADDER_VISIBLE_GPUS": "two"}, root=tmp_path)


def test_deterministic_runs_use_torchs_deterministic_kernels_only() -> None:
    """In a process of its own: the setting is the whole process's, as in a job."""
    script = (
        "import os, torch\n"
        "from tuneladder.infra.device import Runtime\n"
        "from tuneladder.infra.env import torch_build\n"
        "os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)\n"
        "assert not torch_build('cpu')['deterministic']\n"
        "Runtime(device='cpu', precision='fp32', threads=1, deterministic=True).start()\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert not torch.backends.cudnn.benchmark\n"
        "assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'\n"
        "assert torch_build('cpu')['deterministic'] is True\n"
        "from tuneladder.infra.device import deterministic\n"
        "deterministic(False)  # a notebook's next trial, without it\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_half_precision_slower_than_fp32_on_its_gpu_is_said(monkeypatch) -> None:
    import torch

    from tuneladder.infra.device import precision_note

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    note = precision_note(gpu, "bf16") or ""
    assert note.startswith("precision bf16 on Tesla T4 (compute capability 7.5)")
    assert "precision: fp16 (with loss scaling) is the fast one on it" in note
    assert precision_note(gpu, "fp32") is None
    assert precision_note(torch.device("cpu"), "bf16") is None  # ignored there, as documented
    assert precision_note(gpu, "fp16") is None  # a T4's fp16 is fast
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert precision_note(gpu, "bf16") is None  # an H100 has them
    assert precision_note(gpu, "fp16") is None
    # consumer Pascal: fp16 at a fraction of fp32's rate; a P100 (6.0) has it fast
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "GTX 1080")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))
    note = precision_note(gpu, "fp16") or ""
    assert note.startswith("precision fp16 on GTX 1080 (compute capability 6.1): its fp16")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 0))
    assert precision_note(gpu, "fp16") is None


def test_tf32_before_ampere_is_said_to_train_in_fp32(monkeypatch) -> None:
    import torch

    from tuneladder.infra.device import precision_note

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    note = precision_note(gpu, "tf32") or ""
    assert note.startswith("precision tf32 on Tesla V100 (compute capability 7.0): it has no")
    assert "train in full fp32" in note
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert precision_note(gpu, "tf32") is None  # an A100 has TF32 units
    assert precision_note(torch.device("cpu"), "tf32") is None


def test_a_result_records_the_precision_its_trials_trained_in(monkeypatch) -> None:
    import torch

    from tuneladder.infra.device import trained_precision

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert trained_precision(gpu, "tf32") == "fp32"  # a V100 has no TF32 units
    assert trained_precision(gpu, "bf16") == "bf16"  # emulated, but bf16 all the same
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert [trained_precision(gpu, p) for p in ("fp32", "tf32", "bf16", "fp16")] == [
        "fp32",
        "tf32",
        "bf16",
        "fp16",
    ]
    assert trained_precision(torch.device("cpu"), "bf16") == "fp32"


def test_tf32_lets_cuda_matrix_products_round_and_every_other_precision_undoes_it() -> None:
    """The setting is the process's: a notebook's next run, or a lane's next trial in
    another precision, must not inherit it. Runs in a child: it changes torch's state."""
    script = (
        "import torch\n"
        "from tuneladder.infra.device import Runtime, fp32_math\n"
        "from tuneladder.infra.env import torch_build\n"
        "gpu = torch.device('cuda', 0)  # a device object: no GPU needed to set the flag\n"
        "assert torch.get_float32_matmul_precision() == 'highest'\n"
        "fp32_math(gpu, 'tf32')\n"
        "assert torch.get_float32_matmul_precision() == 'high'\n"
        "assert torch_build(gpu)['matmul_fp32'] == 'high'  # the trial's record says so\n"
        "fp32_math(gpu, 'bf16')\n"
        "assert torch.get_float32_matmul_precision() == 'highest'\n"
        "fp32_math(gpu, 'tf32')\n"
        "fp32_math(torch.device('cpu'), 'tf32')  # ignored on the CPU, as bf16 is\n"
        "assert torch.get_float32_matmul_precision() == 'highest'\n"
        "fp32_math(gpu, 'tf32')\n"
        "Runtime(device='cpu', precision='tf32', threads=1).start()\n"
        "assert torch.get_float32_matmul_precision() == 'highest'\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", script], check=True, timeout=120)
