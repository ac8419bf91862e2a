"""Start-up cost of the ladder's head and of a worker job.

The head (prepare, then the overfit check beside the LR range test, then the coarse
plan) runs before any sweep, with at most two jobs at a time: its wall time is
spent while the other slots wait. This bench runs it with the real workflow in a
scratch directory, ``--rounds`` times (prepare forced each time, so everything
after it reruns), and prints each job's wall seconds from Snakemake's benchmark
files and the seconds from the `snakemake` command to the coarse plan (medians).
Snakemake samples a job's CPU time every 0.5 s and so misses up to that much, so
the CPU seconds come from a second pass: each head job's stage function, called
as its rule's script calls it, in a fresh process (wall and CPU of that process).

The worker job runs the same way on a plan of the coarse sweep's first trial cut
to one epoch. Besides its wall and CPU it prints the seconds from its start to
its first trial's start, and that trial's set-up (its seconds outside its epochs:
building the model and optimizer, which imports ``torch._dynamo`` unless the job
did that first).

    python bench/startup.py [--rounds 3] [--cores 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _workflow import REPO, snakemake_command

HEAD = ("prepare", "overfit_check", "lr_range_test", "plan_coarse")

# What the rules' scripts do, with the values their rules would pass (rules/*.smk).
PREAMBLE = """
import json, sys
from tuneladder.stages import *
from tuneladder.stages import Runtime, logged
c, results, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
data = results + "/data"
runtime = Runtime.from_params({
    "device": c["device"], "precision": c["precision"], "gpus": 0,
    "checkpoint_every_s": c["checkpoint_every_s"], "stale_claim_s": c["stale_claim_s"],
    "num_workers": c["data"]["num_workers"], "pin_memory": c["data"]["pin_memory"],
}, threads=c["threads"])
"""
CALLS = {
    "prepare": """prepare_stage(task=c["task"], seed=c["seed"], data_dir=out + ".data",
    data={"materialize": c["data"]["materialize"], "max_memory_mb": c["data"]["max_memory_mb"]},
    train=c["train"])""",
    "overfit_check": """overfit_check_stage(data_dir=data, task=c["task"], train=c["train"],
    seed=c["seed"], overfit=c["overfit"], runtime=runtime, out=out)""",
    "lr_range_test": """lr_range_test_stage(data_dir=data, task=c["task"], train=c["train"],
    seed=c["seed"], lr_range=c["lr_range"], runtime=runtime, out=out, csv_out=out + ".csv")""",
    "plan_coarse": """plan_coarse_stage(space=c["space"], task=c["task"], train=c["train"],
    lr_range=results + "/sanity/lr_range.json", sweep=c["coarse"], seed=c["seed"], out=out)""",
    "worker": """sweep_worker_stage(plan=sys.argv[4], data_dir=data, task=c["task"],
    metric=c["metric"], runtime=runtime, job=WorkerJob(worker=0, workers=1, out=out))""",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config_path = args.config.resolve()
    experiment = yaml.safe_load(config_path.read_text())["experiment"]
    sys.path.insert(0, str(REPO / "src"))
    from tuneladder.ladder.config import load_config

    config = load_config(config_path)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        results = workdir / "results" / experiment
        walls: dict[str, list[float]] = {job: [] for job in HEAD}
        heads = []
        for _ in range(args.rounds):
            target = f"results/{experiment}/coarse/plan.json"
            command = snakemake_command(
                workdir, config_path, args.cores, target, extra=("--forcerun", "prepare")
            )
            started = time.time()
            subprocess.run(command, check=True, cwd=workdir)
            heads.append((results / "coarse" / "plan.json").stat().st_mtime - started)
            for job in HEAD:
                walls[job].append(_benchmark_wall(results / "benchmarks" / f"{job}.tsv"))
        plan = _one_trial_plan(results, workdir / "plan.json")
        alone: dict[str, list[tuple[float, float]]] = {job: [] for job in (*HEAD, "worker")}
        worker = []
        for i in range(args.rounds):
            for job in alone:
                folder = workdir / "alone" / f"{job}-{i}"
                folder.mkdir(parents=True)
                extra = [str(plan)] if job == "worker" else []
                alone[job].append(_alone(job, config, results, folder / "out.json", extra))
            folder = workdir / "alone" / f"worker-{i}"
            first = json.loads((folder / "out.json").read_text())["first_step_s"]
            trial = json.loads((folder / "trials" / "0" / "result.json").read_text())
            worker.append((first, trial["total_seconds"] - trial["train_seconds"]))
    header = f"{'job':<16}{'in Snakemake':>14}{'alone: wall':>13}{'cpu':>7}"
    print(f"{header}  (seconds, median of {args.rounds})")
    for job, runs in alone.items():
        ran = f"{statistics.median(walls[job]):>14.2f}" if job in walls else f"{'':>14}"
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{job:<16}{ran}{wall:>13.2f}{cpu:>7.2f}")
    print(f"`snakemake` command to the coarse plan: {statistics.median(heads):.2f} s")
    first, setup = (statistics.median(v) for v in zip(*worker, strict=True))
    print(
        f"worker (1 trial, 1 epoch): its trial starts {first:.2f} s after the process"
        f" and spends {setup:.2f} s outside its epoch"
    )


def _benchmark_wall(path: Path) -> float:
    """A job's wall seconds, as Snakemake's ``benchmark:`` measured them."""
    with open(path) as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def _one_trial_plan(results: Path, out: Path) -> Path:
    """The coarse sweep's first trial, one epoch, as a plan of its own (no halving)."""
    plan = json.loads((results / "coarse" / "plan.json").read_text())
    trial = plan["trials"][0]
    trial = {**trial, "dir": "trials/0", "config": {**trial["config"], "epochs": 1}}
    one = {key: value for key, value in plan.items() if key != "halving"}
    one["trials"] = [trial]
    out.write_text(json.dumps(one))
    return out


def _alone(
    job: str, config: dict, results: Path, out: Path, extra: list[str]
) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh process running ``job``'s stage as its script does."""
    code = f"{PREAMBLE}\nwith logged(out + '.log'):\n    {CALLS[job]}\n"
    if job == "worker":  # its trial folders go beside the plan: run it in a copy of the plan
        plan = out.parent / "plan.json"
        plan.write_text(Path(extra[0]).read_text())
        extra = [str(plan)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-c", code, json.dumps(config), str(results), str(out), *extra]
    subprocess.run(command, check=True, cwd=out.parent)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


if __name__ == "__main__":
    main()
