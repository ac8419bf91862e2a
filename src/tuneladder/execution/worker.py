"""A worker job: claim trials of a rung one at a time and train them in one process.

Start-up (importing torch, building the data on the device) is paid once per
worker instead of once per trial. Worker ``w`` of ``W`` first takes its own
stripe (trials ``w, w+W, ...``), then, when ``steal`` is on, anything left
unclaimed, so the load balances itself. Which worker runs a trial changes
nothing in its result: the trial's config and seed come from the plan.

A plan is run on one of three schedules. A plain plan's trials are one part.
A TPE sweep's rounds (:mod:`tuneladder.search.tpe`) are asked one after the
other, each once the round before has finished. A sweep that halves
(:mod:`tuneladder.search.halving`) runs its levels inside the same workers: when
a level's last trial is done, each worker collects its table, plans the next
level from it (:class:`~tuneladder.search.halving.Levels`, the loop ``collect``
replays; every worker gets the same plan) and goes on, so a level costs no job
start. Trials of a later level stop at that level's epoch and continue the
state of the level before.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuneladder.core.errors import StopRequested
from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import TrainVal
from tuneladder.execution.collect import collect_rung
from tuneladder.execution.lanes import GpuShare
from tuneladder.execution.promotions import AsyncSweep
from tuneladder.infra.device import Runtime, gpu_named
from tuneladder.search.asha import ASYNC, mode_of
from tuneladder.search.halving import (
    Levels,
    configs_of,
    expected_seconds,
    level_dir,
    level_entry,
)
from tuneladder.search.tpe import ask_round, is_rounds, rounds
from tuneladder.store.claims import ClaimBook
from tuneladder.store.io import read_json, write_json
from tuneladder.store.trial_files import MODEL_FILE, RESULT_FILE, STATE_FILE
from tuneladder.store.trials import (
    Checkpoint,
    Code,
    code_fingerprint,
    entry_key,
    is_complete,
    read_result,
    stale_reason,
    task_module,
    trial_key,
)
from tuneladder.tasks import Task
from tuneladder.training.runner import Leg, TrainingRun, run_trial

# is_complete lives in tuneladder.store.trials; it stays importable from here
__all__ = [
    "TrialSetup",
    "Worker",
    "WorkerRuntime",
    "is_complete",
    "level_order",
    "worker_order",
]

log = logging.getLogger(__name__)

# called with each finished trial's result and folder (MLflow mirrors them as they come)
OnResult = Callable[[Mapping[str, Any], Path], None]


@dataclass(frozen=True, kw_only=True)
class WorkerRuntime:
    """Where a worker trains, and how it keeps its trials' checkpoints and claims.

    Attributes:
        device: the device every trial trains on: the job's, once started.
        precision: ``fp32``, ``tf32``, ``bf16`` or ``fp16`` (on CUDA; ignored elsewhere).
        threads: torch's threads in this process.
        checkpoint_every_s: seconds between a trial's checkpoints.
        stale_claim_s: how old a claim's heartbeat may get before another worker takes it.
        share: the turns on a GPU this worker shares with other lanes of its job; None
            when it has the device to itself.
        stop_asked: whether a stop of the ladder is asked
            (:class:`~tuneladder.store.stop_request.StopFile`): looked at before each
            trial and at each epoch's end, where the worker then stops, the trial's
            state saved. None: it never is.
        where: the GPU it trains on, which its claims tell ``tuneladder status``
            (``GPU 1``, as ``CUDA_VISIBLE_DEVICES`` names it); None on the CPU.
    """

    device: torch.device
    precision: str = "fp32"
    threads: int = 1
    checkpoint_every_s: float = 60.0
    stale_claim_s: float = 600.0
    share: GpuShare | None = None
    stop_asked: Callable[[], bool] | None = None
    where: str | None = None

    @classmethod
    def of(
        cls,
        runtime: Runtime,
        device: torch.device,
        share: GpuShare | None = None,
        stop_asked: Callable[[], bool] | None = None,
    ) -> WorkerRuntime:
        """A job's :class:`~tuneladder.infra.device.Runtime`, on the device it started."""
        return cls(
            device=device,
            precision=runtime.precision,
            threads=runtime.threads,
            checkpoint_every_s=runtime.checkpoint_every_s,
            stale_claim_s=runtime.stale_claim_s,
            share=share,
            stop_asked=stop_asked,
            where=gpu_named(device),
        )


