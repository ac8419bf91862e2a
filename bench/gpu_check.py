"""The GPU checks in one run: what bench/gpu_check.sh runs after installing the project.

    python bench/gpu_check.py wheels DIR [--python 3.12]   # where pip reaches an index
    python bench/gpu_check.py run --out DIR [--dry]

`wheels` fills DIR with what a GPU machine that has torch, numpy, scipy, pandas,
pyyaml, scikit-learn and matplotlib (but no package index) needs to run the
ladder: this project's wheel, and Snakemake, Optuna and jsonschema with
everything they need that those packages do not bring, for CPython 3.12 (or
``--python``: the GPU machine's, or this machine's for a rehearsal of the install) on
x86-64 Linux, at the versions installed here.

`run` checks the GPU path and prints one line per check, PASS, FAIL or SKIP,
with its figure; every figure also goes to DIR/gpu_check.json, with the logs.
With `--dry` (no GPU needed; CI runs it) the same code runs on the CPU with a
fake GPU count and tiny sizes, and the checks that need a GPU say SKIP.
`--only ladder_fp16 ladder_tf32` climbs the ladder in the other two precisions,
which the default run leaves out to keep within its budget.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LADDER = REPO / "bench" / "gpu-ladder.yaml"
# what the GPU machine has; the wheels bring the rest
PRESENT = ("torch", "numpy", "scipy", "pandas", "pyyaml", "scikit-learn", "matplotlib")
NEEDED = ("snakemake", "optuna", "jsonschema")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


# --- wheels -------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: tuple[str, ...], python: str) -> dict[str, str]:
    """Distributions installed here that ``roots`` need on ``python``, with their versions."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate(
                {"extra": "", "python_version": python, "python_full_version": f"{python}.0"}
            ):
                continue
            todo.append(req.name)
    return found


def wheels(folder: Path, python: str = "3.12") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    there = _closure(PRESENT, python)
    wanted = {k: v for k, v in _closure(NEEDED, python).items() if k not in there}
    pip = [sys.executable, "-m", "pip", "-q"]
    for name, version in sorted(wanted.items()):
        platform = [arg for p in PLATFORMS for arg in ("--platform", p)]
        got = subprocess.run(
            [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", python]
            + ["--implementation", "cp", *platform, "-d", str(folder), f"{name}=={version}"],
            capture_output=True,
            text=True,
        )
        if got.returncode != 0:  # published as a source archive only: build it (pure Python)
            subprocess.run(
                [*pip, "wheel", "--no-deps", "-w", str(folder), f"{name}=={version}"], check=True
            )
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), str(REPO)], check=True)
    size = sum(p.stat().st_size for p in folder.glob("*.whl")) / 2**20
    print(f"{len(list(folder.glob('*.whl')))} wheels, {size:.1f} MB in {folder}")


# --- checks ---------------------------------------------------------------------------


class Checks:
    """Each check prints one line and adds its figures to the report."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.report: dict[str, Any] = {"checks": []}

    def line(self, status: str, name: str, figure: str, **figures: Any) -> None:
        print(f"{status:<4} {name}: {figure}", flush=True)
        self.report["checks"].append({"status": status, "name": name, "figure": figure})
        if figures:
            self.report[name] = figures

    def save(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.report, indent=2) + "\n")


def _run(cmd: list[str], log: Path, timeout: float = 600) -> tuple[int, float, list[float]]:
    """Exit code (124: timed out), wall seconds and GPU utilization samples (%) of a command.

    It runs in a process group of its own, ended whole on a timeout: Snakemake's jobs
    and their lanes would otherwise live on, holding the GPU's claim, and every check
    after would wait for it.
    """
    capped = False  # the budget, not the command's own limit, sets its time
    if (left := BUDGET.left()) is not None:
        if left < MIN_CHECK_S:  # it would only time out: the rest of its check is skipped
            raise OutOfTime(f"{left:.0f} s left of the budget")
        capped, timeout = left < timeout, min(timeout, left)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        from tuneladder.infra.env import nvidia_smi

        smi = shutil.which("nvidia-smi")
        while smi and not stop.is_set():
            # None: no answer (a hung nvidia-smi); text: a MIG slice's [N/A]; no sample
            value = nvidia_smi("utilization.gpu", timeout=5)
            if value is not None:
                with contextlib.suppress(ValueError):
                    samples.append(float(value))
            stop.wait(0.25)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    started = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(proc)
            rc = 124
    wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    if rc == 124 and capped:  # cut by the run's budget: skipped, not failed
        raise OutOfTime(f"the budget ended it after {wall:.0f} s")
    return rc, wall, samples


def _end_group(proc: subprocess.Popen) -> None:
    """Stop a command and everything it started: asked first, then killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    proc.wait()


