"""How close `tuneladder status`'s time left comes to the truth, over a whole ladder.

Runs a ladder (the default one unless ``--config`` names another) in a fresh
folder, reads its status every ``--every`` seconds while it runs, and, once it
has ended, sets each estimate beside the time that was really left. The goal
(issue: a status that tells the truth) is within 30% at the half-way point.

    python bench/status_eta.py                 # the default ladder, 2 cores
    python bench/status_eta.py --replay results/digits-demo --config config/config.yaml

``--replay`` reads a finished ladder's folder instead: the status at a time T is
the status of the files written by T (copied with their times), which shows the
estimate at every point of a run that already happened.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _workflow import REPO, snakemake_command

from tuneladder.execution.status import ladder_status
from tuneladder.ladder.config import load_config


def _live(config_file: Path, cores: int, every: float) -> tuple[list[tuple[float, dict]], float]:
    """(seconds from the start, status) while the ladder runs, and when it ended."""
    config = load_config(config_file)
    workdir = Path(tempfile.mkdtemp(prefix="status-eta-"))
    results = workdir / "results" / config["experiment"]
    start = time.time()
    proc = subprocess.Popen(
        snakemake_command(workdir, config_file, cores),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    polls = []
    while proc.poll() is None:
        status = ladder_status(
            results, config=config, stale_s=config["stale_claim_s"], snakemake_running=True
        )
        polls.append((time.time() - start, status))
        time.sleep(every)
    if proc.returncode != 0:
        sys.exit(f"the ladder failed (exit {proc.returncode}); its logs are in {results}/logs")
    ended = time.time() - start
    shutil.rmtree(workdir)
    return polls, ended


def _replay(
    results: Path, config_file: Path, every: float
) -> tuple[list[tuple[float, dict]], float]:
    """The status a finished ladder's folder gave at each time, from its files' times."""
    config = load_config(config_file)
    files = sorted((p.stat().st_mtime, p) for p in results.rglob("*") if p.is_file())
    start, end = files[0][0], files[-1][0]
    polls = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / results.name
        at = start + every
        while at < end:
            for when, path in files:
                target = copy / path.relative_to(results)
                if when <= at and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
            status = ladder_status(
                copy,
                config=config,
                now=at,
                stale_s=config["stale_claim_s"],
                snakemake_running=True,
            )
            polls.append((at - start, status))
            at += every
    return polls, end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between readings")
    parser.add_argument("--replay", type=Path, help="a finished ladder's results folder")
    args = parser.parse_args()
    if args.replay:
        polls, ended = _replay(args.replay, args.config, args.every)
    else:
        polls, ended = _live(args.config, args.cores, args.every)
    print(f"ladder: {ended:.1f} s; readings every {args.every:g} s")
    print(f"{'at':>7} {'left':>7} {'estimate':>9} {'error':>7}  training + jobs")
    errors = {}
    for at, status in polls:
        estimate = status.get("estimate_left_s")
        if estimate is None:
            continue
        actual = ended - at
        errors[at] = estimate / actual - 1 if actual > 0 else None
        print(
            f"{at:6.1f}s {actual:6.1f}s {estimate:8.1f}s {errors[at]:+7.0%}"
            f"  {status['estimate_training_s']:.1f} + {status['estimate_jobs_s']:.1f}"
        )
    half = min(errors, key=lambda at: abs(at - ended / 2), default=None)
    if half is None:
        sys.exit("no reading had an estimate")
    print(
        f"half-way ({half:.1f} s of {ended:.1f} s): error {errors[half]:+.0%} (goal: within 30%)"
    )


if __name__ == "__main__":
    main()
