"""Parameter importance: Optuna's fANOVA on a study rebuilt from the trial rows.

The sweeps do not drive an Optuna study (docs/architecture.md), so the ok trials
of both sweep rungs are added to an in-memory study with the coarse space's
distributions (the fine space lies inside it). Log parameters are passed as
their base-10 logarithm on a linear axis: fANOVA integrates each marginal
uniformly over the parameter's box, and the log box is the one they were
sampled from. Importances are the fraction of the val metric's variance each
parameter explains alone (Optuna's unnormalised main effects); what the main
effects leave unexplained is due to interactions (and the forest's noise).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneladder.direction import Direction, ok_value

__all__ = ["MIN_TRIALS", "fanova_importance"]

# Below this many ok trials the forest has too little to learn from.
MIN_TRIALS = 20


def _transform(dist: BaseDistribution) -> BaseDistribution:
    if isinstance(dist, FloatDistribution | IntDistribution) and dist.log:
        return FloatDistribution(math.log10(dist.low), math.log10(dist.high))
    return dist


def _value(dist: BaseDistribution, value: Any) -> Any | None:
    """The value as the transformed distribution holds it; None when it lies outside."""
    if isinstance(dist, CategoricalDistribution):
        return value if value in dist.choices else None
    assert isinstance(dist, FloatDistribution | IntDistribution)
    if not dist.low <= value <= dist.high:
        return None
    if dist.log:
        return math.log10(value)
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def fanova_importance(
    rows: Sequence[Mapping[str, Any]],
    space: Mapping[str, BaseDistribution],
    *,
    mode: Direction | str,
    seed: int,
    min_trials: int = MIN_TRIALS,
) -> dict[str, Any]:
    """fANOVA main effects of the ok rows' val metric, with caveats.

    Returns ``importances`` (name -> fraction of variance, None where not
    computed), ``interactions`` (1 - their sum), ``trials`` (how many were used)
    and ``caveats`` (why the numbers may mean little, and any warning raised).
    Degenerate inputs (no parameter, fewer than two trials, a constant metric)
    give no importances and a caveat instead of an error.
    """
    import optuna

    dists = {name: _transform(dist) for name, dist in space.items()}
    trials, skipped = [], 0
    for row in rows:
        value = ok_value(row)
        if value is None:
            continue
        params = {name: _value(space[name], row["params"].get(name)) for name in space}
        if any(v is None for v in params.values()):
            skipped += 1
            continue
        trials.append(
            optuna.trial.create_trial(params=params, distributions=dists, value=float(value))
        )
    out: dict[str, Any] = {
        "method": "optuna FanovaImportanceEvaluator (main effects, unnormalised)",
        "seed": seed,
        "trials": len(trials),
        "min_trials": min_trials,
        "importances": {name: None for name in space},
        "interactions": None,
        "caveats": [],
    }
    caveats = out["caveats"]
    if skipped:
        caveats.append(f"{skipped} trials had values outside the coarse space and were left out")
    if not space:
        caveats.append("the search space has no parameters")
        return out
    if len(trials) < 2:
        caveats.append(f"only {len(trials)} ok trials: importance not computed")
        return out
    if len({t.value for t in trials}) < 2:
        caveats.append("every ok trial scored the same: importance not computed")
        return out
    if len(trials) < min_trials:
        caveats.append(
            f"only {len(trials)} ok trials (fewer than {min_trials}): the forest behind"
            " fANOVA has little to learn from, so read these numbers as a rough hint"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction=Direction(mode).optuna)
        study.add_trials(trials)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        scores = evaluator.evaluate(study)
    for warning in caught:
        caveats.append(f"{warning.category.__name__}: {warning.message}")
    importances = {name: float(scores.get(name, 0.0)) for name in space}
    out["importances"] = dict(sorted(importances.items(), key=lambda kv: -kv[1]))
    out["interactions"] = max(0.0, 1.0 - sum(importances.values()))
    return out
