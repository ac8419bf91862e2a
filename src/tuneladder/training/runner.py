"""Train one trial: the loop, its measurements, and the files it leaves.

The loop (``_train``) is written out whole, nanoGPT-style, and shows only the
order of things; beside it, :class:`TrainState` is what a checkpoint saves and
restores, :func:`run_epoch` is one epoch, and :class:`Batches` how it is cut.
Data held in memory lives on the device and is batched by index; a Dataset that
is not is read through a DataLoader (:mod:`tuneladder.data.loader`) in the same
batches. Per-step values stay on the device and reach the host once per epoch,
in one transfer, so the GPU never waits for Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from tuneladder.core.direction import Direction
from tuneladder.core.errors import StopRequested
from tuneladder.core.hparams import TrialConfig
from tuneladder.data.loader import DatasetSplit, epoch_seed
from tuneladder.data.prepared import Split, TrainVal
from tuneladder.infra.device import (
    PRECISIONS,
    autocast,
    grad_scaler,
    peak_memory_mb,
    reset_peak_memory,
)
from tuneladder.store.io import write_csv, write_json, write_torch
from tuneladder.store.trial_files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    MODEL_FILE,
    STATE_FILE,
)
from tuneladder.store.trials import (
    BuildModel,
    Checkpoint,
    Code,
    Outcome,
    TrialInputs,
    code_fingerprint,
    make_result,
    task_module,
    trial_key,
    write_result,
)
from tuneladder.tasks import DataInfo, Task
from tuneladder.training.metrics import Scorer, Scoring, Tally
from tuneladder.training.optimizers import zero_missing_momentum
from tuneladder.training.schedules import lr_multiplier
from tuneladder.training.step import global_norm, setup, train_step

log = logging.getLogger("tuneladder")

# HISTORY_COLUMNS, BuildModel, Checkpoint and trial_key live in tuneladder.store.trials (no torch
# there); they stay importable from here.
__all__ = [
    "HISTORY_COLUMNS",
    "Batches",
    "BuildModel",
    "Checkpoint",
    "DeviceLost",
    "Epoch",
    "Leg",
    "Outcome",
    "TrainState",
    "TrainingRun",
    "evaluate",
    "evaluate_metrics",
    "run_epoch",
    "run_trial",
    "train",
    "trial_key",
]

EpochCallback = Callable[[dict[str, float]], None]
# steps of an epoch whose gradient norm is measured, when nothing clips (clipping measures all)
NORM_SAMPLES = 2


_RESUMED = (
    "history",
    "best_epoch",
    "best_val_metric",
    "best_val_loss",
    "best_state",
    "first_loss",
)


@dataclass(frozen=True, kw_only=True)
class TrainingRun:
    """One config of a task trained on one dataset, on one device: what the loop trains.

    The task travels whole: the loop builds its model (``task.build_model``)
    and scores with its own loss and metrics (:meth:`Scoring.of`), and the code
    fingerprint is taken from the module of its model factory.

    Attributes:
        config: every hyperparameter, and the seed.
        data: the train and val splits, on ``device``.
        task: the task whose model trains.
        metric: the metric the best epoch is chosen on; any metric the task records.
        mode: ``max`` or ``min``: which way ``metric`` is better.
        device: where the model trains.
        precision: ``fp32``, ``tf32``, ``bf16`` or ``fp16`` (bf16 and fp16 autocast on
            CUDA, fp16 with a loss scaler; ignored elsewhere). tf32 is the process's
            setting, made by its caller (:func:`~tuneladder.infra.device.fp32_math`).
        threads: torch's threads in this process, recorded with the result.
    """

    config: TrialConfig
    data: TrainVal
    task: Task
    metric: str
    mode: str
    device: torch.device
    precision: str = "fp32"
    threads: int = 1

    def __post_init__(self) -> None:
        # a config from the schema never fails this; a dict built by hand in a notebook
        # could otherwise train in fp32 under a precision that does not exist
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def scoring(self) -> Scoring:
        """The task's own loss and metrics, beside its kind's built-ins."""
        return Scoring.of(self.task)

    def inputs(self, code: Code | None = None, budget: int | None = None) -> TrialInputs:
        """What the trial's key hashes; ``code`` by default that of the model factory's module."""
        return TrialInputs(
            config=self.config,
            data_fingerprint=self.data.fingerprint,
            metric=self.metric,
            code=code or code_fingerprint(task_module(self.task.build_model)),
            budget=budget,
            precision=self.precision,
        )


@dataclass(frozen=True, kw_only=True)
class Leg:
    """The stretch of a config's schedule that one halving level trains
    (:mod:`tuneladder.search.halving`).

    The schedule's horizon stays ``config.epochs``: a leg only stops it early,
    so nothing before the stop changes.

    Attributes:
        stop_at: the epoch the level stops the schedule at.
        continues: the state the level before stopped in, to start from when
            the trial has no checkpoint of its own.
        keep_state: where to save the state it stops in, for the next level.
    """

    stop_at: int
    continues: Checkpoint | None = None
    keep_state: Checkpoint | None = None


def train(
    run: TrainingRun,
    *,
    checkpoint: Checkpoint | None = None,
    on_epoch: EpochCallback | None = None,
    keep_best_state: bool = False,
    leg: Leg | None = None,
    collect: bool = False,
    stop_asked: Callable[[], bool] | None = None,
) -> Outcome:
    """Train on ``run.data.train``, select on ``run.data.val``; training errors become a status.

    ``checkpoint`` is resumed from when it holds this trial's state, and saved to
    as it goes; ``keep_best_state`` keeps the best epoch's weights in the
    outcome. A halving level passes its ``leg`` of the config's schedule.
    ``collect``: free what only the garbage collector can (a model in a reference
    cycle) before the memory goes back to the GPU, as after a failure; for trials
    that share their GPU. ``stop_asked`` is looked at after each epoch: true saves
    the checkpoint there and raises :class:`~tuneladder.core.errors.StopRequested`.
    """
    outcome = Outcome()
    try:
        _train(
            run,
            outcome,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
            keep_best_state=keep_best_state,
            leg=leg or Leg(stop_at=run.config.epochs),
            stop_asked=stop_asked,
        )
    except Exception as err:  # CUDA out-of-memory included: the sweep goes on
        outcome.status = "failed"
        outcome.reason = f"{type(err).__name__}: {err}"
        outcome.out_of_memory = _out_of_memory(err)
    # after the except: its traceback held the failed trial's model, optimizer and activations
    outcome.device_lost = _give_back_memory(
        run.device, collect=collect or outcome.status == "failed"
    )
    return outcome


# how a GPU's memory running out reads when it is not the caching allocator's own error:
# the runtime's and the driver's, cuDNN's (7 and 9), cuBLAS's handle that could not be
# made, and cuDNN convolutions whose every engine's workspace failed to allocate
OUT_OF_MEMORY_SIGNS = (
    "out of memory",
    "STATUS_ALLOC_FAILED",
    "ALLOCATION_FAILED",
    "CUBLAS_STATUS_NOT_INITIALIZED",
    "unable to find an engine to execute this computation",
)


def _out_of_memory(err: BaseException) -> bool:
    """Whether an error says the GPU's memory ran out. A false yes costs a wait and the
    same failure alone; a false no fails a config for what its neighbours held."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(s in str(err) for s in OUT_OF_MEMORY_SIGNS)


