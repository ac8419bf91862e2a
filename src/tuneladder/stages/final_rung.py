"""The final rung's stage: the choice over seeds and the one test evaluation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneladder.infra.device import Runtime
from tuneladder.infra.startup import import_torch
from tuneladder.stages.common import _task
from tuneladder.store.io import read_json

__all__ = ["final_stage"]

log = logging.getLogger("tuneladder")


def final_stage(
    *,
    seeds: str | Path,
    sweeps: Sequence[str | Path],
    data_dir: str | Path,
    task: Mapping[str, Any],
    metric: Mapping[str, str],
    runtime: Runtime,
    experiment: str,
    out_dir: str | Path,
) -> None:
    import_torch(dynamo=False)
    from tuneladder.stages.final import Evaluator, finalize, write_views

    torch_device = runtime.start()
    evaluator = Evaluator(
        task=_task(task),
        data_dir=data_dir,
        device=torch_device,
        loading=runtime.loading(),
        amp=runtime.autocast(torch_device),  # the seed trials' val numerics
    )
    summary = finalize(
        read_json(seeds)["trials"],
        out_dir,
        evaluator=evaluator,
        metric=metric["name"],
        mode=metric["mode"],
        experiment=experiment,
    )
    sweep_rows = [row for path in sweeps for row in read_json(path)["trials"]]
    write_views(summary, sweep_rows, out_dir)
    log.info(
        "chosen %s: val %.4f, test %s",
        summary["best_group"],
        summary["val_mean"],
        summary["test_mean"],
    )
