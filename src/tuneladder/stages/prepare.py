"""The prepare rung: split and prepare the task's data once, check its model."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneladder.core.errors import UserCodeError
from tuneladder.infra.startup import import_torch
from tuneladder.stages.common import StageError, _base_config, _task

__all__ = ["data_sources", "prepare_stage"]

log = logging.getLogger("tuneladder")


def data_sources(task: Mapping[str, Any], *, files: bool = True) -> dict[str, str]:
    """What the prepared data is read from besides the config: the code that reads it
    (the task's module and the user's modules it imports), an image folder's listing
    and, with ``files``, a CSV file's size and time.

    The workflow re-prepares when the first two change (``files=False``: the CSV is
    the prepare rule's input). ``meta.json`` records all of them, so one trial run
    outside the ladder (:func:`tuneladder.api.run_trial`) can tell whether data
    prepared earlier is still that of the files and code it would read now.
    """
    from tuneladder.store.trials import prepare_fingerprint, task_code

    found = {"code": prepare_fingerprint(task_code(task["name"]))}
    options = task.get("options") or {}
    if task["name"] == "image_folder":
        from tuneladder.tasks.image_folder import folder_signature

        found["images"] = folder_signature(options["path"])
    if files and task["name"] == "csv":
        from tuneladder.tasks.tabular import data_path

        stat = data_path(options["path"]).stat()
        found["file"] = f"{stat.st_size} bytes, modified {stat.st_mtime_ns} ns"
    return found


def _report_encoding(meta: Mapping[str, Any], data_dir: str | Path) -> None:
    """What prepare changed in the task's columns and labels: in the log and on the terminal."""
    lines = list((meta.get("encoding") or {}).get("changes", []))
    info = meta["info"]
    names = info.get("class_names")
    if names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        lines.append(f"target: {len(names)} classes by name ({shown}), as 0-{len(names) - 1}")
    elif meta.get("encoding") and info["kind"] == "classification":
        # a table's numeric target: how many classes its numbers made
        lines.append(f"target: {info['n_outputs']} classes, numbered as in the file")
    if not lines:
        return
    features = (meta.get("encoding") or {}).get("columns")
    head = f"prepare: {meta['task']}: {len(lines)} change(s) to the data as given"
    if features:
        head += f", {len(features)} feature columns in all"
    head += f" (train-split statistics only; in {Path(data_dir) / 'meta.json'}):"
    for line in (head, *(f"  {line}" for line in lines)):
        log.info("%s", line)
        print(f"tuneladder: {line}", file=sys.__stderr__)


def prepare_stage(
    *,
    task: Mapping[str, Any],
    seed: int,
    data_dir: str | Path,
    data: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
) -> None:
    """Prepare the data, then build the model and run one training step on train samples.

    ``data`` is the config's ``materialize`` and ``max_memory_mb``. The model is
    the sanity rungs' base config (the task's default model, then the fixed
    hyperparameters in ``train``), so a factory that cannot build it, or builds
    one that cannot train, stops the ladder here rather than in a rung.
    """
    import_torch(dynamo=False)
    import torch

    from tuneladder.core.errors import function_name
    from tuneladder.data.prepared import clear_variants, load_train_val, prepare
    from tuneladder.training.metrics import Scoring
    from tuneladder.training.preflight import CHECK_BATCH, check_model

    try:
        task_obj = _task(task)
        # the data hyperparameters at the config's fixed values (a sweep's others get
        # copies of their own, prepared when a trial first needs them: data.data_for)
        values = task_obj.data_values(train or {})
        clear_variants(data_dir)  # made from the data prepare is about to replace
        meta = prepare(
            task_obj,
            data_dir,
            seed=seed,
            data_values=values,
            task_options=task.get("options") or {},
            sources=data_sources(task),
            **(data or {}),
        )
        if values:
            log.info("data hyperparameters: %s", values)
        log.info("prepared %s: %s", meta["task"], meta["sizes"])
        _report_encoding(meta, data_dir)
        if meta.get("materialized") is not None:
            log.info(
                "%s, train and val %s",
                meta["source"],
                "held in memory" if meta["materialized"] else "read through a DataLoader",
            )
        train_val = load_train_val(data_dir, task_obj)  # the train split only: never test
        hyperparameters = _base_config(task_obj, {"epochs": 1, **(train or {})}, seed).model
        first = train_val.train.take(torch.arange(min(CHECK_BATCH, len(train_val.train))))
        shape = check_model(
            task_obj.build_model,
            hyperparameters,
            train_val.info,
            first.x,
            first.y,
            scoring=Scoring.of(task_obj),
        )
    except UserCodeError as err:  # the task's own code: logged() keeps the traceback
        raise StageError(f"prepare: {err}") from err
    except (ValueError, OSError) as err:  # bad data: one line naming the file or column
        raise StageError(f"prepare: {err}") from None
    log.info(
        "model check: %s with %s gives output %s and a finite loss",
        function_name(task_obj.build_model),
        dict(hyperparameters),
        shape,
    )
