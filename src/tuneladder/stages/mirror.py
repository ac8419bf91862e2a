"""The MLflow mirror's stage: every trial, then the final model."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneladder.core.direction import top
from tuneladder.infra.startup import import_torch
from tuneladder.stages.common import _task, _tracker
from tuneladder.store.io import read_json, write_json

__all__ = ["log_mlflow_stage"]

log = logging.getLogger("tuneladder")


def log_mlflow_stage(
    *,
    tables: Sequence[str | Path],
    final_dir: str | Path,
    data_dir: str | Path,
    task: Mapping[str, Any],
    tracking: Mapping[str, Any],
    marker: str | Path,
    trial_runs: int | None = None,
) -> None:
    """Mirror the ladder into MLflow in one job of its own: every trial, then the model.

    Importing MLflow and opening the store cost about 2 s of CPU per process;
    paid in every worker they slowed its training (the worker's thread shares
    the interpreter), and the summary and the report need none of it. So one
    job pays it once, beside the report. ``tables`` are the rungs' results;
    a trial a live worker (``mlflow.live``) or an earlier run already logged is
    found by its tag and not logged again. ``marker`` records the final run (or
    why there is none): the files under ``results/`` stay the source of truth.
    ``trial_runs`` caps the runs per rung at its best trials (None: all); every
    rung's table goes on the ladder's run, so none is missing from MLflow.
    """
    from tuneladder.search.halving import level_trial_dirs
    from tuneladder.store.trials import read_result

    final_dir = Path(final_dir)
    outcome: dict[str, Any] = {"run_id": None, "trials": 0, "error": None}
    if not tracking:  # mlflow.enabled: false (dvc repro's mlflow stage still runs)
        outcome["error"] = "mlflow is disabled in the config"
        write_json(marker, outcome)
        return
    import_torch(dynamo=True)  # torch.export, which MLflow's model format uses, loads it
    tracker = _tracker(tracking)
    if tracker is None:
        outcome["error"] = "tracking store unavailable"
        write_json(marker, outcome)
        return
    outcome["rungs"] = {}
    for table in tables:
        content = read_json(table)
        rows = _mirrored_rows(content, trial_runs)
        outcome["rungs"][Path(table).parent.name] = {
            "trials": len(content["trials"]),
            "runs": len(rows),
        }
        try:
            tracker.log_table(table, Path(table).parent.name)
        except Exception as err:  # the result files stay the source of truth
            log.warning("MLflow: could not log %s: %s", table, err)
        for row in rows:
            for trial_dir in level_trial_dirs(row):
                result = read_result(trial_dir)
                if result is None:  # deleted since the rung was collected
                    log.warning("MLflow: %s has no result to log", trial_dir)
                    continue
                try:
                    tracker.log_trial(result, trial_dir)
                    outcome["trials"] += 1
                except Exception as err:  # the result files stay the source of truth
                    log.warning("MLflow: could not log %s: %s", trial_dir, err)
    capped = {r: n for r, n in outcome["rungs"].items() if n["runs"] < n["trials"]}
    log.info(
        "MLflow: %d trials mirrored as runs%s",
        outcome["trials"],
        "".join(
            f"; {rung}: its best {n['runs']} of {n['trials']} (mlflow.trial_runs)"
            for rung, n in capped.items()
        ),
    )
    try:
        outcome["run_id"] = _log_final_model(tracker, final_dir, data_dir, task)
        log.info("MLflow: final model logged in run %s", outcome["run_id"])
    except Exception as err:  # the files in final/ stay the source of truth
        log.warning("MLflow: could not log the final model: %s", err)
        outcome["error"] = f"{type(err).__name__}: {err}"
    write_json(marker, outcome)


def _mirrored_rows(table: Mapping[str, Any], trial_runs: int | None) -> list[Mapping[str, Any]]:
    """A rung's rows to mirror as runs: all of them, or its best ``trial_runs``."""
    rows = table["trials"]
    if trial_runs is None or len(rows) <= trial_runs:
        return rows
    return top(rows, trial_runs, table["metric"]["mode"])


def _log_final_model(
    tracker: Any, final_dir: Path, data_dir: str | Path, task: Mapping[str, Any]
) -> str:
    import torch

    from tuneladder.core.hparams import TrialConfig
    from tuneladder.data.prepared import data_for, load_info, load_train_val

    task_obj = _task(task)
    config = TrialConfig.from_json(read_json(final_dir / "best_config.json"))
    data_dir = data_for(data_dir, task_obj, config.model)  # at the chosen data values
    model = task_obj.build_model(config.model, load_info(data_dir))
    model.load_state_dict(torch.load(final_dir / "model.pt", weights_only=True))
    val = load_train_val(data_dir, task_obj).val  # never the test split
    example = val.take(torch.arange(2)).x.cpu().numpy()
    summary = read_json(final_dir / "summary.json")
    return tracker.log_final(summary, final_dir, model, example)
