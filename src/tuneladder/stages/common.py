"""One function per rule: load the inputs, call the library, save the outputs.

Rule ``x`` runs ``x_stage``, and a stage's keyword arguments are named as the
rule's ``input``/``params`` entries, so each script in ``workflow/scripts/``
only passes them on. Folders come as params (``data_dir``), never from the
order of a file list, and every rung that trains gets one
:class:`~tuneladder.infra.device.Runtime`. Nothing here knows about Snakemake, so
every rung can also be run and tested from plain Python.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneladder.core.errors import DataError, UserCodeError
from tuneladder.infra.device import Runtime
from tuneladder.infra.startup import freeze_at_exit, import_torch
from tuneladder.ladder.rungs import (
    BASELINE,
    COARSE,
    FINE,
    SEARCH_RUNGS,
    SEEDS,
    SENSITIVITY,
    by_name,
    trial_order,
)
from tuneladder.search.halving import LEVELS_DIR
from tuneladder.store.io import read_json, write_csv, write_json
from tuneladder.store.trial_files import RESULT_FILE

__all__ = [
    "Runtime",
    "collect_rung_stage",
    "final_stage",
    "log_mlflow_stage",
    "logged",
    "lr_range_test_stage",
    "overfit_check_stage",
    "plan_coarse_stage",
    "plan_fine_stage",
    "plan_seeds_stage",
    "plan_sensitivity_stage",
    "prepare_stage",
    "select_top_k_stage",
    "sweep_lane_stage",
    "sweep_worker_stage",
]

log = logging.getLogger("tuneladder")
# the rungs that sweep (coarse, fine): their folders hold levels/ when they halve
SEARCHING = frozenset(rung.name for rung in SEARCH_RUNGS)


class StageError(RuntimeError):
    """A rung that must stop the ladder, with a message meant for the user."""


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[None]:
    """Send logging and stderr to the rule's log; a StageError also reaches the terminal.

    So do a task's :class:`~tuneladder.core.errors.DataError` and
    :class:`~tuneladder.core.errors.UserCodeError`: one line on the terminal, and
    when the task's own code raised, its traceback in ``<log>.traceback`` beside
    the log (which names it).
    """
    freeze_at_exit()  # a job ends when its stage does: see tuneladder.infra.startup
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    traceback_path = log_path.with_suffix(".traceback")
    traceback_path.unlink(missing_ok=True)  # from an earlier failed run
    log_path.write_text("")
    # appended to: a worker's lanes write to the same log (tuneladder.execution.lanes)
    with open(log_path, "a") as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        saved, sys.stderr = sys.stderr, handle
        try:
            yield
        except (StageError, DataError, UserCodeError) as err:
            cause = err if isinstance(err, UserCodeError) else err.__cause__
            if cause is None:
                log.error("%s", err)
            else:
                # kept beside the log, the traceback stays out of the log's few lines
                traceback_path.write_text("".join(traceback.format_exception(cause)))
                log.error("%s (traceback in %s)", err, traceback_path)
            print(f"tuneladder: {err}", file=sys.__stderr__)
            # a clean exit: Python and Snakemake's script runner print no traceback
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            # Ctrl-C reaches every job of the run: each leaves one line in its log, and
            # what it finished is on disk already (tuneladder.store.io writes atomically)
            log.warning("interrupted: stopped here; what was finished is kept")
            raise SystemExit(130) from None
        except Exception as err:
            log.exception("%s: %s", type(err).__name__, err)  # status reads the first line
            # the traceback is in the log; the terminal gets its last line and the log's name
            print(f"tuneladder: {type(err).__name__}: {err} (traceback in {log_path})",
                  file=sys.__stderr__)  # fmt: skip
            raise SystemExit(1) from None
        finally:
            sys.stderr = saved
            root.removeHandler(handler)


def _task(task: Mapping[str, Any]) -> Any:
    from tuneladder.tasks import load_task

    return load_task(task["name"], task.get("options", {}))


def _report_encoding(meta: Mapping[str, Any], data_dir: str | Path) -> None:
    """What prepare changed in the task's columns and labels: in the log and on the terminal."""
    lines = list((meta.get("encoding") or {}).get("changes", []))
    names = meta["info"].get("class_names")
    if names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        lines.append(f"target: {len(names)} classes by name ({shown}), as 0-{len(names) - 1}")
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
    from tuneladder.data.prepared import load_train_val, prepare
    from tuneladder.training.metrics import Scoring
    from tuneladder.training.preflight import CHECK_BATCH, check_model

    try:
        task_obj = _task(task)
        # the data hyperparameters at the config's fixed values (a sweep's others get
        # copies of their own, prepared when a trial first needs them: data.data_for)
        values = task_obj.data_values(train or {})
        meta = prepare(task_obj, data_dir, seed=seed, data_values=values, **(data or {}))
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