class OutOfTime(Exception):
    """The run's budget is spent: what is left of a check is skipped, not failed."""


class _Budget:
    """The run's deadline (``--budget-s``): every command's timeout keeps to it."""

    deadline: float | None = None

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


BUDGET = _Budget()


def _snakemake(work: Path, targets: list[str], config: list[str]) -> list[str]:
    return [
        shutil.which("snakemake") or "snakemake",
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(LADDER),
        "--cores",
        "all",
        "--resources",
        "gpu=1",
        "--config",
        *config,
        "--",
        *targets,
    ]


def _util(samples: list[float]) -> str:
    if not samples:
        return "GPU utilization not sampled"
    busy = [s for s in samples if s > 0]
    mean_busy = sum(busy) / len(busy) if busy else 0.0
    return f"GPU utilization mean {sum(samples) / len(samples):.0f}% ({mean_busy:.0f}% while busy)"


def check_provenance(checks: Checks, gpu: bool) -> None:
    import torch

    from tuneladder.infra.env import provenance

    device = torch.device("cuda", 0) if gpu else torch.device("cpu")
    build = provenance(device)["build"]
    fields = ("device_name", "driver", "cuda_driver_api") if gpu else ("torch", "device")
    missing = [f for f in fields if build.get(f) is None]
    figure = ", ".join(f"{k}={build.get(k)}" for k in ("torch", "device_name", "driver"))
    checks.line("FAIL" if missing else "PASS", "provenance", figure, build=build)


def check_host_syncs(checks: Checks, gpu: bool, precision: str = "fp32") -> None:
    """No line of a trial's loop reads a device value every step. In fp16 the loss
    scaler's overflow flag is read on the GPU by the fused optimizers, AdamW's and
    SGD with momentum's (decision 061), a trial of each."""
    name = "host_syncs" if precision == "fp32" else f"host_syncs_{precision}"
    if not gpu:
        checks.line("SKIP", name, "needs CUDA")
        return
    out = checks.out / f"{name}.json"
    log = checks.out / f"{name}.txt"
    rc, _, _ = _run(
        [sys.executable, str(REPO / "bench" / "host_syncs.py"), "--epochs", "5"]
        + ["--precision", precision, "--json", str(out)]
        + (["--optimizers", "adamw", "momentum"] if precision == "fp16" else []),
        log,
    )
    if rc != 0 or not out.is_file():
        checks.line("FAIL", name, f"exit code {rc} (see {log.name})")
        return
    figures = json.loads(out.read_text())
    per_step = figures["per_step_sites"]
    if figures.get("trial_status") != "ok":  # a trial that failed early syncs little
        checks.line(
            "FAIL",
            name,
            f"the trial ended {figures.get('trial_status')}: {figures.get('trial_reason')}",
            **figures,
        )
        return
    checks.line(
        "FAIL" if per_step else "PASS",
        name,
        f"{figures['syncs_per_epoch']:.1f} syncs an epoch of {figures['steps']} steps;"
        f" lines that sync every step: {', '.join(per_step) or 'none'};"
        f" best val accuracy {figures.get('trial_best_val_metric')}",
        **figures,
    )


