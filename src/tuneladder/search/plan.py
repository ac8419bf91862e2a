"""Plans: the full list of trials of a rung, fixed before any of them runs.

A plan is a pure function of its inputs, so the DAG stays static and a rerun
plans the same trials; trial ``i`` does not depend on how many trials there are.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneladder.core.hparams import TrialConfig
from tuneladder.search.space import Conditions, Space, active, sample, space_to_json
from tuneladder.store.trials import derive_seed, make_trial_config

__all__ = ["ConfigMaker", "plan_seeds", "plan_sweep"]


@dataclass(frozen=True, kw_only=True)
class ConfigMaker:
    """How a sweep turns sampled values into a trial's config: over the fixed ``base``
    hyperparameters, for ``epochs``, with only the sampled values the trial reads.

    A sampled value the trial would not use (its ``conditions`` fail, or the
    task's ``model_applies`` leaves it out) is dropped and the trial keeps the
    fixed value (:func:`tuneladder.search.space.active`). A plan of samples and
    a TPE round's asks make their configs the same way, here.
    """

    base: Mapping[str, Any]
    epochs: int
    conditions: Conditions = field(default_factory=dict)
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None

    def make(self, sampled: Mapping[str, Any], *, seed: int) -> tuple[dict[str, Any], TrialConfig]:
        """The sampled values the trial uses, and its config with ``seed``."""
        used = active(
            sampled, self.base, conditions=self.conditions, model_applies=self.model_applies
        )
        return used, make_trial_config(self.base, used, epochs=self.epochs, seed=seed)


def plan_sweep(
    rung: str,
    space: Space,
    *,
    sampler: str,
    trials: int,
    configs: ConfigMaker,
    ladder_seed: int,
) -> dict[str, Any]:
    """``trials`` configs sampled from ``space``, each made by ``configs``."""
    entries = []
    for index in range(trials):
        # the sampler's stream is keyed by rung, so coarse and fine never repeat each other
        sampled = sample(
            space, sampler=sampler, index=index, seed=derive_seed(ladder_seed, f"{rung}-space", 0)
        )
        sampled, config = configs.make(sampled, seed=derive_seed(ladder_seed, rung, index))
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
        "conditions": dict(configs.conditions),
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
