"""The overfit check: a model that cannot memorise a few samples will not learn the task.

Regularisation is switched off (dropout 0, weight decay 0) and the subset is
trained full-batch, so that only a broken pipeline (labels that do not match
inputs, a loss that does not fit the output layer, a model too small to
represent anything) can make it fail. The bar is relative to the task: a
fraction of the untrained model's loss, so a target's units do not move it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import Split, TrainVal
from tuneladder.store.trials import BuildModel
from tuneladder.training.metrics import Scorer, Scoring
from tuneladder.training.step import NO_AMP, setup, train_step

__all__ = ["OverfitSettings", "failure_message", "overfit_check"]

CHECK_EVERY = 10


@dataclass(frozen=True, kw_only=True)
class OverfitSettings:
    """What the check trains and the bar it must clear: the config's ``overfit`` section.

    Attributes:
        subset: training samples to memorise.
        max_steps: full-batch steps at most.
        lr: the learning rate, regularisation being off.
        loss_ratio: passes below this fraction of the untrained model's loss.
        loss_threshold: an absolute bar, in loss units, used instead of the ratio when set.
    """

    subset: int
    max_steps: int
    lr: float
    loss_ratio: float
    loss_threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.loss_ratio < 1:
            raise ValueError(f"loss_ratio must be in (0, 1), got loss_ratio={self.loss_ratio!r}")
        if self.loss_threshold is not None and self.loss_threshold <= 0:
            raise ValueError(
                f"loss_threshold must be > 0 or None, got loss_threshold={self.loss_threshold!r}"
            )


def overfit_check(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    settings: OverfitSettings,
    *,
    device: torch.device,
    scoring: Scoring | None = None,
    amp: contextlib.AbstractContextManager = NO_AMP,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Train on ``settings.subset`` training samples until the loss is near zero or steps run out.

    ``amp`` is the trials' autocast (:meth:`tuneladder.infra.device.Runtime.autocast`),
    entered around each forward pass as the trials do: autocast around the
    backward pass and the optimizer step too keeps a bf16 model from learning.
    ``scaler`` is fp16's loss scaler (:meth:`~tuneladder.infra.device.Runtime.grad_scaler`).

    Passes when the training loss falls below ``loss_ratio`` times the
    untrained model's loss (the loss of the first step, before any update), or
    below ``loss_threshold`` instead when that is given, or when a classifier
    gets every sample right. A ratio means the same on any task: regression
    targets are standardised (:mod:`tuneladder.data.prepared`), and an untrained model's
    mean squared error is then about 1 whatever the target's units.

    The report's ``loss_threshold`` is the threshold the loss was compared with,
    in loss units (``loss_ratio * initial_loss``, or the absolute one);
    ``criterion`` says which. The loss is the task's (``scoring``), as in the trials.
    """
    kind = data.info.kind
    scorer = Scorer.build(
        data.info, device, ("accuracy",) if kind == "classification" else (), scoring
    )
    generator = torch.Generator().manual_seed(config.seed)
    # read as they are: augmentation is regularisation, and the check switches that off
    tiny = data.train.take(torch.randperm(len(data.train), generator=generator)[: settings.subset])
    plain = replace(
        config, lr=settings.lr, weight_decay=0.0, model={**config.model, "dropout": 0.0}
    )
    model, optimizer = setup(plain, build_model, data.info, device)
    model.train()
    started = time.perf_counter()
    curve, threshold = _memorise(
        model, optimizer, scorer, tiny, settings=settings, amp=amp, scaler=scaler
    )
    first, last = curve[0], curve[-1]
    passed_by = _passed_by(last, threshold, kind)
    return {
        "passed": passed_by is not None,
        # "loss" under the threshold, or "accuracy": a classifier got every sample right
        # (a label-smoothed loss never gets near the threshold)
        "passed_by": passed_by,
        "steps": last["step"],
        "final_loss": last["loss"],
        "final_accuracy": last.get("accuracy"),
        "initial_loss": first["loss"],
        "final_ratio": last["loss"] / first["loss"] if first["loss"] > 0 else None,
        "loss_ratio": settings.loss_ratio,
        "criterion": "ratio" if settings.loss_threshold is None else "absolute",
        "loss_threshold": threshold,
        "target_scale": _target_scale(data, tiny),
        "subset": len(tiny),
        "max_steps": settings.max_steps,
        "lr": settings.lr,
        "seconds": time.perf_counter() - started,
        "config": plain.to_json(),
        "curve": curve,
    }


