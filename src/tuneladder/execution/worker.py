"""A worker job: claim trials of a rung one at a time and train them in one process.

Start-up (importing torch, building the data on the device) is paid once per
worker instead of once per trial. Worker ``w`` of ``W`` first takes its own
stripe (trials ``w, w+W, ...``), then, when ``steal`` is on, anything left
unclaimed, so the load balances itself. Which worker runs a trial changes
nothing in its result: the trial's config and seed come from the plan.

A sweep that halves (:mod:`tuneladder.search.halving`) runs its levels inside the same
workers, one after the other: when a level's last trial is done, each worker
plans the next level from the level's results (every worker gets the same
plan) and goes on, so a level costs no job start. Trials of a later level
stop at that level's epoch and continue the state of the level before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import TrainVal
from tuneladder.execution.collect import collect_rung
from tuneladder.search.halving import expected_seconds, level_dir, plan_level
from tuneladder.search.tpe import ask_round, is_rounds, rounds
from tuneladder.store.claims import ClaimBook
from tuneladder.store.io import read_json, write_json
from tuneladder.store.trial_files import MODEL_FILE, RESULT_FILE, STATE_FILE
from tuneladder.store.trials import (
    BuildModel,
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
from tuneladder.training.metrics import Scoring
from tuneladder.training.runner import run_trial

# is_complete lives in tuneladder.store.trials; it stays importable from here
__all__ = ["is_complete", "run_worker", "worker_order"]

log = logging.getLogger(__name__)


def worker_order(n_trials: int, *, worker: int, workers: int, steal: bool) -> list[int]:
    """Own stripe first, then (when stealing) the others' stripes, from their far end."""
    return _order(range(n_trials), worker=worker, workers=workers, steal=steal)


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


def _progress(claims: ClaimBook, rung: str, name: str, epochs: int) -> Any:
    """Per epoch: refresh the claim's heartbeat and log a line."""

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

    return on_epoch


def _continues(
    entry: Mapping[str, Any],
    rung_dir: Path,
    config: TrialConfig,
    data_fingerprint: str,
    metric: str,
    code: Any,
) -> Checkpoint | None:
    """The state the level before stopped this config in, for a trial that continues one.

    Without it (deleted, or from other code) the trial trains from its first
    epoch: slower, and the same numbers, since a continued trial's history is
    the straight-through one.
    """
    before = entry.get("continues")
    if before is None:
        return None
    key = trial_key(config, data_fingerprint, metric, code.fingerprint, budget=before["budget"])
    state = Checkpoint(rung_dir / before["dir"] / STATE_FILE, key, every_s=0.0)
    if not state.path.is_file():
        log.warning("%s: no state to continue from; training from epoch 0", entry["name"])
    return state


