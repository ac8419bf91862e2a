"""The sanity rungs as stages: the overfit check and the LR range test."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneladder.infra.device import Runtime, precision_note
from tuneladder.infra.startup import import_torch
from tuneladder.stages.common import StageError, _base_config, _scoring, _span, _task, _train_val
from tuneladder.store.io import write_csv, write_json

__all__ = ["lr_range_test_stage", "overfit_check_stage"]

log = logging.getLogger("tuneladder")


def _sanity_inputs(
    data_dir: str | Path, task: Mapping[str, Any], runtime: Runtime
) -> tuple[Any, Any, Any]:
    """Device, task and train/val data on it: what both sanity rungs start from."""
    torch_device = runtime.start()
    on_cpu = torch_device.type != "cuda" and runtime.precision != "fp32"
    ignored = " (ignored on the CPU: fp32)" if on_cpu else ""
    log.info("device %s, precision %s%s", torch_device, runtime.precision, ignored)
    task_obj = _task(task)
    return torch_device, task_obj, _train_val(data_dir, task_obj, runtime, torch_device)


def overfit_check_stage(
    *,
    data_dir: str | Path,
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    seed: int,
    overfit: Mapping[str, Any],
    runtime: Runtime,
    out: str | Path,
) -> None:
    import_torch(dynamo=True)
    from tuneladder.sanity.overfit import OverfitSettings, failure_message, overfit_check

    torch_device, task_obj, data = _sanity_inputs(data_dir, task, runtime)
    if note := precision_note(torch_device, runtime.precision):  # once a run: the first job
        log.warning("%s", note)
        print(f"tuneladder: {note}", file=sys.__stderr__)
    settings = OverfitSettings(
        subset=overfit["subset"],
        max_steps=overfit["max_steps"],
        lr=overfit["lr"],
        loss_ratio=overfit["loss_ratio"],
        loss_threshold=overfit["loss_threshold"],
    )
    # in the precision the sweeps train in: their autocast, around each forward pass, and
    # in fp16 their loss scaling
    report = overfit_check(
        _base_config(task_obj, train, seed),
        data,
        task_obj.build_model,
        settings,
        device=torch_device,
        scoring=_scoring(task_obj),
        amp=runtime.autocast(torch_device),
        scaler=runtime.grad_scaler(torch_device),
    )
    report["enforced"] = overfit["enforce"]
    report.update(_span())
    log.info(
        "overfit check %s: loss %.4g after %d steps (untrained %.4g, threshold %.4g)%s",
        "passed" if report["passed"] else "FAILED",
        report["final_loss"],
        report["steps"],
        report["initial_loss"],
        report["loss_threshold"],
        "; passed on accuracy: every sample right" if report["passed_by"] == "accuracy" else "",
    )
    if not report["passed"]:
        if overfit["enforce"]:
            raise StageError(failure_message(report))
        log.warning("%s (not enforced)", failure_message(report))
    write_json(out, report)


def lr_range_test_stage(
    *,
    data_dir: str | Path,
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    seed: int,
    lr_range: Mapping[str, Any],
    runtime: Runtime,
    out: str | Path,
    csv_out: str | Path,
) -> None:
    import_torch(dynamo=True)
    from tuneladder.sanity.lr_range import LRRangeSettings, lr_range_test

    torch_device, task_obj, data = _sanity_inputs(data_dir, task, runtime)
    settings = LRRangeSettings(
        start=lr_range["start"],
        end=lr_range["end"],
        steps=lr_range["steps"],
        smoothing=lr_range["smoothing"],
        diverge_factor=lr_range["diverge_factor"],
    )
    # in the precision the sweeps train in: their autocast, around each forward pass, and
    # in fp16 their loss scaling
    result = lr_range_test(
        _base_config(task_obj, train, seed),
        data,
        task_obj.build_model,
        settings,
        device=torch_device,
        scoring=_scoring(task_obj),
        amp=runtime.autocast(torch_device),
        scaler=runtime.grad_scaler(torch_device),
    )
    # a plain table of the curve, for `dvc plots`
    zero_lag = result["smoothed_zero_lag"]
    curve = zip(result["lrs"], result["losses"], result["smoothed"], strict=True)
    rows = [
        {
            "lr": lr,
            "log10_lr": math.log10(lr),
            "loss": loss,
            "smoothed": sm,
            "smoothed_zero_lag": zero_lag[i] if i < len(zero_lag) else None,
        }
        for i, (lr, loss, sm) in enumerate(curve)
    ]
    write_csv(csv_out, ("lr", "log10_lr", "loss", "smoothed", "smoothed_zero_lag"), rows)
    log.info(
        "LR range test: suggestion %.3g, range %s, divergence at %s",
        result["suggestion"],
        result["range"],
        result["divergence_lr"],
    )
    result.update(_span())
    write_json(out, result)
