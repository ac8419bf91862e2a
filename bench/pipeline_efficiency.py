"""How close the ladder's wall time comes to its trials' training time / slots.

Runs the real workflow on a config in a scratch directory (or ``--keep DIR``) and
prints:

- per rung, the trials and the seconds they spent in their training loops;
- the efficiency, (sum of the trials' training seconds / cores) / wall time, where
  wall time runs from the `snakemake` command to the summary and the report;
- every job's own wall and CPU seconds, from Snakemake's benchmark files, with the
  bookkeeping jobs (plan, select, collect: they only read and write small files)
  marked against their 1 s target;
- per worker job, the seconds from its process start to its first training step;
- whether the overfit check and the LR range test ran side by side.

    python bench/pipeline_efficiency.py [--config config/config.yaml] [--cores 2]
    python bench/pipeline_efficiency.py --config bench/long-trials.yaml
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from _workflow import REPO, snakemake_command

BOOKKEEPING = ("plan", "select", "collect")  # jobs that only read and write small files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="run here and keep the results")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    config = args.config.resolve()
    experiment = yaml.safe_load(config.read_text())["experiment"]
    with tempfile.TemporaryDirectory() as scratch:
        # resolved before Snakemake changes directory: a relative --keep means here
        workdir = (args.keep or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        command = snakemake_command(workdir, config, args.cores)
        started = time.time()
        subprocess.run(command, check=True, cwd=workdir)
        exited = time.time() - started
        results = workdir / "results" / experiment
        # the wall time: from the command to the summary and the report; jobs
        # off that path (MLflow's copy of the final model) may still run after them
        ends = ("final/summary.md", "report/index.html")
        done = max((results / end).stat().st_mtime for end in ends)
        wall = done - started
        print(f"snakemake exited after {exited:.1f} s; summary and report after {wall:.1f} s")
        figures = measure(results, wall, args.cores)
        figures["snakemake_exit_s"] = exited
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def _trials(results: Path) -> tuple[dict, dict, dict]:
    """Per rung: seconds in training loops, seconds in trials, and trials run.

    A halving level's trial continues the state of the one before it, and its
    ``train_seconds`` counts the epochs it continues as well as its own. So the
    training seconds come from the rung's table (``results.json``: one row per
    config, at the last level it reached), where each epoch counts once, as in the
    report. Trial seconds (``total_seconds``, one process's time on one trial)
    and the count cover every level's trials.
    """
    train: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for table in sorted(results.glob("*/results.json")):
        for row in json.loads(table.read_text())["trials"]:
            train[table.parent.name] += row.get("train_seconds") or 0.0
    # the trials each rung planned (MLflow's artifact copies of result.json do not count);
    # a sweep that halves plans each level in levels/<l>/plan.json (dirs relative to it)
    plans = sorted(results.glob("*/plan.json")) + sorted(results.glob("*/levels/*/plan.json"))
    paths = []
    for plan in plans:
        data = json.loads(plan.read_text())
        if data.get("halving"):
            continue  # its levels' plans list the trials
        paths += [plan.parent / entry["dir"] / "result.json" for entry in data["trials"]]
    for path in paths:
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        rung = result["trial"].get("rung", path.parts[-3]).split("/")[0]
        total[rung] += result["total_seconds"]
        count[rung] += 1
    return train, total, count


def _jobs(results: Path) -> dict[str, dict[str, float]]:
    """Each job's wall and CPU seconds, from the benchmark file its rule writes."""
    jobs = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        name = str(path.relative_to(results / "benchmarks").with_suffix(""))
        jobs[name] = {"wall_s": float(row["s"]), "cpu_s": float(row.get("cpu_time") or 0)}
    return jobs


def _first_steps(results: Path) -> dict[str, float | None]:
    """Seconds from a worker's process start to its first training step, per worker job."""
    steps = {}
    found = sorted(results.glob("*/workers/*.json")) + sorted(
        results.glob("*/levels/*/workers/*.json")
    )
    for path in found:
        report = json.loads(path.read_text())
        steps[str(path.relative_to(results).parent.parent / path.stem)] = report.get(
            "first_step_s"
        )
    return steps


def _sanity_overlap(results: Path) -> float | None:
    """Seconds the overfit check and the LR range test ran at the same time."""
    spans = []
    for name in ("overfit", "lr_range"):
        path = results / "sanity" / f"{name}.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        if data.get("started_at") is None or data.get("finished_at") is None:
            return None
        spans.append((data["started_at"], data["finished_at"]))
    (a0, a1), (b0, b1) = spans
    return max(0.0, min(a1, b1) - max(a0, b0))


def measure(results: Path, wall: float, slots: int) -> dict:
    train, total, count = _trials(results)
    print(f"{'rung':<8}{'trials':>7}{'train s':>10}{'trial s':>10}")
    for rung in sorted(count):
        print(f"{rung:<8}{count[rung]:>7}{train[rung]:>10.1f}{total[rung]:>10.1f}")
    all_train = sum(train.values())
    efficiency = all_train / slots / wall
    print(f"wall time {wall:.1f} s on {slots} cores; training loops {all_train:.1f} s in all")
    print(f"efficiency (training s / cores) / wall = {efficiency:.2f} (target >= 0.85)")

    jobs = _jobs(results)
    print(f"\n{'job':<34}{'wall s':>8}{'cpu s':>8}")
    for name, job in jobs.items():
        mark = ""
        if name.split("/")[-1].startswith(BOOKKEEPING) or "collect" in name:
            mark = "  bookkeeping: " + ("ok" if job["wall_s"] <= 1.0 else "over 1 s")
        print(f"{name:<34}{job['wall_s']:>8.2f}{job['cpu_s']:>8.2f}{mark}")

    steps = _first_steps(results)
    print("\nworker job: seconds from process start to its first training step (target <= 3)")
    for name, seconds in steps.items():
        print(f"  {name:<30}{'n/a' if seconds is None else f'{seconds:.2f}':>8}")
    overlap = _sanity_overlap(results)
    print(
        "overfit check and LR range test side by side: "
        + ("n/a" if overlap is None else f"{overlap:.1f} s of overlap")
    )

    summary = json.loads((results / "final" / "summary.json").read_text())
    print(
        f"\ntest {summary['metric']}: tuned {summary['test_mean']:.4f} "
        f"± {summary['test_std'] or 0:.4f}, untuned default "
        f"{summary['baseline']['test']['mean']:.4f}"
    )
    return {
        "wall_s": wall,
        "cores": slots,
        "train_s": dict(train),
        "trial_s": dict(total),
        "trials": dict(count),
        "efficiency": efficiency,
        "jobs": jobs,
        "first_step_s": steps,
        "sanity_overlap_s": overlap,
        "test_mean": summary["test_mean"],
        "baseline_test_mean": summary["baseline"]["test"]["mean"],
    }


if __name__ == "__main__":
    main()
