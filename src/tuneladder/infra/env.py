"""Where and with what a result was produced: versions, build, commit, host, scheduler job."""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "git_commit",
    "nvidia_smi",
    "package_versions",
    "process_started_at",
    "provenance",
    "torch_build",
]

_PACKAGES = ("tuneladder", "torch", "numpy", "optuna", "snakemake")


@cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "torch" in sys.modules:
        # the distribution's version drops the build tag (+cu130, +cpu) that says
        # which CUDA the wheel was built for: torch's own string keeps it
        versions["torch"] = sys.modules["torch"].__version__
    return versions


def nvidia_smi(field: str, timeout: float = 10.0) -> str | None:
    """The first GPU's ``field`` as ``nvidia-smi --query-gpu`` prints it, units left out
    (``driver_version``: ``580.159.04``; ``name``: ``NVIDIA H200``); None where it
    cannot say: no nvidia-smi, an error, or no answer within ``timeout`` seconds."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


@cache
def _nvidia_driver() -> str | None:
    """The driver's version as nvidia-smi prints it (``580.159.04``); None where it cannot."""
    return nvidia_smi("driver_version")


@cache
def _cuda_driver_api() -> int | None:
    """The CUDA version the driver supports (13000 for 13.0), from the driver's public C API.

    ``cuDriverGetVersion`` in libcuda, not a private torch function: those come
    and go between torch releases (``torch._C._cuda_getDriverVersion`` did).
    """
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return version.value or None


def _read(field: Callable[[], Any]) -> Any:
    """A provenance field, or None (unknown) when it cannot be read.

    Recording where a trial ran must never fail the trial: a torch without a
    function, a driver that does not answer or a missing tool only leave the
    field unknown.
    """
    try:
        return field()
    except Exception:  # noqa: BLE001 - any failure to read is an unknown field
        return None


def torch_build(device: Any = None) -> dict[str, Any]:
    """Exactly which torch build ran, and on what: the CUDA and cuDNN it was built
    with, and on a GPU the device's name and the driver.

    Reads torch only where the caller has already imported it, so that provenance
    never costs a torch import of its own. Only public torch APIs; a field that
    cannot be read is None.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    cuda_built = _read(lambda: torch.version.cuda)
    build: dict[str, Any] = {
        "torch": _read(lambda: torch.__version__),
        "cuda_built": cuda_built,
        "cudnn_built": _read(lambda: torch.backends.cudnn.version()) if cuda_built else None,
        "device": str(device) if device is not None else None,
        # deterministic: true in the config (torch's deterministic algorithms only)
        "deterministic": _read(lambda: torch.are_deterministic_algorithms_enabled()),
    }
    if device is not None and _read(lambda: torch.device(device).type) == "cuda":
        build["device_name"] = _read(lambda: torch.cuda.get_device_name(torch.device(device)))
        build["driver"] = _nvidia_driver()
        build["cuda_driver_api"] = _cuda_driver_api()
        # float32 math: TF32 in matrix products (precision: tf32) and in cuDNN's
        # convolutions (torch's default) on Ampere and newer; "highest" is full float32
        build["matmul_fp32"] = _read(lambda: torch.get_float32_matmul_precision())
        build["cudnn_tf32"] = _read(lambda: torch.backends.cudnn.allow_tf32)
    return build


@cache
def git_commit(cwd: str | None = None) -> str | None:
    """The workspace's commit, ``-dirty`` with uncommitted changes; None outside git."""
    where = Path(cwd or os.getcwd())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: Any = None) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "build": torch_build(device),
    }


def process_started_at() -> float | None:
    """When this process started (epoch seconds), from /proc; None where there is none.

    Snakemake's benchmark files give a job's length but not its start, and a job's
    start-up (interpreter, imports, data) is what the efficiency bench measures.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        now = time.time()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    # the command name (field 2) may hold spaces: fields are counted after its ")"
    start_ticks = float(stat.rpartition(")")[2].split()[19])
    # counted back from now: the boot time in /proc/stat (btime) is in whole seconds,
    # which put every start up to a second early
    return now - (uptime - start_ticks / ticks)
