"""Train one trial: the loop, its measurements, and the files it leaves.

The loop is written out whole, nanoGPT-style. Data already lives on the device
and is batched by index; per-step values stay on the device and reach the host
once per epoch, in one transfer, so the GPU never waits for Python.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneladder.data import Split, TrainVal
from tuneladder.device import autocast, peak_memory_mb, reset_peak_memory
from tuneladder.hparams import TrialConfig
from tuneladder.io import write_csv, write_json, write_torch
from tuneladder.metrics import batch_stats, loss_fn, n_stats, summarize, target_units
from tuneladder.optimizers import make_optimizer
from tuneladder.schedules import lr_multiplier
from tuneladder.tasks import DataInfo
from tuneladder.trials import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    MODEL_FILE,
    BuildModel,
    Checkpoint,
    make_result,
    trial_key,
    write_result,
)

# HISTORY_COLUMNS, BuildModel, Checkpoint and trial_key live in tuneladder.trials (no torch
# there); they stay importable from here.
__all__ = [
    "HISTORY_COLUMNS",
    "BuildModel",
    "Checkpoint",
    "Outcome",
    "evaluate",
    "evaluate_metrics",
    "run_trial",
    "train",
    "trial_key",
]

EVAL_BATCH = 4096

EpochCallback = Callable[[dict[str, float]], None]


@dataclass
class Outcome:
    status: str = "ok"  # ok | diverged | failed
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_metric: float | None = None
    best_val_loss: float | None = None
    first_loss: float | None = None
    stopped_early: bool = False
    reason: str | None = None  # why it diverged, or the error when it failed
    resumed_from_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None


def train(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    *,
    metric: str,
    mode: str,
    device: torch.device,
    precision: str = "fp32",
    checkpoint: Checkpoint | None = None,
    on_epoch: EpochCallback | None = None,
    keep_best_state: bool = False,
) -> Outcome:
    """Train on ``data.train``, select on ``data.val``; training errors become a status."""
    outcome = Outcome()
    try:
        _train(
            config,
            data,
            build_model,
            outcome,
            metric=metric,
            mode=mode,
            device=device,
            precision=precision,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
            keep_best_state=keep_best_state,
        )
    except Exception as err:  # CUDA out-of-memory included: the sweep goes on
        outcome.status = "failed"
        outcome.reason = f"{type(err).__name__}: {err}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return outcome


def _train(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    outcome: Outcome,
    *,
    metric: str,
    mode: str,
    device: torch.device,
    precision: str,
    checkpoint: Checkpoint | None,
    on_epoch: EpochCallback | None,
    keep_best_state: bool,
) -> None:
    kind = data.info.kind
    units = target_units(data.info, device)
    train_x, train_y = data.train.x, data.train.y
    n = len(train_y)
    batch_size = min(config.batch_size, n)
    # a last batch of one sample breaks batch norm; dropping it costs one sample per epoch
    usable = n - 1 if n % batch_size == 1 and n > 1 else n
    steps_per_epoch = math.ceil(usable / batch_size)

    torch.manual_seed(config.seed)
    model = build_model(config.model, data.info).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    # a constant schedule needs no scheduler: one Python call per step saved
    scheduler = None
    if config.schedule != "constant":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lr_multiplier(
                config.schedule,
                total_steps=config.epochs * steps_per_epoch,
                steps_per_epoch=steps_per_epoch,
                gamma=config.gamma,
                step_epochs=config.step_epochs,
                warmup_epochs=config.warmup_epochs,
            ),
        )
    params = [p for p in model.parameters() if p.requires_grad]
    # without clipping, the gradient norm is sampled on about 8 steps an epoch: it is
    # a diagnostic, and measuring it every step costs a tenth of a small model's time
    norm_every = 1 if config.grad_clip else max(1, steps_per_epoch // 8)
    shuffle = torch.Generator(device=device)
    shuffle.manual_seed(config.seed)
    amp = autocast(device, precision)
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    epochs_since_best = 0
    first_loss: torch.Tensor | None = None
    start_epoch = 0

    saved = checkpoint.load() if checkpoint else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        shuffle.set_state(saved["shuffle"])
        torch.set_rng_state(saved["rng"])
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        outcome.history = list(saved["history"])
        outcome.best_epoch, outcome.best_val_metric = saved["best_epoch"], saved["best_val_metric"]
        outcome.best_val_loss, outcome.best_state = saved["best_val_loss"], saved["best_state"]
        epochs_since_best = saved["epochs_since_best"]
        first_loss = torch.tensor(saved["first_loss"], device=device)
        start_epoch = outcome.resumed_from_epoch = len(outcome.history)

    reset_peak_memory(device)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        stats = torch.zeros(n_stats(kind), device=device)
        grad_norm_sum = torch.zeros((), device=device)
        order = torch.randperm(n, generator=shuffle, device=device)[:usable]
        for step, idx in enumerate(order.split(batch_size)):
            xb, yb = train_x[idx], train_y[idx]
            with amp:
                output = model(xb)
            loss = loss_fn(kind, output, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                # the norm before clipping is what we record
                grad_norm_sum += nn.utils.clip_grad_norm_(params, config.grad_clip)
            elif step % norm_every == 0:
                grad_norm_sum += _grad_norm(params)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum.add_(loss.detach(), alpha=len(idx))
            stats.add_(batch_stats(kind, output, yb, units))
            if first_loss is None:
                first_loss = loss.detach().float()
        norm_steps = len(range(0, steps_per_epoch, norm_every))
        model.eval()
        val_loss, val_stats = evaluate(model, data.val, kind, amp, units)
        weight_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)))
        # the one host sync of the epoch
        host = torch.cat(
            [
                torch.stack([loss_sum, val_loss, grad_norm_sum, weight_norm, first_loss]),
                stats,
                val_stats,
            ]
        ).tolist()
        loss_total, val_loss_total, grad_norm, weight_norm_value, first = host[:5]
        k = len(stats)
        train_m = summarize(kind, loss_total, host[5 : 5 + k], usable, _width(train_y))
        val_m = summarize(kind, val_loss_total, host[5 + k :], len(data.val), _width(data.val.y))
        row = {
            "epoch": epoch,
            "train_loss": train_m["loss"],
            "train_metric": train_m[metric],
            "val_loss": val_m["loss"],
            "val_metric": val_m[metric],
            "lr": optimizer.param_groups[0]["lr"],
            "grad_norm": grad_norm / (steps_per_epoch if config.grad_clip else norm_steps),
            "weight_norm": weight_norm_value,
            "epoch_seconds": time.perf_counter() - started,
            "peak_memory_mb": peak_memory_mb(device),
        }
        outcome.history.append(row)
        outcome.first_loss = first
        if on_epoch is not None:
            on_epoch(row)

        reason = _divergence(row, first, config.diverge_factor)
        if reason:
            outcome.status, outcome.reason = "diverged", reason
            break
        if outcome.best_val_metric is None or better(row["val_metric"], outcome.best_val_metric):
            outcome.best_epoch, outcome.best_val_metric = epoch, row["val_metric"]
            outcome.best_val_loss = row["val_loss"]
            epochs_since_best = 0
            if keep_best_state:
                outcome.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            epochs_since_best += 1
        if config.patience is not None and epochs_since_best >= config.patience:
            outcome.stopped_early = True
            break
        if checkpoint is not None and checkpoint.due() and epoch + 1 < config.epochs:
            checkpoint.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "shuffle": shuffle.get_state(),
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device)
                    if device.type == "cuda"
                    else None,
                    "history": outcome.history,
                    "best_epoch": outcome.best_epoch,
                    "best_val_metric": outcome.best_val_metric,
                    "best_val_loss": outcome.best_val_loss,
                    "best_state": outcome.best_state,
                    "epochs_since_best": epochs_since_best,
                    "first_loss": first,
                }
            )
    if keep_best_state and outcome.best_state is None:
        outcome.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _width(y: torch.Tensor) -> int:
    return 1 if y.ndim == 1 else int(y.shape[1])


def _divergence(row: Mapping[str, float], first_loss: float, factor: float) -> str | None:
    for key in ("train_loss", "val_loss"):
        if not math.isfinite(row[key]):
            return f"{key} is {row[key]} at epoch {row['epoch']}"
    if row["train_loss"] > factor * first_loss:
        return (
            f"train_loss {row['train_loss']:.4g} exceeds {factor:g} x the first loss"
            f" {first_loss:.4g} at epoch {row['epoch']}"
        )
    return None


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def evaluate(
    model: nn.Module,
    split: Split,
    kind: str,
    amp: Any = None,
    target_std: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and metric sums over a split, on the device (see :mod:`tuneladder.metrics`).

    ``target_std`` (:func:`~tuneladder.metrics.target_units`) puts regression
    errors in the target's own units.
    """
    amp = amp if amp is not None else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    stats = torch.zeros(n_stats(kind), device=split.x.device)
    with torch.inference_mode():
        for start in range(0, len(split), EVAL_BATCH):
            xb, yb = split.x[start : start + EVAL_BATCH], split.y[start : start + EVAL_BATCH]
            with amp:
                output = model(xb)
            loss_sum += loss_fn(kind, output, yb) * len(yb)
            stats += batch_stats(kind, output, yb, target_std)
    model.train(was_training)
    return loss_sum, stats


