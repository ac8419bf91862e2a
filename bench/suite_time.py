"""Where the test suite's time goes: its wall time, each file's summed test time.

The suite is bound by CPU (each process-per-core runs Snakemake ladders whose jobs
mostly pay `import torch`), so the files with the most summed time are where a cut
shows in CI's wall time. This runs pytest as the README's test command does (one
process per core, each file whole in one), with a JUnit report, and prints the wall
time, the summed time, the files by summed time and the slowest tests, set-ups
included (a module's shared ladder is built in its first test's set-up).

    python bench/suite_time.py [--top 15] [PYTEST ARGS ...]

PYTEST ARGS narrow the run (``tests/test_dvc.py``, ``-k halving``); with none it
runs the whole suite, which takes 15 to 40 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def summed_by_file(junit: Path) -> tuple[Counter[str], list[tuple[float, str]]]:
    """Each file's summed test time, and each test's time, from a JUnit report.

    pytest's JUnit time for a test includes its set-up and tear-down, so a module
    fixture's ladder counts once, in the test that first asked for it.
    """
    per_file: Counter[str] = Counter()
    tests: list[tuple[float, str]] = []
    for case in ET.parse(junit).iter("testcase"):
        seconds = float(case.get("time", 0))
        module = case.get("classname", "").split(".")[-1]
        per_file[f"{module}.py"] += seconds
        tests.append((seconds, f"{module}.py::{case.get('name')}"))
    return per_file, sorted(tests, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=15, help="files and tests to list")
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "junit.xml"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}", *pytest_args],
            cwd=REPO,
            check=False,
        )
        wall = time.monotonic() - started
        if not junit.is_file():
            print(f"suite_time: pytest wrote no report (exit code {run.returncode})")
            return run.returncode or 1
        per_file, tests = summed_by_file(junit)
    total = sum(per_file.values())
    print(f"\nsuite_time: wall {wall:.0f} s, tests' summed time {total:.0f} s,"
          f" pytest exit code {run.returncode}")  # fmt: skip
    print(f"{'summed s':>9}  {'share':>5}  file")
    for name, seconds in per_file.most_common(args.top):
        print(f"{seconds:9.1f}  {seconds / total:5.0%}  {name}")
    print(f"\n{'s':>9}  slowest tests (set-up included)")
    for seconds, name in tests[: args.top]:
        print(f"{seconds:9.1f}  {name}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
