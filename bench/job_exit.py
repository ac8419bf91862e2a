"""A job's end: wall time and lines on stderr of a job-like process, three ways of ending.

A job-like process imports torch and ``torch._dynamo`` as a job does
(:func:`tuneladder.infra.startup.import_torch`), takes one optimizer step and exits.
It ends one of three ways, in turns so that a noisy machine moves all three:

- ``freeze``: ``gc.freeze`` at exit only (how jobs ended before torch 2.15);
- ``freeze_quiet``: :func:`tuneladder.infra.startup.freeze_at_exit` (how they end now);
- ``unfreeze``: ``gc.unfreeze`` at exit, so that the interpreter collects everything.

    python bench/job_exit.py [--rounds 5]

On torch 2.15 (triton 3.9) a frozen heap makes nanobind print its leak warnings at
exit: ``stderr lines`` shows them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

BODY = (
    "from tuneladder.infra.startup import import_torch\n"
    "import_torch(dynamo=True)\n"
    "import atexit, gc, torch\n"
    "{hook}\n"
    "torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1).step()\n"
)
ENDINGS = {
    "freeze": "atexit.register(gc.freeze)",
    "freeze_quiet": "from tuneladder.infra.startup import freeze_at_exit; freeze_at_exit()",
    "unfreeze": "atexit.register(gc.unfreeze)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in ENDINGS}
    for _ in range(args.rounds):
        for name, hook in ENDINGS.items():
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", BODY.format(hook=hook)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append((time.perf_counter() - started, len(proc.stderr.splitlines())))
    print(f"torch {torch.__version__}, {args.rounds} rounds")
    print(f"{'ending':<14} {'median s':>8} {'min s':>6} {'max s':>6}  stderr lines")
    for name, timed in runs.items():
        walls = [wall for wall, _ in timed]
        lines = sorted({n for _, n in timed})
        print(
            f"{name:<14} {statistics.median(walls):8.2f} {min(walls):6.2f} {max(walls):6.2f}"
            f"  {', '.join(map(str, lines))}"
        )


if __name__ == "__main__":
    main()