@dataclass(frozen=True, kw_only=True)
class TrialSetup:
    """What every trial of a rung trains with besides its own config and seed.

    Attributes:
        task: the task; its model trains, and its ``applies`` filters a TPE round's asks.
        data: the prepared train and val splits, on the worker's device.
        metric: the metric trials select their best epoch on.
        mode: ``max`` or ``min``: which way ``metric`` is better.
        code: the fingerprint of the code that decides the trials (see
            :func:`tuneladder.store.trials.code_fingerprint`); None: that of the
            model factory's module.
        data_for: ``config -> TrainVal``, the data of a trial whose data
            hyperparameters are not prepare's (see
            :func:`tuneladder.data.prepared.data_for`); it must carry ``data``'s
            fingerprint, which keys every trial (the values themselves are in
            the trial's config). None: every trial trains on ``data``.
        save_model: whether each trial keeps its best weights (``model.pt``).
    """

    task: Task
    data: TrainVal
    metric: str
    mode: str
    code: Code | None = None
    data_for: Callable[[TrialConfig], TrainVal] | None = None
    save_model: bool = False

    def training(self, config: TrialConfig, runtime: WorkerRuntime) -> TrainingRun:
        """The run of one trial's config, on its data, where ``runtime`` says."""
        return TrainingRun(
            config=config,
            data=self.data if self.data_for is None else self.data_for(config),
            task=self.task,
            metric=self.metric,
            mode=self.mode,
            device=runtime.device,
            precision=runtime.precision,
            threads=runtime.threads,
        )


def worker_order(n_trials: int, *, worker: int, workers: int, steal: bool) -> list[int]:
    """Own stripe first, then (when stealing) the others' stripes, from their far end."""
    return _order(range(n_trials), worker=worker, workers=workers, steal=steal)


def level_order(
    entries: Sequence[Mapping[str, Any]],
    expected: Mapping[str, float] | None = None,
    *,
    worker: int,
    workers: int,
) -> list[int]:
    """Positions in ``entries`` (a part's or a level's trials) in the order worker
    ``worker`` of ``workers`` tries them: its stripe, then the others' when there are
    more trials than workers; at a continuing level (``expected``: each trial's
    seconds) every worker walks the same list, longest first."""
    steal = workers < len(entries)
    if steal and expected:
        # longest first, the same list for every worker: a level ends when its last
        # trial does, so the long ones must not be left for the end
        return sorted(range(len(entries)), key=lambda i: -expected[entries[i]["name"]])
    indices = [int(e["index"]) for e in entries]
    return _order(indices, worker=worker, workers=workers, steal=steal)


def _order(indices: Sequence[int], *, worker: int, workers: int, steal: bool) -> list[int]:
    """Positions in ``indices`` (trial indices, of a rung or of one round) in the order
    worker ``worker`` tries them: the stripe is by trial index, ``index % workers``, so
    with one job per trial each job trains its own trial whichever round it is in."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker must be in [0, {workers}), got {worker=}")
    own = [i for i, index in enumerate(indices) if index % workers == worker]
    if not steal:
        return own
    # start stealing at the end of the list: the owners start at the front
    others = [i for i in reversed(range(len(indices))) if indices[i] % workers != worker]
    return own + others


class SweepSettled(BaseException):
    """A grown training is cut: the planned trainings are all done, or at its pace it would
    end after them (:meth:`~tuneladder.search.asha.Asha.keeps`). A BaseException, as
    KeyboardInterrupt is, so that training, which turns errors into a failed trial, lets
    it through."""


def _progress(
    claims: ClaimBook,
    rung: str,
    name: str,
    epochs: int,
    stop: Callable[[float], bool] | None = None,
) -> Any:
    """Per epoch: refresh the claim's heartbeat, log a line, and stop when ``stop``, given
    the seconds left at the trial's pace, says so (not after the last epoch)."""

    def on_epoch(row: Mapping[str, float]) -> None:
        claims.heartbeat(name)
        log.info(
            # epochs are numbered from 0 everywhere (history.csv, result.json, MLflow's
            # steps); the count beside it says how far the trial has come
            "%s %s epoch %d (%d of %d) val_metric %.4f (%.2fs)",
            rung,
            name,
            row["epoch"],
            row["epoch"] + 1,
            epochs,
            row["val_metric"],
            row["epoch_seconds"],
        )
        left = epochs - row["epoch"] - 1
        if stop is not None and left > 0 and stop(left * row["epoch_seconds"]):
            raise SweepSettled

    return on_epoch


@dataclass(frozen=True)
class _Part:
    """Trials that share a folder and a claim book: a rung's, or one halving level's."""

    folder: Path
    claims: ClaimBook