def check_throughput(checks: Checks, gpu: bool, dry: bool) -> None:
    device = "cuda" if gpu else "cpu"
    precisions = ("fp32", "bf16") if gpu else ("fp32",)
    for precision in precisions:
        out = checks.out / f"throughput_{precision}.json"
        args = ["--epochs", "1", "--repeats", "2"] if dry else ["--epochs", "15", "--repeats", "5"]
        rc, _, _ = _run(
            [sys.executable, str(REPO / "bench" / "trial_throughput.py"), *args]
            + ["--device", device, "--precision", precision, "--models", "cnn"]
            + ["--batches", "64", "128", "--no-startup", "--json", str(out)],
            checks.out / f"throughput_{precision}.txt",
        )
        name = f"throughput_{precision}"
        if rc != 0 or not out.is_file():
            checks.line("FAIL", name, f"exit code {rc}")
            continue
        for row, spans in json.loads(out.read_text()).items():
            epochs = spans["epochs"]
            ratio = epochs["ratio"]
            # the goal is a GPU's: on a CPU the figure is printed, not judged
            status = ("PASS" if ratio >= 0.95 else "FAIL") if gpu else "INFO"
            paired = epochs["paired_ratios"]
            checks.line(
                status,
                f"{name}_{row}",
                f"trial {epochs['runner_samples_per_s']:.0f} samples/s, plain loop"
                f" {epochs['minimal_samples_per_s']:.0f}: {ratio:.2f}x (goal >= 0.95x);"
                f" run by run {epochs['paired_median']:.2f}x median,"
                f" {paired[0]:.2f}-{paired[-1]:.2f} over {len(paired)}",
                **spans,
            )


def _trial_results(results: Path) -> list[dict[str, Any]]:
    files = glob.glob(str(results / "**" / "result.json"), recursive=True)
    return [json.loads(Path(f).read_text()) for f in files]


def check_ladder(checks: Checks, work: Path, precision: str, gpu: bool, dry: bool) -> None:
    import torch

    from tuneladder.infra.device import trained_precision

    name = f"ladder_{precision}"
    experiment = f"gpu-{precision}"
    config = [f"experiment={experiment}", f"precision={precision}"]
    if dry:
        config += [
            "train={epochs: 2, batch_size: 128, arch: cnn, channels: 8}",
            "coarse={trials: 4, epochs: 2, sampler: sobol}",
            "fine={trials: 2, epochs: 2}",
            "seeds={finalists: 1, seeds: 2, epochs: 2}",
            "lr_range={steps: 30}",
            "gpu={probe_seconds: 0.5}",
        ]
    results = work / "results" / experiment
    rc, wall, util = _run(
        _snakemake(work, [], config), checks.out / f"{name}.log", timeout=420 if gpu else 600
    )
    summary = results / "final" / "summary.json"
    trials = _trial_results(results)
    # what the trials train in: fp32 on the CPU, and tf32 before Ampere
    expected = trained_precision(torch.device("cuda" if gpu else "cpu"), precision)
    wrong = [
        r.get("trial", {}).get("name")
        for r in trials
        if r.get("precision") != expected
        or (gpu and not (r["build"].get("device_name") and r["build"].get("driver")))
        or (gpu and not str(r.get("device", "")).startswith("cuda"))
    ]
    ok = rc == 0 and summary.is_file() and trials and not wrong
    probe = results / "sanity" / "gpu_probe.json"
    chosen = json.loads(probe.read_text()) if probe.is_file() else None
    first = trials[0] if trials else {}
    checks.line(
        "PASS" if ok else "FAIL",
        name,
        f"exit code {rc}, {wall:.1f} s, {len(trials)} trial results"
        + (f", {len(wrong)} without GPU, driver or precision {expected}" if wrong else "")
        + f"; they name {first.get('build', {}).get('device_name')},"
        f" driver {first.get('build', {}).get('driver')}, precision {first.get('precision')};"
        f" {_util(util)}",
        wall_s=wall,
        utilization=util,
        trials=len(trials),
        wrong=wrong,
    )
    if chosen is not None:
        levels = ", ".join(
            f"{lv['trials']}: {lv['samples_per_s']:.0f}/s"
            + (f" ({lv['speedup']:.2f}x)" if lv.get("speedup") else "")
            for lv in chosen["levels"]
        )
        checks.line(
            "PASS" if chosen["chosen"] >= 1 else "FAIL",
            f"probe_{precision}",
            f"chose {chosen['chosen']} trials per GPU in {chosen['seconds']:.1f} s; {levels};"
            f" {chosen.get('per_trial_mb') or 0:.0f} MB a trial",
            **chosen,
        )
        shutil.copy(probe, checks.out / f"gpu_probe_{precision}.json")
    elif rc == 0:
        checks.line("FAIL", f"probe_{precision}", "no sanity/gpu_probe.json")


