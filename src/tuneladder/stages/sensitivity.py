"""The optional sensitivity rung's plan, around the chosen config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneladder.ladder.rungs import (
    SEEDS,
    SENSITIVITY,
)
from tuneladder.store.io import read_json, write_json

__all__ = ["plan_sensitivity_stage"]

log = logging.getLogger("tuneladder")


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
    from tuneladder.search.sensitivity import Probes, plan_sensitivity
    from tuneladder.search.space import space_from_json

    chosen = read_json(summary)
    reference = [e for e in read_json(seeds)["trials"] if e.get("group") == chosen["best_group"]]
    plan = plan_sensitivity(
        TrialConfig.from_json(reference[0]["config"]).flat(),
        space_from_json(read_json(space)["coarse_space"]),
        applies=set(chosen["best_config"]),
        reference=reference,
        probes=Probes(
            values=sensitivity["values"],
            seeds=sensitivity["seeds"],
            epochs=sensitivity["epochs"],
        ),
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
