"""Search spaces on Optuna's distributions, and index-addressable samplers.

The config of trial ``i`` is a pure function of (space, sampler, i, seed): it
does not depend on how many trials the sweep has, nor on which worker runs it.
That is why the samplers here map a per-index point of the unit cube onto the
distributions instead of driving an Optuna study: Optuna's ``QMCSampler``
samples its first trial independently and categorical parameters at random,
and its ``RandomSampler`` draws from one stream shared by all trials.

Conditional parameters keep that purity: every trial draws a value for every
dimension, and :func:`active` then drops the values the trial would not read
(``momentum`` for adamw, ``channels`` for an MLP) or whose ``when`` fails, so
trial ``i`` of a space with conditions still takes point ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

__all__ = [
    "SAMPLERS",
    "Conditions",
    "Space",
    "active",
    "conditions_from_config",
    "sample",
    "space_from_config",
    "space_from_json",
    "space_to_json",
]

Space = dict[str, BaseDistribution]
# parameter -> {another parameter: the values under which it is sampled}
Conditions = dict[str, dict[str, list[Any]]]
SAMPLERS = ("random", "sobol")


def space_from_config(
    spec: Mapping[str, Any], *, lr_range: tuple[float, float] | None = None
) -> Space:
    """Turn the config's ``space`` section into Optuna distributions.

    ``lr: auto`` needs ``lr_range`` (from the LR range test).
    """
    space: Space = {}
    for name, entry in sorted(spec.items()):
        if entry == "auto":
            if lr_range is None:
                raise ValueError(f"space.{name} is 'auto' but no LR range test result was given")
            low, high = lr_range
            space[name] = FloatDistribution(low, high, log=True)
        elif entry["dist"] == "loguniform":
            space[name] = FloatDistribution(float(entry["low"]), float(entry["high"]), log=True)
        elif entry["dist"] == "uniform":
            space[name] = FloatDistribution(float(entry["low"]), float(entry["high"]))
        elif entry["dist"] == "int":
            low, high = int(entry["low"]), int(entry["high"])
            space[name] = IntDistribution(low, high, log=bool(entry.get("log", False)))
        elif entry["dist"] == "choice":
            space[name] = CategoricalDistribution(list(entry["values"]))
        else:
            raise ValueError(f"space.{name}.dist is unknown: {entry['dist']!r}")
    return space


def conditions_from_config(spec: Mapping[str, Any]) -> Conditions:
    """The ``when`` of each entry of the config's ``space``, with single values as lists.

    Example::

        >>> conditions_from_config({"channels": {"dist": "int", "low": 8, "high": 32,
        ...                                      "when": {"arch": "cnn"}}})
        {'channels': {'arch': ['cnn']}}
    """
    out: Conditions = {}
    for name, entry in sorted(spec.items()):
        when = entry.get("when") if isinstance(entry, Mapping) else None
        if when:
            out[name] = {
                other: list(values) if isinstance(values, list) else [values]
                for other, values in sorted(when.items())
            }
    return out


def active(
    sampled: Mapping[str, Any],
    base: Mapping[str, Any],
    *,
    conditions: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
) -> dict[str, Any]:
    """The sampled values a trial uses; the others fall back to the fixed ``base`` values.

    A value is dropped when its ``when`` fails or when the trial would not read it
    (:func:`tuneladder.core.hparams.unused`, with the task's ``applies``). Dropping one
    value can drop another (``channels`` when ``arch`` itself fell back to
    ``mlp``), so this repeats until nothing changes.

    Example::

        >>> active({"optimizer": "adamw", "momentum": 0.8, "lr": 0.01}, {"optimizer": "sgd"})
        {'optimizer': 'adamw', 'lr': 0.01}
    """
    from tuneladder.core.hparams import unused

    conditions = conditions or {}
    kept = dict(sampled)
    while True:
        flat = {**base, **kept}
        drop = unused(flat, model_applies=model_applies) & set(kept)
        drop |= {
            name
            for name in kept
            if any(
                flat.get(other) not in values for other, values in conditions.get(name, {}).items()
            )
        }
        if not drop:
            return kept
        kept = {name: value for name, value in kept.items() if name not in drop}


def space_to_json(space: Space) -> dict[str, str]:
    return {name: distribution_to_json(dist) for name, dist in space.items()}


def space_from_json(data: Mapping[str, str]) -> Space:
    return {name: json_to_distribution(text) for name, text in data.items()}


def sample(space: Space, *, sampler: str, index: int, seed: int) -> dict[str, Any]:
    """The parameters of trial ``index``: same inputs, same output, always."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index=}")
    names = sorted(space)
    point = _unit_point(sampler, dims=len(names), index=index, seed=seed)
    return {name: _from_unit(space[name], u) for name, u in zip(names, point, strict=True)}


def _unit_point(sampler: str, *, dims: int, index: int, seed: int) -> np.ndarray:
    if dims == 0:
        return np.empty(0)
    if sampler == "random":
        return np.random.default_rng([seed, index]).random(dims)
    if sampler == "sobol":
        return _sobol_points(dims, seed, index + 1)[index]
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")


_SOBOL: dict[tuple[int, int], np.ndarray] = {}


def _sobol_points(dims: int, seed: int, count: int) -> np.ndarray:
    """The first ``count`` (at least) points of the seeded, scrambled sequence.

    Point i is the same as a fresh engine fast-forwarded by i gives, but a plan of
    thousands of trials builds the engine once instead of once per trial.
    """
    points = _SOBOL.get((dims, seed))
    if points is None or len(points) < count:
        from scipy.stats import qmc

        engine = qmc.Sobol(d=dims, scramble=True, seed=np.random.default_rng(seed))
        size = max(64, 1 << (count - 1).bit_length())  # powers of two keep Sobol balanced
        points = engine.random(size)
        _SOBOL[(dims, seed)] = points
    return points


def _from_unit(dist: BaseDistribution, u: float) -> Any:
    u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(u * len(dist.choices))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            # log-uniform over [low, high + 1), floored: every integer is reachable
            lo, hi = math.log(dist.low), math.log(dist.high + 1)
            return int(min(math.floor(math.exp(lo + u * (hi - lo))), dist.high))
        return int(dist.low + math.floor(u * (dist.high - dist.low + 1)))
    if isinstance(dist, FloatDistribution):
        if dist.log:
            lo, hi = math.log(dist.low), math.log(dist.high)
            return float(math.exp(lo + u * (hi - lo)))
        return float(dist.low + u * (dist.high - dist.low))
    raise TypeError(f"unsupported distribution {type(dist).__name__}")
