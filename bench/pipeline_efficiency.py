"""How close the ladder's wall time comes to its trials' training time / slots.

Runs the real workflow in a scratch directory and prints, per rung and overall,
the seconds the trials spent in their training loops, and the ratio

    wall time / (sum of trial training seconds / parallel slots)

1.0 would mean no overhead at all: no process start-up, no Snakemake scheduling,
no sanity rungs, no idle slot.

    python bench/pipeline_efficiency.py [--config config/config.yaml] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="run here and keep the results")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [
            str(Path(sys.executable).parent / "snakemake"),
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(args.config.resolve()),
            "--workflow-profile",
            str(REPO / "profiles" / "default"),
            "--cores",
            str(args.cores),
            "--quiet",
            "all",
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=workdir)
        wall = time.perf_counter() - started
        figures = measure(workdir / "results", wall, args.cores)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def measure(results: Path, wall: float, slots: int) -> dict:
    train = defaultdict(float)
    total = defaultdict(float)
    count = defaultdict(int)
    for path in results.glob("*/**/result.json"):
        result = json.loads(path.read_text())
        rung = result["trial"].get("rung", path.parts[-3])
        train[rung] += result["train_seconds"]
        total[rung] += result["total_seconds"]
        count[rung] += 1
    print(f"{'rung':<8}{'trials':>7}{'train s':>10}{'trial s':>10}")
    for rung in ("coarse", "fine", "seeds"):
        print(f"{rung:<8}{count[rung]:>7}{train[rung]:>10.1f}{total[rung]:>10.1f}")
    all_train = sum(train.values())
    ideal = all_train / slots
    summary = json.loads((results / "final" / "summary.json").read_text())
    print(f"wall time {wall:.1f} s on {slots} slots; training loops {all_train:.1f} s in all")
    print(f"ideal (training / slots) {ideal:.1f} s; ratio wall / ideal = {wall / ideal:.2f}")
    print(
        f"test {summary['metric']}: tuned {summary['test_mean']:.4f} "
        f"± {summary['test_std'] or 0:.4f}, untuned default "
        f"{summary['baseline']['test']['mean']:.4f}"
    )
    return {
        "wall_s": wall,
        "slots": slots,
        "train_s": dict(train),
        "trial_s": dict(total),
        "trials": dict(count),
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "test_mean": summary["test_mean"],
        "baseline_test_mean": summary["baseline"]["test"]["mean"],
    }


if __name__ == "__main__":
    main()
