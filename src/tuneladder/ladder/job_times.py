"""How long each workflow job took, from Snakemake's benchmark files.

Every rule names a ``benchmark:`` file, ``results/<experiment>/benchmarks/<job>.tsv``,
in which Snakemake writes the job's wall-clock seconds (column ``s``). The
report's ladder table and the status's time left both read them here.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from tuneladder.ladder.rungs import PER_RUNG_RULES

__all__ = ["read_benchmarks"]

# a sweep worker's benchmark: <rung>/worker-<w>-of-<n>.tsv
_WORKER_TSV = re.compile(rf"{PER_RUNG_RULES['sweep_worker']}-(\d+)-of-(\d+)\.tsv")


def read_benchmarks(bench_dir: str | Path) -> dict[str, float]:
    """Seconds per job from Snakemake's benchmark files (column ``s``), keyed by file stem.

    Worker files are named ``<rung>/worker-<w>-of-<n>``; when the worker count
    changed between runs, only the newest set (by file time) is kept. A file
    being written this instant is skipped.
    """
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        return {}
    paths = sorted(bench_dir.rglob("*.tsv"))
    newest: dict[Path, tuple[float, int]] = {}  # folder -> (mtime, n) of its newest worker set
    for path in paths:
        match = _WORKER_TSV.fullmatch(path.name)
        if match:
            try:
                seen = (path.stat().st_mtime, int(match[2]))
            except OSError:
                continue
            newest[path.parent] = max(newest.get(path.parent, seen), seen)
    out: dict[str, float] = {}
    for path in paths:
        match = _WORKER_TSV.fullmatch(path.name)
        if match and (path.parent not in newest or int(match[2]) != newest[path.parent][1]):
            continue
        try:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
        except OSError:
            continue
        try:
            if rows and rows[-1].get("s") not in (None, ""):
                out[path.relative_to(bench_dir).with_suffix("").as_posix()] = float(rows[-1]["s"])
        except ValueError:
            continue
    return out
