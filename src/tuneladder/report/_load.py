"""Read a finished ladder's files into one object: the only module of the report that does IO.

The report reads the rung outputs listed in ``_contents.READS`` (the report rule
declares each one as an input, named as ``report_inputs`` names it), the trial
folders their plans list, and, when given, Snakemake's benchmark files.
"""

from __future__ import annotations

import csv
import math
import os
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tuneladder.ladder.job_times import read_benchmarks
from tuneladder.ladder.rungs import (
    FINAL,
    LR_RANGE,
    OVERFIT,
    PREPARE,
    SEARCH_RUNGS,
    SELECT,
    TRIAL_RUNGS,
    Rung,
)
from tuneladder.report._contents import PROBE_INPUT, READS, input_name
from tuneladder.report._history import History, LazyHistory, empty_history, number
from tuneladder.search.halving import configs_of
from tuneladder.search.space import Space, space_from_json
from tuneladder.store.io import read_json
from tuneladder.store.trial_files import HISTORY_FILE, RESULT_FILE

__all__ = ["History", "RunData", "load_run", "read_benchmarks", "read_history"]


@dataclass
class RunData:
    """Everything the report shows, as read from ``results/<experiment>/``.

    ``rows[rung]`` are the rung's ``results.json`` rows in plan order, each with
    ``trial_dir`` (a string: resolved from the plan, wherever ``results/`` now lives) and
    ``history`` (the trial's ``history.csv`` as a :class:`History`, which reads as a
    list of dicts, read the first time it is asked for; absent where :func:`load_run`
    was asked for none) added;
    ``rung_dirs[rung]`` is the folder of the rung's plan and trials. ``plans``,
    ``rows`` and ``rung_dirs`` hold the rungs of trials that ran, in ladder order:
    an optional rung only when its files were given. ``final`` is empty where the
    final rung's summary was not read (the ``report_sweeps`` job, which runs before it).
    ``gpu_probe`` is ``sanity/gpu_probe.json`` where the run measured its trials per GPU
    (:mod:`tuneladder.stages.gpu_probe`), else None.
    """

    meta: dict[str, Any]
    overfit: dict[str, Any]
    lr_range: dict[str, Any] | None
    plans: dict[str, dict[str, Any]]
    rows: dict[str, list[dict[str, Any]]]
    results: dict[str, dict[str, Any]]  # "rung/name" -> the trial's result.json
    topk: dict[str, Any]
    fine_space: dict[str, Any]
    final: dict[str, Any]
    rung_dirs: dict[str, Path] = field(default_factory=dict)
    benchmarks: dict[str, float] = field(default_factory=dict)  # job name -> seconds
    gpu_probe: dict[str, Any] | None = None

    @property
    def coarse_space(self) -> Space:
        return space_from_json(self.fine_space["coarse_space"])

    @property
    def narrowed_space(self) -> Space:
        return space_from_json(self.fine_space["space"])

    def sweep_rows(self) -> list[dict[str, Any]]:
        """The searching rungs' trials (coarse then fine), in plan order: "trial number" order."""
        return [row for rung in SEARCH_RUNGS for row in self.rows[rung.name]]


def read_history(path: str | Path) -> History:
    """A trial's ``history.csv`` as numbers; an absent or empty file is no epochs.

    A cell that is empty or not a number is NaN, as is a column a row lacks (a
    cell beyond the header's columns is dropped); blank lines are skipped.
    """
    try:
        text = _read_bytes(path).decode()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return empty_history()
    # a report reads every trial's history: 100,000 of them at 15 epochs took most of a
    # report job as csv rows of floats and a dict per epoch. The runner writes one cell
    # per column: History keeps them as one string and parses the columns read. A quoted
    # cell (never written by the runner) or a short or long row goes row by row
    lines = text.splitlines()
    if not lines:
        return empty_history()
    if '"' in text:
        return _history_rows(list(csv.reader(lines)))
    header = lines[0].split(",")
    body = [line for line in lines[1:] if line]
    commas = len(header) - 1
    if all(line.count(",") == commas for line in body):
        return History(header, cells=",".join(body))
    return _history_rows([line.split(",") for line in lines])


