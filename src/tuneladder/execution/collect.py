"""Gather a rung's trial results into one table, refusing an incomplete rung.

Trial files are not Snakemake outputs (a killed worker must not take finished
trials with it), so this is where a rung is checked for completeness, by the
same rule the workers apply (:func:`tuneladder.store.trials.stale_reason`). Reading
JSON needs no torch, and this module does not import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneladder.core.direction import Direction
from tuneladder.execution.promotions import PROMOTIONS_FILE, replay
from tuneladder.search.asha import ASYNC, mode_of
from tuneladder.search.halving import Levels, asked_level, level_dir, merge_levels
from tuneladder.search.tpe import resolved_entries
from tuneladder.store.io import write_json
from tuneladder.store.trials import (
    KEEP_TRIALS,
    Code,
    code_fingerprint,
    entry_key,
    read_result,
    stale_reason,
)

__all__ = ["IncompleteRung", "collect_async", "collect_halving", "collect_rung", "ROW_FIELDS"]

ROW_FIELDS = (
    "status",
    "reason",
    "best_val_metric",
    "best_val_loss",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "train_seconds",
    "total_seconds",
    "peak_memory_mb",
    "seed",
    "device",
    "host",
    "slurm_job_id",
    "first_loss",
    "final_train_loss",
    "final_val_loss",
    "curve",  # what the failure rules read of the history (tuneladder.core.curves)
)


class IncompleteRung(RuntimeError):
    """Some trials of a rung have no complete result."""


def collect_rung(
    plan: Mapping[str, Any],
    rung_dir: str | Path,
    *,
    data_fingerprint: str,
    metric: str,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """One row per planned trial: its name, dir, params and headline numbers.

    A trial counts when its result carries the key the workers gave it (the run's
    ``precision`` is part of it).

    A sweep trial's row also has ``sampled``, the values its sampler chose and
    the trial used: a searched parameter it did not sample (its condition
    failed) is absent there, while ``params`` holds every value it trained with.
    """
    rung_dir = Path(rung_dir)
    rows, missing = [], []
    codes: dict[str | None, Code] = {}  # the code now, by task module
    for entry in resolved_entries(plan, rung_dir):
        if "config" not in entry:  # a round of a tpe sweep that was never asked
            missing.append(f"{entry['name']}: round {entry['round']} not asked yet")
            continue
        result = read_result(rung_dir / entry["dir"])
        # the rung does not know its task: the result names the module it hashed
        module = ((result or {}).get("code") or {}).get("task_module")
        if module not in codes:
            codes[module] = code_fingerprint(module)
        code = codes[module]
        key = entry_key(entry, data_fingerprint, metric, code.fingerprint, precision)
        reason = stale_reason(result, key, code)
        if result is None or reason is not None:
            missing.append(f"{entry['name']}: {reason}")
            continue
        row = {
            "rung": plan["rung"],
            "name": entry["name"],
            "index": entry["index"],
            # a halving level's trials are in its sweep's folder: "../../trials/7/e9"
            "dir": os.path.normpath(rung_dir / entry["dir"]),
            "params": result["params"],
        }
        row.update({k: result.get(k) for k in ROW_FIELDS})
        for extra in ("sampled", "round", "group", "seed_index", "level"):
            if extra in entry:
                row[extra] = entry[extra]
        rows.append(row)
    if missing:
        shown = "; ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        advice = "Run snakemake again to finish them."
        if any("stale: code changed" in m for m in missing):
            advice = (
                "The code changed since they ran: run snakemake again, whose workers rerun"
                f" for a code change and train them again, or set {KEEP_TRIALS}=1 to keep"
                " them as they are."
            )
        raise IncompleteRung(
            f"{plan['rung']}: {len(missing)} of {len(plan['trials'])} trials have no complete"
            f" result ({shown}); a worker was stopped early, or the trials changed since it"
            f" ran. {advice}"
        )
    return rows


def collect_halving(
    plan: Mapping[str, Any],
    sweep_dir: str | Path,
    *,
    data_fingerprint: str,
    metric: str,
    mode: Direction | str,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """A sweep that halves: one row per config, from the furthest level it reached.

    Each level is planned again from the table of the level before, as the
    workers planned it (the same :class:`~tuneladder.search.halving.Levels`), and
    collected on its own, so a level that is not complete is refused with its
    own trials named. A sweep that halves asynchronously has its levels' configs
    from its promotion log (:func:`collect_async`).
    """
    key_parts = {"data_fingerprint": data_fingerprint, "metric": metric, "precision": precision}
    if mode_of(plan.get("halving")) == ASYNC:
        return collect_async(plan, sweep_dir, mode=mode, **key_parts)
    levels = Levels(plan, mode)
    for level_plan in levels:
        folder = Path(sweep_dir) / level_dir(level_plan["level"])
        levels.tell(collect_rung(level_plan, folder, **key_parts))
    return levels.merged()


def collect_async(
    plan: Mapping[str, Any],
    sweep_dir: str | Path,
    *,
    data_fingerprint: str,
    metric: str,
    mode: Direction | str,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """A sweep that halved asynchronously: each level's configs are those its promotion
    log asked there; each level is collected on its own and written down as its
    ``levels/<level>/plan.json`` (for ``status`` and the report), then merged.

    Refused while the log's rule is not done: a config not started, a training
    not finished, or a promotion not asked yet.
    """
    sweep_dir = Path(sweep_dir)
    key_parts = {"data_fingerprint": data_fingerprint, "metric": metric, "precision": precision}
    rule = replay(plan, sweep_dir, mode)
    if not rule.done:
        started = rule.asked_at(0)
        unasked = sum(1 for entry in plan["trials"] if entry["name"] not in started)
        running = sum(len(rule.running(level)) for level in range(len(rule)))
        raise IncompleteRung(
            f"{plan['rung']}: asynchronous halving is not finished ({unasked} configs not"
            f" started, {running} trainings not finished, per {sweep_dir / PROMOTIONS_FILE})."
            " Run snakemake again to finish them."
        )
    tables = []
    for level in range(len(rule)):
        level_plan = asked_level(plan, level, rule.asked_at(level))
        folder = sweep_dir / level_dir(level)
        write_json(folder / "plan.json", level_plan)
        tables.append(collect_rung(level_plan, folder, **key_parts))
    # a growing sweep's table has its trials, then the reserve configs it trained
    grown = set(rule.grown)
    reserve = [entry for entry in plan.get("reserve", ()) if entry["name"] in grown]
    rows = merge_levels({**plan, "trials": [*plan["trials"], *reserve]}, tables)
    for row in rows:
        if row["name"] in grown:
            row["grown"] = True
    return rows
