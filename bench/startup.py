"""Start-up cost of the ladder's head and of a worker job.

The head (prepare, then the overfit check beside the LR range test, then the coarse
plan) runs before any sweep, with at most two jobs at a time: its wall time is
spent while the other slots wait. This bench runs it with the real workflow in a
scratch directory, ``--rounds`` times (prepare forced each time, so everything
after it reruns), and prints each job's wall and CPU seconds from Snakemake's
benchmark files (the median over rounds) and the seconds from the `snakemake`
command to the coarse plan.

Then it runs one worker job as its rule's script does, in a fresh process, on a
plan of the coarse sweep's first trial cut to one epoch (``--rounds`` times), and
prints the process's wall and CPU seconds, the seconds from its start to its
first trial's start, and that trial's set-up (its seconds outside its epochs:
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

# What workflow/scripts/sweep_worker.py does, with the values its rule would pass.
WORKER = """
from tuneladder.stages import Runtime, logged, sweep_worker_stage
import json, sys
config, plan, data_dir, out = json.loads(sys.argv[1]), *sys.argv[2:]
runtime = {
    "device": config["device"], "precision": config["precision"], "gpus": 0,
    "checkpoint_every_s": config["checkpoint_every_s"],
    "stale_claim_s": config["stale_claim_s"],
    "num_workers": config["data"]["num_workers"], "pin_memory": config["data"]["pin_memory"],
}
with logged(out + ".log"):
    sweep_worker_stage(
        plan=plan, data_dir=data_dir, task=config["task"], worker=0, workers=1,
        metric=config["metric"], runtime=Runtime.from_params(runtime, threads=config["threads"]),
        out=out,
    )
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = args.config.resolve()
    experiment = yaml.safe_load(config.read_text())["experiment"]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        results = workdir / "results" / experiment
        runs: dict[str, list[tuple[float, float]]] = {job: [] for job in HEAD}
        heads = []
        for _ in range(args.rounds):
            target = f"results/{experiment}/coarse/plan.json"
            command = snakemake_command(
                workdir, config, args.cores, target, extra=("--forcerun", "prepare")
            )
            started = time.time()
            subprocess.run(command, check=True, cwd=workdir)
            heads.append((results / "coarse" / "plan.json").stat().st_mtime - started)
            for job in HEAD:
                runs[job].append(_benchmark(results / "benchmarks" / f"{job}.tsv"))
        print(f"{'job':<16}{'wall s':>8}{'cpu s':>8}   (median of {args.rounds})")
        for job, values in runs.items():
            wall = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            print(f"{job:<16}{wall:>8.2f}{cpu:>8.2f}")
        print(f"command to coarse plan: {statistics.median(heads):.2f} s (median)")
        worker = [_worker(results, workdir / f"worker-{i}", config) for i in range(args.rounds)]
        wall, cpu, first, setup = (statistics.median(v) for v in zip(*worker, strict=True))
        print(
            f"worker (1 trial, 1 epoch): {wall:.2f} s wall, {cpu:.2f} s CPU; its trial starts"
            f" {first:.2f} s after the process and spends {setup:.2f} s outside its epoch"
        )


def _benchmark(path: Path) -> tuple[float, float]:
    """A job's wall and CPU seconds, as Snakemake's ``benchmark:`` measured them."""
    with open(path) as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return float(row["s"]), float(row["cpu_time"])


def _worker(results: Path, folder: Path, config_path: Path) -> tuple[float, float, float, float]:
    """One worker job on a one-trial, one-epoch plan: wall, CPU, first trial's start, set-up."""
    sys.path.insert(0, str(REPO / "src"))
    from tuneladder.config import load_config

    config = load_config(config_path)
    plan = json.loads((results / "coarse" / "plan.json").read_text())
    trial = plan["trials"][0]
    trial = {**trial, "dir": "trials/0", "config": {**trial["config"], "epochs": 1}}
    one = {key: value for key, value in plan.items() if key != "halving"}
    one["trials"] = [trial]
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(one))
    out = folder / "marker.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-c", WORKER, json.dumps(config), str(folder / "plan.json")]
    subprocess.run([*command, str(results / "data"), str(out)], check=True, cwd=folder)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    first = json.loads(out.read_text())["first_step_s"]
    trial = json.loads((folder / "trials" / "0" / "result.json").read_text())
    return wall, cpu, first, trial["total_seconds"] - trial["train_seconds"]


if __name__ == "__main__":
    main()