def _base_config(task_obj: Any, train: Mapping[str, Any], seed: int) -> Any:
    from tuneladder.store.trials import base_params, derive_seed, make_trial_config

    return make_trial_config(
        base_params(train, task_obj.defaults),
        {},
        epochs=train["epochs"],
        seed=derive_seed(seed, "sanity", 0),
    )


def _scoring(task_obj: Any) -> Any:
    """The task's own loss and metrics, as the trial path takes them."""
    from tuneladder.training.metrics import Scoring

    return Scoring.of(task_obj)


def _sanity_inputs(
    data_dir: str | Path, task: Mapping[str, Any], runtime: Runtime
) -> tuple[Any, Any, Any]:
    """Device, task and train/val data on it: what both sanity rungs start from."""
    torch_device = runtime.start()
    log.info("device %s, precision %s", torch_device, runtime.precision)
    task_obj = _task(task)
    return torch_device, task_obj, _train_val(data_dir, task_obj, runtime, torch_device)


def _train_val(data_dir: str | Path, task_obj: Any, runtime: Runtime, device: Any) -> Any:
    """The prepared train and val splits on ``device``, read as ``runtime`` says."""
    from tuneladder.data.prepared import load_train_val

    return load_train_val(data_dir, task_obj, loading=runtime.loading()).to(device)


def _data_provider(
    data_dir: str | Path, task_obj: Any, runtime: Runtime, device: Any, base: Any
) -> Any:
    """``config -> TrainVal`` for a task with data hyperparameters, else None.

    A trial at prepare's values trains on ``base``; one at other values on their
    prepared copy (:func:`tuneladder.data.prepared.data_for`), loaded when first needed and
    kept on the device until a trial needs another (trials of one value tend to
    follow each other only by chance, so one copy beside ``base`` is kept, not all).
    The copy carries ``base``'s fingerprint: that keys every trial, whose config
    holds the values.
    """
    if not task_obj.data_params:
        return None
    import dataclasses

    from tuneladder.data.prepared import data_for, load_train_val

    base_dir = Path(data_dir)
    held: dict[Path, Any] = {}

    def provide(config: Any) -> Any:
        folder = data_for(base_dir, task_obj, config.model)
        if folder == base_dir:
            return base
        if folder not in held:
            held.clear()
            loaded = load_train_val(folder, task_obj, loading=runtime.loading()).to(device)
            held[folder] = dataclasses.replace(loaded, fingerprint=base.fingerprint)
            log.info("data %s from %s", task_obj.data_values(config.model), folder)
        return held[folder]

    return provide


