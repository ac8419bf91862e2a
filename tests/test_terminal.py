"""What a run prints: the ladder in trials and what won; Snakemake's job blocks in its log."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake_interface_logger_plugins.common import LogEvent

from helpers import results_of, terminal_output, tiny_config
from tuneladder.execution.terminal import LadderProgress, hidden
from tuneladder.ladder.config import resolve_config


def _record(message: str, level: int = logging.INFO, event: LogEvent | None = None):
    record = logging.LogRecord("snakemake", level, __file__, 1, message, None, None)
    if event is not None:
        record.event = event
    return record


def test_job_blocks_and_counts_are_hidden_but_warnings_errors_and_the_log_path_show() -> None:
    for event in (LogEvent.JOB_INFO, LogEvent.JOB_FINISHED, LogEvent.PROGRESS, LogEvent.RUN_INFO):
        assert hidden(_record("x", event=event))
    assert hidden(_record("Building DAG of jobs..."))
    assert hidden(_record("Select jobs to execute..."))
    assert not hidden(_record("Error in rule sweep_worker", logging.ERROR, LogEvent.JOB_ERROR))
    assert not hidden(_record("MissingInputException ...", logging.ERROR))
    assert not hidden(_record("Job counts lost", logging.WARNING))
    assert not hidden(_record("Nothing to be done (all requested files are present)."))
    assert not hidden(_record("Complete log(s): .snakemake/log/x.snakemake.log"))


def test_snakemakes_command_line_takes_the_plugin_and_its_flag() -> None:
    # a plugin whose settings Snakemake cannot read breaks every snakemake command
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([snakemake, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--logger-tuneladder-jobs" in proc.stdout


@pytest.mark.slow
def test_a_run_prints_the_ladder_and_what_won_not_snakemakes_jobs(tiny_ladder: Path) -> None:
    printed = terminal_output(tiny_ladder).read_text()
    lines = printed.splitlines()
    # the plan at the start, a line as trials finish, the outcome at the end
    assert any(line.startswith("tuneladder: experiment tiny") for line in lines)
    assert any(line.startswith("tuneladder: seeds 6/6 trials |") for line in lines), printed
    assert any(line.startswith("tuneladder: chose ") for line in lines)
    (test,) = [line for line in lines if line.startswith("tuneladder: test accuracy")]
    assert "over 2 seeds (against untuned default " in test and "majority class" in test
    assert "tuneladder: report results/tiny/report/index.html" in lines
    for boilerplate in ("localrule", "Finished jobid", "SNAKEMAKE", "reason:"):
        assert boilerplate not in printed
    assert not re.search(r"\d+ of \d+ steps", printed)  # progress in jobs
    assert len(lines) < 30, printed
    # Snakemake's own view is kept whole in its log file
    (log,) = (tiny_ladder / ".snakemake" / "log").glob("*.snakemake.log")
    assert log.read_text().count("localrule sweep_worker:") == 3  # one a rung


@pytest.mark.slow
def test_what_won_is_said_only_of_a_summary_newer_than_the_rungs(tiny_ladder, tmp_path):
    """A run of one rung's targets after a change (`dvc exp run` stage by stage) must
    not end with what an earlier run chose."""
    import os
    import shutil

    from tuneladder.execution.terminal import result_lines

    results = tmp_path / "results"
    shutil.copytree(results_of(tiny_ladder), results)
    said = result_lines(results)
    assert said[0].startswith("tuneladder: chose ") and said[-1].startswith("tuneladder: report")
    summary = (results / "final" / "summary.json").stat().st_mtime
    # the sensitivity rung's table comes after the summary it read: no stale summary
    (results / "sensitivity").mkdir()
    (results / "sensitivity" / "results.json").write_text("{}")
    os.utime(results / "sensitivity" / "results.json", (summary + 30, summary + 30))
    assert result_lines(results) == said
    # the fine sweep reran since: its table is newer than the summary
    os.utime(results / "fine" / "results.json", (summary + 10, summary + 10))
    assert result_lines(results) == []
    # the final rung reran on it, the report not yet
    os.utime(results / "final" / "summary.json", (summary + 20, summary + 20))
    said = result_lines(results)
    assert said and not any(line.startswith("tuneladder: report") for line in said)


@pytest.mark.slow
def test_progress_prints_a_line_per_rung_that_moved_and_nothing_when_still(
    tiny_ladder: Path,
) -> None:
    config = resolve_config(tiny_config())
    out = io.StringIO()
    progress = LadderProgress(results_of(tiny_ladder), config, stream=out)
    lines = progress.poll()
    assert [line.split(" |")[0] for line in lines] == [
        "tuneladder: coarse 4/4 trials",
        "tuneladder: fine 3/3 trials",
        "tuneladder: seeds 6/6 trials",
    ]
    assert all("best val accuracy" in line for line in lines)
    assert progress.poll() == []  # nothing moved since
