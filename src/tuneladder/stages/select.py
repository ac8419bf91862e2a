"""Between the sweeps and after them: top-k and the fine space, the seed reruns' plan."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneladder.ladder.rungs import (
    BASELINE,
    SEEDS,
    trial_order,
)
from tuneladder.stages.common import StageError, _task
from tuneladder.stages.sweep import _sampled
from tuneladder.store.io import read_json, write_json

__all__ = ["plan_seeds_stage", "select_top_k_stage"]

log = logging.getLogger("tuneladder")


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
    from tuneladder.search.selection import top_distinct, tunable
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
            "params": tunable(r["params"]),
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
