"""GPUs, cluster profiles and conda environments; a real one-node SLURM cluster."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from test_interrupt import EPOCHS, _epochs_saved, fingerprints, slow_ladder

import helpers
from helpers import REPO, SNAKEMAKE, planned_jobs, results_of, rung_target, snakemake
from tuneladder.infra.device import VISIBLE_GPUS_VARIABLE
from tuneladder.store.io import read_json

# the tests' tiny ladder with `workers: auto`: how many workers a rung gets (one a GPU,
# a core, or a SLURM job) is what this file checks
tiny_config = functools.partial(helpers.tiny_config, workers="auto")
write_config = functools.partial(helpers.write_config, workers="auto")


CLUSTER_SCRIPT = REPO / "scripts" / "slurm-cluster.sh"

# conda names that are the same distribution as a pip name
CONDA_TO_PIP = {
    "pytorch": "torch",
    "matplotlib-base": "matplotlib",
    "snakemake-minimal": "snakemake",
}


def _requirement(spec: str) -> tuple[str, str]:
    """'optuna>=5,<6' -> ('optuna', '<6,>=5'); a conda build string (=cpu*) is dropped."""
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec.strip())
    assert match, spec
    name, bounds = match[1].lower().replace("_", "-"), match[2]
    bounds = re.sub(r"(?<![<>=!])=[^,<>=]*\*$", "", bounds)  # conda build selector
    return CONDA_TO_PIP.get(name, name), ",".join(sorted(b for b in bounds.split(",") if b))


def _pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return dict(_requirement(dep) for dep in project["dependencies"])


@pytest.mark.parametrize("env", ["tuneladder-cpu.yaml", "tuneladder-cuda.yaml"])
def test_conda_env_agrees_with_pyproject(env: str) -> None:
    spec = yaml.safe_load((REPO / "envs" / env).read_text())
    conda = dict(
        _requirement(dep)
        for dep in spec["dependencies"]
        if isinstance(dep, str) and not dep.startswith(("python", "pip"))
    )
    pip = _pyproject_dependencies()
    assert set(conda) == set(pip), (
        f"only conda: {set(conda) - set(pip)}, only pip: {set(pip) - set(conda)}"
    )
    for name, bounds in pip.items():
        if bounds and conda[name]:
            assert conda[name] == bounds, f"{env}: {name} {conda[name]} vs pyproject {bounds}"


def test_requirement_parsing() -> None:
    assert _requirement("pytorch>=2.3=cuda*") == ("torch", ">=2.3")
    assert _requirement("matplotlib-base>=3.8") == ("matplotlib", ">=3.8")
    assert _requirement("optuna>=5,<6") == ("optuna", "<6,>=5")


TWO_GPUS = {VISIBLE_GPUS_VARIABLE: "2"}  # planned as on a machine with two


@pytest.mark.slow
def test_two_gpus_give_two_workers_per_rung(tmp_path: Path) -> None:
    # planning never touches CUDA, so device: cuda is planned on a CPU machine
    write_config(tmp_path, device="cuda")
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=2", env=TWO_GPUS)
    assert planned_jobs(proc.stdout)["sweep_worker"] == 2 * 3
    assert "gpu=1" in proc.stdout
    # trials_per_gpu: auto (the default) measures the lanes once, before the first workers
    assert planned_jobs(proc.stdout)["gpu_probe"] == 1
    assert "2 GPUs (--resources gpu=2), trials per GPU measured by the GPU probe" in proc.stderr
    # it tries up to a lane per core that each GPU's worker shares: 4 cores over 2 GPUs
    assert re.search(r"rule gpu_probe:\n(    .*\n)*?    threads: 2\n", proc.stdout)
    # 2 trials side by side on each of 2 GPUs: still one worker job per GPU, no probe
    write_config(tmp_path, device="cuda", gpu={"trials_per_gpu": 2})
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=2", env=TWO_GPUS)
    assert planned_jobs(proc.stdout)["sweep_worker"] == 2 * 3
    assert "gpu_probe" not in planned_jobs(proc.stdout)
    assert "2 GPUs (--resources gpu=2), 2 trials side by side on each" in proc.stderr
    # more GPUs asked for than the machine shows: a worker per GPU that exists
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=4", env=TWO_GPUS)
    assert planned_jobs(proc.stdout)["sweep_worker"] == 2 * 3
    assert "2 GPUs (--resources gpu=4, but this machine shows 2), 2 trials" in proc.stderr
    # more lanes than a worker has trials (the seed reruns, 6 over 2 workers, have most):
    # the plan says how many can run side by side
    write_config(tmp_path, device="cuda", gpu={"trials_per_gpu": 64})
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=2", env=TWO_GPUS)
    assert (
        "up to 3 trials side by side on each (64 asked: no rung gives a worker more)"
    ) in proc.stderr
    write_config(tmp_path, device="cuda", gpu={"trials_per_gpu": 2})
    # not said: every GPU the machine shows, a worker each (not all of them on the first)
    write_config(tmp_path, device="auto", gpu={"trials_per_gpu": 2})
    proc = snakemake(tmp_path, "-n", "--cores", "4", env=TWO_GPUS)
    assert planned_jobs(proc.stdout)["sweep_worker"] == 2 * 3
    assert "gpu=1" in proc.stdout
    assert (
        "auto, fp32: 2 GPUs (every GPU this machine shows; --resources gpu=N uses fewer),"
        " 2 trials side by side on each"
    ) in proc.stderr
    # -j N, Snakemake's cluster form, typed on a machine with GPUs: the plan says what it does
    proc = snakemake(tmp_path, "-n", "--jobs", "4", env=TWO_GPUS)
    assert "device  auto: planned as for a cluster (--jobs)" in proc.stderr
    assert "--cores N (not -j) shares this machine's 2 GPUs among the workers" in proc.stderr
    # gpu=0 given: no job may hold a GPU, so the trials train on the CPU, one worker a core
    write_config(tmp_path, device="auto")
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=0", env=TWO_GPUS)
    assert "device  auto: --resources gpu=0, so trials train on the CPU" in proc.stderr
    assert planned_jobs(proc.stdout)["sweep_worker"] == 4 + 3 + 4
    write_config(tmp_path, device="cuda")
    proc = snakemake(
        tmp_path, "-n", "--cores", "4", "--resources", "gpu=0", env=TWO_GPUS, check=False
    )
    assert proc.returncode != 0
    assert "config error: device: cuda, but --resources gpu=0 lets no job use a GPU" in proc.stderr
    # cores for one worker of 4 threads: the plan says the second GPU idles, and why
    write_config(tmp_path, device="cuda", threads=4)
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=2", env=TWO_GPUS)
    assert planned_jobs(proc.stdout)["sweep_worker"] == 3
    assert (
        "but --cores 4 holds 1 worker of threads: 4 at once, so 1 GPU stays idle"
        " (lower threads or raise --cores)"
    ) in proc.stderr
    write_config(tmp_path, device="cpu")
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=2", env=TWO_GPUS)
    assert planned_jobs(proc.stdout)["sweep_worker"] == 4 + 3 + 4  # cores, capped by trials
    assert "gpu=1" not in proc.stdout
    assert "device  cpu: --resources gpu=2 is ignored and trials train on the CPU" in proc.stderr
    # a GPU count that is not a number: one line, before anything is planned
    bad = {VISIBLE_GPUS_VARIABLE: "two"}
    proc = snakemake(tmp_path, "-n", "--cores", "4", env=bad, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "tuneladder: TUNELADDER_VISIBLE_GPUS must be a number of GPUs, got 'two'" in proc.stderr


@pytest.mark.slow
def test_a_run_that_names_no_gpu_count_runs_a_job_per_gpu_at_a_time(tmp_path: Path) -> None:
    """A worker per trial on four cores of a machine with two (fake) GPUs and no
    --resources gpu=N: Snakemake counts the workers against the two GPUs, so none starts
    to wait for a claim while it holds a core."""
    write_config(tmp_path, device="auto", workers="per-trial", gpu={"trials_per_gpu": 1})
    (tmp_path / "tmp").mkdir()  # the claims' lock files: apart from other tests'
    # the two listed, whatever an earlier test in this process left in its environment
    env = {**TWO_GPUS, "TMPDIR": str(tmp_path / "tmp"), "CUDA_VISIBLE_DEVICES": "0,1"}
    results = results_of(tmp_path)
    target = str((results / "coarse" / "results.json").relative_to(tmp_path))
    snakemake(tmp_path, "--cores", "4", "--", target, env=env)
    logs = [p.read_text() for p in sorted((results / "logs" / "coarse").glob("worker-*.log"))]
    assert len(logs) == 4
    assert all(re.search(r"claimed GPU [01] \(this run uses 2 at once\)", log) for log in logs)
    assert not [log for log in logs if "waiting for one" in log]


@pytest.mark.slow
def test_gpu_settings_on_a_machine_without_a_gpu_are_said_before_any_job(tmp_path: Path):
    no_gpu = {VISIBLE_GPUS_VARIABLE: "0"}
    write_config(tmp_path, device="auto")
    proc = snakemake(tmp_path, "-n", "--cores", "4", "--resources", "gpu=1", env=no_gpu)
    assert (
        "device  auto: this machine has no GPU, so --resources gpu=1 is ignored"
        " and trials train on the CPU"
    ) in proc.stderr
    jobs = planned_jobs(proc.stdout)
    assert jobs["sweep_worker"] == 4 + 3 + 4  # the cores, not cut to the one GPU
    assert "gpu_probe" not in jobs and not re.search(r"resources: .*\bgpu=1", proc.stdout)
    assert "precision" not in proc.stderr  # fp32: nothing to say
    # bf16 asked for where the trials train on the CPU: ignored there, but still their key
    write_config(tmp_path, device="auto", precision="bf16")
    proc = snakemake(tmp_path, "-n", "--cores", "4", env=no_gpu)
    assert (
        "  precision bf16: ignored where trials train on the CPU, as here: they train in"
        " fp32, keyed bf16 (a run on a GPU retrains them)"
    ) in proc.stderr
    write_config(tmp_path, device="cuda")
    proc = snakemake(tmp_path, "--cores", "4", "--resources", "gpu=1", env=no_gpu, check=False)
    assert proc.returncode != 0
    assert "config error: device: cuda, but this machine has no GPU" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()


def test_slurm_profile_maps_gpus_and_jobs() -> None:
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"runtime", "mem_mb", "slurm_partition"} <= set(profile["default-resources"])
    assert isinstance(profile["jobs"], int)


def _cluster_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start a local SLURM cluster"
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(b)]
    if missing:
        packages = "slurmctld slurmd slurm-client munge"
        return f"SLURM not installed ({', '.join(missing)}); apt-get install {packages}"
    if Path("/etc/slurm/slurm.conf").exists():
        with open("/etc/slurm/slurm.conf") as handle:
            if "tuneladder" not in handle.readline():
                return "/etc/slurm/slurm.conf belongs to another cluster"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = _cluster_available()
    if reason:
        pytest.skip(reason)
    subprocess.run([str(CLUSTER_SCRIPT), "start"], check=True, capture_output=True, timeout=60)
    try:
        yield
    finally:
        # also removes /etc/slurm/slurm.conf: without a controller every snakemake
        # call would stall ~10 s probing it
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], check=False, timeout=60)


def _slurm_command(workdir: Path, *, jobs: int) -> list[str]:
    """The ladder on the test cluster, with the project's SLURM profile."""
    return [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        "--jobs",
        str(jobs),
        # the test cluster: default partition, no accounting (so squeue, not sacct)
        "--default-resources",
        "runtime=10",
        "mem_mb=900",
        "cpus_per_task=1",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
    ]


