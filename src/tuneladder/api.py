"""tuneladder from Python: what a notebook needs, without the workflow's internals.

Four calls, each what a command does:

* :func:`load_config`: an experiment's config, resolved and checked, with
  overrides (``snakemake --config``'s or ``tuneladder trial --set``'s);
* :func:`run_trial`: one trial of that config (``tuneladder trial``), its
  ``result.json`` returned;
* :func:`run_ladder`: the whole ladder (``snakemake``), through Snakemake's API,
  with the settings of the default profile;
* :func:`load_results`: a ladder's trials and histories as pandas DataFrames,
  and its final summary.

``import tuneladder.api`` imports neither torch nor Snakemake; each call imports
what it uses.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.store.trial_files import HISTORY_FILE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LadderResults", "load_config", "load_results", "run_ladder", "run_trial"]

# the checkout's workflow: the package lives in <checkout>/src/tuneladder
REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
DEFAULT_CONFIG = Path("config/config.yaml")


def load_config(
    path: str | Path = DEFAULT_CONFIG, overrides: Mapping[str, Any] | Iterable[str] = ()
) -> dict[str, Any]:
    """The experiment config at ``path``, resolved as a run resolves it.

    ``overrides`` are ``{"coarse.trials": 5, "lr": 1e-3}`` or ``["coarse.trials=5"]``:
    a dotted key is a config path, a bare key the config's own key where it names
    one (``precision``, ``device``, ``seed``), else a fixed hyperparameter (``train.lr``).
    Raises :class:`tuneladder.ladder.config.ConfigError` naming the key or the file.
    """
    from tuneladder.ladder.config import load_config as load

    if isinstance(overrides, Mapping):
        overrides = [f"{key}={_yaml(value)}" for key, value in overrides.items()]
    return load(path, list(overrides))


def run_trial(
    config: Mapping[str, Any],
    out: str | Path,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train one trial of ``config``'s fixed hyperparameters (``train``) into ``out``.

    The data is ``data_dir`` when given, else the experiment's prepared
    ``results/<experiment>/data`` when it was prepared from this config's task,
    options, seed and data settings and from the files and code as they are now
    (:func:`tuneladder.stages.prepare.data_sources`), else it is prepared into
    ``out/data`` (again when what is there was prepared from others). Returns the
    trial's ``result.json``; ``out`` also holds its ``history.csv``. ``on_start``
    sees ``{"device", "train", "val"}`` (the device, the split sizes) before the
    first epoch, and ``on_epoch`` each epoch's row as it ends.
    """
    import torch

    from tuneladder.data.prepared import data_for, load_train_val, prepare, prepared_from
    from tuneladder.infra.device import Loading, deterministic, fp32_math, resolve_device
    from tuneladder.stages.prepare import data_sources
    from tuneladder.store.trials import base_params, make_trial_config
    from tuneladder.tasks import load_task
    from tuneladder.training.runner import TrainingRun
    from tuneladder.training.runner import run_trial as train_one

    out = Path(out)
    task = load_task(config["task"]["name"], config["task"]["options"])
    params = base_params(config["train"], task.defaults)
    settings = {
        "materialize": config["data"]["materialize"],
        "max_memory_mb": config["data"]["max_memory_mb"],
    }
    recipe = {
        "task_options": config["task"]["options"],
        "seed": config["seed"],
        # an edited CSV, image folder or loading code: data prepared before is not this
        "sources": data_sources(config["task"]),
    }
    if data_dir is None:
        shared, own = Path("results") / config["experiment"] / "data", out / "data"
        if prepared_from(shared, task.name, settings=settings, **recipe):
            data_dir = shared
        else:
            data_dir = own
            if own.resolve() == shared.resolve():  # --out results/<experiment>: never
                from tuneladder.ladder.config import ConfigError

                raise ConfigError(
                    f"{shared} holds data prepared from another config; give the trial"
                    " an --out of its own"
                )
            if not prepared_from(own, task.name, settings=settings, **recipe):
                shutil.rmtree(own, ignore_errors=True)  # its own copy, of another config
    data_dir = Path(data_dir)
    if not (data_dir / "meta.json").is_file():
        prepare(task, data_dir, data_values=task.data_values(params), **recipe, **settings)
    data_dir = data_for(data_dir, task, params)  # a copy at other data hyperparameters
    torch.set_num_threads(config["threads"])
    deterministic(config["deterministic"])  # on or off: a notebook runs several
    device = resolve_device(config["device"])
    fp32_math(device, config["precision"])  # as deterministic: this run's, either way
    loading = Loading(
        num_workers=config["data"]["num_workers"], pin_memory=config["data"]["pin_memory"]
    )
    data = load_train_val(data_dir, task, loading=loading).to(device)
    if on_start is not None:
        on_start({"device": str(device), "train": len(data.train), "val": len(data.val)})
    trial_config = make_trial_config(
        params,
        {},
        epochs=config["train"]["epochs"],
        seed=seed,
    )
    run = TrainingRun(
        config=trial_config,
        data=data,
        task=task,
        metric=config["metric"]["name"],
        mode=config["metric"]["mode"],
        device=device,
        precision=config["precision"],
        threads=config["threads"],
    )
    return train_one(
        run,
        out,
        trial={"rung": "debug", "index": 0, "name": "debug"},
        on_epoch=on_epoch,
        checkpoint_every_s=config["checkpoint_every_s"],
    )


