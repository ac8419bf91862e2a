"""The ladder's bookkeeping at 1,000 to 100,000 coarse trials, on a synthetic coarse sweep.

For each size, in a fresh folder: the real workflow prepares the data, runs the
sanity rungs and plans a coarse sweep of N trials (no halving); this script then
writes every planned trial's folder as a finished worker would (``config.json``,
``history.csv`` of 15 epochs, ``result.json`` with the key the workers and
``collect`` expect), so no coarse trial trains. It then times ``snakemake -n``,
runs the rest of the ladder (the coarse workers pass over N finished trials;
collect, select, the fine sweep, seeds, final and the report run for real) and
reports each job's seconds and peak memory from Snakemake's benchmark files,
then times ``tuneladder status``. Goals (issue: a ladder measured at 100,000
trials): ``snakemake -n`` <= 10 s and every bookkeeping job <= 30 s at 100,000.

    python bench/scale_ladder.py --sizes 1000 10000 100000 [--mlflow-up-to 1000]

MLflow mirrors every trial in one job at the end; it is switched on only up to
``--mlflow-up-to`` trials (its cost per trial is printed, to scale from).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _workflow import REPO, snakemake_command

from tuneladder.core.curves import curve_summary
from tuneladder.core.hparams import TrialConfig, config_hash
from tuneladder.store.io import write_json
from tuneladder.store.trial_files import CONFIG_FILE, HISTORY_COLUMNS, HISTORY_FILE, RESULT_FILE
from tuneladder.store.trials import code_fingerprint, entry_key

EXPERIMENT = "scale"
EPOCHS = 15
BOOKKEEPING = ("plan_coarse", "coarse/worker", "coarse/collect", "select_top_k", "report")


def _config(trials: int, mlflow: bool) -> dict:
    """The default experiment (its task and space) with N coarse trials and small rest."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return {
        **default,
        "experiment": EXPERIMENT,
        "budget": "quick",
        "coarse": {"trials": trials, "epochs": EPOCHS, "sampler": "random", "halving": None},
        "fine": {"trials": 6, "epochs": 2, "halving": None},
        "seeds": {"finalists": 2, "seeds": 2, "epochs": 2},
        "train": {"epochs": 2},
        "mlflow": {"enabled": mlflow},
    }


def _write_trials(results: Path) -> float:
    """Every planned coarse trial as finished; returns the seconds it took."""
    started = time.perf_counter()
    plan = json.loads((results / "coarse" / "plan.json").read_text())
    meta = json.loads((results / "data" / "meta.json").read_text())
    code = code_fingerprint("tuneladder.tasks.digits")
    rng = random.Random(0)
    for entry in plan["trials"]:
        config = TrialConfig.from_json(entry["config"])
        folder = results / "coarse" / entry["dir"]
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CONFIG_FILE, config.to_json())
        best = rng.uniform(0.5, 0.99)
        rows = []
        for epoch in range(EPOCHS):
            value = best * (epoch + 1) / EPOCHS
            rows.append(
                [epoch, 1 - value, value, 1 - value, value, config.lr, 1.0, 10.0, 0.1, 50.0]
            )
        with open(folder / HISTORY_FILE, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HISTORY_COLUMNS)
            writer.writerows(rows)
        result = {
            "status": "ok",
            "reason": None,
            "trial": {"rung": "coarse", "index": entry["index"], "name": entry["name"]},
            "metric": {"name": "accuracy", "mode": "max"},
            "best_val_metric": best,
            "best_val_loss": 1 - best,
            "best_epoch": EPOCHS - 1,
            "epochs_run": EPOCHS,
            "stopped_early": False,
            "resumed_from_epoch": None,
            "final_train_loss": 1 - best,
            "final_val_loss": 1 - best,
            "first_loss": 2.3,
            # as make_result summarises the history it writes
            "curve": curve_summary([r[1] for r in rows], [r[3] for r in rows]),
            "train_seconds": 1.5,
            "total_seconds": 1.6,
            "peak_memory_mb": 50.0,
            "seed": config.seed,
            "config": config.to_json(),
            "params": config.flat(),
            "config_hash": config_hash(config),
            "key": entry_key(entry, meta["fingerprint"], "accuracy", code.fingerprint),
            "code": code.to_json(),
            "data_fingerprint": meta["fingerprint"],
            "device": "cpu",
            "precision": "fp32",
            "threads": 1,
            "started_at": time.time(),
            "host": "synthetic",
            "pid": 0,
        }
        write_json(folder / RESULT_FILE, result)
    return time.perf_counter() - started


def _benchmarks(results: Path) -> dict[str, tuple[float, float]]:
    """(seconds, peak RSS in MB) per job, from Snakemake's benchmark files."""
    out = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        row = list(csv.DictReader(path.open(), delimiter="\t"))[-1]
        job = path.relative_to(results / "benchmarks").with_suffix("").as_posix()
        out[job] = (float(row["s"]), float(row["max_rss"]))
    return out


def _timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def measure(trials: int, cores: int, mlflow: bool, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"scale-{trials}-") as scratch:
        workdir = (keep / str(trials)).resolve() if keep else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        config_file = workdir / "config.yaml"
        config_file.write_text(yaml.safe_dump(_config(trials, mlflow)))
        results = workdir / "results" / EXPERIMENT
        figures: dict = {"trials": trials}
        plan_target = f"results/{EXPERIMENT}/coarse/plan.json"
        subprocess.run(
            snakemake_command(workdir, config_file, cores, plan_target),
            cwd=workdir,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        figures["write_trials_s"] = _write_trials(results)
        dry = snakemake_command(workdir, config_file, cores, extra=("-n",))
        figures["snakemake_n_s"] = _timed(dry, workdir)
        started = time.perf_counter()
        subprocess.run(
            snakemake_command(workdir, config_file, cores), cwd=workdir, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        figures["rest_of_ladder_s"] = time.perf_counter() - started
        figures["jobs"] = _benchmarks(results)
        status = [str(Path(sys.executable).parent / "tuneladder"), "status", "--json"]
        status += ["--config", str(config_file), "--results", str(results)]
        figures["status_s"] = _timed(status, workdir)
        figures["report_kb"] = (results / "report" / "index.html").stat().st_size / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--mlflow-up-to", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="run in DIR/<size>/ and keep it")
    args = parser.parse_args()
    everything = []
    for trials in args.sizes:
        figures = measure(trials, args.cores, trials <= args.mlflow_up_to, args.keep)
        everything.append(figures)
        print(f"\n{trials} coarse trials (written in {figures['write_trials_s']:.1f} s)")
        print(f"  snakemake -n            {figures['snakemake_n_s']:7.1f} s")
        print(f"  tuneladder status       {figures['status_s']:7.1f} s")
        for job, (seconds, rss) in sorted(figures["jobs"].items()):
            if any(job.startswith(b) for b in BOOKKEEPING) or job == "log_mlflow":
                print(f"  {job:<24}{seconds:7.1f} s  {rss:7.0f} MB")
        if "log_mlflow" in figures["jobs"]:
            per_trial = figures["jobs"]["log_mlflow"][0] / trials
            print(f"  MLflow: {1000 * per_trial:.0f} ms a trial mirrored (all rungs' trials)")
        print(f"  report page             {figures['report_kb']:7.0f} KB")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))
    print(f"\n{REPO.name}: {len(everything)} sizes measured")


if __name__ == "__main__":
    main()