@pytest.mark.slow
def test_ladder_runs_inside_slurm_jobs(slurm_cluster, tmp_path: Path) -> None:
    """Up to the coarse rung: sanity and worker jobs on SLURM, bookkeeping local.

    The later rungs are the same kinds of job again (worker jobs, local bookkeeping,
    one evaluation job), so climbing them here would add minutes, not evidence.
    """
    config = tiny_config(mlflow={"enabled": False})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [*_slurm_command(tmp_path, jobs=2), "results/tiny/coarse/results.json"]
    start = time.monotonic()
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, timeout=1200, check=False
    )
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = results_of(tmp_path)
    trials = sorted(results.glob("coarse/trials/*/result.json"))
    assert len(trials) == 4
    job_ids = {read_json(p)["slurm_job_id"] for p in trials}
    assert None not in job_ids, "a trial ran outside a SLURM job"
    assert 1 <= len(job_ids) <= 2  # the rung's worker jobs (--jobs 2); one may take all
    assert read_json(results / "sanity" / "overfit.json")["passed"]
    assert read_json(results / "coarse" / "results.json")["counts"] == {"ok": 4}
    benchmarks = list((results / "benchmarks").rglob("*.tsv"))  # one per job, local ones too
    busy = sum(float(p.read_text().splitlines()[1].split("\t")[0]) for p in benchmarks)
    jobs = len(benchmarks)
    print(f"SLURM ladder: {jobs} jobs, {wall:.0f} s wall, {busy:.0f} s inside rules")


