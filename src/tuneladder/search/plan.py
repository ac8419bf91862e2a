"""Plans: the full list of trials of a rung, fixed before any of them runs.

A plan is a pure function of its inputs, so the DAG stays static and a rerun
plans the same trials; trial ``i`` does not depend on how many trials there are.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from tuneladder.search.space import Conditions, Space, active, sample, space_to_json
from tuneladder.store.trials import derive_seed, make_trial_config

__all__ = ["plan_seeds", "plan_sweep"]


def plan_sweep(
    rung: str,
    space: Space,
    *,
    sampler: str,
    trials: int,
    epochs: int,
    base: Mapping[str, Any],
    ladder_seed: int,
    conditions: Conditions | None = None,
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
) -> dict[str, Any]:
    """``trials`` configs sampled from ``space`` over the fixed ``base`` hyperparameters.

    A sampled value the trial would not use (``conditions``, and the task's
    ``model_applies``) is dropped: the trial keeps the fixed value
    (:func:`tuneladder.search.space.active`).
    """
    entries = []
    for index in range(trials):
        # the sampler's stream is keyed by rung, so coarse and fine never repeat each other
        sampled = sample(
            space, sampler=sampler, index=index, seed=derive_seed(ladder_seed, f"{rung}-space", 0)
        )
        sampled = active(sampled, base, conditions=conditions, model_applies=model_applies)
        config = make_trial_config(
            base, sampled, epochs=epochs, seed=derive_seed(ladder_seed, rung, index)
        )
        entries.append(
            {
                "name": str(index),
                "index": index,
                "dir": f"trials/{index}",
                "sampled": sampled,
                "config": config.to_json(),
            }
        )
    return {
        "rung": rung,
        "sampler": sampler,
        "space": space_to_json(space),
        "conditions": dict(conditions or {}),
        "trials": entries,
    }


def plan_seeds(
    finalists: Sequence[Mapping[str, Any]],
    *,
    seeds: int,
    epochs: int,
    baseline: Mapping[str, Any],
    ladder_seed: int,
    rung: str,
    baseline_group: str,
) -> dict[str, Any]:
    """Each finalist and the untuned baseline, once per seed, at full epochs.

    Every config gets the same seeds, so that finalists are compared on equal
    luck (same data order), and the baseline is measured exactly as they are.
    ``rung`` (the plan's rung, whose name seeds the trials) and ``baseline_group``
    (the baseline's group) come from the ladder's table, which search does not read.
    """
    groups = [(str(rank), f["params"]) for rank, f in enumerate(finalists)]
    groups.append((baseline_group, baseline))
    entries = []
    for group, params in groups:
        for s in range(seeds):
            config = make_trial_config(
                params, {}, epochs=epochs, seed=derive_seed(ladder_seed, rung, s)
            )
            name = f"{group}-{s}"
            entries.append(
                {
                    "name": name,
                    "index": len(entries),
                    "dir": name,
                    "group": group,
                    "seed_index": s,
                    "config": config.to_json(),
                }
            )
    return {"rung": rung, "finalists": list(finalists), "trials": entries}
