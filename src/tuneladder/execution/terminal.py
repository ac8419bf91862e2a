"""What a run prints: the ladder's progress in trials, and what won, not Snakemake's jobs.

A ladder is a few dozen jobs, and a sweep of a hundred trials is two of them, so
Snakemake's own view (a block per job, progress in jobs) says little about where
the tuning stands. Three pieces replace it, all in the Snakemake process:

- :func:`hidden` decides which of Snakemake's log records stay out of the
  terminal in a real run (the job blocks, the job counts, the banner); they stay
  in Snakemake's log file, and a dry run or ``--verbose`` shows them all. The
  ``tuneladder`` logger plugin (``snakemake_logger_plugin_tuneladder``) applies it.
- :class:`LadderProgress` polls the results folder and prints one line whenever
  trials finish: rung, trials done of planned, best so far, time left; and once
  what the GPU probe chose.
- :func:`result_lines` says at the end what was chosen, its test result against
  the untuned default and the trivial baseline, and where the report is.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from tuneladder.core.text import counted, mean_std

__all__ = ["LadderProgress", "hidden", "progress_line", "result_lines", "start", "stop"]

# Snakemake's events that are about jobs, not about the ladder (the names of
# snakemake_interface_logger_plugins.common.LogEvent, compared as strings)
JOB_EVENTS = frozenset(
    {
        "workflow_started",
        "run_info",
        "job_info",
        "job_started",
        "job_finished",
        "group_info",
        "resources_info",
        "shellcmd",
        "progress",
        "rulegraph",
    }
)
# Snakemake's plain info lines worth keeping: the run had nothing to do, where its log is
KEPT_INFO = ("Nothing to be done", "Complete log(s)")


def hidden(record: logging.LogRecord) -> bool:
    """Whether a Snakemake log record stays out of the compact terminal view.

    Warnings and errors always show (a failed job's block names its log); of the
    info lines only those in :data:`KEPT_INFO` do.
    """
    if record.levelno >= logging.WARNING:
        return False
    event = getattr(record, "event", None)
    if event is not None and str(event) in JOB_EVENTS:
        return True
    message = str(record.msg or "")
    return not message.startswith(KEPT_INFO)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 1:
        return "<1s"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(status: Mapping[str, Any], rung: str | None = None) -> str | None:
    """One line for where the ladder stands: a rung's trials done of planned (``rung``,
    else the one running now), the best val metric so far and the time left.

    None before the first trial rung has started.
    """
    rungs = [r for r in status["rungs"] if r["state"] != "not started"]
    if not rungs:
        return None
    shown = next((r for r in rungs if r["rung"] == rung), None) or next(
        (r for r in rungs if r["running"]), rungs[-1]
    )
    total = "?" if shown["total"] is None else shown["total"]
    parts = [f"{shown['rung']} {shown['done']}/{total} trials"]
    if levels := shown.get("levels"):
        # a sweep that halves: a config is done once it stops; its level's trainings are
        # what moves meanwhile (the best so far comes from them)
        at = next((lv for lv in levels if lv["done"] < lv["total"]), levels[-1])
        parts[0] = (
            f"{shown['rung']} {shown['done']}/{total} configs done,"
            f" level {at['level']} {at['done']}/{at['total']}"
        )
    if shown["running"]:
        placed = shown.get("running_on", [])  # (host, GPU) of each claim that says it
        gpus = {tuple(where) for where in placed}
        on = ""
        if placed and len(placed) == shown["running"]:  # else the GPUs of some only
            on = (
                f" on {next(iter(gpus))[1]}"
                if len(gpus) == 1
                else f" on {counted(len(gpus), 'GPU')}"
            )
        parts[0] += f" ({shown['running']} running{on})"
    best = status.get("best")
    if best:
        where = f"{best['rung']} #{best['name']}"
        parts.append(f"best val {best['metric']} {best['value']:.4g} ({where})")
    failures = status.get("failures") or {}
    if failures:
        parts.append(", ".join(f"{n} {s}" for s, n in sorted(failures.items())))
    waiting = status.get("trials_left") or status.get("unplanned")
    if status["state"] == "running" and waiting and status.get("estimate_left_s") is not None:
        more = " + " + ", ".join(status["unplanned"]) if status.get("unplanned") else ""
        parts.append(f"left {_duration(status['estimate_left_s'])}{more}")
    return "tuneladder: " + " | ".join(parts)


class LadderProgress:
    """Prints :func:`progress_line` each time it changes, from a thread of its own.

    Reading the folder costs time on a ladder of many trials, so the wait between
    reads grows to ten times the last read's cost (at least ``interval`` seconds).
    """

    def __init__(
        self,
        results: str | Path,
        config: Mapping[str, Any],
        *,
        stream: TextIO | None = None,
        interval: float = 2.0,
    ) -> None:
        self._results = Path(results)
        self._config = config
        self._stream = stream
        self._interval = interval
        self._counts: dict[str, tuple[int, ...]] = {}
        self._best: float | None = None
        self._failed = False
        self._probe_said = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> list[str]:
        """The lines to print now: one per rung whose trials moved since the last poll."""
        from tuneladder.execution.status import ladder_status

        status = ladder_status(
            self._results,
            config=self._config,
            stale_s=float(self._config.get("stale_claim_s", 600)),
            snakemake_running=True,
        )
        # a halving level's trainings move while no config is done yet: they count too
        counts = {
            r["rung"]: (r["done"], r["running"], *(lv["done"] for lv in r.get("levels") or ()))
            for r in status["rungs"]
        }
        best = (status.get("best") or {}).get("value")
        moved = [
            r["rung"]
            for r in status["rungs"]
            if r["state"] != "not started" and counts[r["rung"]] != self._counts.get(r["rung"])
        ]
        if not moved and best != self._best:
            moved = [None]  # the best changed, the counts not: the running rung's line
        self._counts, self._best = counts, best
        lines = [line for rung in moved if (line := progress_line(status, rung))]
        if status.get("gpu_probe") and not self._probe_said:
            # said once, as the sweeps it sizes begin
            lines.insert(0, f"tuneladder: GPU probe chose {status['gpu_probe']}")
            self._probe_said = True
        return lines

    def _print(self, lines: list[str]) -> None:
        stream = self._stream or sys.stderr
        for line in lines:
            print(line, file=stream, flush=True)

    def _run(self) -> None:
        wait = self._interval
        while not self._stopped.wait(wait):
            began = time.perf_counter()
            try:
                self._print(self.poll())
            except Exception as err:  # progress lines must never stop the ladder
                if not self._failed:  # said once; the next read may well work
                    why = f"{type(err).__name__}: {err}"
                    self._print([f"tuneladder: progress unavailable ({why})"])
                self._failed = True
            wait = max(self._interval, 10 * (time.perf_counter() - began))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tuneladder-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, and print the last change (the trials that finished at the end)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
            try:
                self._print(self.poll())
            except Exception:  # noqa: S110 - the run's outcome is printed by the caller
                pass


_RUNNING: LadderProgress | None = None


def start(results: str | Path, config: Mapping[str, Any], *, interval: float = 2.0) -> None:
    """Start the progress lines of the ladder Snakemake runs in this process."""
    global _RUNNING
    stop()
    _RUNNING = LadderProgress(results, config, interval=interval)
    _RUNNING.start()


def stop() -> None:
    global _RUNNING
    if _RUNNING is not None:
        _RUNNING.stop()
        _RUNNING = None


def result_lines(results: str | Path) -> list[str]:
    """What the ladder chose and how it did on test, for the end of a run.

    Empty when the final rung has not run on the rungs' tables as they are now (a run
    of one rung's targets, a stop, or a change that reran a rung before it).
    """
    from tuneladder.ladder.rungs import SEARCH_RUNGS, SEEDS

    results = Path(results)
    path = results / "final" / "summary.json"
    try:
        written = path.stat().st_mtime
        # the tables the final rung reads (the sensitivity rung's comes after it)
        tables = [results / rung.outputs["results"] for rung in (*SEARCH_RUNGS, SEEDS)]
        if any(table.is_file() and table.stat().st_mtime > written for table in tables):
            return []  # an earlier summary: the rungs it chose from have changed since
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    metric = summary["metric"]
    seeds = len(summary.get("test_values") or [])
    origin = (summary.get("best_origin") or {}).get("label") or summary.get("best_group")
    absent = set(summary.get("not_applicable") or [])
    applies = {k: v for k, v in summary["best_config"].items() if k not in absent}
    shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(applies.items()))
    lines = [f"tuneladder: chose {origin}: {shown}"]
    test = {"mean": summary.get("test_mean"), "std": summary.get("test_std")}
    baseline = (summary.get("baseline") or {}).get("test")
    trivial = summary.get("trivial") or {}
    trivial_test = (trivial.get("test") or {}).get(metric)
    compared = [f"untuned default {mean_std(baseline)}"] if baseline else []
    if isinstance(trivial_test, int | float):
        compared.append(f"{trivial.get('name', 'trivial')} {trivial_test:.4g}")
    lines.append(
        f"tuneladder: test {metric} {mean_std(test)} over {counted(seeds, 'seed')}"
        + (f" (against {', '.join(compared)})" if compared else "")
    )
    lines += [f"tuneladder: warning: {warning}" for warning in summary.get("warnings") or ()]
    report = results / "report" / "index.html"
    if report.is_file() and report.stat().st_mtime >= written:
        lines.append(f"tuneladder: report {report}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
