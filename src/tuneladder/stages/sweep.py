"""The sweeps' stages: plan the coarse and fine sweeps, run their workers (and a
worker's lanes on a GPU), collect a rung's table.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.core.errors import StopRequested
from tuneladder.infra.device import Runtime
from tuneladder.infra.startup import import_torch
from tuneladder.ladder.rungs import (
    COARSE,
    FINE,
    by_name,
)
from tuneladder.search.halving import LEVELS_DIR, configs_of
from tuneladder.stages.common import (
    SEARCHING,
    StageError,
    _data_provider,
    _task,
    _tracker,
    _train_val,
)
from tuneladder.store.io import read_json, write_json
from tuneladder.store.stop_request import StopFile
from tuneladder.store.trial_files import RESULT_FILE

# what a sweep that does not halve leaves in the levels/ folder dvc.yaml declares
NO_LEVELS = "This sweep does not halve: its trials are in trials/, none in levels.\n"

if TYPE_CHECKING:
    from tuneladder.search.plan import ConfigMaker
    from tuneladder.search.space import Conditions, Space

__all__ = [
    "WorkerJob",
    "collect_rung_stage",
    "plan_coarse_stage",
    "plan_fine_stage",
    "sweep_lane_stage",
    "sweep_worker_stage",
]

log = logging.getLogger("tuneladder")


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

    task_obj = _task(task)
    lr_bounds = tuple(read_json(lr_range)["range"]) if lr_range else None
    dists = space_from_config(space, lr_range=lr_bounds)
    configs = _config_maker(task_obj, train, sweep, conditions_from_config(space))
    write_json(out, _sweep_plan(COARSE.name, dists, configs=configs, sweep=sweep, seed=seed))
    if data_dir is not None:
        _check_reads(task_obj, read_json(out), data_dir, out)


def _check_reads(task_obj: Any, plan: Mapping[str, Any], data_dir: str | Path, out: Any) -> None:
    """A model hyperparameter searched but never read by the factory would be "tuned"
    (and given an importance) while it changes nothing: a config error, before any
    trial. Each planned config is built on the meta device, recording what it reads."""
    import_torch(dynamo=False)
    from tuneladder.core.errors import ConfigError, function_name
    from tuneladder.data.prepared import load_info
    from tuneladder.training.preflight import unread_hyperparameters

    model = set(task_obj.default_model)
    configs = [
        (entry["config"]["model"], set(entry["sampled"]) & model)
        for entry in configs_of(plan)
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
            " task's data_params (docs/guide/own-model-and-data.md: Data hyperparameters)"
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
    configs = _config_maker(_task(task), train, sweep, narrowed.get("conditions", {}))
    plan = _sweep_plan(FINE.name, dists, configs=configs, sweep=sweep, seed=seed, prior=prior)
    write_json(out, plan)


def _sampled(row: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any]:
    """What a sweep trial sampled; a row collected before rows recorded it: its searched
    values (then every searched parameter counts as sampled)."""
    if "sampled" in row:
        return dict(row["sampled"])
    return {name: row["params"][name] for name in space if name in row["params"]}


def _config_maker(
    task_obj: Any, train: Mapping[str, Any], sweep: Mapping[str, Any], conditions: Conditions
) -> ConfigMaker:
    """How the sweep's trials get their configs: the task's defaults under the config's
    ``train``, for the sweep's epochs, with only the values each trial reads."""
    from tuneladder.search.plan import ConfigMaker
    from tuneladder.store.trials import base_params

    return ConfigMaker(
        base=base_params(train, task_obj.defaults),
        epochs=sweep["epochs"],
        conditions=conditions,
        model_applies=task_obj.applies,
    )