def run_ladder(
    configfile: str | Path | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    cores: int | None = None,
    gpus: int | None = None,
    workdir: str | Path = ".",
    dry_run: bool = False,
) -> bool:
    """Climb the ladder as ``snakemake`` does from ``workdir``; True when it completed.

    ``configfile`` is the experiment (the checkout's ``config/config.yaml`` when
    None); ``config`` overrides its keys as ``--config`` does (``{"coarse":
    {"trials": 5}}``), and takes :func:`load_config`'s keys too (``{"coarse.trials":
    5, "lr": 1e-3}``); ``dry_run`` plans without running, as ``-n``; ``cores``
    defaults to every core, ``gpus`` is ``--resources gpu=N``. The default profile's
    settings apply (keep going past a failed job, rerun incomplete jobs, retrain only
    what changed). Finished trials are reused, so a second call after a stop goes on
    from there.

    Ctrl-C stops the jobs as it does the command (their epochs kept), then raises
    KeyboardInterrupt, as an interrupted call does in Python: Snakemake takes the
    interrupt for a failed job, which would read as False.
    """
    import os
    import time

    from snakemake.api import SnakemakeApi
    from snakemake.cli import parse_config
    from snakemake.settings.enums import RerunTrigger
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        ExecutionSettings,
        OutputSettings,
        ResourceSettings,
    )

    from tuneladder.ladder.config import apply_overrides

    # dotted and bare keys as load_config takes them, nested as --config takes them
    nested = apply_overrides(
        {}, [f"{key}={_yaml(value)}" for key, value in (config or {}).items()]
    )
    entries = [f"{key}={_yaml(value)}" for key, value in nested.items()]
    workdir = Path(workdir).resolve()
    configfiles = [Path(configfile).resolve()] if configfile is not None else []
    if not configfiles and not (workdir / DEFAULT_CONFIG).is_file():
        configfiles = [REPO / DEFAULT_CONFIG]
    resources = ResourceSettings(
        cores=cores or os.cpu_count(), resources={"gpu": gpus} if gpus else {}
    )
    here, started = Path.cwd(), time.time()
    interrupted = _InterruptSeen()
    try:
        # the terminal view of the snakemake command: the ladder, not the jobs
        from snakemake_logger_plugin_tuneladder import LogHandlerSettings

        view = {"tuneladder": LogHandlerSettings()}
        output = OutputSettings(dryrun=dry_run, stdout=dry_run, log_handler_settings=view)
        with interrupted, SnakemakeApi(output) as api:
            workflow = api.workflow(
                resource_settings=resources,
                # as --config KEY=VALUE: Snakemake's reading of it, and the entries as
                # written, which the workflow reads again for nested values
                config_settings=ConfigSettings(
                    config=parse_config(entries), config_args=entries, configfiles=configfiles
                ),
                snakefile=SNAKEFILE,
                workdir=workdir,
            )
            # what profiles/default/config.yaml gives the command line
            triggers = {RerunTrigger.MTIME, RerunTrigger.PARAMS, RerunTrigger.INPUT,
                        RerunTrigger.SOFTWARE_ENV}  # fmt: skip
            dag = workflow.dag(
                dag_settings=DAGSettings(rerun_triggers=triggers, force_incomplete=True)
            )
            # a dry run is an executor of its own, as with the command's --dry-run; the
            # output setting only prints what it plans
            dag.execute_workflow(
                executor="dryrun" if dry_run else "local",
                execution_settings=ExecutionSettings(keep_going=True),
            )
    except SystemExit as stop:  # a config error, stopped in the Snakefile with its message
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
        return False
    except Exception as err:  # a failed job: Snakemake has printed which and why
        if interrupted.seen:  # Snakemake stopped the jobs; what is kept is said above
            raise KeyboardInterrupt from None
        configfile = configfiles[0] if configfiles else workdir / DEFAULT_CONFIG
        if not _stop_asked(workdir, configfile, config, since=started):
            print(f"tuneladder: {type(err).__name__}: {err}", file=sys.stderr)
        return False
    finally:
        os.chdir(here)  # Snakemake works from workdir
    if interrupted.seen:  # stopped before any job ran, or after the last
        raise KeyboardInterrupt
    return True


