"""Read a finished ladder's files into one object: the only module of the report that does IO."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneladder.io import read_json
from tuneladder.space import Space, space_from_json

__all__ = ["SWEEP_RUNGS", "RUNGS", "RunData", "load_run", "read_benchmarks", "read_history"]

SWEEP_RUNGS = ("coarse", "fine")
RUNGS = ("coarse", "fine", "seeds")
_WORKER_TSV = re.compile(r"worker-(\d+)-of-(\d+)\.tsv")


@dataclass
class RunData:
    """Everything the report shows, as read from ``results/``.

    ``rows[rung]`` are the rung's ``results.json`` rows in plan order, each with
    ``trial_dir`` (resolved from the plan, wherever ``results/`` now lives) and
    ``history`` (the trial's ``history.csv`` as a list of dicts) added.
    """

    results_dir: Path
    meta: dict[str, Any]
    overfit: dict[str, Any]
    lr_range: dict[str, Any] | None
    plans: dict[str, dict[str, Any]]
    rows: dict[str, list[dict[str, Any]]]
    results: dict[str, dict[str, Any]]  # "rung/name" -> the trial's result.json
    topk: dict[str, Any]
    fine_space: dict[str, Any]
    final: dict[str, Any]
    benchmarks: dict[str, float] = field(default_factory=dict)  # job name -> seconds

    @property
    def coarse_space(self) -> Space:
        return space_from_json(self.fine_space["coarse_space"])

    @property
    def narrowed_space(self) -> Space:
        return space_from_json(self.fine_space["space"])

    def sweep_rows(self) -> list[dict[str, Any]]:
        """Coarse then fine trials, in plan order: the order of "trial number"."""
        return [row for rung in SWEEP_RUNGS for row in self.rows[rung]]


def read_history(path: str | Path) -> list[dict[str, float]]:
    """A trial's ``history.csv`` as numbers; an absent or empty file is no epochs."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_benchmarks(bench_dir: str | Path) -> dict[str, float]:
    """Seconds per job from Snakemake's benchmark files (column ``s``), keyed by file stem.

    Worker files are named ``<rung>/worker-<w>-of-<n>``; when the worker count
    changed between runs, only the newest set (by file time) is kept.
    """
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        return {}
    paths = sorted(bench_dir.rglob("*.tsv"))
    newest: dict[Path, tuple[float, int]] = {}  # folder -> (mtime, n) of its newest worker set
    for path in paths:
        match = _WORKER_TSV.fullmatch(path.name)
        if match:
            seen = (path.stat().st_mtime, int(match[2]))
            newest[path.parent] = max(newest.get(path.parent, seen), seen)
    out: dict[str, float] = {}
    for path in paths:
        match = _WORKER_TSV.fullmatch(path.name)
        if match and int(match[2]) != newest[path.parent][1]:
            continue
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows and rows[-1].get("s") not in (None, ""):
            out[path.relative_to(bench_dir).with_suffix("").as_posix()] = float(rows[-1]["s"])
    return out


def _rung_rows(results_dir: Path, rung: str, plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    table = read_json(results_dir / rung / "results.json")
    dirs = {entry["name"]: entry["dir"] for entry in plan["trials"]}
    rows = []
    for row in table["trials"]:
        trial_dir = results_dir / rung / dirs[row["name"]]
        rows.append(
            {**row, "trial_dir": trial_dir, "history": read_history(trial_dir / "history.csv")}
        )
    return rows


def load_run(results_dir: str | Path) -> RunData:
    """Load a finished ladder (the report rule's inputs guarantee every file is there)."""
    results_dir = Path(results_dir)
    plans = {rung: read_json(results_dir / rung / "plan.json") for rung in RUNGS}
    rows = {rung: _rung_rows(results_dir, rung, plans[rung]) for rung in RUNGS}
    results = {}
    for rung in RUNGS:
        for row in rows[rung]:
            path = row["trial_dir"] / "result.json"
            if path.is_file():
                results[f"{rung}/{row['name']}"] = read_json(path)
    lr_range_path = results_dir / "sanity" / "lr_range.json"
    return RunData(
        results_dir=results_dir,
        meta=read_json(results_dir / "data" / "meta.json"),
        overfit=read_json(results_dir / "sanity" / "overfit.json"),
        lr_range=read_json(lr_range_path) if lr_range_path.is_file() else None,
        plans=plans,
        rows=rows,
        results=results,
        topk=read_json(results_dir / "coarse" / "topk.json"),
        fine_space=read_json(results_dir / "fine" / "space.json"),
        final=read_json(results_dir / "final" / "summary.json"),
        benchmarks=read_benchmarks(results_dir / "benchmarks"),
    )