def evaluate_metrics(model: nn.Module, split: Split, info: DataInfo) -> dict[str, float]:
    """Metrics of a model on a split, as numbers, with the same units as training records."""
    units = target_units(info, split.x.device)
    loss_sum, stats = evaluate(model, split, info.kind, target_std=units)
    return summarize(info.kind, loss_sum.item(), stats.tolist(), len(split), _width(split.y))


def run_trial(
    config: TrialConfig,
    data: TrainVal,
    build_model: BuildModel,
    out_dir: str | Path,
    *,
    metric: str,
    mode: str,
    device: torch.device,
    precision: str = "fp32",
    threads: int = 1,
    trial: Mapping[str, Any] | None = None,
    checkpoint_every_s: float = 60.0,
    save_model: bool = False,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train one trial and write ``config.json``, ``history.csv`` and ``result.json``.

    ``result.json`` is written last: its presence means the trial is complete.
    A checkpoint in ``out_dir`` from an interrupted run of the same config and
    data is resumed from its last epoch.
    """
    out_dir = Path(out_dir)
    key = trial_key(config, data.fingerprint, metric)
    write_json(out_dir / CONFIG_FILE, config.to_json())
    checkpoint = Checkpoint(out_dir / CHECKPOINT_FILE, key, checkpoint_every_s)
    started = time.time()
    outcome = train(
        config,
        data,
        build_model,
        metric=metric,
        mode=mode,
        device=device,
        precision=precision,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        keep_best_state=save_model,
    )
    write_csv(out_dir / HISTORY_FILE, HISTORY_COLUMNS, outcome.history)
    if save_model and outcome.best_state is not None and outcome.status == "ok":
        write_torch(out_dir / MODEL_FILE, outcome.best_state)
    result = make_result(
        outcome,
        config=config,
        trial=trial,
        metric=metric,
        mode=mode,
        key=key,
        data_fingerprint=data.fingerprint,
        device=device,
        precision=precision,
        threads=threads,
        started=started,
    )
    write_result(out_dir, result)
    checkpoint.clear()
    return result