def check_lanes(checks: Checks, work: Path, gpu: bool, dry: bool) -> None:
    counts = (1, 2) if dry else (1, 2, 4, 8)
    trials, epochs = (6, 2) if dry else (48, 10)
    base = None
    for n in counts:
        experiment = f"lanes-{n}"
        results = work / "results" / experiment
        config = [
            f"experiment={experiment}",
            f"gpu={{trials_per_gpu: {n}}}",
            f"coarse={{trials: {trials}, epochs: {epochs}, sampler: sobol}}",
        ]
        if dry:
            config += ["train={epochs: 2, batch_size: 128}", "lr_range={steps: 30}"]
        rc, wall, util = _run(
            _snakemake(work, [f"results/{experiment}/coarse/results.json"], config),
            checks.out / f"lanes_{n}.log",
        )
        bench = results / "benchmarks" / "coarse" / "worker-0-of-1.tsv"
        sweep = float(bench.read_text().split("\n")[1].split("\t")[0]) if bench.is_file() else 0
        done = [r for r in _trial_results(results / "coarse") if r.get("status") == "ok"]
        pids = {r.get("pid") for r in done}
        alone = sum(1 for r in done if r.get("retried_alone"))  # out of memory side by side
        base = base or sweep
        ok = rc == 0 and len(done) == trials and len(pids) == n
        checks.line(
            "PASS" if ok else "FAIL",
            f"lanes_{n}",
            f"{trials} trials x {epochs} epochs, {n} per GPU ({len(pids)} processes):"
            f" sweep {sweep:.1f} s ({base / sweep if sweep else 0:.2f}x one),"
            f" command {wall:.1f} s; {_util(util)}"
            + (f"; {alone} retried alone after running out of memory" if alone else ""),
            sweep_s=sweep,
            wall_s=wall,
            utilization=util,
            processes=len(pids),
            trials_ok=len(done),
            retried_alone=alone,
        )


def check_oom_retry(checks: Checks, work: Path) -> None:
    """Two lanes whose trials each take 60% of the GPU's memory: the second of two that
    meet runs out of memory, waits for the other to end, and trains again alone."""
    experiment, trials = "oom-retry", 6
    shutil.copy(REPO / "bench" / "crowded_task.py", work / "crowded_task.py")
    config = [
        f"experiment={experiment}",
        "task={name: crowded_task:make_task, options: {fraction: 0.6, hold_s: 2}}",
        "gpu={trials_per_gpu: 2}",
        f"coarse={{trials: {trials}, epochs: 2, sampler: sobol}}",
        "train={epochs: 2}",
        "overfit={subset: 64, max_steps: 50, enforce: false}",
        "lr_range={steps: 20}",
    ]
    results = work / "results" / experiment
    rc, wall, _ = _run(
        _snakemake(work, [f"results/{experiment}/coarse/results.json"], config),
        checks.out / "oom_retry.log",
    )
    done = [r for r in _trial_results(results / "coarse") if r.get("status") == "ok"]
    alone = [r for r in done if r.get("retried_alone")]
    overlaps = 0
    for retried in alone:
        start = retried["retried_alone"]["started_at"]
        end = start + retried["retried_alone"]["seconds"]
        for other in done:
            began = other["started_at"]
            if other is not retried and began < end and began + other["total_seconds"] > start:
                overlaps += 1
    ok = rc == 0 and len(done) == trials and alone and not overlaps
    waits = ", ".join(f"{r['retried_alone']['waited_s']:.1f} s" for r in alone)
    checks.line(
        "PASS" if ok else "FAIL",
        "oom_retry",
        f"exit code {rc}, {len(done)} of {trials} trials ok, {len(alone)} ran out of memory"
        f" beside the other lane and trained again alone (waited {waits or 'n/a'}),"
        f" {overlaps} trial(s) overlapping a retry; {wall:.1f} s",
        trials_ok=len(done),
        retried_alone=len(alone),
        overlaps=overlaps,
        wall_s=wall,
    )


CHECKS = (
    "provenance",
    "host_syncs",
    "host_syncs_fp16",  # early: the checks after it may run out of the budget
    "throughput",
    "ladder_fp32",
    "ladder_bf16",
    "lanes",
    "oom_retry",
)
# run only when named (--only): the other precisions' ladders, which the default run's
# budget leaves out; a second call checks them
EXTRA_CHECKS = ("ladder_fp16", "ladder_tf32")
# a check started with less time than this left would only time out
MIN_CHECK_S = 20.0
# the whole run on a GPU: the device machine gives a command 10 minutes, and the wheels'
# install, the report's copying back and a rerun's margin need the rest
GPU_BUDGET_S = 450.0