class Worker:
    """Worker ``worker`` of ``workers`` of one rung: trains the plan's trials until none is
    left to claim.

    Args:
        plan: the rung's plan (:mod:`tuneladder.search.plan`).
        rung_dir: the rung's folder, which the plan's trial folders are relative to.
        setup: what the trials train with.
        runtime: where they train.
        worker: this worker's place among the rung's ``workers``.
        workers: how many workers share the rung.
        on_result: sees every trial this worker finishes, and every finished one
            it finds of its own stripe (so a tracking store that missed a trial
            catches up on a rerun).

    Example::

        report = Worker(plan, rung_dir, setup=setup, runtime=runtime, worker=0, workers=2).run()
    """

    def __init__(
        self,
        plan: Mapping[str, Any],
        rung_dir: str | Path,
        *,
        setup: TrialSetup,
        runtime: WorkerRuntime,
        worker: int = 0,
        workers: int = 1,
        on_result: OnResult | None = None,
    ) -> None:
        self._plan = plan
        self._rung_dir = Path(rung_dir)
        self._setup = setup
        self._runtime = runtime
        self._worker, self._workers = worker, workers
        self._on_result = on_result
        self._code = setup.code or code_fingerprint(task_module(setup.task.build_model))
        self._ran: list[str] = []
        self._reused: list[str] = []
        self._stale: dict[str, str] = {}  # trials trained again, and why
        self._alone: list[str] = []  # trials that ran out of memory beside others: retried

    def run(self) -> dict[str, Any]:
        """Run the plan on its schedule; what this worker did: the trials it ran, those it
        reused and those it trained again because they were stale."""
        started = time.perf_counter()
        if is_rounds(self._plan):
            self._run_rounds()
        elif mode_of(self._plan.get("halving")) == ASYNC:
            self._run_async()
        elif self._plan.get("halving"):
            self._run_levels()
        else:
            self._run_part(self._part(self._rung_dir), self._plan["trials"])
        return {
            "rung": self._plan["rung"],
            "worker": self._worker,
            "workers": self._workers,
            "ran": self._ran,
            "reused": self._reused,
            "stale": self._stale,
            "retried_alone": self._alone,
            "seconds": time.perf_counter() - started,
        }

    def _run_rounds(self) -> None:
        """A TPE sweep: each round is asked once every trial before it has a result; while
        it waits, the worker trains any of those nobody holds."""
        part = self._part(self._rung_dir)
        count = len(rounds(self._plan))
        for r in range(count):
            asked = ask_round(
                self._plan,
                self._rung_dir,
                r,
                mode=self._setup.mode,
                model_applies=self._setup.task.applies,
            )
            self._run_part(part, asked)
            if r + 1 < count:
                log.info("%s round %d: waiting for its last trials", self._plan["rung"], r)
                self._finish(part, asked)

    def _run_levels(self) -> None:
        """A sweep that halves: each level is planned from the table of the level before,
        once every trial of that level has a result."""
        levels = Levels(self._plan, self._setup.mode)
        for level_plan in levels:
            level, entries = level_plan["level"], level_plan["trials"]
            part = self._part(self._rung_dir / level_dir(level))
            _write_level_plan(part.folder / "plan.json", level_plan)
            mine = self._order(entries, expected_seconds(levels.previous, level_plan))
            if not mine:
                # it will have none at the levels after either: they continue a subset
                log.info("%s level %d: no trials for this worker; done", self._plan["rung"], level)
                return
            self._run_part(part, entries, mine)
            if levels.is_last(level_plan):
                return  # the rung's collect job waits for the others
            log.info("%s level %d: waiting for its last trials", self._plan["rung"], level)
            self._finish(part, entries)
            levels.tell(
                collect_rung(
                    level_plan,
                    part.folder,
                    data_fingerprint=self._setup.data.fingerprint,
                    metric=self._setup.metric,
                    precision=self._runtime.precision,
                )
            )

    def _run_async(self) -> None:
        """A sweep that halves asynchronously: ask the promotion log for the next training
        (a promotion, else a new config at level 0) until the sweep is done; while
        others still train, wait and ask again (their results may promote a config)."""
        sweep = AsyncSweep(
            self._plan,
            self._rung_dir,
            mode=self._setup.mode,
            look_every_s=self._runtime.stale_claim_s / 4,
        )
        parts: dict[int, _Part] = {}

        def part(level: int) -> _Part:
            if level not in parts:
                parts[level] = self._part(self._rung_dir / level_dir(level))
            return parts[level]

        self._retrain_stale(sweep, part)
        first = True
        while True:
            self._check_stop()  # before an ask: the log would hold one nobody trains
            ask = sweep.next(lambda lv: part(lv).claims, worker=self._worker, orphans_first=first)
            first = False
            if ask is None:
                if sweep.done:
                    return
                time.sleep(POLL_S)
                continue
            # no level plan is written here: status reads the log, collect writes the plans
            entry = level_entry(self._plan, ask.level, self._entries[ask.name])
            # a grown training stops at an epoch's end once the planned ones are all done,
            # or when at its own pace it would end after them
            stop = (lambda left: not sweep.keeps(left)) if ask.grown else None
            try:
                result = self._held(part(ask.level), entry, stop=stop)
            except SweepSettled:
                log.info(
                    "%s %s level %d (grown): cut, it would end after the planned trainings",
                    self._plan["rung"],
                    ask.name,
                    ask.level,
                )
                sweep.cut(ask.level, ask.name)
            else:
                sweep.tell(ask.level, {"name": ask.name, **result})
            finally:
                part(ask.level).claims.release(ask.name)

    @functools.cached_property
    def _entries(self) -> dict[str, Mapping[str, Any]]:
        """Every config of the plan by name (built once: a rerun looks up each trial)."""
        return {entry["name"]: entry for entry in configs_of(self._plan)}

    def _retrain_stale(self, sweep: AsyncSweep, part: Callable[[int], _Part]) -> None:
        """A rerun: trials the log has results of but whose result went stale (the code
        changed) are trained again and told again; who was promoted stays as logged."""
        with sweep.locked():
            finished = [
                (level, name)
                for level in range(len(sweep.rule))
                for name in sweep.rule.finished(level)
            ]
        for level, name in finished:
            entry = level_entry(self._plan, level, self._entries[name])
            folder = part(level).folder
            if is_complete(folder / entry["dir"], self._key(entry)):
                continue
            if part(level).claims.try_claim(name):
                try:
                    sweep.tell(level, {"name": name, **self._held(part(level), entry)})
                finally:
                    part(level).claims.release(name)

    def _held(
        self, part: _Part, entry: Mapping[str, Any], stop: Callable[[float], bool] | None = None
    ) -> Mapping[str, Any]:
        """Reuse, or train, a trial whose claim this worker holds; its result. ``stop``: asked
        at each epoch's end with the seconds left at the trial's pace; true raises
        :class:`SweepSettled`."""
        name, trial_dir = entry["name"], part.folder / entry["dir"]
        expected = self._key(entry)
        result = read_result(trial_dir)
        reason = stale_reason(result, expected, self._code)
        if reason is None and result is not None:
            self._reused.append(name)
            return result
        if result is not None:
            self._stale[name] = reason or "stale"
            log.info("%s %s %s: training it again", self._plan["rung"], name, reason)
        self._train(part, entry, stop)
        self._ran.append(name)
        return read_result(trial_dir) or {}

    def _part(self, folder: Path) -> _Part:
        claims = ClaimBook(
            folder / "claims", stale_s=self._runtime.stale_claim_s, where=self._runtime.where
        )
        return _Part(folder, claims)

    def _order(
        self, entries: Sequence[Mapping[str, Any]], expected: Mapping[str, float] | None = None
    ) -> list[int]:
        return level_order(entries, expected, worker=self._worker, workers=self._workers)

    def _run_part(
        self,
        part: _Part,
        entries: Sequence[Mapping[str, Any]],
        order: Sequence[int] | None = None,
    ) -> None:
        for i in self._order(entries) if order is None else order:
            outcome = self._attempt(part, entries[i])
            if outcome != "held":
                (self._ran if outcome == "ran" else self._reused).append(entries[i]["name"])

    def _finish(self, part: _Part, entries: Sequence[Mapping[str, Any]]) -> None:
        """Wait for the others' trials of ``entries``, taking over any whose worker died."""
        self._ran.extend(
            _wait_for(
                entries,
                lambda entry: self._attempt(part, entry),
                lambda entry: is_complete(part.folder / entry["dir"], self._key(entry)),
            )
        )

    def _key(self, entry: Mapping[str, Any]) -> str:
        setup = self._setup
        return entry_key(
            entry,
            setup.data.fingerprint,
            setup.metric,
            self._code.fingerprint,
            self._runtime.precision,
        )

    def _attempt(self, part: _Part, entry: Mapping[str, Any]) -> str:
        """Reuse, or claim and train, one trial: ``reused``, ``ran`` or ``held`` (by
        another worker)."""
        name, trial_dir = entry["name"], part.folder / entry["dir"]
        expected = self._key(entry)
        result = read_result(trial_dir)
        reason = stale_reason(result, expected, self._code)
        if reason is None:
            if self._on_result is not None and int(entry["index"]) % self._workers == self._worker:
                self._on_result(result, trial_dir)
            return "reused"
        if not part.claims.try_claim(name):
            return "held"
        try:
            if is_complete(trial_dir, expected):  # finished by another worker meanwhile
                return "held"
            if result is not None:
                self._stale[name] = reason
                log.info("%s %s %s: training it again", self._plan["rung"], name, reason)
            self._train(part, entry)
            return "ran"
        finally:
            part.claims.release(name)

    def _train(
        self, part: _Part, entry: Mapping[str, Any], stop: Callable[[float], bool] | None = None
    ) -> None:
        """Train a trial this worker holds the claim of, from its checkpoint if it has one."""
        name, trial_dir, rung = entry["name"], part.folder / entry["dir"], self._plan["rung"]
        for stale_file in (RESULT_FILE, MODEL_FILE, STATE_FILE):
            (trial_dir / stale_file).unlink(missing_ok=True)
        config = TrialConfig.from_json(entry["config"])
        budget = entry.get("budget")
        leg = None
        if budget is not None:
            leg = Leg(stop_at=budget, continues=self._continues(part, entry, config))
        share = self._runtime.share
        # the claim stays fresh however long an epoch (or preparing its data, or waiting
        # for a turn on a shared GPU) takes
        with part.claims.beating(name), share.trial() if share else contextlib.nullcontext():
            self._check_stop()  # no new trial once asked (a lane may have waited for its turn)
            result = run_trial(
                self._setup.training(config, self._runtime),
                trial_dir,
                trial={
                    "rung": rung,
                    "index": entry["index"],
                    "name": name,
                    "worker": self._worker,
                    **{k: entry[k] for k in ("level", "budget") if k in entry},
                },
                on_epoch=_progress(part.claims, rung, name, budget or config.epochs, stop),
                save_model=self._setup.save_model,
                checkpoint_every_s=self._runtime.checkpoint_every_s,
                leg=leg,
                code=self._code,
                retry_alone=share.alone if share else None,
                stop_asked=self._runtime.stop_asked,
            )
        if result.get("retried_alone"):
            self._alone.append(name)
        if self._on_result is not None:
            self._on_result(result, trial_dir)
        log.info(
            "%s %s %s best %s in %.1fs",
            rung,
            name,
            result["status"],
            result["best_val_metric"],
            result["total_seconds"],
        )

    def _check_stop(self) -> None:
        """No new trial once a stop is asked: the claims held go back as the worker stops."""
        if self._runtime.stop_asked is not None and self._runtime.stop_asked():
            raise StopRequested("a stop was asked: no new trial starts")

    def _continues(
        self, part: _Part, entry: Mapping[str, Any], config: TrialConfig
    ) -> Checkpoint | None:
        """The state the level before stopped this config in, for a trial that continues one.

        Without it (deleted, or from other code) the trial trains from its first
        epoch: slower, and the same numbers, since a continued trial's history is
        the straight-through one.
        """
        before = entry.get("continues")
        if before is None:
            return None
        setup = self._setup
        key = trial_key(
            config,
            setup.data.fingerprint,
            setup.metric,
            self._code.fingerprint,
            budget=before["budget"],
            precision=self._runtime.precision,
        )
        state = Checkpoint(part.folder / before["dir"] / STATE_FILE, key, every_s=0.0)
        if not state.path.is_file():
            log.warning("%s: no state to continue from; training from epoch 0", entry["name"])
        return state


def _write_level_plan(path: Path, level_plan: Mapping[str, Any]) -> None:
    """Every worker plans the same level; the first to get there writes it down (for
    ``tuneladder status`` and the report), and a rerun rewrites it only if it changed."""
    if path.is_file() and read_json(path) == level_plan:
        return
    write_json(path, level_plan)


# How often a worker waiting for a round to finish looks again, in seconds.
POLL_S = 0.2


def _wait_for(
    entries: Sequence[Mapping[str, Any]],
    attempt: Callable[[Mapping[str, Any]], str],
    complete: Callable[[Mapping[str, Any]], bool],
) -> list[str]:
    """Until every trial of ``entries`` is complete, train the ones nobody holds.

    Trials held by live workers are waited for; a claim whose worker died goes
    stale and is taken over, so a round always finishes. Returns the trials this
    worker trained meanwhile.
    """
    ran: list[str] = []
    while left := [e for e in entries if not complete(e)]:
        for entry in left:
            if attempt(entry) == "ran":
                ran.append(entry["name"])
        if any(not complete(e) for e in left):
            time.sleep(POLL_S)
    return ran
