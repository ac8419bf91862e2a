"""One function per rule: load the inputs, call the library, save the outputs.

Rule ``x`` runs ``x_stage``, and a stage's keyword arguments are named as the
rule's ``input``/``params`` entries, so each script in ``workflow/scripts/``
only passes them on. Folders come as params (``data_dir``), never from the
order of a file list, and every rung that trains gets one
:class:`~tuneladder.infra.device.Runtime`. Nothing here knows about Snakemake, so
every rung can also be run and tested from plain Python.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tuneladder.core.errors import ConfigError, DataError, StopRequested, UserCodeError
from tuneladder.infra.device import Runtime
from tuneladder.infra.startup import freeze_at_exit
from tuneladder.ladder.rungs import (
    SEARCH_RUNGS,
)

__all__ = ["Runtime", "StageError", "logged"]

log = logging.getLogger("tuneladder")
# the rungs that sweep (coarse, fine): their folders hold levels/ when they halve
SEARCHING = frozenset(rung.name for rung in SEARCH_RUNGS)


class StageError(RuntimeError):
    """A rung that must stop the ladder, with a message meant for the user."""


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[None]:
    """Send logging and stderr to the rule's log; a StageError also reaches the terminal.

    So do a task's :class:`~tuneladder.core.errors.DataError` and
    :class:`~tuneladder.core.errors.UserCodeError`: one line on the terminal, and
    when the task's own code raised, its traceback in ``<log>.traceback`` beside
    the log (which names it).
    """
    freeze_at_exit()  # a job ends when its stage does: see tuneladder.infra.startup
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    traceback_path = log_path.with_suffix(".traceback")
    traceback_path.unlink(missing_ok=True)  # from an earlier failed run
    log_path.write_text("")
    # appended to: a worker's lanes write to the same log (tuneladder.execution.lanes)
    with open(log_path, "a") as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        saved, sys.stderr = sys.stderr, handle
        try:
            yield
        except ConfigError as err:  # found by a job (the planned configs): as at parse time
            log.error("config error: %s", err)
            print(f"tuneladder: config error: {err}", file=sys.__stderr__)
            raise SystemExit(1) from None
        except (StageError, DataError, UserCodeError) as err:
            cause = err if isinstance(err, UserCodeError) else err.__cause__
            if cause is None:
                log.error("%s", err)
            else:
                # kept beside the log, the traceback stays out of the log's few lines
                traceback_path.write_text("".join(traceback.format_exception(cause)))
                log.error("%s (traceback in %s)", err, traceback_path)
            print(f"tuneladder: {err}", file=sys.__stderr__)
            # a clean exit: Python and Snakemake's script runner print no traceback
            raise SystemExit(1) from None
        except StopRequested as err:
            # asked of the whole ladder (tuneladder.store.stop_request): a warning, no error,
            # so that status does not count the job failed
            log.warning("%s; what was finished is kept, and a trial cut short goes on from"
                        " its checkpoint", err)  # fmt: skip
            raise SystemExit(130) from None
        except KeyboardInterrupt:
            # Ctrl-C reaches every job of the run: each leaves one line in its log, and
            # what it finished is on disk already (tuneladder.store.io writes atomically)
            log.warning("interrupted: stopped here; what was finished is kept")
            raise SystemExit(130) from None
        except Exception as err:
            log.exception("%s: %s", type(err).__name__, err)  # status reads the first line
            # the traceback is in the log; the terminal gets its last line and the log's name
            print(f"tuneladder: {type(err).__name__}: {err} (traceback in {log_path})",
                  file=sys.__stderr__)  # fmt: skip
            raise SystemExit(1) from None
        finally:
            sys.stderr = saved
            root.removeHandler(handler)


def _task(task: Mapping[str, Any]) -> Any:
    from tuneladder.tasks import load_task

    return load_task(task["name"], task.get("options", {}))


def _base_config(task_obj: Any, train: Mapping[str, Any], seed: int) -> Any:
    from tuneladder.store.trials import base_params, derive_seed, make_trial_config

    return make_trial_config(
        base_params(train, task_obj.defaults),
        {},
        epochs=train["epochs"],
        seed=derive_seed(seed, "sanity", 0),
    )


def _scoring(task_obj: Any) -> Any:
    """The task's own loss and metrics, as the trial path takes them."""
    from tuneladder.training.metrics import Scoring

    return Scoring.of(task_obj)


def _train_val(data_dir: str | Path, task_obj: Any, runtime: Runtime, device: Any) -> Any:
    """The prepared train and val splits on ``device``, read as ``runtime`` says."""
    from tuneladder.data.prepared import load_train_val

    return load_train_val(data_dir, task_obj, loading=runtime.loading()).to(device)


def _data_provider(
    data_dir: str | Path, task_obj: Any, runtime: Runtime, device: Any, base: Any
) -> Any:
    """``config -> TrainVal`` for a task with data hyperparameters, else None.

    A trial at prepare's values trains on ``base``; one at other values on their
    prepared copy (:func:`tuneladder.data.prepared.data_for`), loaded when first needed and
    kept on the device until a trial needs another (trials of one value tend to
    follow each other only by chance, so one copy beside ``base`` is kept, not all).
    The copy carries ``base``'s fingerprint: that keys every trial, whose config
    holds the values.
    """
    if not task_obj.data_params:
        return None
    import dataclasses

    from tuneladder.data.prepared import data_for, load_train_val

    base_dir = Path(data_dir)
    held: dict[Path, Any] = {}

    def provide(config: Any) -> Any:
        folder = data_for(base_dir, task_obj, config.model)
        if folder == base_dir:
            return base
        if folder not in held:
            held.clear()
            loaded = load_train_val(folder, task_obj, loading=runtime.loading()).to(device)
            held[folder] = dataclasses.replace(loaded, fingerprint=base.fingerprint)
            log.info("data %s from %s", task_obj.data_values(config.model), folder)
        return held[folder]

    return provide


def _span() -> dict[str, float | None]:
    """This job's start and end: the bench checks that the two sanity rungs overlap."""
    from tuneladder.infra.env import process_started_at

    return {"started_at": process_started_at(), "finished_at": time.time()}


def _tracker(tracking: Mapping[str, Any] | None) -> Any:
    """The ladder's MLflow tracker, or None when tracking is off or the store is unreachable."""
    if not tracking:
        return None
    from tuneladder.tracking.mirror import open_ladder

    try:
        return open_ladder(**tracking)
    except Exception as err:  # the result files stay the source of truth
        log.warning("MLflow: tracking store unavailable, trials are not mirrored: %s", err)
        return None