def _read_bytes(path: str | Path) -> bytes:
    """A small file's bytes through os.read: half the time of open() and its buffered
    reader, which a report pays 100,000 times."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _history_rows(rows: list[list[str]]) -> History:
    """A history from its csv rows (the header first), a row at a time."""
    if not rows or not rows[0]:
        return empty_history()
    header, width = rows[0], len(rows[0])
    values = array("d")
    for cells in rows[1:]:
        if not cells or cells == [""]:
            continue
        row = [number(c) for c in cells[:width]]
        values.extend(row + [math.nan] * (width - len(row)))
    return History(header, values)


def _rung_rows(table_path: Path, plan: Mapping[str, Any], histories: bool) -> list[dict[str, Any]]:
    """A rung's rows; in a sweep's, a searched parameter the trial did not sample is absent.

    The trial still trained with a value for it (the fixed one), which
    ``results.json`` keeps; the report shows what the search tried, so that
    value is not plotted, ranked or fed to fANOVA as if it had been searched.
    """
    table = read_json(table_path)
    dirs = {entry["name"]: entry["dir"] for entry in configs_of(plan)}
    searched = set(plan.get("space") or ())
    rows = table["trials"]  # read here, so amended in place: 100,000 copies cost a second
    parent = str(table_path.parent)
    for row in rows:
        # a sweep that halves names each config's furthest level (tuneladder.search.halving)
        trial_dir = os.path.join(parent, row.get("path", dirs[row["name"]]))
        if "sampled" in row:
            row["params"] = {
                k: v for k, v in row["params"].items() if k not in searched or k in row["sampled"]
            }
        row["trial_dir"] = trial_dir
        if histories:  # read when asked: most rows are judged by their curve's summary
            row["history"] = LazyHistory(
                partial(read_history, os.path.join(trial_dir, HISTORY_FILE))
            )
    return rows


def load_run(
    inputs: Mapping[str, str | Path],
    benchmarks_dir: str | Path | None = None,
    reads: tuple[tuple[Rung, str], ...] = READS,
    *,
    trial_results: bool = True,
    histories: bool = True,
) -> RunData:
    """Load a finished ladder from the report rule's inputs (named as :func:`report_inputs`).

    ``benchmarks_dir`` holds Snakemake's benchmark files; the ladder table's
    timings are empty without it. ``reads`` are the rung outputs to read (by
    default all the report shows; ``SWEEP_READS`` for the ``report_sweeps`` job).
    ``trial_results`` False leaves ``results`` empty: only the reproducibility
    section reads every trial's ``result.json``, and the ``report_sweeps`` job does
    not build it (at 100,000 trials, seconds of reading). ``histories`` False leaves
    the rows without ``history``: the ``report`` job reads what the histories say in
    the ``report_sweeps`` job's ``sweeps.json``.
    """
    missing = [
        input_name(r, role)
        for r, role in reads
        if r.enabled is None and input_name(r, role) not in inputs
    ]
    if missing:
        raise ValueError(f"the report needs the inputs {missing}, got {sorted(inputs)}")

    def input_path(rung: Rung, role: str) -> Path:
        return Path(inputs[input_name(rung, role)])

    def read(rung: Rung, role: str) -> Any:
        return read_json(input_path(rung, role))

    ran = [
        r for r in TRIAL_RUNGS if (r, "results") in reads and input_name(r, "results") in inputs
    ]
    plans = {rung.name: read(rung, "plan") for rung in ran}
    rows = {
        rung.name: _rung_rows(input_path(rung, "results"), plans[rung.name], histories)
        for rung in ran
    }
    results = {}
    for rung in ran if trial_results else ():
        for row in rows[rung.name]:
            path = os.path.join(row["trial_dir"], RESULT_FILE)
            if os.path.isfile(path):
                results[f"{rung.name}/{row['name']}"] = read_json(path)
    return RunData(
        meta=read(PREPARE, "meta"),
        overfit=read(OVERFIT, "json"),
        lr_range=read(LR_RANGE, "json"),
        plans=plans,
        rows=rows,
        results=results,
        topk=read(SELECT, "topk"),
        fine_space=read(SELECT, "space"),
        final=read(FINAL, "summary") if (FINAL, "summary") in reads else {},
        rung_dirs={r.name: input_path(r, "plan").parent for r in ran},
        benchmarks=read_benchmarks(benchmarks_dir) if benchmarks_dir is not None else {},
        gpu_probe=read_json(inputs[PROBE_INPUT]) if PROBE_INPUT in inputs else None,
    )