def _stop_asked(
    workdir: Path, configfile: Path, overrides: Mapping[str, Any] | None, *, since: float
) -> bool:
    """Whether the run ended because ``tuneladder stop`` asked it to, ``since`` the call
    started: then the line above says so, and Snakemake's "a job did not complete" would
    read as a failure. A stop left by an earlier run hides nothing (a rerun that fails
    before it starts, held by a lock say, clears no stop file)."""
    from tuneladder.store.stop_request import StopFile

    try:
        experiment = load_config(configfile, overrides or {})["experiment"]
    except Exception:  # a config that cannot be read now: say Snakemake's error
        return False
    return StopFile(workdir / "results" / experiment).asked_since(since)


class _InterruptSeen:
    """Notes a Ctrl-C while in use, and hands it on to the handler before it (Python's,
    which raises the KeyboardInterrupt that Snakemake catches to stop its jobs). Where
    the handler is not Python's own (ignored, or off the main thread) it notes nothing.
    On the way out it puts back the SIGTERM handler too: Snakemake's, left behind, would
    keep a notebook's kernel from ending on SIGTERM."""

    def __init__(self) -> None:
        self.seen = False
        self._before: dict[int, Any] = {}

    def __enter__(self) -> _InterruptSeen:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        self._before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        if callable(self._before[signal.SIGINT]):
            signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self._before.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)
        self._before = {}

    def _note(self, signum: int, frame: Any) -> None:
        self.seen = True
        before = self._before.get(signum)
        if callable(before):
            before(signum, frame)


@dataclass
class LadderResults:
    """A ladder's results folder, read: every trial, its history on demand, the summary."""

    folder: Path
    trials: pd.DataFrame  # one row per trial (a halving config at its furthest level)
    summary: dict[str, Any] | None  # final/summary.json, once the final rung ran

    def history(self, rung: str, name: str) -> pd.DataFrame:
        """One trial's ``history.csv``: a row per epoch."""
        import pandas as pd

        row = self.trials[(self.trials["rung"] == rung) & (self.trials["name"] == str(name))]
        if row.empty:
            raise KeyError(f"no trial {name!r} in rung {rung!r} of {self.folder}")
        return pd.read_csv(Path(row["trial_dir"].iloc[0]) / HISTORY_FILE)

    def histories(self) -> pd.DataFrame:
        """Every trial's history in one frame, with its ``rung`` and ``name``."""
        import pandas as pd

        frames = []
        for row in self.trials.itertuples():
            path = Path(row.trial_dir) / HISTORY_FILE
            if path.is_file():
                frames.append(pd.read_csv(path).assign(rung=row.rung, name=row.name))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_results(results: str | Path) -> LadderResults:
    """A ladder's ``results/<experiment>`` folder as DataFrames, running or finished.

    ``trials`` has the columns of each rung's ``results.json`` row (status,
    best_val_metric, epochs_run, seconds ...), each hyperparameter as a column
    of its own, and ``trial_dir``. Rungs whose results table is not written yet
    are left out.
    """
    import pandas as pd

    from tuneladder.ladder.rungs import FINAL, TRIAL_RUNGS
    from tuneladder.store.io import read_json

    folder = Path(results)
    if not folder.is_dir():
        raise FileNotFoundError(f"no ladder results in {folder}")
    rows = []
    for rung in TRIAL_RUNGS:
        table = folder / rung.outputs["results"]
        if not table.is_file():
            continue
        # a trial's folder, from its rung's: the table's "dir" is where Snakemake ran
        plan = read_json(folder / rung.outputs["plan"])
        dirs = {entry["name"]: entry["dir"] for entry in plan["trials"]}
        for row in read_json(table)["trials"]:
            flat = {k: v for k, v in row.items() if k not in ("params", "sampled", "halving")}
            # a halving config's row names its furthest level
            flat["trial_dir"] = str(table.parent / row.get("path", dirs[row["name"]]))
            rows.append({**flat, **row["params"]})
    summary_file = folder / FINAL.outputs["summary"]
    summary = read_json(summary_file) if summary_file.is_file() else None
    return LadderResults(folder=folder, trials=pd.DataFrame(rows), summary=summary)


def _yaml(value: Any) -> str:
    """A value as ``key=value`` overrides parse it (YAML), whatever its Python type."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