def _slurm_job_of(pid: int) -> str | None:
    """The SLURM job a process runs in (its environment says; this test runs as root)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # ended this instant
        return None
    for item in environ:
        if item.startswith(b"SLURM_JOB_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


def _cancel_a_worker_mid_trial(
    workdir: Path, proc: subprocess.Popen
) -> tuple[str, Path, set[Path]]:
    """Once a trial has trained a few of its epochs, scancel the SLURM job training it.

    Returns the job, the trial, and the trials finished before the cancel.
    """
    coarse = results_of(workdir) / "coarse"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the ladder ended before a worker could be cancelled"
        done = {p.parent for p in coarse.glob("trials/*/result.json")}
        for claim in coarse.glob("claims/*.claim"):
            trial = coarse / "trials" / claim.name.removesuffix(".claim")
            saved = _epochs_saved(trial / "checkpoint.pt") or 0
            if trial in done or not 1 <= saved <= EPOCHS // 2:
                continue
            try:
                pid = int(json.loads(claim.read_text())["pid"])
            except (OSError, TypeError, KeyError, ValueError):
                continue  # being written or released this instant
            job = _slurm_job_of(pid)
            if job is not None:
                subprocess.run(["scancel", job], check=True, timeout=30)
                return job, trial, done
        time.sleep(0.1)
    raise AssertionError("no worker was caught mid-trial")


@pytest.mark.slow
def test_a_cancelled_worker_job_loses_no_trial(slurm_cluster, tmp_path: Path) -> None:
    """Four worker jobs on a two-CPU node; one cancelled by scancel mid-trial.

    Snakemake resubmits the cancelled job (the profile's retries), the trial it held
    resumes from its checkpoint in another job, and the rung ends whole. Up to the coarse
    rung, as above: the later rungs' jobs are of the same kinds.
    """
    slow_ladder(tmp_path)
    coarse_trials = 8
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["coarse"]["trials"] = coarse_trials
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        *_slurm_command(tmp_path, jobs=4),
        "--slurm-keep-successful-logs",
        rung_target(tmp_path, "coarse"),
    ]
    with open(tmp_path / "snakemake.log", "w") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            job, trial, done = _cancel_a_worker_mid_trial(tmp_path, proc)
            before = fingerprints(done)
            returncode = proc.wait(timeout=1200)
        finally:
            if proc.poll() is None:
                proc.kill()
    printed = (tmp_path / "snakemake.log").read_text()
    assert returncode == 0, printed[-4000:]
    results = results_of(tmp_path)
    # no trial lost: every planned one finished, each epoch trained once
    rows = read_json(results / "coarse" / "results.json")["trials"]
    assert len(rows) == coarse_trials and {r["status"] for r in rows} == {"ok"}
    assert all(r["epochs_run"] == EPOCHS for r in rows)
    # none trained twice: the ones finished before the cancel were left as they were,
    # and the one the cancelled job held went on from its checkpoint in another job
    assert fingerprints(done) == before, "a finished trial was retrained"
    result = read_json(trial / "result.json")
    assert result["slurm_job_id"] not in (None, job)
    assert result["resumed_from_epoch"] is not None and result["resumed_from_epoch"] >= 1
    history = (trial / "history.csv").read_text().split()[1:]
    assert [int(line.split(",")[0]) for line in history] == list(range(EPOCHS))
    # the cancelled worker job was submitted once more (retries in profiles/slurm)
    submitted = list((tmp_path / ".snakemake" / "slurm_logs").glob("rule_sweep_worker/coarse_*/*"))
    assert len(submitted) == 4 + 1
    workers = {read_json(p)["slurm_job_id"] for p in results.glob("coarse/trials/*/result.json")}
    print(f"cancelled job {job} mid-trial; coarse trials ran in SLURM jobs {sorted(workers)}")