class DeviceLost(RuntimeError):
    """A trial's error left the GPU unusable to this process (a device-side assert, say).

    Its result is written; every later trial in the process would fail the same way,
    so the process ends instead, and a rerun trains the rest in fresh ones.
    """


def _give_back_memory(device: torch.device, *, collect: bool) -> str | None:
    """Return a finished trial's GPU memory to the device: the next trial, and the other
    trials side by side on the GPU, would otherwise run short of what the cache holds.
    ``collect`` first frees what only the garbage collector can (after a failure).
    What went wrong when the GPU no longer answers this process, else None."""
    if device.type != "cuda":
        return None
    if collect:
        gc.collect()
    try:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    except Exception as err:  # a sticky CUDA error: every call fails from now on
        return f"{type(err).__name__}: {err}"
    return None


def _train(
    run: TrainingRun,
    outcome: Outcome,
    *,
    checkpoint: Checkpoint | None,
    on_epoch: EpochCallback | None,
    keep_best_state: bool,
    leg: Leg,
    stop_asked: Callable[[], bool] | None = None,
) -> None:
    config, data, device = run.config, run.data, run.device
    batches = Batches.plan(len(data.train), config)
    # the selected metric only (ROC-AUC or a task's own metric keeps the epoch's outputs);
    # built before the model is seeded, so a loss that draws random numbers changes nothing
    scorer = Scorer.build(data.info, device, (run.metric,), run.scoring)
    state = TrainState.start(
        config,
        data.info,
        run.task.build_model,
        device,
        batches,
        outcome,
        scaler=grad_scaler(device, run.precision),
    )
    saved = checkpoint.load() if checkpoint is not None else None
    stopped = saved is not None  # a stopped run's checkpoint, not the level before's
    if saved is None and leg.continues is not None:
        saved = leg.continues.load()  # where the halving level before stopped
        if saved is None and leg.continues.path.is_file():
            log.warning(
                "the state the level before left is from other code or precision, or torn:"
                " training from epoch 0"
            )
    if saved is not None:
        state.load_state_dict(saved)
        outcome.resumed_from_epoch = state.epoch
        if stopped:  # said, so the trial's log tells where it went on
            log.info("resumed from its checkpoint after epoch %d", state.epoch)
    amp = autocast(device, run.precision)
    reset_peak_memory(device)
    end = min(leg.stop_at, config.epochs)
    if stop_asked is not None and state.epoch < end and stop_asked():
        # asked while the trial waited (a retry alone waits for the GPU): no epoch starts
        raise StopRequested(f"a stop was asked: stopped before epoch {state.epoch}")
    while state.epoch < end:
        lr = state.lr  # the epoch's row gives the LR it started with, as its steps change it
        epoch = run_epoch(
            state,
            data,
            batches,
            amp=amp,
            scorer=scorer,
            clip=config.grad_clip,
            seed=epoch_seed(config.seed, state.epoch),
        )
        row = epoch.row(state.epoch, run.metric, lr=lr, peak_memory_mb=peak_memory_mb(device))
        outcome.history.append(row)
        if outcome.first_loss is None:
            outcome.first_loss = epoch.first_loss
        if on_epoch is not None:
            on_epoch(row)
        reason = _divergence(row, outcome.first_loss, config.diverge_factor)
        if reason := reason or _overflowing(epoch.loss_scale, int(row["epoch"])):
            outcome.status, outcome.reason = "diverged", reason
            break
        state.track_best(row, mode=run.mode, keep_weights=keep_best_state)
        if config.patience is not None and state.epochs_since_best >= config.patience:
            outcome.stopped_early = True
            break
        if checkpoint is not None and checkpoint.due() and state.epoch < end:
            checkpoint.save(state.state_dict())
        if stop_asked is not None and state.epoch < end and stop_asked():
            if checkpoint is not None:
                checkpoint.save(state.state_dict())  # the same command goes on from here
            raise StopRequested(f"a stop was asked: stopped after epoch {int(row['epoch'])}")
    going_on = outcome.status == "ok" and not outcome.stopped_early
    if leg.keep_state is not None and going_on and state.epoch == end < config.epochs:
        leg.keep_state.save(state.state_dict())
    if keep_best_state and outcome.best_state is None:
        outcome.best_state = state.weights()