def _memorise(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scorer: Scorer,
    tiny: Split,
    *,
    settings: OverfitSettings,
    amp: contextlib.AbstractContextManager,
    scaler: torch.amp.GradScaler | None,
) -> tuple[list[dict[str, float]], float]:
    """Train full-batch on ``tiny`` until the loss is under the threshold or steps run out.

    Returns the curve (read at step 1, every :data:`CHECK_EVERY` steps and at
    the last step) and the threshold: the absolute one, or ``loss_ratio`` times
    the loss of step 1.
    """
    curve: list[dict[str, float]] = []
    threshold = settings.loss_threshold
    for step in range(1, settings.max_steps + 1):
        output, loss, _ = train_step(
            model, optimizer, scorer.loss, tiny.x, tiny.y, amp=amp, scaler=scaler
        )
        if step % CHECK_EVERY == 0 or step == 1 or step == settings.max_steps:
            tally = scorer.tally()
            tally.add(output, tiny.y, loss)
            stats = tally.result()
            point = {"step": step, "loss": stats["loss"]}
            if scorer.kind == "classification":
                point["accuracy"] = stats["accuracy"]
            curve.append(point)
            if threshold is None:
                # the output of step 1 came from the untrained weights
                threshold = settings.loss_ratio * stats["loss"]
            if stats["loss"] < threshold:
                break
    return curve, threshold  # type: ignore[return-value]  # set at step 1


def _passed_by(last: Mapping[str, float], threshold: float, kind: str) -> str | None:
    """``"loss"``: under the threshold at the last reading; ``"accuracy"``: a classifier
    got every sample right; None: neither."""
    if last["loss"] < threshold:
        return "loss"
    # every sample right: the metric is at its ceiling
    return "accuracy" if kind == "classification" and last.get("accuracy") == 1.0 else None


def _target_scale(data: TrainVal, tiny: Split) -> dict[str, Any] | None:
    """What a regression loss is measured against: the target's mean and std per output."""
    info = data.info
    if info.kind != "regression":
        return None
    if info.target_mean is not None and info.target_std is not None:
        return {"mean": list(info.target_mean), "std": list(info.target_std), "standardised": True}
    y = tiny.y.float().reshape(len(tiny), -1)
    return {
        "mean": y.mean(dim=0).tolist(),
        "std": y.std(dim=0, unbiased=False).tolist(),
        "standardised": False,
    }


def failure_message(report: Mapping[str, Any]) -> str:
    """What was compared, and what to check, for a failed overfit check."""
    final, initial = report["final_loss"], report["initial_loss"]
    ratio = report.get("final_ratio")
    relative = f"{ratio:.3g} x" if ratio is not None else "n/a of"
    if report["criterion"] == "ratio":
        needs = (
            f"needs < {report['loss_ratio']:g} x, i.e. < {report['loss_threshold']:.4g};"
            " overfit.loss_ratio"
        )
    else:
        needs = f"needs < {report['loss_threshold']:g}, overfit.loss_threshold"
    return (
        f"overfit check failed: training loss {final:.4g} after {report['steps']} steps on"
        f" {report['subset']} samples is {relative} the untrained loss {initial:.4g}"
        f" ({needs}).{_scale_note(report.get('target_scale'))} Check that labels match their"
        " inputs, that the model's output fits the loss (classes vs. outputs), that the model"
        " is not too small, that overfit.lr is neither too low nor too high, and that"
        " overfit.max_steps is enough. To continue anyway, set overfit.enforce: false."
    )


def _scale_note(scale: Mapping[str, Any] | None) -> str:
    if not scale:
        return ""
    mean, std = _numbers(scale["mean"]), _numbers(scale["std"])
    if scale["standardised"]:
        return (
            " The loss is the mean squared error on the target standardised with the train"
            f" split's mean {mean} and std {std}: predicting the mean scores about 1."
        )
    return (
        " The loss is the mean squared error in the target's own units (the task does not"
        f" standardise it): the subset's target has mean {mean} and std {std}, and"
        " predicting the mean scores its variance."
    )


def _numbers(values: list[float]) -> str:
    text = ", ".join(f"{v:.4g}" for v in values)
    return text if len(values) == 1 else f"[{text}]"