def run_worker(
    plan: Mapping[str, Any],
    rung_dir: str | Path,
    data: TrainVal,
    build_model: BuildModel,
    *,
    worker: int,
    workers: int,
    metric: str,
    mode: str,
    device: torch.device,
    precision: str = "fp32",
    threads: int = 1,
    checkpoint_every_s: float = 60.0,
    stale_claim_s: float = 600.0,
    save_model: bool = False,
    on_result: Callable[[Mapping[str, Any], Path], None] | None = None,
    scoring: Scoring | None = None,
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
    code: Code | None = None,
    data_for: Callable[[TrialConfig], TrainVal] | None = None,
) -> dict[str, Any]:
    """Run until no trial of the plan is left to claim; return what this worker did.

    ``on_result(result, trial_dir)`` sees every trial this worker finishes, and
    every finished one it finds of its own stripe (so a tracking store that
    missed a trial catches up on a rerun). ``scoring`` is the task's own loss and
    metrics. A plan of rounds (a tpe sweep) is run round by round: the worker
    asks a round once every trial before it has a result, training any of those
    nobody holds while it waits (``model_applies`` is the task's, for the asks'
    conditional parameters). A plan that halves is run level by level in the
    same way: each level is planned from the table of the level before, once
    every trial of that level has a result. ``code`` is the fingerprint of the
    code that decides the trials (see :func:`tuneladder.store.trials.code_fingerprint`);
    by default, that of the model factory's module. ``data_for(config)`` is the
    data a trial trains on when its data hyperparameters are not prepare's (see
    :func:`tuneladder.data.prepared.data_for`; it must carry ``data``'s fingerprint, which
    keys every trial: the values themselves are in the trial's config); ``data``
    when None.
    """
    rung_dir = Path(rung_dir)
    ran: list[str] = []
    reused: list[str] = []
    stale: dict[str, str] = {}  # trials trained again, and why
    code = code or code_fingerprint(task_module(build_model))
    started = time.perf_counter()

    def key(entry: Mapping[str, Any]) -> str:
        return entry_key(entry, data.fingerprint, metric, code.fingerprint)

    class Part:
        """Trials that share a folder and a claim book: a rung's, or one halving level's."""

        def __init__(self, folder: Path) -> None:
            self.folder = folder
            self.claims = ClaimBook(folder / "claims", stale_s=stale_claim_s)

        def complete(self, entry: Mapping[str, Any]) -> bool:
            return is_complete(self.folder / entry["dir"], key(entry))

        def attempt(self, entry: Mapping[str, Any]) -> str:
            """Reuse, or claim and train, one trial: ``reused``, ``ran`` or ``held`` (by
            another worker)."""
            name, trial_dir, claims = entry["name"], self.folder / entry["dir"], self.claims
            config = TrialConfig.from_json(entry["config"])
            budget = entry.get("budget")
            expected = key(entry)
            result = read_result(trial_dir)
            reason = stale_reason(result, expected, code)
            if reason is None:
                if on_result is not None and int(entry["index"]) % workers == worker:
                    on_result(result, trial_dir)
                return "reused"
            if not claims.try_claim(name):
                return "held"
            try:
                if is_complete(trial_dir, expected):  # finished by another worker meanwhile
                    return "held"
                if result is not None:
                    stale[name] = reason
                    log.info("%s %s %s: training it again", plan["rung"], name, reason)
                for stale_file in (RESULT_FILE, MODEL_FILE, STATE_FILE):
                    (trial_dir / stale_file).unlink(missing_ok=True)
                continues = _continues(entry, self.folder, config, data.fingerprint, metric, code)

                # the claim stays fresh however long an epoch (or preparing its data) takes
                with claims.beating(name):
                    result = run_trial(
                        config,
                        data if data_for is None else data_for(config),
                        build_model,
                        trial_dir,
                        metric=metric,
                        mode=mode,
                        device=device,
                        precision=precision,
                        threads=threads,
                        trial={
                            "rung": plan["rung"],
                            "index": entry["index"],
                            "name": name,
                            "worker": worker,
                            **{k: entry[k] for k in ("level", "budget") if k in entry},
                        },
                        checkpoint_every_s=checkpoint_every_s,
                        save_model=save_model,
                        on_epoch=_progress(claims, plan["rung"], name, budget or config.epochs),
                        scoring=scoring,
                        code=code,
                        stop_at=budget,
                        continues=continues,
                    )
                if on_result is not None:
                    on_result(result, trial_dir)
                log.info(
                    "%s %s %s best %s in %.1fs",
                    plan["rung"],
                    name,
                    result["status"],
                    result["best_val_metric"],
                    result["total_seconds"],
                )
                return "ran"
            finally:
                claims.release(name)

        def run(self, entries: Sequence[Mapping[str, Any]], order: Sequence[int]) -> None:
            for i in order:
                outcome = self.attempt(entries[i])
                if outcome != "held":
                    (ran if outcome == "ran" else reused).append(entries[i]["name"])

        def finish(self, entries: Sequence[Mapping[str, Any]]) -> None:
            """Wait for the others' trials of ``entries``, taking over any whose worker died."""
            ran.extend(_wait_for(entries, self.attempt, self.complete))

    def order(
        entries: Sequence[Mapping[str, Any]], expected: Mapping[str, float] | None = None
    ) -> list[int]:
        steal = workers < len(entries)
        if steal and expected:
            # longest first, the same list for every worker: a level ends when its last
            # trial does, so the long ones must not be left for the end
            return sorted(range(len(entries)), key=lambda i: -expected[entries[i]["name"]])
        indices = [int(e["index"]) for e in entries]
        return _order(indices, worker=worker, workers=workers, steal=steal)

    if is_rounds(plan):
        part = Part(rung_dir)
        batches = rounds(plan)
        for r in range(len(batches)):
            asked = ask_round(plan, rung_dir, r, mode=mode, model_applies=model_applies)
            part.run(asked, order(asked))
            if r + 1 < len(batches):
                log.info("%s round %d: waiting for its last trials", plan["rung"], r)
                part.finish(asked)
    elif plan.get("halving"):
        previous = None
        levels = len(plan["halving"]["levels"])
        for level in range(levels):
            part = Part(rung_dir / level_dir(level))
            level_plan = plan_level(plan, level, previous, mode)
            _write_level_plan(part.folder / "plan.json", level_plan)
            mine = order(level_plan["trials"], expected_seconds(previous, level_plan))
            if not mine:
                # it will have none at the levels after either: they continue a subset
                log.info("%s level %d: no trials for this worker; done", plan["rung"], level)
                break
            part.run(level_plan["trials"], mine)
            if level + 1 == levels:
                break  # the last level: the rung's collect job waits for the others
            log.info("%s level %d: waiting for its last trials", plan["rung"], level)
            part.finish(level_plan["trials"])
            previous = collect_rung(
                level_plan, part.folder, data_fingerprint=data.fingerprint, metric=metric
            )
    else:
        Part(rung_dir).run(plan["trials"], order(plan["trials"]))
    return {
        "rung": plan["rung"],
        "worker": worker,
        "workers": workers,
        "ran": ran,
        "reused": reused,
        "stale": stale,
        "seconds": time.perf_counter() - started,
    }


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
