"""Where a running or finished ladder stands, read from its ``results/`` folder alone.

Nothing here talks to Snakemake: a rung's plan gives its trials, a trial's
``result.json`` says it is done, and a claim file that is not stale says a
worker is training it now. This works on a ladder that is running, stopped
half-way, or finished, and on any machine that sees the folder.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneladder.core.direction import Direction, halving_tier, top
from tuneladder.core.hparams import TrialConfig, config_hash
from tuneladder.core.text import counted, mean_std
from tuneladder.execution.promotions import PROMOTIONS_FILE, asked_by_level
from tuneladder.ladder.job_times import read_benchmarks
from tuneladder.ladder.rungs import (
    FINAL,
    GPU_PROBE_FILE,
    LADDER,
    LR_RANGE,
    MLFLOW_MARKER,
    OVERFIT,
    PREPARE,
    REPORT,
    SEARCH_RUNGS,
    SELECT,
    TRIAL_RUNGS,
    Rung,
    active,
    finalist_label,
)
from tuneladder.search.asha import ASYNC, mode_of
from tuneladder.search.halving import Halving, asked_level, level_dir
from tuneladder.store.claims import ClaimBook
from tuneladder.store.io import write_json
from tuneladder.store.stop_request import StopFile
from tuneladder.store.trial_files import CHECKPOINT_FILE, RESULT_FILE
from tuneladder.store.trials import code_fingerprint, keep_trials, key_precision

__all__ = [
    "RUN_CONFIG_FILE",
    "RUN_SLOTS_FILE",
    "counted_config",
    "format_status",
    "ladder_status",
    "run_config",
    "save_run_config",
]

# The config a run resolved, overrides (--config, the Python API's) included: what
# `tuneladder status` counts by, as config/config.yaml may not be what ran
RUN_CONFIG_FILE = "run_config.json"
# The worker jobs each rung's plan runs, and the trials per GPU, as the run resolved
# them from Snakemake's --cores, --jobs and --resources, which the config does not hold:
# what the time left divides by before trials have run side by side
RUN_SLOTS_FILE = "run_slots.json"


def save_run_config(
    results: str | Path,
    config: Mapping[str, Any],
    *,
    workers: Mapping[str, int] | None = None,
    trials_per_gpu: int | str = 1,
) -> None:
    """Keep the config a run resolved in its folder, as it starts, and the worker jobs of
    each rung of trials (``workers``; the workflow's plan) with the trials per GPU."""
    write_json(Path(results) / RUN_CONFIG_FILE, dict(config))
    if workers is not None:
        slots = {"workers": dict(workers), "trials_per_gpu": trials_per_gpu}
        write_json(Path(results) / RUN_SLOTS_FILE, slots)


def counted_config(config_file: Path, results: Path | None = None) -> tuple[dict[str, Any], Path]:
    """The config `tuneladder status` counts by, and the folder it reads.

    The last run's (:func:`run_config`: overrides included, from ``--config`` or
    the Python API), unless ``config_file`` was edited since that run started: what
    is left is then what the file asks for now. ``results`` given, its run's config
    needs no file at all.
    """
    from tuneladder.ladder.config import load_config, read_config_file

    ran = run_config(results) if results is not None else None
    if ran is not None:
        return ran, results
    # the experiment's name as written finds the run's config: a plugin task is then
    # not imported (from another folder it would not be found)
    written = read_config_file(config_file).get("experiment")
    if results is None and isinstance(written, str):
        # run from here, or from the config's folder or the one above (config/x.yaml)
        folders = (Path(), Path(config_file).parent, Path(config_file).parent.parent)
        found = (f / "results" / written for f in folders if (f / "results" / written).is_dir())
        results = next(found, Path("results") / written)
    ran = run_config(results) if results is not None else None
    edited = _mtime(config_file) or 0.0
    if ran is not None and edited <= (_mtime(results / RUN_CONFIG_FILE) or 0.0):
        return ran, results
    config = load_config(config_file)
    return config, results or Path("results") / config["experiment"]


def run_config(results: str | Path) -> dict[str, Any] | None:
    """The config the last run in ``results`` started with, resolved by this version (a
    key added since gets its default); None before any run, or where it no longer
    resolves."""
    from tuneladder.ladder.config import ConfigError, resolve_config
    from tuneladder.tasks import TaskError

    found = _read(Path(results) / RUN_CONFIG_FILE)
    if not isinstance(found, dict):
        return None
    try:
        return resolve_config(found, check_task=False)
    except (ConfigError, TaskError, ValueError):
        return None


# the MLflow mirror on the default ladder, 2 cores: about 6 s to start (imports, the
# store, the final model) and 50 ms per trial (three SQLite writes and three files)
MIRROR_STARTUP_S = 6.0
MIRROR_PER_TRIAL_S = 0.05


def _read(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or being written by a worker this instant


def _mtime(path: Path) -> float | None:
    """A file's modification time; None for a folder or a file removed meanwhile."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime if not path.is_dir() else None


def _planned_counts(config: Mapping[str, Any] | None) -> dict[str, int | None]:
    """Each rung's trials by the config: a halving sweep's configs, not its trainings."""
    counts: dict[str, int | None] = {}
    for rung in TRIAL_RUNGS:
        counts[rung.name] = rung.trials(config) if config and rung.trials else None
        if config and rung in SEARCH_RUNGS:
            if (halving := Halving.from_sweep(config[rung.name])) is not None:
                counts[rung.name] = halving.levels[0].configs
    return counts


def _planned_work(config: Mapping[str, Any] | None, rung: Rung) -> tuple[int | None, int | None]:
    """(trainings, trial-epochs) a rung not planned yet will run: a halving config trains
    once per level, each level only the epochs past the one before (None: unknown)."""
    if not config or not rung.trials:
        return None, None
    if rung in SEARCH_RUNGS and (halving := Halving.from_sweep(config[rung.name])) is not None:
        return sum(level.configs for level in halving.levels), halving.trial_epochs
    trainings = rung.trials(config)
    epochs = (config.get(rung.name) or {}).get("epochs")
    return trainings, trainings * int(epochs) if epochs is not None else None


def _trained_epochs(result: Mapping[str, Any]) -> int | None:
    """Epochs a trial trained itself (a halving level resumes its config's last one)."""
    if result.get("epochs_run") is None:
        return None
    return max(0, int(result["epochs_run"]) - int(result.get("resumed_from_epoch") or 0))


def _trial_rungs(results: Path, config: Mapping[str, Any] | None) -> list[Rung]:
    """The rungs of trials the config runs; without a config, also an optional one that
    left a plan."""
    if config is not None:
        return list(active(config, TRIAL_RUNGS))
    return [r for r in TRIAL_RUNGS if r.enabled is None or (results / r.outputs["plan"]).is_file()]


def _in_progress(
    claims_dir: Path, done: set[str], stale_s: float
) -> tuple[list[str], list[tuple[str, str]]]:
    """The trials live claims hold, and where each that says so trains (host, GPU)."""
    if not claims_dir.is_dir():
        return [], []
    book = ClaimBook(claims_dir, stale_s=stale_s)
    names = [p.name.removesuffix(".claim") for p in sorted(claims_dir.glob("*.claim"))]
    running = [name for name in names if name not in done and not book.is_stale(name)]
    return running, [where for name in running if (where := book.where(name)) is not None]


def _sources(results: Path, rung: Rung, plan: Mapping[str, Any]) -> list[tuple[Any, Path, Any]]:
    """Where a rung's trials are: (plan, the folder its dirs and claims are in, level).

    A sweep that halves has one source per level planned so far (tuneladder.search.halving);
    one that halves asynchronously and is not collected yet, per level a config was
    asked at, by its log (the workers write no level plan as they ask: at 16,000
    configs rewriting it took 0.3 s of every ask, under the lock all workers ask
    under). Collected, its level plans are those ``collect`` wrote from the log, a
    level no config reached included.
    """
    halving = plan.get("halving")
    if not halving:
        return [(plan, results / rung.name, None)]
    asked = None
    if mode_of(halving) == ASYNC and not _collected(results, rung):
        asked = asked_by_level(plan, results / rung.name)
    out = []
    for level in halving["levels"]:
        folder = results / rung.name / level_dir(level["level"])
        if asked is None:
            level_plan = _read(folder / "plan.json")
        elif names := asked[level["level"]]:
            level_plan = asked_level(plan, level["level"], names)
        else:
            level_plan = None
        if level_plan is not None:
            out.append((level_plan, folder, level))
    return out


def _collected(results: Path, rung: Rung) -> bool:
    """Whether an async sweep's table was collected after the last line of its log."""
    table = _mtime(results / rung.outputs["results"])
    log = _mtime(results / rung.name / PROMOTIONS_FILE)
    return table is not None and (log is None or table >= log)


def _rung(
    results: Path,
    rung: Rung,
    planned: int | None,
    stale_s: float,
    trainings: int | None = None,
    epochs: int | None = None,
    *,
    current: _CurrentRun | None = None,
    plan_current: bool = True,
) -> dict[str, Any]:
    """One rung's counts; ``trainings`` and ``epochs``: what the config plans for it;
    ``current``: what this run would not reuse (None: nothing known); ``plan_current``:
    False where the rung before it has trials left, so this rung's plan on disk will be
    made again."""
    plan = _read(results / rung.outputs["plan"]) if plan_current else None
    if plan is None:
        return {
            "rung": rung.name,
            "state": "not started",
            "total": planned,
            "done": 0,
            "trials_left": trainings if trainings is not None else planned or 0,
            "epochs_left": epochs,
            "running": 0,
            "trials": [],
            "workers": 0,
            "span": None,
            "up_to": rung.counted_by_plan,  # the count from the config is an upper bound
        }
    found = _RungTrials.read(results, rung, plan, stale_s, current or _CurrentRun())
    trials = found.trials
    done, left = len(trials), None
    finished = {t["name"] for t in trials}
    epochs_left = sum(
        int((entry.get("config") or {}).get("epochs") or 0)
        for entry in plan["trials"]
        if entry["name"] not in finished
    )
    # a growing sweep's reserve configs count apart from its trials
    planned_names = {entry["name"] for entry in plan["trials"]}
    if plan.get("halving"):
        # counted in configs, as planned: a config is done when it reached its last level
        done, left, epochs_left = _halving_progress(
            found.level_names,
            plan["halving"]["levels"],
            {n: t for n, t in found.furthest.items() if n in planned_names},
        )
    total = _rung_total(rung, plan, planned)
    groups_left: dict[str, int] = {}  # a group's trials share a config (seed reruns)
    for entry in plan["trials"]:
        if entry["name"] not in finished and entry.get("group") is not None:
            epochs = int((entry.get("config") or {}).get("epochs") or 0)
            groups_left[entry["group"]] = groups_left.get(entry["group"], 0) + epochs
    if done >= total:
        state = "done" if (results / rung.outputs["results"]).is_file() else "trained"
    else:
        state = "running" if found.running else "stopped" if done else "planned"
    spans = found.spans
    out = {
        "rung": rung.name,
        "state": state,
        "total": total,
        "done": done,
        # trainings still to run: a halving config trains once more at each level it reaches
        "trials_left": max(0, total - done) if left is None else left,
        "epochs_left": epochs_left,
        "running": len(found.running),
        "running_on": [list(where) for where in found.placed],
        "stale": found.stale,
        "stale_why": sorted(found.stale_why),
        "resumable": found.resumable,
        "trials": trials,
        "workers": max(_most_at_once(spans), len(found.running)),
        # when its first trial started and its last one ended: the rung's training time
        "span": [min(a for a, _ in spans), max(b for _, b in spans)] if spans else None,
    }
    if plan.get("halving"):
        out["levels"] = found.levels
        out["halving_mode"] = mode_of(plan["halving"])
        # a growing sweep's extra configs, trained while workers would have waited
        out["grown"] = sum(1 for name in found.furthest if name not in planned_names)
    elif groups_left:
        out["groups_left"] = groups_left
        # the seeds plan numbers its finalists by rank (search.plan.plan_seeds)
        out["group_sources"] = {
            str(rank): [f["rung"], f["name"]] for rank, f in enumerate(plan.get("finalists") or [])
        }
    return out


def _rung_total(rung: Rung, plan: Mapping[str, Any], planned: int | None) -> int:
    """The rung's trial count: the config says what the next run will plan, so a plan on
    disk from before the counts changed is out of date and does not finish the rung;
    a rung counted by its plan (what the rungs before it found) takes the plan's."""
    if rung.counted_by_plan:
        return len(plan["trials"])
    if planned is not None:
        return planned
    if plan.get("halving"):
        return plan["halving"]["levels"][0]["configs"]
    return len(plan["trials"])


def _trial_row(entry: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """What status shows and estimates from one finished trial (``entry``: its plan's)."""
    metric = result.get("metric") or {}
    return {
        "name": entry["name"],
        "group": entry.get("group"),
        "status": result.get("status"),
        "best_val_metric": result.get("best_val_metric"),
        "mode": metric.get("mode", "max"),
        "name_of_metric": metric.get("name"),
        "total_seconds": result.get("total_seconds"),
        "epochs_trained": _trained_epochs(result),
        "ended_at": _ended_at(result),
    }


def _ended_at(result: Mapping[str, Any]) -> float:
    """When a trial's training ended (0 where its result does not say)."""
    started, seconds = result.get("started_at"), result.get("total_seconds")
    return started + seconds if started is not None and seconds is not None else 0.0


class _CurrentRun:
    """What a result was made by that the next run would not reuse (the parts of its key
    :func:`tuneladder.store.trials.stale_reason` compares): another config than its plan
    entry's (a run stopped after it planned the rung again, with more epochs, say),
    other data (``data``: the prepared data's fingerprint; None, unknown), code that
    changed since (after the colon), or another precision (``precision``: the run's;
    None, unknown). Such a result is retrained, so it is no trial done."""

    def __init__(self, precision: str | None = None, data: str | None = None) -> None:
        self._keep = keep_trials()
        self._precision = precision
        self._data = data
        # by task module, one hash each; None where the module is not found from here (a
        # plugin, asked from another folder): then nothing can be told
        self._fingerprints: dict[str | None, str | None] = {}

    def changed(self, result: Mapping[str, Any], entry: Mapping[str, Any]) -> str | None:
        """``config``, ``data``, ``precision`` or ``code``, the first that changed since the
        result of plan entry ``entry`` was made; else None."""
        key = result.get("key")
        if not isinstance(key, str):
            return None
        planned = entry.get("config")
        made = result.get("config_hash")
        if planned is not None and made is not None:
            if config_hash(TrialConfig.from_json(planned)) != made:
                return "config"
        if self._data is not None and result.get("data_fingerprint") not in (None, self._data):
            return "data"
        if self._precision is not None and key_precision(key) != self._precision:
            return "precision"
        if self._keep or ":" not in key:
            return None  # kept on purpose, or a result from before keys named their code
        module = (result.get("code") or {}).get("task_module")
        if module not in self._fingerprints:
            code = code_fingerprint(module)
            self._fingerprints[module] = code.fingerprint if code.found else None
        now = self._fingerprints[module]
        return None if now is None or key.partition(":")[2] == now else "code"


@dataclass
class _RungTrials:
    """A rung's finished trials (every halving level's), read from its folders."""

    trials: list[dict[str, Any]] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)
    levels: list[dict[str, Any]] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    # the (host, GPU) of each running trial whose claim says it
    placed: list[tuple[str, str]] = field(default_factory=list)
    # a halving config's trial at its furthest level
    furthest: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a halving sweep's configs planned (or asked) at each level so far, by level
    level_names: dict[int, set[str]] = field(default_factory=dict)
    # results of code (or a precision) that changed since they ran: to be trained again,
    # so not done; and which of the two changed
    stale: int = 0
    stale_why: set[str] = field(default_factory=set)
    # trials a stopped run left mid-way: no result, no live claim, a checkpoint to go on from
    resumable: int = 0

    @classmethod
    def read(
        cls,
        results: Path,
        rung: Rung,
        plan: Mapping[str, Any],
        stale_s: float,
        current: _CurrentRun,
    ) -> _RungTrials:
        found = cls()
        for source, folder, level in _sources(results, rung, plan):
            mine, checkpointed = [], set()
            for entry in source["trials"]:
                result = _read(folder / entry["dir"] / RESULT_FILE)
                if result is None:
                    if (folder / entry["dir"] / CHECKPOINT_FILE).is_file():
                        checkpointed.add(entry["name"])
                    continue
                if why := current.changed(result, entry):
                    found.stale += 1
                    found.stale_why.add(why)
                    continue
                mine.append(_trial_row(entry, result))
                seconds = result.get("total_seconds")
                if result.get("started_at") is not None and seconds is not None:
                    start = result["started_at"]
                    found.spans.append((start, start + seconds))
            here, placed = _in_progress(folder / "claims", {t["name"] for t in mine}, stale_s)
            found.running += here
            found.placed += placed
            found.resumable += len(checkpointed - set(here))
            found.trials += mine
            if level is not None:
                names = {entry["name"] for entry in source["trials"]}
                found.level_names[level["level"]] = names
                # an async level may take more configs than planned (a promotion that later
                # fell out of the best 1/eta, a grown config): its total is what it took
                total = level["configs"]
                if mode_of(plan["halving"]) == ASYNC:
                    total = max(total, len(names))
                found._add_level(level, total, len(plan["halving"]["levels"]) - 1, mine, len(here))
        for t in found.trials:
            t["superseded"] = "halving" in t and found.furthest[t["name"]] is not t
            # promoted, its next level not finished yet: it has not stopped short
            later = found.level_names.get(t["halving"]["level"] + 1, ()) if "halving" in t else ()
            t["going_on"] = not t["superseded"] and t["name"] in later
        return found

    def _add_level(
        self,
        level: Mapping[str, Any],
        total: int,
        last: int,
        mine: list[dict[str, Any]],
        running: int,
    ) -> None:
        for t in mine:
            t["halving"] = {"level": level["level"], "last_level": last}
            self.furthest[t["name"]] = t
        self.levels.append(
            {
                "level": level["level"],
                "epochs": level["epochs"],
                "total": total,
                "done": len(mine),
                "running": running,
            }
        )


def _failed_jobs(results: Path) -> list[dict[str, str]]:
    """Jobs whose last run failed, each with its one-line reason, from the rules' logs.

    A job rewrites its log when it starts (:func:`tuneladder.stages.common.logged`), so an
    error line in a log is from its last run.
    """
    failed = []
    for log_file in sorted((results / "logs").rglob("*.log")):
        try:
            lines = log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [line for line in lines if " ERROR " in line]
        if errors:
            job = str(log_file.relative_to(results / "logs").with_suffix(""))
            reason = errors[0].split(" ERROR ", 1)[1].removeprefix(f"{job}: ")
            failed.append({"job": job, "reason": reason, "log": str(log_file)})
    return failed


def _halving_progress(
    promoted: Mapping[int, set[str]],
    levels: list[Mapping[str, Any]],
    furthest: Mapping[str, Mapping[str, Any]],
) -> tuple[int, int, int]:
    """(configs done, level trainings left, trial-epochs left) of a halving sweep.

    A config is done when it finished the last level, failed, or was left out of
    the next level's plan; the trainings left count each level's planned configs
    not finished there yet, levels not planned yet included. A level's training
    goes on from the level before, so it trains only the epochs between them.
    ``promoted``: the configs of each level planned (or asked at) so far, by level.
    """
    last = len(levels) - 1
    done = 0
    at_level = [0] * len(levels)
    for name, trial in furthest.items():
        level = trial["halving"]["level"]
        at_level[level] += 1
        going_on = level + 1 in promoted and name in promoted[level + 1]
        waiting = level < last and level + 1 not in promoted
        if trial["status"] != "ok" or not (going_on or waiting):
            done += 1
    # a config at a later level was trained at every earlier one
    finished = [sum(at_level[i:]) for i in range(len(levels))]
    short = [max(0, spec["configs"] - finished[i]) for i, spec in enumerate(levels)]
    starts = [0, *(spec["epochs"] for spec in levels[:-1])]
    steps = zip(short, levels, starts, strict=True)
    epochs = sum(n * (spec["epochs"] - start) for n, spec, start in steps)
    return done, sum(short), epochs


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """How many trials ran at the same time, at most: the workers this rung had."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in events:  # at equal times an end (-1) sorts first: back-to-back is not overlap
        current += step
        most = max(most, current)
    return most


def _mean_seconds(rung: Mapping[str, Any]) -> float | None:
    seconds = [t["total_seconds"] for t in rung["trials"] if t["total_seconds"]]
    return sum(seconds) / len(seconds) if seconds else None


def _seconds_per_epoch(trials: list[dict[str, Any]]) -> float | None:
    timed = [t for t in trials if t["total_seconds"] and t["epochs_trained"]]
    if not timed:
        return None
    return sum(t["total_seconds"] for t in timed) / sum(t["epochs_trained"] for t in timed)


def _planned_slots(results: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What the run going on (or last) planned (:data:`RUN_SLOTS_FILE`), and the GPU
    probe's result where that run takes its trials per GPU from it (``auto``): an
    earlier run's probe says nothing of a run on the CPU, or of one that sets the number."""
    planned = _read(results / RUN_SLOTS_FILE)
    planned = planned if isinstance(planned, dict) else {}
    if planned.get("trials_per_gpu") != "auto":
        return planned, None
    probe = _read(results / GPU_PROBE_FILE)
    return planned, probe if isinstance(probe, dict) else None


def _slots(
    planned: Mapping[str, Any], probe: Mapping[str, Any] | None, rungs: list[dict[str, Any]]
) -> dict[str, int]:
    """Trials each rung trains at once: as many as ran side by side, or as the run planned
    (its worker jobs, times the trials per GPU: ``probe``'s choice for ``auto``), whichever
    is more, and no more than the rung has; where neither says, the most seen in any rung.
    Trials of a few seconds rarely overlap, and a rung not started has none yet."""
    seen = max((r["workers"] for r in rungs), default=0) or 1
    lanes = planned.get("trials_per_gpu", 1)
    if lanes == "auto":  # what the GPU probe chose, once it has run
        lanes = probe.get("chosen", 1) if probe else 1
    lanes = lanes if isinstance(lanes, int) and lanes > 0 else 1
    slots = {}
    for rung in rungs:
        jobs = (planned.get("workers") or {}).get(rung["rung"])
        at_once = max(rung["workers"], jobs * lanes if isinstance(jobs, int) else 0) or seen
        slots[rung["rung"]] = max(1, min(at_once, rung["total"] or at_once))
    return slots


def _training_left(
    rungs: list[dict[str, Any]], mean: float, slots: Mapping[str, int] | None = None
) -> float:
    """Seconds of training the planned trials still need, each rung on its ``slots``
    (trials at once; one where not given).

    A rung's trials train at its own seconds per epoch once some have finished,
    else at the ladder's; counted in trial-epochs, since halving levels and reruns
    train for different lengths. A plan without epochs falls back to trials x mean
    time. Seed reruns are estimated per finalist (``_groups_left``).
    """
    epochs = sum(t["epochs_trained"] or 0 for r in rungs for t in r["trials"])
    overall = _seconds_per_epoch([t for r in rungs for t in r["trials"]]) or 0.0
    total = 0.0
    for rung in rungs:
        if rung["total"] is None:
            continue
        rate = _seconds_per_epoch(rung["trials"]) or overall
        if rung.get("groups_left") and epochs:
            left = _groups_left(rung, rungs, overall)
        elif rung["epochs_left"] and epochs:
            left = rate * rung["epochs_left"]
        else:
            left = (_mean_seconds(rung) or mean) * rung["trials_left"]
        total += left / _at_once(slots or {}, rung)
    return total


def _at_once(slots: Mapping[str, int], rung: Mapping[str, Any]) -> int:
    """Trials a rung trains at once from here: its slots, but no more than it has left."""
    return max(1, min(slots.get(rung["rung"], 1), rung["trials_left"]))


def _groups_left(rung: dict[str, Any], rungs: list[dict[str, Any]], fallback: float) -> float:
    """Seconds a rung of config groups still trains: each group at its own pace.

    Finalists differ in size (a wide net takes ten times a narrow one's epoch) and
    train in rank order, so the first finished reruns say little about the rest. A
    group that has finished trials trains at their rate; one that has not, at the
    rate of the sweep trial it came from, scaled by how the finished groups' reruns
    compared with their own sweep trials; a group with no source (the default
    config) at ``fallback``, the ladder's rate, not the finished groups' pace.
    """
    by_rung = {r["rung"]: r["trials"] for r in rungs}
    groups = {t["group"] for t in rung["trials"]} | set(rung["groups_left"])
    own = {g: _seconds_per_epoch([t for t in rung["trials"] if t["group"] == g]) for g in groups}
    source = {}
    for group, (name_of_rung, name) in rung.get("group_sources", {}).items():
        trials = [t for t in by_rung.get(name_of_rung, []) if t["name"] == name]
        source[group] = _seconds_per_epoch(trials)
    ratios = sorted(own[g] / source[g] for g in groups if own[g] and source.get(g))
    scale = ratios[len(ratios) // 2] if ratios else 1.0
    total = 0.0
    for group, epochs in rung["groups_left"].items():
        rate = own[group] or (source[group] * scale if source.get(group) else fallback)
        total += rate * epochs
    return total


def _step_kind(job: str) -> str:
    """Jobs that cost alike: every plan, every collect, a rung's workers' start-up."""
    if job.startswith("plan_"):
        return "plan"
    return job.split("/", 1)[1].split("-", 1)[0] if "/" in job else job


def _jobs_left(
    results: Path,
    config: Mapping[str, Any] | None,
    rungs: list[dict[str, Any]],
    shown: list[Rung],
) -> float:
    """Seconds the jobs around the trials still take, one after another.

    Each job waits on the one before it, so what is left is the sum over the steps
    not done (jobs that run side by side, as the two sanity checks, count as the
    slowest). A step costs what Snakemake measured for the same job (an earlier run
    of this ladder), else for its kind in this run (the coarse plan predicts the
    fine one), else a typical job of this run. A rung's workers cost their
    start-up: a worker job's seconds beyond its rung's training.
    """
    measured = read_benchmarks(results / "benchmarks")
    kinds: dict[str, list[float]] = {}
    for job, seconds in measured.items():
        if _step_kind(job) != "worker":
            kinds.setdefault(_step_kind(job), []).append(seconds)
    for rung in rungs:
        workers = [s for job, s in measured.items() if job.startswith(f"{rung['rung']}/worker")]
        if workers and rung["span"] is not None and rung["state"] == "done":
            startup = max(0.0, max(workers) - (rung["span"][1] - rung["span"][0]))
            kinds.setdefault("worker", []).append(startup)
    typical = [s for kind, times in kinds.items() if kind != "worker" for s in times]
    fallback = sum(typical) / len(typical) if typical else 0.0

    def cost(job: str) -> float:
        if job in measured and _step_kind(job) != "worker":
            return measured[job]
        if job == "log_mlflow" and config is not None:
            return _mirror_prior(config, rungs)
        times = kinds.get(_step_kind(job))
        return sum(times) / len(times) if times else fallback

    def there(*paths: str) -> bool:
        return all((results / path).is_file() for path in paths)

    closing = [REPORT.rules[-1]]
    if config is not None and config["mlflow"]["enabled"]:
        closing.append("log_mlflow")
    steps = [  # (jobs side by side, done)
        (PREPARE.rules, there(PREPARE.outputs["meta"])),
        (
            OVERFIT.rules + LR_RANGE.rules,
            there(OVERFIT.outputs["json"], LR_RANGE.outputs["json"]),
        ),
        (SELECT.rules, there(*SELECT.outputs.values())),
        (FINAL.rules[:1], there(FINAL.outputs["summary"])),
        (
            tuple(closing),
            there(REPORT.outputs["html"], *([MLFLOW_MARKER] if len(closing) > 1 else [])),
        ),
    ]
    for rung, row in zip(rungs, shown, strict=True):  # a rung's counts, and its table row
        name, outputs = row.name, row.outputs
        steps += [
            ((f"plan_{name}",), there(outputs["plan"])),
            # started once a trial ran: what the workers cost before training is behind
            ((f"{name}/worker",), bool(rung["trials"] or rung["running"])),
            ((f"{name}/collect",), there(outputs["results"])),
        ]
    return sum(max(cost(job) for job in jobs) for jobs, done in steps if not done)


def _mirror_prior(config: Mapping[str, Any], rungs: list[dict[str, Any]]) -> float:
    """Seconds the MLflow mirror will take, before it ever ran in this ladder.

    It runs last, so no job of the same kind has been measured when the estimate
    matters most, and it is the longest of the closing jobs: its start-up (torch
    and MLflow, the store, the model) and each trial it logs, at the rates measured
    on a 2-core machine (docs/benchmarks.md). Workers that mirror live leave it the
    start-up only.
    """
    if config["mlflow"]["live"]:
        return MIRROR_STARTUP_S
    cap = config["mlflow"].get("trial_runs")  # runs per rung (a config's levels count once)
    trials = [len(r["trials"]) + r["trials_left"] for r in rungs]  # every halving level
    logged = sum(n if cap is None else min(n, cap) for n in trials)
    return MIRROR_STARTUP_S + MIRROR_PER_TRIAL_S * logged


def _stopped_short(trial: Mapping[str, Any]) -> int:
    """A config that halving stopped short ranks below those that went further; one still
    going on does not: while it trains its next level, "best so far" would name a worse
    config, and then name it again once it finishes."""
    return 0 if trial.get("going_on") else halving_tier(trial)


def _best(rungs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best trial of the rungs that search (seed reruns repeat finalists)."""
    searched = {r.name for r in SEARCH_RUNGS}
    trials = [
        {**t, "rung": r["rung"]}
        for r in rungs
        if r["rung"] in searched
        for t in r["trials"]
        if not t.get("superseded")  # a halving config counts at its furthest level
    ]
    if not trials:
        return None
    # of equal values, the one that got there first: the line names the same trial
    # while later ones tie it, rather than whichever the folders list first
    trials.sort(key=lambda t: t["ended_at"])
    best = top(trials, 1, Direction(trials[0]["mode"]), tier=_stopped_short)
    if not best:
        return None
    return {
        "rung": best[0]["rung"],
        "name": best[0]["name"],
        "value": best[0]["best_val_metric"],
        "metric": best[0]["name_of_metric"],
    }


def _outputs_complete(
    results: Path,
    config: Mapping[str, Any] | None,
    shown: list[Rung],
    rungs: list[dict[str, Any]],
) -> bool:
    """The final rung ran after every planned trial, and what closes the ladder is there.

    A summary left from before the counts changed, or beside a rung still short of
    trials, does not count; a rung after the final one (sensitivity) is closed by its
    own results table; the MLflow mirror is a requested output too, often the last.
    """
    final = results / FINAL.outputs["summary"]
    if not final.is_file():
        return False
    if not all(r["total"] is not None and r["done"] >= r["total"] for r in rungs):
        return False
    after_final = {r.name for r in LADDER[LADDER.index(FINAL) + 1 :]}
    # sweep trials (and their halving levels) and the seed rung's own folders
    patterns = ("trials/*/result.json", "trials/*/e*/result.json", "*/result.json")
    for rung in shown:
        closing = results / rung.outputs["results"] if rung.name in after_final else final
        newest = max(
            (
                p.stat().st_mtime
                for pattern in patterns
                for p in (results / rung.name).glob(pattern)
            ),
            default=0.0,
        )
        if not closing.is_file() or closing.stat().st_mtime < newest:
            return False
    if config is not None and config["mlflow"]["enabled"]:
        return (results / MLFLOW_MARKER).is_file()
    return True


def _failures(rungs: list[dict[str, Any]]) -> dict[str, int]:
    """Trials that did not end ok, counted by how they ended."""
    failures: dict[str, int] = {}
    for rung in rungs:
        for t in rung["trials"]:
            if t["status"] != "ok":
                failures[t["status"]] = failures.get(t["status"], 0) + 1
    return failures


def ladder_status(
    results_dir: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    now: float | None = None,
    stale_s: float = 600.0,
    snakemake_running: bool = False,
) -> dict[str, Any]:
    """The ladder's progress as a dict (see :func:`format_status` for the text).

    ``config`` (the resolved experiment config), when given, supplies the trial
    counts of rungs not planned yet, so the estimate can cover them.
    ``snakemake_running``: a Snakemake process works in the ladder's folder
    (:func:`tuneladder.infra.stale_locks.lock_holders`), so the ladder runs even while
    no trial does (preparing, planning, reporting).
    """
    results = Path(results_dir)
    now = time.time() if now is None else now
    experiment = config["experiment"] if config else results.name
    if not results.is_dir():
        return {
            "experiment": experiment,
            "results": str(results),
            "state": "not started",
            "rungs": [],
        }
    planned = _planned_counts(config)
    shown = _trial_rungs(results, config)
    # one for every rung: the data's fingerprint and the code's are read once
    meta = _read(results / PREPARE.outputs["meta"]) or {}
    precision = config.get("precision") if config else None
    current = _CurrentRun(precision, data=meta.get("fingerprint"))
    rungs: list[dict[str, Any]] = []
    for rung in shown:
        # a rung before with trials still to train (the config now plans more fine
        # trials, say) will be collected again, and this rung planned again from it:
        # its old plan's trials are not this run's, and read as done ("6/6, left <1s")
        # (a rung before that is not planned at all: this rung's plan is an old run's)
        before = rungs[-1] if rungs else None
        before_done = before is None or (
            before["total"] is not None and before["done"] >= before["total"]
        )
        rungs.append(
            _rung(
                results,
                rung,
                planned[rung.name],
                stale_s,
                *_planned_work(config, rung),
                current=current,
                plan_current=before_done,
            )
        )
    # a running ladder adds and removes files (temporary ones, MLflow's journal) as
    # this reads: one that is gone by its stat is left out
    times = [t for p in results.rglob("*") if (t := _mtime(p)) is not None]
    running = sum(r["running"] for r in rungs)
    overfit = (_read(results / OVERFIT.outputs["json"]) or {}).get("passed")
    report = (results / REPORT.outputs["html"]).is_file()
    failed = _failed_jobs(results)
    planned, probe = _planned_slots(results)
    # finished: every requested output there, the report last; and nothing failed since
    finished = (
        not running and _outputs_complete(results, config, shown, rungs) and report and not failed
    )
    live = bool(running) or snakemake_running
    state = "finished" if finished else "running" if live else "failed" if failed else "stopped"
    started = min(times, default=now)
    # a stopped ladder's clock stopped with it: at its last file, not at now
    ended = now if live else max(times, default=now)
    return {
        "experiment": experiment,
        "results": str(results),
        "state": state,
        "sanity": {
            "overfit": overfit,
            "lr_range": (results / LR_RANGE.outputs["json"]).is_file(),
        },
        "gpu_probe": _probe_summary(probe),
        "rungs": rungs,
        "best": _best(rungs),
        "failures": _failures(rungs),
        "elapsed_s": max(0.0, ended - started),
        "trials_left": sum(r["trials_left"] for r in rungs if r["total"] is not None),
        "running_on": _running_on(rungs),
        **_estimate(
            results, config, rungs, shown, _slots(planned, probe, rungs), finished=finished
        ),
        "unplanned": [r["rung"] for r in rungs if r["total"] is None],
        "report": report,
        "failed_jobs": failed,
        "chosen": _chosen(results) if finished else None,
        "stop_asked": StopFile(results).read() if not finished else None,
    }


def _running_on(rungs: list[dict[str, Any]]) -> dict[str, int]:
    """Running trials by the GPU they train on (``GPU 1``; ``host GPU 1`` where they run
    on several hosts), for a person to see every GPU busy; empty on the CPU."""
    placed = [tuple(where) for rung in rungs for where in rung.get("running_on", [])]
    hosts = {host for host, _ in placed}
    named = Counter(gpu if len(hosts) == 1 else f"{host} {gpu}" for host, gpu in placed)
    # GPU 2 before GPU 10
    return dict(sorted(named.items(), key=lambda item: _natural(item[0])))


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _chosen(results: Path) -> dict[str, Any] | None:
    """What a finished ladder chose and how it did on test (``final/summary.json``): the
    best single sweep trial ("best so far") is seldom the config the seeds chose."""
    summary = _read(results / FINAL.outputs["summary"])
    if not isinstance(summary, dict):
        return None
    return {
        "label": finalist_label(summary.get("best_origin"), str(summary.get("best_group"))),
        "metric": summary.get("metric"),
        "test_mean": summary.get("test_mean"),
        "test_std": summary.get("test_std"),
        "seeds": len(summary.get("test_values") or []),
    }


def _probe_summary(probe: Mapping[str, Any] | None) -> str | None:
    """What the GPU probe chose, in a few words (None before it has run): the trials per
    GPU the sweeps run, and the throughput and memory that chose it."""
    if not probe or not isinstance(probe.get("chosen"), int):
        return None
    chosen = probe["chosen"]
    level = next((lv for lv in probe.get("levels") or () if lv.get("trials") == chosen), {})
    parts = []
    if level.get("speedup"):
        parts.append(f"{level['speedup']:.1f}x the throughput of one")
    if probe.get("per_trial_mb"):
        parts.append(f"{probe['per_trial_mb']:.0f} MB a trial")
    if probe.get("device_name"):
        parts.append(str(probe["device_name"]))
    what = "1 trial" if chosen == 1 else f"{chosen} trials side by side"
    return f"{what} on each GPU" + (f" ({', '.join(parts)})" if parts else "")


def _estimate(
    results: Path,
    config: Mapping[str, Any] | None,
    rungs: list[dict[str, Any]],
    shown: list[Rung],
    slots: Mapping[str, int],
    *,
    finished: bool,
) -> dict[str, Any]:
    """The time left, and its parts: the trials' training and the jobs around them, each
    rung's trials ``slots`` at once."""
    seconds = [t["total_seconds"] for r in rungs for t in r["trials"] if t["total_seconds"]]
    mean = sum(seconds) / len(seconds) if seconds else None
    current = next((r for r in rungs if r["trials_left"]), None)
    workers = _at_once(slots, current) if current else max(slots.values(), default=1)
    estimate = training = jobs = None
    if mean is not None and not finished:
        training = _training_left(rungs, mean, slots)
        jobs = _jobs_left(results, config, rungs, shown)
        estimate = training + jobs
    return {
        "mean_trial_s": mean,
        "workers": workers,
        "estimate_left_s": estimate,
        "estimate_training_s": training,
        "estimate_jobs_s": jobs,
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def format_status(status: Mapping[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = [f"experiment {status['experiment']} in {status['results']}: {status['state']}"]
    asked = status.get("stop_asked")
    if asked and status["state"] in ("running", "stopped"):
        when = time.strftime("%H:%M:%S", time.localtime(asked["asked_at"]))
        lines[0] += (
            f" (stop asked at {when} by {asked['by']}: each worker stops at its trial's"
            " next epoch end)"
            if status["state"] == "running"
            else f" (as asked at {when} by {asked['by']})"
        )
    if not status["rungs"]:
        return lines[0] + "\n"
    overfit = status["sanity"]["overfit"]
    failed_jobs = {job["job"] for job in status.get("failed_jobs", [])}
    if "overfit_check" in failed_jobs:
        overfit = False
    lines.append(
        "  sanity   overfit check "
        + ("not run" if overfit is None else "passed" if overfit else "FAILED")
        + ", LR range test "
        + ("done" if status["sanity"]["lr_range"] else "not run")
    )
    if status.get("gpu_probe"):
        lines.append(f"  gpu      probe chose {status['gpu_probe']}")
    for rung in status["rungs"]:
        if rung["state"] == "not started":
            up_to = "up to " if rung.get("up_to") else ""
            total = f" ({up_to}{rung['total']} trials)" if rung["total"] is not None else ""
            lines.append(f"  {rung['rung']:<8} not started{total}")
            continue
        bad: dict[str, int] = {}
        for t in rung["trials"]:
            if t["status"] != "ok":
                bad[t["status"]] = bad.get(t["status"], 0) + 1
        extra = [f"{rung['running']} running"] if rung["running"] else []
        extra += [f"{n} {s}" for s, n in sorted(bad.items())]
        if rung.get("stale"):
            what = " and the ".join(rung.get("stale_why") or ["code"])
            extra.append(f"{rung['stale']} to retrain: the {what} changed since they ran")
        if rung.get("resumable"):
            n = rung["resumable"]
            their = "its checkpoint" if n == 1 else "their checkpoints"
            extra.append(f"{n} stopped mid-way, to go on from {their}")
        lines.append(
            f"  {rung['rung']:<8} {rung['done']}/{rung['total']} done"
            + (f" ({', '.join(extra)})" if extra else "")
            + f"  [{rung['state']}]"
        )
        if rung.get("levels"):
            levels = ", ".join(
                f"{lv['done']}/{lv['total']} to {lv['epochs']}"
                + (f" ({lv['running']} running)" if lv["running"] else "")
                for lv in rung["levels"]
            )
            how = (
                " (async: promoted as trials finish)" if rung.get("halving_mode") == ASYNC else ""
            )
            if rung.get("grown"):
                how += f" (with {rung['grown']} grown configs)"
            lines.append(f"{'':11}halving levels{how}: {levels} epochs")
    if status.get("running_on"):
        lines.append(
            "  on GPUs: "
            + ", ".join(f"{gpu} ({n} running)" for gpu, n in status["running_on"].items())
        )
    best = status["best"]
    lines.append(
        "  best so far: "
        + (
            f"val {best['metric']} {best['value']:.4g} ({best['rung']} #{best['name']})"
            if best
            else "none yet"
        )
    )
    failures = status["failures"]
    lines.append(
        "  failures: "
        + (", ".join(f"{n} {s}" for s, n in sorted(failures.items())) if failures else "none")
    )
    for job in status.get("failed_jobs", []):
        lines.append(f"  FAILED {job['job']}: {job['reason']}")
    lines.append(f"  elapsed: {_duration(status['elapsed_s'])}")
    if status["state"] not in ("finished", "failed"):
        more = (
            f", plus {', '.join(status['unplanned'])} (not planned yet)"
            if status["unplanned"]
            else ""
        )
        # trials at once: worker jobs times the trials each trains side by side
        parts = f"{status['trials_left']} trials, {status['workers']} at once"
        if status.get("estimate_training_s") is not None:
            parts = (
                f"~{_duration(status['estimate_training_s'])} training: {parts},"
                f" ~{_duration(status['estimate_jobs_s'])} of jobs around them"
            )
        # a stopped run's clock stopped with it: what is left waits for a rerun
        left = "left" if status["state"] == "running" else "left for a rerun"
        lines.append(f"  {left}: ~{_duration(status['estimate_left_s'])} ({parts}{more})")
    elif status["report"]:
        if chosen := status.get("chosen"):
            test = mean_std({"mean": chosen["test_mean"], "std": chosen["test_std"]})
            lines.append(
                f"  chosen: {chosen['label']}, test {chosen['metric']} {test} over"
                f" {counted(chosen['seeds'], 'seed')}"
            )
        lines.append(f"  report: {status['results']}/{REPORT.outputs['html']}")
    return "\n".join(lines) + "\n"


def _kept(rung: Mapping[str, Any]) -> str | None:
    """What a stopped run kept of a rung: its trials done; for a sweep that halves, its
    configs through every level and the trainings of any level (all kept)."""
    trainings = sum(level["done"] for level in rung.get("levels") or [])
    if not (rung["done"] or trainings):
        return None
    if rung["total"] is None:
        return rung["rung"]
    if trainings > rung["done"]:
        return f"{rung['rung']} {rung['done']}/{rung['total']} configs, {trainings} trainings"
    return f"{rung['rung']} {rung['done']}/{rung['total']}"


def stop_line(status: Mapping[str, Any], command: str, since: float | None = None) -> str:
    """One line for a run that stopped (Ctrl-C, a failed job): what is kept, how to go on.
    ``since``: when this run started; a job whose failed log is older failed in an
    earlier run (or for another config), not in this one."""
    kept = [line for r in status["rungs"] if (line := _kept(r))]
    what = f"trials kept: {', '.join(kept)}" if kept else "no trial had finished"
    failed = [
        job
        for job in status.get("failed_jobs") or []
        if since is None or (_mtime(Path(job["log"])) or 0.0) >= since
    ]
    if failed:  # a rerun would fail the same way: the line says what to fix first
        jobs = ", ".join(job["job"] for job in failed[:3]) + (", ..." if len(failed) > 3 else "")
        return (
            f"stopped: {jobs} failed (its reason above, and in {failed[0]['log']}); {what}."
            f" Once that is fixed, `{command}` goes on from there"
        )
    # its folder named: `tuneladder status` alone reads config/config.yaml's experiment,
    # which --configfile or --config experiment=... may not have run
    where = f" --results {status['results']}" if status.get("results") else ""
    asked = status.get("stop_asked")
    how = f"stopped as asked, by {asked['by']}" if asked else "stopped before the end"
    return (
        f"{how} ({what}); `{command}` goes on from there,"
        f" and `tuneladder status{where}` shows where the ladder stands"
    )
