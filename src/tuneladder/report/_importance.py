"""Parameter importance: Optuna's fANOVA on a study rebuilt from the trial rows.

The sweeps do not drive an Optuna study (docs/decisions/), so the ok trials
of both sweep rungs are added to an in-memory study with the coarse space's
distributions (the fine space lies inside it). Log parameters are passed as
their base-10 logarithm on a linear axis: fANOVA integrates each marginal
uniformly over the parameter's box, and the log box is the one they were
sampled from. Importances are the fraction of the val metric's variance each
parameter explains alone (Optuna's unnormalised main effects); what the main
effects leave unexplained is due to interactions (and the forest's noise).

A conditional parameter is absent from the trials that did not sample it, and
fANOVA needs every parameter in every trial it fits. The main analysis takes
the parameters every ok trial sampled, over all of them; each of the others is
measured in a second fit over the trials that sampled it, beside those same
parameters. Its number is a share of the variance among those trials only, so
it is listed apart (``conditional``) and left out of the interactions' share.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneladder.core.direction import Direction, ok_value

__all__ = ["MIN_TRIALS", "fanova_importance"]

# Below this many ok trials the forest has too little to learn from.
MIN_TRIALS = 20
MAX_TRIALS = 200  # above it, the forest is fitted on a seeded sample of this many


def _transform(dist: BaseDistribution) -> BaseDistribution:
    if isinstance(dist, FloatDistribution | IntDistribution) and dist.log:
        return FloatDistribution(math.log10(dist.low), math.log10(dist.high))
    return dist


def _converter(dist: BaseDistribution) -> Callable[[Any], Any | None]:
    """A value as the transformed distribution holds it; None when it lies outside.

    One function per parameter, its bounds bound once: the report converts every
    ok trial's parameters, a million values at 100,000 trials.
    """
    if isinstance(dist, CategoricalDistribution):
        choices = dist.choices
        return lambda value: value if value in choices else None
    assert isinstance(dist, FloatDistribution | IntDistribution)
    low, high = dist.low, dist.high
    if dist.log:
        return lambda value: math.log10(value) if low <= value <= high else None
    if isinstance(dist, IntDistribution):
        return lambda value: int(value) if low <= value <= high else None
    return lambda value: float(value) if low <= value <= high else None


def fanova_importance(
    rows: Sequence[Mapping[str, Any]],
    space: Mapping[str, BaseDistribution],
    *,
    mode: Direction | str,
    seed: int,
    min_trials: int = MIN_TRIALS,
    max_trials: int = MAX_TRIALS,
) -> dict[str, Any]:
    """fANOVA main effects of the ok rows' val metric, with caveats.

    Above ``max_trials`` ok trials the forest is fitted on a seeded random sample of
    that many: its cost grows faster than the trials (a 1,000-trial sweep took a
    minute on 2 cores), and the caveats say so.

    Returns ``importances`` (name -> fraction of variance, None where not
    computed), ``interactions`` (1 - the sum over the parameters every trial
    sampled), ``trials`` (how many were used), ``conditional`` (name -> the
    trials that sampled it, for parameters absent from some) and ``caveats``
    (why the numbers may mean little, and any warning raised). Degenerate
    inputs (no parameter, fewer than two trials, a constant metric) give no
    importances and a caveat instead of an error.
    """
    pairs, skipped = _fitted_pairs(rows, space)
    ok_trials = len(pairs)
    if ok_trials > max_trials:
        import random

        pairs = random.Random(seed).sample(pairs, max_trials)
    trials = _study_trials(pairs, space)
    always = [name for name in space if all(name in t.params for t in trials)]
    conditional = {
        name: sum(name in t.params for t in trials) for name in space if name not in always
    }
    out: dict[str, Any] = {
        "method": "optuna FanovaImportanceEvaluator (main effects, unnormalised)",
        "seed": seed,
        "trials": len(trials),
        "ok_trials": ok_trials,
        "min_trials": min_trials,
        "importances": {name: None for name in space},
        "interactions": None,
        "conditional": conditional,
        "caveats": [],
    }
    caveats = out["caveats"]
    if skipped:
        caveats.append(f"{skipped} trials had values outside the coarse space and were left out")
    if ok_trials > len(trials):
        caveats.append(
            f"fitted on a random sample of {len(trials)} of the {ok_trials} ok trials"
            " (seeded; fANOVA's cost grows faster than the trials)"
        )
    blocker = _blocker(trials, space)
    if blocker:
        caveats.append(blocker)
        return out
    if len(trials) < min_trials:
        caveats.append(
            f"only {len(trials)} ok trials (fewer than {min_trials}): the forest behind"
            " fANOVA has little to learn from, so read these numbers as a rough hint"
        )
    if conditional:
        caveats.append(
            "sampled by some trials only, so measured among those trials: "
            + ", ".join(f"{name} ({n} trials)" for name, n in conditional.items())
        )
    importances, warned = _evaluate(trials, space, always, mode=mode, seed=seed)
    caveats.extend(warned)
    out["importances"] = dict(
        sorted(importances.items(), key=lambda kv: (kv[1] is None, -(kv[1] or 0.0)))
    )
    if always:
        out["interactions"] = max(0.0, 1.0 - sum(importances[name] or 0.0 for name in always))
    return out


def _fitted_pairs(
    rows: Sequence[Mapping[str, Any]], space: Mapping[str, BaseDistribution]
) -> tuple[list[tuple[dict[str, Any], float]], int]:
    """(params as the transformed distributions hold them, value) of each ok row, and how
    many ok rows had a value outside the space (left out)."""
    pairs, skipped = [], 0
    convert = [(name, _converter(dist)) for name, dist in space.items()]
    for row in rows:
        value = ok_value(row)
        if value is None:
            continue
        # a parameter the trial did not sample is absent from its params
        given = row["params"]
        params = {name: to(given[name]) for name, to in convert if name in given}
        if any(v is None for v in params.values()):
            skipped += 1
            continue
        pairs.append((params, float(value)))
    return pairs, skipped


def _study_trials(
    pairs: Sequence[tuple[dict[str, Any], float]], space: Mapping[str, BaseDistribution]
) -> list[Any]:
    import optuna

    dists = {name: _transform(dist) for name, dist in space.items()}
    return [
        optuna.trial.create_trial(
            params=params, distributions={n: dists[n] for n in params}, value=value
        )
        for params, value in pairs
    ]


def _blocker(trials: Sequence[Any], space: Mapping[str, BaseDistribution]) -> str | None:
    """Why no importance can be computed at all, or None."""
    if not space:
        return "the search space has no parameters"
    if len(trials) < 2:
        return f"only {len(trials)} ok trials: importance not computed"
    if len({t.value for t in trials}) < 2:
        return "every ok trial scored the same: importance not computed"
    return None


def _evaluate(
    trials: Sequence[Any],
    space: Mapping[str, BaseDistribution],
    always: Sequence[str],
    *,
    mode: Direction | str,
    seed: int,
) -> tuple[dict[str, float | None], list[str]]:
    """The main effects (the parameters every trial sampled together, each of the others
    among the trials that sampled it), and the warnings raised, as caveats."""
    import optuna

    importances: dict[str, float | None] = {name: None for name in space}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction=Direction(mode).optuna)
        study.add_trials(trials)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        if always:
            scores = evaluator.evaluate(study, params=list(always))
            importances.update({name: float(scores.get(name, 0.0)) for name in always})
        for name in space:
            if name in always:
                continue
            subset = [t for t in trials if name in t.params]
            if len(subset) >= 2 and len({t.value for t in subset}) >= 2:
                importances[name] = _main_effect(study, [*always, name], name, seed=seed)
    return importances, [f"{w.category.__name__}: {w.message}" for w in caught]


def _main_effect(study: Any, params: list[str], name: str, *, seed: int) -> float:
    """``name``'s main effect in a forest fitted on ``params``: what
    ``FanovaImportanceEvaluator(seed=seed).evaluate(study, params)[name]`` gives.

    The evaluator computes every parameter's marginal variance over all its trees,
    and a conditional parameter's fit needs only its own: the other eight of nine
    took a third of the report_sweeps job's fANOVA. This is the evaluator's own
    code (Optuna 5) asking for one feature; where Optuna's private modules have
    moved, it asks the evaluator for all of them.
    """
    try:
        from optuna._transform import _SearchSpaceTransform
        from optuna.importance._base import (
            _get_distributions,
            _get_filtered_trials,
            _get_target_values,
            _get_trans_params,
        )
        from optuna.importance._fanova._fanova import _Fanova
    except ImportError:  # pragma: no cover - another Optuna's layout
        import optuna

        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        return float(evaluator.evaluate(study, params=params).get(name, 0.0))
    distributions = _get_distributions(study, params=params)
    varied = {n: d for n, d in distributions.items() if not d.single()}
    trials = _get_filtered_trials(study, params=params, target=None)
    if name not in varied or len(trials) <= 1:
        return 0.0  # as the evaluator scores a single-valued parameter, or too few trials
    trans = _SearchSpaceTransform(varied, transform_log=False, transform_step=False)
    forest = _Fanova(n_trees=64, max_depth=64, min_samples_split=2, min_samples_leaf=1, seed=seed)
    forest.fit(
        X=_get_trans_params(trials, trans),
        y=_get_target_values(trials, None),
        search_spaces=trans.bounds,
        column_to_encoded_columns=trans.column_to_encoded_columns,
    )
    return float(forest.get_importance(list(varied).index(name))[0])