@dataclass(frozen=True)
class Batches:
    """How every epoch of a trial cuts the training split into batches."""

    n: int  # training samples
    size: int
    usable: int  # samples trained on per epoch
    steps: int  # optimizer steps per epoch
    norm_every: int  # the gradient norm is measured on every this-many-th step

    @classmethod
    def plan(cls, n: int, config: TrialConfig) -> Batches:
        size = min(config.batch_size, n)
        # a last batch of one sample breaks batch norm; dropping it costs one sample per epoch
        usable = n - 1 if n % size == 1 and n > 1 else n
        steps = math.ceil(usable / size)
        # without clipping, the gradient norm is sampled on 2 steps an epoch, the first and
        # the middle one: it is a diagnostic, and each measurement costs a small model on a
        # GPU a few kernel launches, against a few dozen for the step itself
        norm_every = 1 if config.grad_clip else max(1, math.ceil(steps / NORM_SAMPLES))
        return cls(n=n, size=size, usable=usable, steps=steps, norm_every=norm_every)

    @property
    def norm_steps(self) -> int:
        """How many steps of an epoch measure the gradient norm."""
        return len(range(0, self.steps, self.norm_every))

    def indices(self, shuffle: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
        """One epoch's batches of sample indices, in a fresh order drawn from ``shuffle``."""
        order = torch.randperm(self.n, generator=shuffle, device=device)
        return order[: self.usable].split(self.size)


@dataclass
class TrainState:
    """A trial between two epochs: all it needs to go on as if it had never stopped."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None  # None: a constant schedule
    shuffle: torch.Generator  # draws each epoch's order
    device: torch.device
    outcome: Outcome = field(default_factory=Outcome)  # history, best so far, first loss
    epochs_since_best: int = 0
    scaler: torch.amp.GradScaler | None = None  # fp16's loss scaler (infra.device.grad_scaler)

    @classmethod
    def start(
        cls,
        config: TrialConfig,
        info: DataInfo,
        build_model: BuildModel,
        device: torch.device,
        batches: Batches,
        outcome: Outcome,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> TrainState:
        model, optimizer = setup(config, build_model, info, device)
        # a constant schedule needs no scheduler: one Python call per step saved
        scheduler = None
        if config.schedule != "constant":
            multiplier = lr_multiplier(
                config.schedule,
                total_steps=config.epochs * batches.steps,
                steps_per_epoch=batches.steps,
                gamma=config.gamma,
                step_epochs=config.step_epochs,
                warmup_epochs=config.warmup_epochs,
            )
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        shuffle = torch.Generator(device=device)
        shuffle.manual_seed(config.seed)
        return cls(model, optimizer, scheduler, shuffle, device, outcome, scaler=scaler)

    @property
    def epoch(self) -> int:
        """The next epoch to run, counted by the history."""
        return len(self.outcome.history)

    @property
    def lr(self) -> float:
        """The LR the next step will use."""
        return self.optimizer.param_groups[0]["lr"]

    def track_best(self, row: Mapping[str, float], *, mode: str, keep_weights: bool) -> None:
        """Keep the best epoch by val metric (and its weights if asked); count epochs since."""
        best, value = self.outcome.best_val_metric, row["val_metric"]
        # a NaN first epoch is a best only until a finite one comes (Direction ranks it last)
        if best is not None and not Direction(mode).better(value, best):
            self.epochs_since_best += 1
            return
        self.outcome.best_epoch, self.outcome.best_val_metric = int(row["epoch"]), value
        self.outcome.best_val_loss = row["val_loss"]
        self.epochs_since_best = 0
        if keep_weights:
            self.outcome.best_state = self.weights()

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the model's weights now."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: weights, optimizer, schedule, RNGs, history, best, and
        fp16's loss scale."""
        cuda = self.device.type == "cuda"
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "shuffle": self.shuffle.get_state(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "epochs_since_best": self.epochs_since_best,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            **{name: getattr(self.outcome, name) for name in _RESUMED},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go on from ``state``, saved on this kind of device or another.

        Weights, optimizer and schedule move to this device as they load. The
        generator that orders the batches cannot: a CUDA generator's state (seed
        and offset) does not fit a CPU one's, nor the other way round. A trial
        resumed on the other kind (a GPU node's checkpoint on a CPU node, or a
        halving level continued there) gets a fresh order, seeded by the trial and
        the epoch, so that it still repeats run for run on this device.
        """
        same_kind = state["shuffle"].numel() == self.shuffle.get_state().numel()
        built = [{k: g.get(k) for k in _KERNEL_FLAGS} for g in self.optimizer.param_groups]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if not same_kind:
            _kernels_of_this_device(self.optimizer, built)
        zero_missing_momentum(self.optimizer)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.epochs_since_best = state["epochs_since_best"]
        # fp16 on CUDA only: a CPU run of the same key trains in fp32 and has none to load
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for name in _RESUMED:
            setattr(self.outcome, name, state[name])
        self.outcome.history = list(self.outcome.history)
        if same_kind:
            self.shuffle.set_state(state["shuffle"])
            if self.device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
            return
        # a prime apart: no epoch of one trial's new order meets another trial's seed
        self.shuffle.manual_seed(self.shuffle.initial_seed() * 1_000_003 + self.epoch)
        log.warning(
            "resumed at epoch %d from a checkpoint made on another kind of device than %s:"
            " its batch order from here on is not the one an unbroken run would have drawn",
            self.epoch,
            self.device.type,
        )


# An optimizer's choice of kernels, which a state saved on another device carries along
_KERNEL_FLAGS = ("fused", "foreach", "capturable")


def _kernels_of_this_device(
    optimizer: torch.optim.Optimizer, built: Sequence[Mapping[str, Any]]
) -> None:
    """Undo what loading another device's optimizer state did to the kernels: its groups'
    flags (fused Adam on a GPU has no CPU kernel before torch 2.4), and where its step
    counts live (on the device for fused or capturable kernels, else on the CPU)."""
    for group, flags in zip(optimizer.param_groups, built, strict=True):
        group.update(flags)
        on_device = bool(flags.get("fused") or flags.get("capturable"))
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if isinstance(step, torch.Tensor):
                where = param.device if on_device else torch.device("cpu")
                optimizer.state[param]["step"] = step.to(where, torch.float32)


class Epoch(NamedTuple):
    """One epoch's numbers, on the host."""

    train: dict[str, float]  # loss and the task's metrics, from the training steps
    val: dict[str, float]
    grad_norm: float  # mean over the steps that measured it, before clipping
    weight_norm: float
    first_loss: float  # the loss of the epoch's first step
    seconds: float
    loss_scale: float | None = None  # fp16's, at the epoch's end; None without a scaler

    def row(
        self, epoch: int, metric: str, *, lr: float, peak_memory_mb: float
    ) -> dict[str, float]:
        """The epoch's line of ``history.csv``
        (:data:`~tuneladder.store.trial_files.HISTORY_COLUMNS`)."""
        return {
            "epoch": epoch,
            "train_loss": self.train["loss"],
            "train_metric": self.train[metric],
            "val_loss": self.val["loss"],
            "val_metric": self.val[metric],
            "lr": lr,
            "grad_norm": self.grad_norm,
            "weight_norm": self.weight_norm,
            "epoch_seconds": self.seconds,
            "peak_memory_mb": peak_memory_mb,
        }


def run_epoch(
    state: TrainState,
    data: TrainVal,
    batches: Batches,
    *,
    amp: contextlib.AbstractContextManager,
    scorer: Scorer,
    clip: float | None,
    seed: int = 0,
) -> Epoch:
    """One shuffled pass over the training split, then the val split.

    Per-step values are summed on the device (``scorer``'s :class:`Tally`); they
    reach the host once, at the end, in one transfer, so the steps never wait
    for Python. ``seed`` (:func:`~tuneladder.data.loader.epoch_seed`) seeds the
    epoch's augmentation.
    """
    started = time.perf_counter()
    model, device = state.model, state.device
    train = scorer.tally()
    norms: list[torch.Tensor] = []  # read back with the rest, at the end: no kernel for them
    first_loss = None
    model.train()
    order = batches.indices(state.shuffle, device)
    # a new fp16 trial's first update may be skipped (see _first_schedule_step)
    quiet_schedule = state.scaler is not None and state.epoch == 0
    for step, (xb, yb) in enumerate(data.train.batches(order, seed=seed)):
        measure = step % batches.norm_every == 0
        output, loss, norm = train_step(
            model,
            state.optimizer,
            scorer.loss,
            xb,
            yb,
            amp=amp,
            scaler=state.scaler,
            clip=clip,
            measure_norm=measure,
        )
        if state.scheduler is not None:
            if step == 0 and quiet_schedule:
                _first_schedule_step(state.scheduler)
            else:
                state.scheduler.step()
        if norm is not None:
            norms.append(norm)
        if first_loss is None:
            first_loss = loss
        train.add(output, yb, loss)
    model.eval()  # evaluate() restores the mode it finds: model.train() runs once an epoch
    val = evaluate(model, data.val, scorer, amp)
    weight_norm = global_norm(p for p in model.parameters() if p.requires_grad)
    host = _to_host(
        train=train.parts(),
        val=val.parts(),
        grad_norm=norms,
        weight_norm=[weight_norm],
        first_loss=[] if first_loss is None else [first_loss],
    )
    # fp16: a step the loss scaler skipped had overflowed gradients, whose norm says
    # nothing of the model's; in fp32 a norm that is not finite is the model's own
    grad_norms = host["grad_norm"]
    if state.scaler is not None:
        grad_norms = [v for v in grad_norms if math.isfinite(v)]
    return Epoch(
        train=train.finish(host["train"]),
        val=val.finish(host["val"]),
        grad_norm=math.fsum(grad_norms) / len(grad_norms) if grad_norms else math.nan,
        weight_norm=host["weight_norm"][0],
        first_loss=host["first_loss"][0] if host["first_loss"] else math.nan,
        seconds=time.perf_counter() - started,
        # read after the epoch's one sync: the GPU has nothing queued any more
        loss_scale=state.scaler.get_scale() if state.scaler is not None else None,
    )


def _first_schedule_step(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """The schedule's first step in fp16. The loss scaler skips an update whose gradients
    overflowed, often the very first, at its starting scale; torch's scheduler then warns
    that it was stepped before the optimizer. The schedule goes on as AMP's always does,
    so that one warning says nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"Detected call of `lr_scheduler\.step\(\)` before",
            category=UserWarning,
        )
        scheduler.step()


def _again_alone(
    reason: str,
    out_dir: Path,
    attempt: Callable[[], Outcome],
    retry_alone: Callable[[], contextlib.AbstractContextManager],
) -> Outcome:
    """Train a trial that ran out of memory beside others again, with the GPU to itself:
    a config that fits the GPU is not failed for what its neighbours held."""
    log.warning("%s ran out of memory beside other trials; it trains again alone", out_dir)
    asked = time.time()
    with retry_alone():
        alone_at = time.time()
        outcome = attempt()
        alone_s = time.time() - alone_at
    outcome.retried_alone = {
        "reason": reason,
        "waited_s": round(alone_at - asked, 3),
        "started_at": alone_at,
        "seconds": alone_s,  # how long it had the GPU to itself
    }
    return outcome


def _to_host(**groups: Sequence[torch.Tensor]) -> dict[str, list[float]]:
    """Device tensors as host numbers, by group, in one transfer: the epoch's one sync.

    One concatenation (``torch.cat`` promotes float32 to float64, which holds it
    exactly) and one copy: a kernel launch or two, whatever the number of tensors.
    """
    flat = [t.reshape(-1) for tensors in groups.values() for t in tensors]
    values = torch.cat(flat).tolist() if flat else []
    host, start = {}, 0
    for name, tensors in groups.items():
        length = sum(t.numel() for t in tensors)
        host[name] = values[start : start + length]
        start += length
    return host


def _overflowing(loss_scale: float | None, epoch: int) -> str | None:
    """fp16: a loss scale under 1 means the gradients overflow float16 even unscaled. The
    scaler then skips every update and halves the scale again; the loss stays where it
    was, finite, and nothing else would stop the trial."""
    if loss_scale is None or loss_scale >= 1.0:
        return None
    return (
        f"fp16 loss scale fell to {loss_scale:.3g} at epoch {epoch}: the gradients overflow"
        " float16 even unscaled, so the scaler skips the updates"
    )


def _divergence(row: Mapping[str, float], first_loss: float, factor: float) -> str | None:
    """A loss that is not finite, or a train loss ``factor`` times the first step's.
    The factor needs a positive first loss: a task's own loss may start at or below 0
    (a negative log-likelihood), where a multiple of it says nothing of blowing up."""
    for key in ("train_loss", "val_loss"):
        if not math.isfinite(row[key]):
            return f"{key} is {row[key]} at epoch {row['epoch']}"
    if first_loss > 0 and row["train_loss"] > factor * first_loss:
        return (
            f"train_loss {row['train_loss']:.4g} exceeds {factor:g} x the first loss"
            f" {first_loss:.4g} at epoch {row['epoch']}"
        )
    return None


def evaluate(
    model: nn.Module, split: Split | DatasetSplit, scorer: Scorer, amp: Any = None
) -> Tally:
    """A pass over a split without gradients; its :class:`Tally` holds the sums, on the device."""
    amp = amp if amp is not None else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    tally = scorer.tally()
    with torch.inference_mode():
        for xb, yb in split.eval_batches():
            with amp:
                output = model(xb)
            tally.add(output, yb, scorer.loss(output, yb))
        tally.fold()
    model.train(was_training)
    return tally


def evaluate_metrics(
    model: nn.Module,
    split: Split | DatasetSplit,
    info: DataInfo,
    scoring: Scoring | None = None,
    names: Sequence[str] | None = None,
    amp: Any = None,
) -> dict[str, float]:
    """Metrics of a model on a split, as numbers, as training records them.

    Every metric the task records (its kind's and ``scoring``'s), unless
    ``names`` picks some; ``loss`` is always there. ``amp`` is the autocast the
    model was validated under (:func:`~tuneladder.infra.device.autocast`): a test
    score in other numerics than the val scores that chose it would not compare.
    """
    scorer = Scorer.build(info, split.device, names, scoring)
    return evaluate(model, split, scorer, amp).result()


def run_trial(
    run: TrainingRun,
    out_dir: str | Path,
    *,
    trial: Mapping[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    save_model: bool = False,
    checkpoint_every_s: float = 60.0,
    leg: Leg | None = None,
    code: Code | None = None,
    retry_alone: Callable[[], contextlib.AbstractContextManager] | None = None,
    stop_asked: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train one trial and write ``config.json``, ``history.csv`` and ``result.json``.

    ``result.json`` is written last: its presence means the trial is complete.
    A checkpoint in ``out_dir`` from an interrupted run of the same config and
    data is resumed from its last epoch. A halving level's trial trains its
    ``leg`` (see :func:`train`) and keeps the state it stops in as ``state.pt``
    when its schedule has epochs left. ``trial`` names it in ``result.json``
    (rung, index, name, worker). ``code`` is the fingerprint of the code that
    decides the trial (a worker computes it once for all its trials); by
    default, that of the model factory's module. ``retry_alone``, given where the
    trial shares its GPU with others (:class:`~tuneladder.execution.lanes.GpuShare`),
    holds the GPU for one trial: a trial that ran out of memory trains again inside
    it, from its last checkpoint, before any result is written. ``stop_asked``: see
    :func:`train`; a trial stopped so writes no result, and resumes from its checkpoint.
    """
    out_dir = Path(out_dir)
    inputs = run.inputs(code, budget=leg.stop_at if leg is not None else None)
    write_json(out_dir / CONFIG_FILE, run.config.to_json())
    checkpoint = Checkpoint(out_dir / CHECKPOINT_FILE, inputs.key, checkpoint_every_s)
    if leg is not None and leg.keep_state is None and leg.stop_at < run.config.epochs:
        leg = dataclasses.replace(
            leg, keep_state=Checkpoint(out_dir / STATE_FILE, inputs.key, every_s=0.0)
        )
    started = time.time()

    def attempt() -> Outcome:
        return train(
            run,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
            keep_best_state=save_model,
            leg=leg,
            collect=retry_alone is not None,  # a neighbour may be waiting for the memory
            stop_asked=stop_asked,
        )

    outcome = attempt()
    if retry_alone is not None and outcome.out_of_memory and outcome.device_lost is None:
        outcome = _again_alone(outcome.reason or "", out_dir, attempt, retry_alone)
    write_csv(out_dir / HISTORY_FILE, HISTORY_COLUMNS, outcome.history)
    keep = outcome.status == "ok" and outcome.device_lost is None  # no copying off a lost GPU
    if save_model and outcome.best_state is not None and keep:
        # on the CPU: a GPU's tensors would need map_location wherever they are loaded
        write_torch(out_dir / MODEL_FILE, {k: v.cpu() for k, v in outcome.best_state.items()})
    result = make_result(
        outcome,
        inputs,
        trial=trial,
        mode=run.mode,
        device=run.device,
        precision=run.precision,
        threads=run.threads,
        started=started,
    )
    write_result(out_dir, result)
    checkpoint.clear()
    if outcome.device_lost is not None:
        raise DeviceLost(
            f"{out_dir} failed ({outcome.reason}) and left the GPU unusable to this process"
            f" ({outcome.device_lost}): it stops here; its result is written, and a rerun"
            " trains the trials left in fresh processes"
        )
    return result
