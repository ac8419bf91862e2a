"""The Python API as a notebook calls it: what the commands do, in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tuneladder import api


def test_a_dry_run_plans_the_overridden_ladder_and_trains_nothing(tmp_path: Path, capfd) -> None:
    # load_config's keys (dotted, bare) and a YAML boolean, which --config once kept a string
    config = {"experiment": "dry", "coarse.trials": 3, "select.top_k": 2, "lr": 1e-3}
    config["deterministic"] = True
    assert api.run_ladder(config=config, cores=1, workdir=tmp_path, dry_run=True)
    out = capfd.readouterr()
    assert "coarse  3 (written" in out.out + out.err
    assert "This was a dry-run" in out.out + out.err
    assert not (tmp_path / "results").exists()


def test_a_trial_trains_on_the_experiments_data_only_where_it_is_its_configs(
    tmp_path: Path, monkeypatch
) -> None:
    from helpers import REPO
    from tuneladder.data.prepared import prepare
    from tuneladder.stages.prepare import data_sources
    from tuneladder.store.io import read_json
    from tuneladder.tasks import load_task

    monkeypatch.chdir(tmp_path)
    config = api.load_config(REPO / "config" / "config.yaml", {"epochs": 1, "arch": "mlp"})
    shared = tmp_path / "results" / config["experiment"] / "data"
    settings = {"materialize": "auto", "max_memory_mb": 1024, "task_options": {}}
    sources = data_sources(config["task"])
    prepare(load_task("digits"), shared, seed=5, sources=sources, **settings)  # another seed
    assert api.run_trial(config, "one")["status"] == "ok"
    assert read_json(tmp_path / "one" / "data" / "meta.json")["seed"] == config["seed"]
    prepare(load_task("digits"), shared, seed=config["seed"], sources=sources, **settings)
    assert api.run_trial(config, "two")["status"] == "ok"
    assert not (tmp_path / "two" / "data").exists()  # the experiment's own, this time


def test_a_trial_prepares_again_after_its_csv_file_was_edited(tmp_path: Path) -> None:
    """Data prepared from a CSV that was edited since is not the file's any more."""
    from tuneladder.store.io import read_json

    rows = ["x1,x2,y", *(f"{i % 7},{i % 5},{'a' if i % 3 else 'b'}" for i in range(90))]
    table = tmp_path / "table.csv"
    table.write_text("\n".join(rows) + "\n")
    from helpers import REPO

    config = api.load_config(
        REPO / "config" / "config.yaml",
        {
            "experiment": "edited",
            "task": {"name": "csv", "options": {"path": str(table), "target": "y"}},
            "space": {"lr": {"dist": "loguniform", "low": 1e-3, "high": 1e-1}},
            "epochs": 1,
        },
    )
    assert api.run_trial(config, tmp_path / "trial")["status"] == "ok"
    meta = tmp_path / "trial" / "data" / "meta.json"
    assert sum(read_json(meta)["sizes"].values()) == 90
    table.write_text("\n".join([*rows, *rows[1:31]]) + "\n")  # 30 more rows
    assert api.run_trial(config, tmp_path / "trial")["status"] == "ok"
    assert sum(read_json(meta)["sizes"].values()) == 120


# a notebook's cell: the call, and what came out of it
A_CALL = """
import signal
from tuneladder import api
try:
    completed = api.run_ladder("config.yaml", cores=2, workdir=".")
except KeyboardInterrupt:
    restored = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    restored &= signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # not Snakemake's
    print("raised KeyboardInterrupt; handlers restored:", restored)
else:
    print("returned", completed)
"""


def _call_until_prepared(workdir: Path, then: Callable[[subprocess.Popen], None]) -> str:
    """Run :data:`A_CALL` on a tiny ladder in ``workdir``; once its data is prepared (the
    sanity rungs' jobs start or run), ``then`` acts on it. What the call printed."""
    from helpers import write_config

    write_config(workdir)
    with open(workdir / "out.log", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", A_CALL],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            start_new_session=True,  # a group of its own, as a terminal's foreground job
            preexec_fn=_pythons_own_handlers,
        )
        try:
            prepared = workdir / "results" / "tiny" / "data" / "meta.json"
            deadline = time.monotonic() + 120
            while not prepared.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert prepared.exists() and proc.poll() is None, (workdir / "out.log").read_text()
            then(proc)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert prepared.exists()  # what finished is kept
    assert not (workdir / "results" / "tiny" / "final").exists()
    return (workdir / "out.log").read_text()


def _pythons_own_handlers() -> None:
    """Ctrl-C and SIGTERM as Python starts with them, whatever the test runner's parent set."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_ctrl_c_stops_the_jobs_and_raises_keyboard_interrupt(tmp_path: Path) -> None:
    """As an interrupted call does in Python, not a False that reads as a failed job. The
    interrupt goes to the process group, the jobs too, as a terminal's Ctrl-C does."""
    printed = _call_until_prepared(tmp_path, lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert "raised KeyboardInterrupt; handlers restored: True" in printed, printed
    assert "stopped before the end" in printed, printed
    assert "WorkflowError" not in printed, printed


def test_a_stop_asked_returns_false_and_says_the_stop_not_a_failure(tmp_path: Path) -> None:
    from tuneladder import cli

    stop = ["stop", "--results", str(tmp_path / "results" / "tiny")]

    def ask_to_stop(proc: subprocess.Popen) -> None:
        assert cli.main(stop) == 0

    printed = _call_until_prepared(tmp_path, ask_to_stop)
    assert "returned False" in printed, printed
    assert "stopped as asked, by tuneladder stop" in printed, printed
    assert "WorkflowError" not in printed, printed


def test_only_a_stop_asked_during_the_call_keeps_snakemakes_error_unsaid(tmp_path: Path) -> None:
    """A stop file an earlier run left (a rerun that fails before it starts clears none)
    must not hide why this call failed."""
    from helpers import write_config
    from tuneladder.api import _stop_asked
    from tuneladder.store.io import write_json
    from tuneladder.store.stop_request import STOP_FILE

    write_config(tmp_path)
    stop = tmp_path / "results" / "tiny" / STOP_FILE
    config = tmp_path / "config.yaml"
    assert not _stop_asked(tmp_path, config, None, since=1000.0)
    write_json(stop, {"asked_at": 999.0, "by": "tuneladder stop"})  # before the call
    assert not _stop_asked(tmp_path, config, None, since=1000.0)
    write_json(stop, {"asked_at": 1001.0, "by": "tuneladder stop"})  # during it
    assert _stop_asked(tmp_path, config, None, since=1000.0)
    # another experiment, as an override names it: its own folder
    assert not _stop_asked(tmp_path, config, {"experiment": "other"}, since=1000.0)
