"""Device choice, precision, memory peaks, which GPU a worker may use, and a job's runtime.

Snakemake's ``gpu`` resource limits how many GPU jobs run at once but does not
say which GPU a job gets. A worker therefore claims a free GPU with an
exclusive file lock before CUDA initialises; the kernel drops the lock when the
process ends, however it ends, so a crash never blocks a GPU. A scheduler
that already set ``CUDA_VISIBLE_DEVICES`` to one GPU (SLURM does) has decided:
nothing is claimed. Where it lists several, a worker claims one of those.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "GpuClaim",
    "Loading",
    "Runtime",
    "autocast",
    "claim_gpu",
    "claimable_gpus",
    "deterministic",
    "gpu_named",
    "grad_scaler",
    "listed_gpus",
    "peak_memory_mb",
    "fp32_math",
    "precision_note",
    "reset_peak_memory",
    "resolve_device",
    "trained_precision",
    "visible_gpus",
]

log = logging.getLogger("tuneladder")
# what `device` and `precision` may be (the config schema lists the same)
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
# the GPU count the workflow plans by, where it cannot be read or is planned elsewhere
VISIBLE_GPUS_VARIABLE = "TUNELADDER_VISIBLE_GPUS"
# how CUDA_VISIBLE_DEVICES names a GPU or a MIG slice by UUID, not by index
UUID_PREFIXES = ("GPU-", "MIG-")
# GPU claims of this process: held until it exits (the lock goes with the open file)
_HELD: list[GpuClaim] = []


def visible_gpus(environ: Mapping[str, str] | None = None, root: Path = Path("/")) -> int | None:
    """NVIDIA GPUs this machine shows a process, counted without importing torch.

    The workflow asks while it parses, before any job: ``--resources gpu=N`` on a
    machine without a GPU is then said once, up front, instead of each job finding
    out. 0 only when sure (``CUDA_VISIBLE_DEVICES`` empty or -1; or Linux with no
    NVIDIA driver, device node, ``nvidia-smi`` or AMD ``/dev/kfd``); None when it
    cannot tell, and the jobs' torch decides as before. ``TUNELADDER_VISIBLE_GPUS``
    overrides the count: to plan a GPU run on a machine without one (the tests do).
    ``environ`` and ``root`` are for tests.
    """
    environ = os.environ if environ is None else environ
    if (told := environ.get(VISIBLE_GPUS_VARIABLE, "").strip()) != "":
        try:
            return max(0, int(told))
        except ValueError:
            raise ValueError(
                f"{VISIBLE_GPUS_VARIABLE} must be a number of GPUs, got {told!r}"
            ) from None
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    driver = root / "proc" / "driver" / "nvidia" / "gpus"
    if driver.is_dir():
        count = sum(1 for _ in driver.iterdir())
        return count if visible is None else len(listed_gpus(visible, count))
    if not (root / "proc").is_dir():
        return None  # not Linux: leave it to torch
    # a container may be given /dev/nvidia3 alone
    devices = [*(root / "dev").glob("nvidia[0-9]*"), root / "dev" / "kfd"]
    if any(p.exists() for p in devices) or shutil.which("nvidia-smi", path=environ.get("PATH")):
        return None
    return 0


def listed_gpus(visible: str, count: int | None = None) -> list[str]:
    """The GPUs a ``CUDA_VISIBLE_DEVICES`` list shows, read as CUDA (and torch's count)
    reads it: indices up to the first negative one or one past the ``count`` GPUs the
    machine has (each read like ``strtoul``: ``1gpu`` is 1); UUIDs (``GPU-``, ``MIG-``)
    up to the first entry without that prefix, no more than ``count``; and no GPU at
    all when one is listed twice. So ``0,-1,1`` shows one GPU and ``0,0`` none."""
    used: list[str] = []
    prefix = next((p for p in UUID_PREFIXES if visible.startswith(p)), None)
    for entry in visible.split(","):
        if prefix is None:
            digits = re.match(r"[+-]?\d+", entry.strip())
            index = int(digits[0]) if digits else -1
            if index < 0 or (count is not None and index >= count):
                break
            entry = str(index)
        elif not entry.startswith(prefix):
            break
        if entry in used:
            return []
        used.append(entry)
    return used if prefix is None or count is None else used[:count]


def gpu_named(device: torch.device, environ: Mapping[str, str] | None = None) -> str | None:
    """The GPU a CUDA device is, as ``CUDA_VISIBLE_DEVICES`` names it for the whole
    machine (``GPU 3``: a job that claimed GPU 3 sees it as ``cuda:0``; a UUID as it is),
    for a person to find it in ``nvidia-smi``, whose numbers are the same where the GPUs
    are alike or ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. None off CUDA, or where the list
    does not show the device."""
    if device.type != "cuda":
        return None
    environ = os.environ if environ is None else environ
    index = device.index or 0
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return f"GPU {index}"
    shown = listed_gpus(visible)
    if index >= len(shown):
        return None
    return shown[index] if shown[index].startswith(UUID_PREFIXES) else f"GPU {shown[index]}"


def deterministic(enabled: bool = True) -> None:
    """Only torch's deterministic algorithms from here on (``enabled``), for runs that must
    repeat to the bit on a GPU (a CPU's already do): cuDNN's and cuBLAS's fastest
    kernels sum in an order that changes from run to run. Slower; an operation without
    a deterministic kernel raises, and its trial fails naming it. Called before CUDA
    starts: cuBLAS reads its workspace setting once, when it starts. ``False`` turns it
    off again (a notebook's process runs several trials)."""
    import torch

    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled)


def fp32_math(device: torch.device, precision: str) -> None:
    """Let float32 matrix products run in TF32 on CUDA for ``tf32``; full float32 for
    every other precision.

    TF32 rounds a product's inputs to 10 bits of mantissa (float32 keeps 23) and keeps
    float32's range and sums, on the tensor cores of Ampere and newer GPUs: several
    times float32's throughput on large matrix products, with nothing else cast and no
    loss scaling. torch already
    runs cuDNN's convolutions so by default and its matrix products in full float32,
    which ``fp32`` keeps. A setting of the whole process, as :func:`deterministic` is:
    set for each run (a notebook's process runs several), before it trains.
    """
    import torch

    tf32 = precision == "tf32" and device.type == "cuda"
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def precision_note(device: torch.device, precision: str) -> str | None:
    """What a user should know of ``precision`` on ``device``, where it runs slower than
    fp32 or as fp32: bf16 on a GPU older than Ampere (compute capability 8.0), which has
    no bf16 units and emulates it; fp16 on a GPU without fast fp16 (consumer Pascal, 6.1
    and 6.2, and anything before 6.0); tf32 before Ampere, which has no TF32 units. None
    when there is nothing to say."""
    import torch

    if precision == "fp32" or device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    where = f"{name} (compute capability {major}.{minor})"
    if precision == "tf32" and major < 8:
        return (
            f"precision tf32 on {where}: it has no TF32 units, so its trials train in full"
            " fp32; precision: fp16 (with loss scaling) is the fast one on it"
        )
    if precision == "bf16" and major < 8:
        return (
            f"precision bf16 on {where}: it has no bf16 units, so torch emulates bf16,"
            " slower than fp32 there; precision: fp16 (with loss scaling) is the fast one"
            " on it, fp32 the plain one"
        )
    if precision == "fp16" and (major < 6 or (major == 6 and minor > 0)):
        return (
            f"precision fp16 on {where}: its fp16 arithmetic runs at a fraction of fp32's"
            " speed; precision: fp32 is faster there"
        )
    return None


def trained_precision(device: torch.device, precision: str) -> str:
    """The precision trials asking for ``precision`` train in on ``device``: fp32 on the
    CPU, where tf32, bf16 and fp16 are ignored, and for tf32 on a GPU before Ampere,
    which has no TF32 units. A result records it beside the one asked for, which its
    key names."""
    if device.type != "cuda":
        return "fp32"
    if precision == "tf32":
        import torch

        try:
            if torch.cuda.get_device_capability(device)[0] < 8:
                return "fp32"
        except RuntimeError:  # a device lost mid-trial: its result is still written
            return precision
    return precision


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available; asking for CUDA without one is an error, not a fallback."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
    if name not in DEVICES:
        names = f"{', '.join(DEVICES[:-1])} or {DEVICES[-1]}"
        raise ValueError(f"device must be {names}, got {name!r}")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 or fp16 autocast on CUDA when asked; a no-op context everywhere else."""
    import torch

    if precision in _HALF and device.type == "cuda":
        return torch.autocast("cuda", dtype=getattr(torch, _HALF[precision]))
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """The loss scaler fp16 needs on CUDA, else None.

    float16 keeps 5 exponent bits where bf16 keeps float32's 8: small gradients
    round to zero in it. The scaler multiplies the loss before the backward pass,
    divides the gradients back before the update, and skips a step whose
    gradients overflowed, halving its scale (doubling it again after 2000 clean
    steps). A trial keeps one for its whole run, and its checkpoint keeps its state.
    """
    import torch

    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


# the precisions that autocast, by torch's name of their dtype
_HALF = {"bf16": "bfloat16", "fp16": "float16"}


def reset_peak_memory(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Max allocated on CUDA; on CPU the process's peak resident set (it spans trials)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class GpuClaim:
    """A held GPU, named as ``CUDA_VISIBLE_DEVICES`` names it (an index or a UUID); the
    lock lives as long as this object's file stays open."""

    def __init__(self, *, gpu: str | None, handle: IO[str] | None) -> None:
        self.gpu = gpu
        self._handle = handle

    def fileno(self) -> int | None:
        """The lock's file descriptor: a child process that inherits it holds the claim too."""
        return self._handle.fileno() if self._handle is not None else None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def claimable_gpus(n_gpus: int, environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs a worker may claim, as ``CUDA_VISIBLE_DEVICES`` would name them.

    Those it lists, when it lists several (a scheduler that gave the job several, or
    a user who narrowed the machine's); none when it names one or none (already
    decided). Otherwise every GPU the machine shows (:func:`visible_gpus`), so two
    runs on one machine take different GPUs, whatever their ``gpu=N``; where that
    cannot be counted, ``n_gpus`` indices.
    """
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = listed_gpus(listed)
        return entries if len(entries) > 1 else []
    return [str(i) for i in range(visible_gpus(environ) or n_gpus)]


def claim_gpu(
    n_gpus: int,
    *,
    lock_dir: str | Path | None = None,
    timeout_s: float = 3600.0,
    poll_s: float = 0.2,
    candidates: Sequence[str] | None = None,
) -> GpuClaim:
    """Claim a free GPU and set ``CUDA_VISIBLE_DEVICES`` to it.

    Call before anything touches CUDA. ``candidates`` are the GPUs to choose from
    (default :func:`claimable_gpus`); ``n_gpus`` 0, or no candidate (the scheduler
    chose), returns a claim holding none. Snakemake's ``gpu=N`` keeps the number of
    claims at N; which GPUs they take is first free, first taken.
    """
    if n_gpus <= 0:
        return GpuClaim(gpu=None, handle=None)
    gpus = claimable_gpus(n_gpus) if candidates is None else list(candidates)
    if not gpus:
        return GpuClaim(gpu=None, handle=None)
    if lock_dir is None:
        lock_dir = Path(tempfile.gettempdir()) / f"tuneladder-gpus-{os.getuid()}"
        job = os.environ.get("SLURM_JOB_ID")
        if job and os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            # SLURM may number each job's GPUs from 0: two jobs' "0" are different GPUs
            lock_dir = lock_dir / f"slurm-{job}"
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    waited = False
    while True:
        for gpu in gpus:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", gpu)  # a UUID names a file as well
            handle = open(lock_dir / f"gpu{name}.lock", "a+")  # noqa: SIM115 - held while claimed
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return GpuClaim(gpu=gpu, handle=handle)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no free GPU among {', '.join(gpus)} after {timeout_s:.0f} s ({lock_dir})"
            )
        if not waited:  # a job that waits says so: its log would otherwise look hung
            log.info(
                "every GPU it may use (%s) is held by another job: waiting for one",
                ", ".join(gpus),
            )
            waited = True
        time.sleep(poll_s)


@dataclass(frozen=True, kw_only=True)
class Loading:
    """How a :class:`~tuneladder.data.loader.DatasetSplit` reads: ``data.num_workers``,
    ``pin_memory``.

    ``pin_memory`` takes effect on CUDA only (on the CPU there is nothing to copy to).
    """

    num_workers: int = 0
    pin_memory: bool = False

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers=}")


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Where and how a job of a rung that trains runs: the same object for every such rung.

    The workflow builds it from the rule's ``runtime`` param (the config's
    ``device``, ``precision``, ``checkpoint_every_s``, ``stale_claim_s``,
    ``data.num_workers`` and ``data.pin_memory``, and the run's ``gpus``) and
    the job's ``threads``.

    Attributes:
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``fp32``, ``tf32`` (TF32 matrix products, :func:`fp32_math`), ``bf16``
            or ``fp16`` (autocast, fp16 with a loss scaler): on CUDA; ignored on CPU.
        threads: torch's threads in this job.
        gpus: GPUs the run may use locally (``--resources gpu=N``); 0 when not given.
        checkpoint_every_s: seconds between a trial's checkpoints.
        stale_claim_s: how old a claim's heartbeat may get before another worker takes it.
        num_workers: DataLoader workers for splits read through a DataLoader.
        pin_memory: pinned host memory for their batches on CUDA.
        trials_per_gpu: trials a worker job trains side by side on its GPU, each in a
            process of its own (:mod:`tuneladder.execution.lanes`): a number, or ``auto`` for
            what the GPU probe measured. 1 where the run uses no GPU.
        deterministic: torch's deterministic algorithms only (:func:`deterministic`).

    Example:
        >>> runtime = Runtime.from_params({"device": "cpu", "precision": "fp32"}, threads=2)
        >>> runtime.threads, runtime.gpus
        (2, 0)
    """

    device: str
    precision: str
    threads: int
    gpus: int = 0
    checkpoint_every_s: float = 60.0
    stale_claim_s: float = 600.0
    num_workers: int = 0
    pin_memory: bool = True
    trials_per_gpu: int | str = 1
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device=}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision=}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads=}")
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus=}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers=}")
        if self.trials_per_gpu != "auto" and not (
            isinstance(self.trials_per_gpu, int) and self.trials_per_gpu >= 1
        ):
            raise ValueError(f"trials_per_gpu must be auto or >= 1, got {self.trials_per_gpu=}")
        if self.checkpoint_every_s < 0 or self.stale_claim_s <= 0:
            raise ValueError(
                "checkpoint_every_s must be >= 0 and stale_claim_s > 0, got"
                f" {self.checkpoint_every_s=}, {self.stale_claim_s=}"
            )

    @classmethod
    def from_params(cls, params: Mapping[str, object], *, threads: int) -> Runtime:
        """From a rule's ``runtime`` param and the threads Snakemake gave the job."""
        return cls(**params, threads=threads)  # type: ignore[arg-type]

    def loading(self) -> Loading:
        """How this job's DataLoaders read."""
        return Loading(num_workers=self.num_workers, pin_memory=self.pin_memory)

    def for_lanes(self, threads: int) -> Runtime:
        """The runtime of a lane (:mod:`tuneladder.execution.lanes`): on its job's claimed GPU,
        which it does not claim again, one trial at a time, with ``threads`` threads."""
        return dataclasses.replace(self, gpus=0, trials_per_gpu=1, threads=threads)

    def claim(self) -> GpuClaim | None:
        """Claim a GPU for the life of the process (before CUDA starts), when this run
        counts GPUs; the claim, or None when nothing was claimed."""
        if self.device in ("auto", "cuda") and self.gpus > 0:
            claim = claim_gpu(self.gpus)
            if claim.gpu is not None:
                _HELD.append(claim)
                log.info("claimed GPU %s (this run uses %d at once)", claim.gpu, self.gpus)
                return claim
        return None

    def start(self) -> torch.device:
        """Claim a GPU (before CUDA starts) for the life of the process, set torch's
        threads and float32 math, and resolve the device."""
        self.claim()
        import torch

        torch.set_num_threads(self.threads)
        if self.deterministic:
            deterministic()
        device = resolve_device(self.device)
        fp32_math(device, self.precision)
        return device

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """bf16 or fp16 autocast on CUDA when asked (:func:`autocast`); a no-op context
        otherwise."""
        return autocast(device, self.precision)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """A fresh loss scaler for one training run in fp16 on CUDA (:func:`grad_scaler`)."""
        return grad_scaler(device, self.precision)