def _sweep_plan(
    rung: str,
    dists: Space,
    *,
    configs: ConfigMaker,
    sweep: Mapping[str, Any],
    seed: int,
    prior: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A sweep's plan, by its sampler: every config sampled now, or TPE's rounds; its
    levels when it halves."""
    from tuneladder.search.halving import Halving, with_halving
    from tuneladder.search.plan import plan_sweep
    from tuneladder.search.tpe import TPE, plan_tpe

    if sweep["sampler"] == TPE:
        plan = plan_tpe(
            rung,
            dists,
            trials=sweep["trials"],
            batch=sweep["batch"],
            configs=configs,
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
        return plan
    halving = Halving.from_sweep(sweep)
    reserve = 0 if halving is None else halving.reserve
    # a growing sweep's reserve: the sampler's next configs, after its trials
    plan = plan_sweep(
        rung,
        dists,
        sampler=sweep["sampler"],
        trials=sweep["trials"] + reserve,
        configs=configs,
        ladder_seed=seed,
    )
    if reserve:
        plan["reserve"] = plan["trials"][sweep["trials"] :]
        plan["trials"] = plan["trials"][: sweep["trials"]]
    return plan if halving is None else with_halving(plan, halving)


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
    entry = next(e for e in configs_of(plan) if e["name"] == ran[0])
    result = read_json(rung_dir / entry["dir"] / RESULT_FILE)
    return result["started_at"] - started


@dataclass(frozen=True, kw_only=True)
class WorkerJob:
    """Which of a rung's worker jobs this is, and the files it writes.

    Attributes:
        worker: its place among the rung's worker jobs (the rule's ``{w}``).
        workers: how many worker jobs the rung has (``{n}``).
        out: its report, the rung's worker marker.
        log: its log, which its lanes append to; None when it has none.
    """

    worker: int
    workers: int
    out: str | Path
    log: str | Path | None = None


def sweep_worker_stage(
    *,
    plan: str | Path,
    data_dir: str | Path,
    task: Mapping[str, Any],
    metric: Mapping[str, str],
    runtime: Runtime,
    job: WorkerJob,
    tracking: Mapping[str, Any] | None = None,
    probe: str | Path | None = None,
) -> None:
    """A worker job: one process, or on a GPU ``trials_per_gpu`` lanes side by side.

    ``probe`` is the GPU probe's result (``trials_per_gpu: auto``).
    """
    from tuneladder.execution.lanes import lane_count

    plan_data = read_json(plan)
    lanes = lane_count(
        runtime.trials_per_gpu,
        probe=probe,
        trials=_trials_at_once(plan_data),
        workers=job.workers,
    )
    spec = {
        "plan": str(plan),
        "data_dir": str(data_dir),
        "task": dict(task),
        "worker": job.worker,
        "workers": job.workers,
        "metric": dict(metric),
        "tracking": dict(tracking) if tracking else None,
    }
    if lanes == 1:
        report = sweep_lane_stage(spec, runtime, plan_data)
    else:
        report = _sweep_lanes(spec, runtime, lanes, job)
    alone = report["retried_alone"]
    log.info(
        "worker %d/%d: ran %d, reused %d%s%s",
        job.worker,
        job.workers,
        len(report["ran"]),
        len(report["reused"]),
        f" on {lanes} lanes" if lanes > 1 else "",
        f"; {len(alone)} ran out of memory side by side and trained again alone" if alone else "",
    )
    write_json(job.out, report)


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
    in this process; what it did (:meth:`tuneladder.execution.worker.Worker.run`).
    ``plan_data`` is the plan when the caller has read it already."""
    import_torch(dynamo=True)
    from tuneladder.execution.lanes import GpuShare
    from tuneladder.execution.worker import TrialSetup, Worker, WorkerRuntime
    from tuneladder.store.trials import task_code

    plan = Path(spec["plan"])
    torch_device = runtime.start()
    plan_data = plan_data if plan_data is not None else read_json(plan)
    task_obj = _task(spec["task"])
    data = _train_val(spec["data_dir"], task_obj, runtime, torch_device)
    setup = TrialSetup(
        task=task_obj,
        data=data,
        metric=spec["metric"]["name"],
        mode=spec["metric"]["mode"],
        code=task_code(spec["task"]["name"], task_obj.build_model),
        data_for=_data_provider(spec["data_dir"], task_obj, runtime, torch_device, data),
        save_model=by_name(plan_data["rung"]).keeps_models,
    )
    tracking = spec.get("tracking")
    on_result = _TrialLogger(tracking) if tracking else None
    worker = Worker(
        plan_data,
        plan.parent,
        setup=setup,
        runtime=WorkerRuntime.of(
            runtime,
            torch_device,
            GpuShare(spec["share"]) if spec.get("share") else None,
            # the plan is results/<experiment>/<rung>/plan.json: the ladder's folder
            stop_asked=StopFile(plan.parent.parent).asked,
        ),
        worker=spec["worker"],
        workers=spec["workers"],
        on_result=on_result,
    )
    from tuneladder.training.runner import DeviceLost

    try:
        report = worker.run()
    except DeviceLost as err:  # one line on the terminal: the rerun goes on
        raise StageError(str(err)) from None
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
    spec: Mapping[str, Any], runtime: Runtime, lanes: int, job: WorkerJob
) -> dict[str, Any]:
    """Claim the job's GPU, run ``lanes`` lanes on it, and merge what they did."""
    import dataclasses

    from tuneladder.execution.lanes import STOPPED_EXIT, clear, lane_worker, run_lanes

    started = time.perf_counter()
    claim = runtime.claim()
    lane_runtime = runtime.for_lanes(threads=max(1, runtime.threads // lanes))
    folder = Path(job.out).with_suffix(".lanes")
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
                "share": str(folder),  # the lanes' turns on the GPU (GpuShare)
            }
        )
    log.info(
        "%d lanes on %s, %d thread(s) each",
        lanes,
        f"GPU {claim.gpu}" if claim is not None else "this job's device",
        lane_runtime.threads,
    )
    codes = run_lanes(
        specs,
        folder,
        module="tuneladder.stages.sweep_lane",
        claim=claim,
        threads=lane_runtime.threads,
        log=job.log,
    )
    failed = {lane: code for lane, code in enumerate(codes) if code != 0}
    if failed and set(failed.values()) == {STOPPED_EXIT}:
        raise StopRequested(f"a stop was asked: {len(failed)} of {lanes} lanes stopped")
    if failed:
        where = f"; see {job.log}" if job.log else ""
        codes = ", ".join(f"lane {lane} exit code {code}" for lane, code in failed.items())
        raise StageError(f"worker {spec['worker']}: {codes}{where}")
    reports = [read_json(s["report"]) for s in specs]
    clear(folder)
    ran = [name for r in reports for name in r["ran"]]
    # every lane finds the trials its neighbours finished: reused means finished before
    trained = set(ran)
    found = dict.fromkeys(name for r in reports for name in r["reused"])  # once each
    reused = [name for name in found if name not in trained]
    return {
        "rung": reports[0]["rung"],
        "worker": spec["worker"],
        "workers": spec["workers"],
        "lanes": lanes,
        "ran": ran,
        "reused": reused,
        "stale": {k: v for r in reports for k, v in r["stale"].items()},
        "retried_alone": [name for r in reports for name in r["retried_alone"]],
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
    precision: str = "fp32",
) -> None:
    """A rung's table; a sweep that halves has one row per config, from its furthest level.
    ``precision`` is the run's: the workers' keys name it."""
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
                precision=precision,
            )
        else:
            rows = collect_rung(
                plan_data,
                Path(plan).parent,
                data_fingerprint=meta["fingerprint"],
                metric=metric["name"],
                precision=precision,
            )
            if plan_data.get("rung") in SEARCHING:
                # dvc.yaml declares a sweep's levels/ whatever the config: one that does
                # not halve leaves a note in it, so `dvc repro` finds every output it
                # names, and no empty folder to warn of
                levels = Path(plan).parent / LEVELS_DIR
                levels.mkdir(exist_ok=True)
                (levels / "README").write_text(NO_LEVELS)
    except IncompleteRung as err:
        raise StageError(str(err)) from None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    log.info("collected %d trials: %s", len(rows), counts)
    write_json(out, {"metric": dict(metric), "counts": counts, "trials": rows})