def _span() -> dict[str, float | None]:
    """This job's start and end: the bench checks that the two sanity rungs overlap."""
    from tuneladder.infra.env import process_started_at

    return {"started_at": process_started_at(), "finished_at": time.time()}


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
    from tuneladder.sanity.overfit import failure_message, overfit_check

    torch_device, task_obj, data = _sanity_inputs(data_dir, task, runtime)
    # in the precision the sweeps train in: their autocast, around each forward pass
    report = overfit_check(
        _base_config(task_obj, train, seed),
        data,
        task_obj.build_model,
        subset=overfit["subset"],
        max_steps=overfit["max_steps"],
        lr=overfit["lr"],
        loss_ratio=overfit["loss_ratio"],
        loss_threshold=overfit["loss_threshold"],
        device=torch_device,
        scoring=_scoring(task_obj),
        amp=runtime.autocast(torch_device),
    )
    report["enforced"] = overfit["enforce"]
    report.update(_span())
    log.info(
        "overfit check %s: loss %.4g after %d steps (untrained %.4g, threshold %.4g)",
        "passed" if report["passed"] else "FAILED",
        report["final_loss"],
        report["steps"],
        report["initial_loss"],
        report["loss_threshold"],
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
    from tuneladder.sanity.lr_range import lr_range_test

    torch_device, task_obj, data = _sanity_inputs(data_dir, task, runtime)
    # in the precision the sweeps train in: their autocast, around each forward pass
    result = lr_range_test(
        _base_config(task_obj, train, seed),
        data,
        task_obj.build_model,
        start=lr_range["start"],
        end=lr_range["end"],
        steps=lr_range["steps"],
        smoothing=lr_range["smoothing"],
        diverge_factor=lr_range["diverge_factor"],
        device=torch_device,
        scoring=_scoring(task_obj),
        amp=runtime.autocast(torch_device),
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


def plan_coarse_stage(
    *,
    space: Mapping[str, Any],
    lr_range: str | Path | None,
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    sweep: Mapping[str, Any],
    seed: int,
    out: str | Path,
    data_dir: str | Path | None = None,
) -> None:
    """The coarse plan; with ``data_dir``, also refuse a searched model hyperparameter
    that the task's model factory never reads (:func:`_check_reads`)."""
    from tuneladder.search.space import conditions_from_config, space_from_config

    lr_bounds = tuple(read_json(lr_range)["range"]) if lr_range else None
    dists = space_from_config(space, lr_range=lr_bounds)
    _write_sweep_plan(
        COARSE.name,
        dists,
        conditions=conditions_from_config(space),
        task=task,
        train=train,
        sweep=sweep,
        seed=seed,
        out=out,
    )
    if data_dir is not None:
        _check_reads(_task(task), read_json(out), data_dir, out)


def _check_reads(task_obj: Any, plan: Mapping[str, Any], data_dir: str | Path, out: Any) -> None:
    """A model hyperparameter searched but never read by the factory would be "tuned"
    (and given an importance) while it changes nothing: a config error, before any
    trial. Each planned config is built on the meta device, recording what it reads."""
    import_torch(dynamo=False)
    from tuneladder.core.errors import function_name
    from tuneladder.data.prepared import load_info
    from tuneladder.ladder.config import ConfigError
    from tuneladder.training.preflight import unread_hyperparameters

    model = set(task_obj.default_model)
    configs = [
        (entry["config"]["model"], set(entry["sampled"]) & model)
        for entry in plan["trials"]
        if "config" in entry and set(entry.get("sampled", {})) & model
    ][:64]
    if not configs:
        return
    unread = unread_hyperparameters(task_obj.build_model, configs, load_info(data_dir))
    if unread:
        Path(out).unlink(missing_ok=True)  # no plan: the sweep must not start
        names = ", ".join(f"space.{name}" for name in unread)
        raise ConfigError(
            f"{names}: searched, but the model factory {function_name(task_obj.build_model)}"
            f" never reads {'it' if len(unread) == 1 else 'them'} in {len(configs)} planned"
            " configs, so the sweep would tune a value that changes nothing. Leave it out"
            " of space, read it in the factory, or, if it changes the data, give it in the"
            " task's data_params (README: Data hyperparameters)"
        )


def plan_fine_stage(
    *,
    space: str | Path,
    coarse: str | Path,
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    sweep: Mapping[str, Any],
    seed: int,
    out: str | Path,
) -> None:
    """The fine plan; a tpe sweep's also lists the coarse trials its studies start from.

    Those are the ok coarse trials that lie inside the fine space and trained as
    many epochs as the fine trials will (a shorter trial's score is not comparable).
    """
    from tuneladder.search.space import space_from_json
    from tuneladder.search.tpe import inside

    narrowed = read_json(space)
    dists = space_from_json(narrowed["space"])
    prior = [
        {
            "rung": row["rung"],
            "name": row["name"],
            "sampled": _sampled(row, dists),
            "status": row["status"],
            "best_val_metric": row["best_val_metric"],
        }
        for row in read_json(coarse)["trials"]
        if row["status"] == "ok"
        and row["params"].get("epochs") == sweep["epochs"]
        and inside(dists, _sampled(row, dists))
    ]
    _write_sweep_plan(
        FINE.name,
        dists,
        conditions=narrowed.get("conditions", {}),
        task=task,
        train=train,
        sweep=sweep,
        seed=seed,
        out=out,
        prior=prior,
    )


def _sampled(row: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any]:
    """What a sweep trial sampled; a row collected before rows recorded it: its searched
    values (then every searched parameter counts as sampled)."""
    if "sampled" in row:
        return dict(row["sampled"])
    return {name: row["params"][name] for name in space if name in row["params"]}


def _write_sweep_plan(
    rung: str,
    dists: Any,
    *,
    conditions: Mapping[str, Any],
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    sweep: Mapping[str, Any],
    seed: int,
    out: str | Path,
    prior: Sequence[Mapping[str, Any]] = (),
) -> None:
    from tuneladder.search.halving import Halving, with_halving
    from tuneladder.search.plan import plan_sweep
    from tuneladder.search.tpe import TPE, plan_tpe
    from tuneladder.store.trials import base_params

    task_obj = _task(task)
    base = base_params(train, task_obj.defaults)
    if sweep["sampler"] == TPE:
        plan = plan_tpe(
            rung,
            dists,
            conditions=conditions,
            trials=sweep["trials"],
            batch=sweep["batch"],
            epochs=sweep["epochs"],
            base=base,
            ladder_seed=seed,
            prior=prior,
        )
        log.info(
            "%s: %d trials in rounds of %d; the studies start from %d coarse trials",
            rung,
            sweep["trials"],
            sweep["batch"],
            len(prior),
        )
    else:
        plan = plan_sweep(
            rung,
            dists,
            sampler=sweep["sampler"],
            trials=sweep["trials"],
            epochs=sweep["epochs"],
            base=base,
            ladder_seed=seed,
            conditions=conditions,
            model_applies=task_obj.applies,
        )
    halving = Halving.from_sweep(sweep)
    if halving is not None:
        plan = with_halving(plan, halving)
    write_json(out, plan)


def _tracker(tracking: Mapping[str, Any] | None) -> Any:
    """The ladder's MLflow tracker, or None when tracking is off or the store is unreachable."""
    if not tracking:
        return None
    from tuneladder.tracking.mirror import open_ladder

    try:
        return open_ladder(**tracking)
    except Exception as err:  # the result files stay the source of truth
        log.warning("MLflow: tracking store unavailable, trials are not mirrored: %s", err)
        return None


class _TrialLogger:
    """``on_result`` for workers: mirrors trials into MLflow from a thread of its own.

    Importing MLflow and opening the store take seconds; done in the worker's own
    thread they would hold up its first trial, and each write the next one. The
    thread takes the trials from a queue while the worker trains; :meth:`close`
    waits until every one is logged. A trial is never failed over MLflow: the
    result files stay the source of truth.
    """

    def __init__(self, tracking: Mapping[str, Any]) -> None:
        import queue
        import threading

        self._queue: queue.Queue[tuple[Mapping[str, Any], Path] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(tracking,), daemon=True)
        self._thread.start()

    def __call__(self, result: Mapping[str, Any], trial_dir: Path) -> None:
        self._queue.put((result, trial_dir))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self, tracking: Mapping[str, Any]) -> None:
        tracker = _tracker(tracking)
        while (item := self._queue.get()) is not None:
            if tracker is None:
                continue
            result, trial_dir = item
            try:
                tracker.log_trial(result, trial_dir)
            except Exception as err:  # the result files stay the source of truth
                log.warning("MLflow: could not log %s: %s", trial_dir, err)


def _first_step_s(rung_dir: Path, plan: Mapping[str, Any], ran: list[str]) -> float | None:
    """Seconds from this job's process start to its first trial's start: its start-up."""
    from tuneladder.infra.env import process_started_at

    started = process_started_at()
    if started is None or not ran:
        return None
    entry = next(e for e in plan["trials"] if e["name"] == ran[0])
    result = read_json(rung_dir / entry["dir"] / RESULT_FILE)
    return result["started_at"] - started


def sweep_worker_stage(
    *,
    plan: str | Path,
    data_dir: str | Path,
    task: Mapping[str, Any],
    worker: int,
    workers: int,
    metric: Mapping[str, str],
    runtime: Runtime,
    out: str | Path,
    tracking: Mapping[str, Any] | None = None,
    probe: str | Path | None = None,
    log_path: str | Path | None = None,
) -> None:
    """A worker job: one process, or on a GPU ``trials_per_gpu`` lanes side by side.

    ``probe`` is the GPU probe's result (``trials_per_gpu: auto``); ``log_path``
    the job's log, which the lanes append to.
    """
    from tuneladder.execution.lanes import lane_count

    plan_data = read_json(plan)
    lanes = lane_count(
        runtime.trials_per_gpu, probe=probe, trials=_trials_at_once(plan_data), workers=workers
    )
    spec = {
        "plan": str(plan),
        "data_dir": str(data_dir),
        "task": dict(task),
        "worker": worker,
        "workers": workers,
        "metric": dict(metric),
        "tracking": dict(tracking) if tracking else None,
    }
    if lanes == 1:
        report = sweep_lane_stage(spec, runtime, plan_data)
    else:
        report = _sweep_lanes(spec, runtime, lanes, Path(out), log_path)
    log.info(
        "worker %d/%d: ran %d, reused %d%s",
        worker,
        workers,
        len(report["ran"]),
        len(report["reused"]),
        f" on {lanes} lanes" if lanes > 1 else "",
    )
    write_json(out, report)


def _trials_at_once(plan: Mapping[str, Any]) -> int:
    """The most trials of a plan that can train at once: a round's, or every config."""
    from tuneladder.search.tpe import is_rounds, rounds

    if is_rounds(plan):
        return max((len(batch) for batch in rounds(plan)), default=0)
    return len(plan["trials"])


def sweep_lane_stage(
    spec: Mapping[str, Any], runtime: Runtime, plan_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Train trials of the plan as worker ``spec['worker']`` of ``spec['workers']``
    in this process; what it did (:func:`tuneladder.execution.worker.run_worker`). ``plan_data``
    is the plan when the caller has read it already."""
    import_torch(dynamo=True)
    from tuneladder.execution.worker import run_worker
    from tuneladder.store.trials import task_code

    plan = Path(spec["plan"])
    torch_device = runtime.start()
    plan_data = plan_data if plan_data is not None else read_json(plan)
    task = spec["task"]
    task_obj = _task(task)
    data = _train_val(spec["data_dir"], task_obj, runtime, torch_device)
    data_for = _data_provider(spec["data_dir"], task_obj, runtime, torch_device, data)
    tracking = spec.get("tracking")
    on_result = _TrialLogger(tracking) if tracking else None
    try:
        report = run_worker(
            plan_data,
            plan.parent,
            data,
            task_obj.build_model,
            worker=spec["worker"],
            workers=spec["workers"],
            metric=spec["metric"]["name"],
            mode=spec["metric"]["mode"],
            device=torch_device,
            precision=runtime.precision,
            threads=runtime.threads,
            checkpoint_every_s=runtime.checkpoint_every_s,
            stale_claim_s=runtime.stale_claim_s,
            save_model=by_name(plan_data["rung"]).keeps_models,
            on_result=on_result,
            scoring=_scoring(task_obj),
            model_applies=task_obj.applies,
            code=task_code(task["name"], task_obj.build_model),
            data_for=data_for,
        )
    finally:
        if on_result is not None:
            on_result.close()  # every finished trial is in MLflow before the job ends
    report.update(
        device=str(torch_device),
        pid=os.getpid(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        first_step_s=_first_step_s(plan.parent, plan_data, report["ran"]),
    )
    return report


def _sweep_lanes(
    spec: Mapping[str, Any], runtime: Runtime, lanes: int, out: Path, log_path: str | Path | None
) -> dict[str, Any]:
    """Claim the job's GPU, run ``lanes`` lanes on it, and merge what they did."""
    import dataclasses

    from tuneladder.execution.lanes import clear, lane_worker, run_lanes

    started = time.perf_counter()
    claim = runtime.claim()
    lane_runtime = runtime.for_lanes(threads=max(1, runtime.threads // lanes))
    folder = out.with_suffix(".lanes")
    specs = []
    for lane in range(lanes):
        worker, workers = lane_worker(spec["worker"], spec["workers"], lane, lanes)
        specs.append(
            {
                **spec,
                "worker": worker,
                "workers": workers,
                "lane": lane,
                "runtime": dataclasses.asdict(lane_runtime),
                "report": str(folder / f"lane-{lane}.report.json"),
            }
        )
    log.info(
        "%d lanes on %s, %d thread(s) each",
        lanes,
        f"GPU {claim.index}" if claim is not None else "this job's device",
        lane_runtime.threads,
    )
    codes = run_lanes(
        specs,
        folder,
        module="tuneladder.stages.sweep_lane",
        claim=claim,
        threads=lane_runtime.threads,
        log=log_path,
    )
    failed = {lane: code for lane, code in enumerate(codes) if code != 0}
    if failed:
        where = f"; see {log_path}" if log_path else ""
        codes = ", ".join(f"lane {lane} exit code {code}" for lane, code in failed.items())
        raise StageError(f"worker {spec['worker']}: {codes}{where}")
    reports = [read_json(s["report"]) for s in specs]
    clear(folder)
    return {
        "rung": reports[0]["rung"],
        "worker": spec["worker"],
        "workers": spec["workers"],
        "lanes": lanes,
        "ran": [name for r in reports for name in r["ran"]],
        "reused": [name for r in reports for name in r["reused"]],
        "stale": {k: v for r in reports for k, v in r["stale"].items()},
        "seconds": time.perf_counter() - started,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "lane_reports": reports,
    }


def collect_rung_stage(
    *,
    plan: str | Path,
    data_dir: str | Path,
    metric: Mapping[str, str],
    out: str | Path,
) -> None:
    """A rung's table; a sweep that halves has one row per config, from its furthest level."""
    from tuneladder.execution.collect import IncompleteRung, collect_halving, collect_rung

    meta = read_json(Path(data_dir) / "meta.json")
    plan_data = read_json(plan)
    try:
        if plan_data.get("halving"):
            rows = collect_halving(
                plan_data,
                Path(plan).parent,
                data_fingerprint=meta["fingerprint"],
                metric=metric["name"],
                mode=metric["mode"],
            )
        else:
            rows = collect_rung(
                plan_data,
                Path(plan).parent,
                data_fingerprint=meta["fingerprint"],
                metric=metric["name"],
            )
            if plan_data.get("rung") in SEARCHING:
                # dvc.yaml declares a sweep's levels/ whatever the config: one that does
                # not halve leaves it empty, so `dvc repro` finds every output it names
                (Path(plan).parent / LEVELS_DIR).mkdir(exist_ok=True)
    except IncompleteRung as err:
        raise StageError(str(err)) from None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    log.info("collected %d trials: %s", len(rows), counts)
    write_json(out, {"metric": dict(metric), "counts": counts, "trials": rows})


def select_top_k_stage(
    *,
    coarse: str | Path,
    plan: str | Path,
    top_k: int,
    mode: str,
    topk_out: str | Path,
    space_out: str | Path,
) -> None:
    from tuneladder.search.selection import narrow, top_distinct
    from tuneladder.search.space import space_from_json, space_to_json

    rows = read_json(coarse)["trials"]
    top = top_distinct(rows, top_k, mode)
    if not top:
        raise StageError(
            "coarse sweep: no trial finished ok, so there is nothing to narrow"
            f" around; see {coarse} for the reasons"
        )
    coarse_plan = read_json(plan)
    space = space_from_json(coarse_plan["space"])
    # only what each trial sampled: a conditional parameter it did not use is absent
    sampled = [{**row, "params": _sampled(row, space)} for row in top]
    fine, narrowing = narrow(space, sampled)
    for name, record in narrowing.items():
        if record.get("note"):
            log.info("narrowing %s: %s", name, record["note"])
    write_json(topk_out, {"top_k": top_k, "mode": mode, "trials": top})
    write_json(
        space_out,
        {
            "from": "coarse top-k",
            "top_k": len(top),
            "coarse_space": space_to_json(space),
            "space": space_to_json(fine),
            "conditions": coarse_plan.get("conditions", {}),
            "narrowing": narrowing,
        },
    )


def plan_seeds_stage(
    *,
    sweeps: Sequence[str | Path],
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    seeds: Mapping[str, Any],
    seed: int,
    mode: str,
    out: str | Path,
) -> None:
    from tuneladder.search.plan import plan_seeds
    from tuneladder.search.selection import top_distinct
    from tuneladder.store.trials import base_params

    # ladder order, whatever the order of the files: ties go to the earlier trial
    rows = sorted((row for path in sweeps for row in read_json(path)["trials"]), key=trial_order)
    finalists = top_distinct(rows, seeds["finalists"], mode)
    if not finalists:
        raise StageError("no coarse or fine trial finished ok: no finalists to rerun")
    picked = [
        {
            "rung": r["rung"],
            "name": r["name"],
            "best_val_metric": r["best_val_metric"],
            "params": _tunable(r["params"]),
        }
        for r in finalists
    ]
    baseline = base_params(train, _task(task).defaults)
    plan = plan_seeds(
        picked,
        seeds=seeds["seeds"],
        epochs=seeds["epochs"],
        baseline=baseline,
        ladder_seed=seed,
        rung=SEEDS.name,
        baseline_group=BASELINE,
    )
    write_json(out, plan)


def _tunable(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters without its own epochs and seed, which reruns replace."""
    return {k: v for k, v in params.items() if k not in ("epochs", "seed")}


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
    from tuneladder.data.prepared import load_info
    from tuneladder.stages.final import finalize, write_views

    torch_device = runtime.start()
    task_obj = _task(task)
    info = load_info(data_dir)
    summary = finalize(
        read_json(seeds)["trials"],
        data_dir,
        task_obj.build_model,
        info,
        out_dir,
        metric=metric["name"],
        mode=metric["mode"],
        device=torch_device,
        experiment=experiment,
        model_applies=task_obj.applies,
        scoring=_scoring(task_obj),
        bounds=task_obj.metrics[metric["name"]].bounds,
        task=task_obj,
        loading=runtime.loading(),
    )
    sweep_rows = [row for path in sweeps for row in read_json(path)["trials"]]
    write_views(summary, sweep_rows, out_dir)
    log.info(
        "chosen %s: val %.4f, test %s",
        summary["best_group"],
        summary["val_mean"],
        summary["test_mean"],
    )


def plan_sensitivity_stage(
    *,
    summary: str | Path,
    seeds: str | Path,
    space: str | Path,
    sensitivity: Mapping[str, Any],
    seed: int,
    out: str | Path,
) -> None:
    """Plan the one-at-a-time trials around the final rung's choice.

    It reads what final chose (its group and the hyperparameters that apply to
    it), never a test score; the chosen config's trials come from the seeds plan.
    """
    from tuneladder.core.hparams import TrialConfig
    from tuneladder.search.sensitivity import plan_sensitivity
    from tuneladder.search.space import space_from_json

    chosen = read_json(summary)
    reference = [e for e in read_json(seeds)["trials"] if e.get("group") == chosen["best_group"]]
    plan = plan_sensitivity(
        TrialConfig.from_json(reference[0]["config"]).flat(),
        space_from_json(read_json(space)["coarse_space"]),
        applies=set(chosen["best_config"]),
        reference=reference,
        values=sensitivity["values"],
        seeds=sensitivity["seeds"],
        epochs=sensitivity["epochs"],
        ladder_seed=seed,
        rung=SENSITIVITY.name,
        seeds_rung=SEEDS.name,
    )
    varied = [n for n, p in plan["parameters"].items() if "skipped" not in p]
    log.info(
        "sensitivity: %d trials over %s; chosen point from %s",
        len(plan["trials"]),
        ", ".join(varied) or "nothing",
        ", ".join(f"{c['rung']}/{c['name']}" for c in plan["centre"]),
    )
    write_json(out, plan)


def log_mlflow_stage(
    *,
    tables: Sequence[str | Path],
    final_dir: str | Path,
    data_dir: str | Path,
    task: Mapping[str, Any],
    tracking: Mapping[str, Any],
    marker: str | Path,
) -> None:
    """Mirror the ladder into MLflow in one job of its own: every trial, then the model.

    Importing MLflow and opening the store cost about 2 s of CPU per process;
    paid in every worker they slowed its training (the worker's thread shares
    the interpreter), and the summary and the report need none of it. So one
    job pays it once, beside the report. ``tables`` are the rungs' results;
    a trial a live worker (``mlflow.live``) or an earlier run already logged is
    found by its tag and not logged again. ``marker`` records the final run (or
    why there is none): the files under ``results/`` stay the source of truth.
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
    for table in tables:
        for row in read_json(table)["trials"]:
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
    log.info("MLflow: %d trials mirrored", outcome["trials"])
    try:
        outcome["run_id"] = _log_final_model(tracker, final_dir, data_dir, task)
        log.info("MLflow: final model logged in run %s", outcome["run_id"])
    except Exception as err:  # the files in final/ stay the source of truth
        log.warning("MLflow: could not log the final model: %s", err)
        outcome["error"] = f"{type(err).__name__}: {err}"
    write_json(marker, outcome)


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
