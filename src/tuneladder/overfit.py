"""The overfit check: a model that cannot memorise a few samples will not learn the task.

Regularisation is switched off (dropout 0, weight decay 0) and the subset is
trained full-batch, so that only a broken pipeline (labels that do not match
inputs, a loss that does not fit the output layer, a model too small to
represent anything) can make it fail.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from tuneladder.data import Split, TrainVal
from tuneladder.hparams import TrialConfig
from tuneladder.metrics import batch_stats, loss_fn, summarize
from tuneladder.optimizers import make_optimizer
from tuneladder.runner import BuildModel

__all__ = ["OverfitFailed", "failure_message", "overfit_check"]

CHECK_EVERY = 10


class OverfitFailed(RuntimeError):
    """The pipeline cannot memorise a tiny subset; tuning it would waste the budget."""


def overfit_check(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    *,
    subset: int,
    max_steps: int,
    lr: float,
    loss_threshold: float,
    device: torch.device,
) -> dict[str, Any]:
    """Train on ``subset`` training samples until the loss is near zero or steps run out.

    Passes when the training loss falls below ``loss_threshold``, or a
    classifier gets every sample right.
    """
    kind = data.info.kind
    generator = torch.Generator().manual_seed(config.seed)
    pick = torch.randperm(len(data.train), generator=generator)[:subset].to(data.train.x.device)
    tiny = Split(data.train.x[pick], data.train.y[pick])
    plain = replace(config, lr=lr, weight_decay=0.0, model={**config.model, "dropout": 0.0})
    torch.manual_seed(config.seed)
    model = build_model(plain.model, data.info).to(device)
    optimizer = make_optimizer(model.parameters(), plain)
    model.train()
    started = time.perf_counter()
    curve: list[dict[str, float]] = []
    passed = False
    for step in range(1, max_steps + 1):
        output = model(tiny.x)
        loss = loss_fn(kind, output, tiny.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % CHECK_EVERY == 0 or step == 1 or step == max_steps:
            stats = summarize(
                kind,
                loss.item() * len(tiny),
                batch_stats(kind, output, tiny.y).tolist(),
                len(tiny),
            )
            point = {"step": step, "loss": stats["loss"]}
            if kind == "classification":
                point["accuracy"] = stats["accuracy"]
            curve.append(point)
            if stats["loss"] < loss_threshold:
                passed = True
                break
    last = curve[-1]
    if not passed and kind == "classification" and last.get("accuracy") == 1.0:
        passed = True  # every sample right: the metric is at its ceiling
    return {
        "passed": passed,
        "steps": last["step"],
        "final_loss": last["loss"],
        "final_accuracy": last.get("accuracy"),
        "loss_threshold": loss_threshold,
        "subset": len(tiny),
        "max_steps": max_steps,
        "lr": lr,
        "seconds": time.perf_counter() - started,
        "config": plain.to_json(),
        "curve": curve,
    }


def failure_message(report: Mapping[str, Any]) -> str:
    return (
        f"overfit check failed: training loss {report['final_loss']:.4g} after"
        f" {report['steps']} steps on {report['subset']} samples (needs <"
        f" {report['loss_threshold']:g}). Check that labels match their inputs, that the"
        " model's output fits the loss (classes vs. outputs), that the model is not too"
        " small, and that overfit.lr is neither too low nor too high. To continue anyway,"
        " set overfit.enforce: false."
    )