def run(
    out: Path, dry: bool, only: tuple[str, ...] = CHECKS, budget_s: float | None = None
) -> int:
    out.mkdir(parents=True, exist_ok=True)
    BUDGET.deadline = None if budget_s is None else time.monotonic() + budget_s
    import torch

    from tuneladder.infra.env import nvidia_smi

    gpu = torch.cuda.is_available() and not dry
    if not dry and not gpu:  # the checks would pass on the CPU and say nothing of a GPU
        print(
            f"FAIL cuda: torch {torch.__version__} (built for CUDA {torch.version.cuda})"
            " sees no GPU here; --dry runs the checks on the CPU"
        )
        return 1
    if not gpu:
        from tuneladder.infra.device import VISIBLE_GPUS_VARIABLE

        # a dry run plans as if the GPU were there, so the probe and the lanes run (on the
        # CPU): the workflow would otherwise ignore --resources gpu=1 on a CPU machine
        os.environ.setdefault(VISIBLE_GPUS_VARIABLE, "1")
    checks = Checks(out)
    checks.report.update(
        torch=torch.__version__,
        # nvidia-smi's: torch asked here would start CUDA in this process, and a context
        # held by the checks' parent counts in every job's memory
        device=(nvidia_smi("name") or "cuda") if gpu else "cpu",
        dry=dry,
        date=time.strftime("%Y-%m-%d"),
    )
    print(f"gpu_check: torch {torch.__version__}, {checks.report['device']}, dry={dry}")
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    steps = {
        "provenance": lambda: check_provenance(checks, gpu),
        "host_syncs": lambda: check_host_syncs(checks, gpu),
        "throughput": lambda: check_throughput(checks, gpu, dry),
        "ladder_fp32": lambda: check_ladder(checks, work, "fp32", gpu, dry),
        "ladder_bf16": lambda: check_ladder(checks, work, "bf16", gpu, dry) if gpu else None,
        "lanes": lambda: check_lanes(checks, work, gpu, dry),
        "oom_retry": lambda: check_oom_retry(checks, work),
        "ladder_fp16": lambda: check_ladder(checks, work, "fp16", gpu, dry),
        "ladder_tf32": lambda: check_ladder(checks, work, "tf32", gpu, dry),
        "host_syncs_fp16": lambda: check_host_syncs(checks, gpu, "fp16"),
    }
    for name in (name for name in CHECKS + EXTRA_CHECKS if name in only):
        if (left := BUDGET.left()) is not None and left < MIN_CHECK_S:
            checks.line("SKIP", name, f"out of time: {budget_s:.0f} s budget (--budget-s)")
            continue
        try:
            steps[name]()
        except OutOfTime as err:
            checks.line("SKIP", name, f"out of time ({err}; --budget-s {budget_s:.0f})")
        except Exception as err:  # one broken check must not hide the others' figures
            checks.line("FAIL", "check", f"{type(err).__name__}: {err}")
        checks.save()
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for log in glob.glob(str(work / "results" / "*" / "logs")):
            tar.add(log, arcname=str(Path(log).relative_to(work)))
    failed = [c for c in checks.report["checks"] if c["status"] == "FAIL"]
    passed = [c for c in checks.report["checks"] if c["status"] == "PASS"]
    print(f"gpu_check: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wheels")
    w.add_argument("folder", type=Path)
    w.add_argument("--python", default="3.12", help="the GPU machine's CPython (default 3.12)")
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--dry", action="store_true", help="CPU only, tiny sizes (for CI)")
    r.add_argument(
        "--only",
        nargs="+",
        choices=CHECKS + EXTRA_CHECKS,
        default=CHECKS,
        help=f"these checks (default: all but {', '.join(EXTRA_CHECKS)})",
    )
    r.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help=f"wall seconds for all checks (default {GPU_BUDGET_S:.0f} on a GPU, none dry)",
    )
    args = parser.parse_args()
    if args.command == "wheels":
        wheels(args.folder, args.python)
    else:
        budget = args.budget_s
        if budget is None and not args.dry:
            budget = GPU_BUDGET_S
        raise SystemExit(run(args.out.resolve(), args.dry, tuple(args.only), budget))


if __name__ == "__main__":
    main()
