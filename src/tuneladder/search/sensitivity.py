"""The sensitivity rung's plan: one hyperparameter at a time, around the chosen config.

After the final choice, each searched hyperparameter that applies to the chosen
config is set to a few values around the chosen one while every other stays as
chosen: the methodology's targeted experiment, which attributes a change of the
val metric to one hyperparameter. Each value runs with the seed rung's seeds,
so the chosen value's own point is the seed rung's trials when the epochs
match, and every point is measured on the same luck. Like every plan, it is a
pure function of its inputs (the chosen config, the searched space, the
counts and the ladder's seed): the DAG stays static and a rerun plans the same
trials. Its trials train on the train split and are scored on val only; the
test split stays the final rung's, read once.

Example:
    >>> from optuna.distributions import FloatDistribution
    >>> [round(v, 6) for v in probe_values(FloatDistribution(1e-5, 1e-1, log=True), 1e-3, 3)]
    [0.0001, 0.001, 0.01]
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneladder.core.hparams import TrialConfig
from tuneladder.search.space import Space, space_to_json
from tuneladder.store.trials import derive_seed, make_trial_config

__all__ = ["CHOSEN", "Probes", "describe_parameter", "plan_sensitivity", "probe_values"]

# The group of the chosen config's own trials, when this rung trains them.
CHOSEN = "chosen"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.]+")


def probe_values(dist: BaseDistribution, chosen: Any, values: int) -> list[Any]:
    """The values one hyperparameter takes in the rung, the chosen one included, in order.

    Numbers are spaced evenly (log ranges in log space) with a step of an eighth
    of the searched width for five values (``width / (2 (values - 1))``), so
    they span half the searched range; the window is centred on the chosen value
    and slid inwards where it would leave the range, so every value was
    searchable and the chosen one near an end has its neighbours on one side;
    where the range goes on past the chosen one by half a step or more, its
    bound is tried there instead of the farthest neighbour. Ints are rounded (at
    least one apart on a linear range; all of a small range) and duplicates
    dropped. A categorical tries every choice.
    """
    if values < 2:
        raise ValueError(f"values must be >= 2, got {values=}")
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if not isinstance(dist, FloatDistribution | IntDistribution):
        raise TypeError(f"unsupported distribution {type(dist).__name__}")
    is_int = isinstance(dist, IntDistribution)
    if is_int and not dist.log and dist.high - dist.low + 1 <= values:
        return list(range(int(dist.low), int(dist.high) + 1))
    to, back = (math.log10, lambda t: 10.0**t) if dist.log else (float, float)
    low, high, centre = to(dist.low), to(dist.high), to(min(max(chosen, dist.low), dist.high))
    if high <= low:
        return [chosen]
    step = (high - low) / (2 * (values - 1))
    if is_int and not dist.log:
        step = max(1.0, float(round(step)))
    # the first point's offset in steps: centred, then slid back inside [low, high]
    first = -((values - 1) // 2)
    first = max(first, math.ceil((low - centre) / step - 1e-9))
    first = min(first, math.floor((high - centre) / step + 1e-9) - (values - 1))
    points: list[float | None] = [  # None: the chosen value itself
        None if k == 0 else centre + k * step for k in range(first, first + values)
    ]
    # slid so far that no value lies on one side of the chosen one, though the range
    # goes on there for half a step or more: its bound replaces the farthest value, so
    # that an "edge" verdict means the range's end was tried
    # (with 3 values or more: with 2, the bound would take the only neighbour's place)
    if values >= 3 and first + values - 1 <= 0 and (high - centre) / step >= 0.5:
        points = [*points[1:], high]
    elif values >= 3 and first >= 0 and (centre - low) / step >= 0.5:
        points = [low, *points[:-1]]
    out: list[Any] = []
    for point in points:
        if point is None:
            value = chosen  # exactly as chosen: its point is the chosen config
        else:
            value = min(max(back(point), dist.low), dist.high)
            value = int(round(value)) if is_int else float(value)
        if value not in out:
            out.append(value)
    return out


def describe_parameter(dist: BaseDistribution) -> dict[str, Any]:
    """The searched range as plain JSON: ``type`` (choice, int, float), bounds or choices,
    and ``kind``, the axis its values lie on (``choice``, ``log``, ``int``, ``linear``)."""
    if isinstance(dist, CategoricalDistribution):
        return {"kind": "choice", "type": "choice", "choices": list(dist.choices), "log": False}
    assert isinstance(dist, FloatDistribution | IntDistribution)
    is_int = isinstance(dist, IntDistribution)
    return {
        "kind": "log" if dist.log else "int" if is_int else "linear",
        "type": "int" if is_int else "float",
        "low": dist.low,
        "high": dist.high,
        "log": bool(dist.log),
    }


def _trial_stem(name: str, position: int) -> str:
    # trial folders are named after the hyperparameter when its name is a safe path part
    return name if _SAFE_NAME.fullmatch(name) and name != CHOSEN else f"p{position}"


@dataclass(frozen=True, kw_only=True)
class Probes:
    """How each hyperparameter is probed: the counts of the config's ``sensitivity`` section.

    Attributes:
        values: values per hyperparameter, the chosen one included.
        seeds: seeds per value: the seed rung's first ``seeds`` seeds.
        epochs: epochs per trial.
    """

    values: int
    seeds: int
    epochs: int


def plan_sensitivity(
    chosen: Mapping[str, Any],
    space: Space,
    *,
    applies: Collection[str],
    reference: Sequence[Mapping[str, Any]],
    probes: Probes,
    ladder_seed: int,
    rung: str,
    seeds_rung: str,
) -> dict[str, Any]:
    """Every trial of the rung: each hyperparameter of ``space`` that ``applies``, one at a time.

    Args:
        chosen: the chosen config's flat hyperparameters, without epochs and seed.
        space: the searched space (the coarse one: the ranges the user gave).
        applies: the hyperparameters that apply to the chosen config; the others
            would change nothing (``width`` of a CNN) and are skipped.
        reference: the seed rung's trials of the chosen config (``name``,
            ``seed_index``, ``config``): the chosen point reuses those whose
            config equals the one this rung would train.
        probes: values per hyperparameter, seeds per value and epochs per trial.
        ladder_seed: the ladder's seed.
        rung: this rung's name; seeds_rung: the seed reruns' (their names seed
            the trials, and the chosen point's trials are theirs where equal).

    Returns:
        The plan: ``parameters`` (per hyperparameter its values, or why it is
        skipped), ``centre`` (the chosen point's trials, by rung and name) and
        ``trials`` (what the workers train).
    """
    seed_values = [derive_seed(ladder_seed, seeds_rung, s) for s in range(probes.seeds)]
    base = {k: v for k, v in chosen.items() if k not in ("epochs", "seed")}
    trials = _Trials(base=base, epochs=probes.epochs, seeds=seed_values)
    centre = _centre(trials, reference, rung=rung, seeds_rung=seeds_rung)
    parameters: dict[str, dict[str, Any]] = {}
    for position, (name, dist) in enumerate(sorted(space.items())):
        parameters[name] = _probe(
            trials, name, dist, position=position, applies=applies, values=probes.values
        )
    return {
        "rung": rung,
        "chosen": base,
        "values": probes.values,
        "seeds": seed_values,
        "epochs": probes.epochs,
        "space": space_to_json(space),
        "parameters": parameters,
        "centre": centre,
        "trials": trials.entries,
    }


@dataclass(kw_only=True)
class _Trials:
    """The plan's trials in the order they are added: the chosen ``base`` config with
    the sampled values changed, for ``epochs``, with the seed rung's ``seeds``."""

    base: Mapping[str, Any]
    epochs: int
    seeds: Sequence[int]
    entries: list[dict[str, Any]] = field(default_factory=list)

    def config(self, sampled: Mapping[str, Any], s: int) -> TrialConfig:
        return make_trial_config(self.base, sampled, epochs=self.epochs, seed=self.seeds[s])

    def add(self, group: str, stem: str, sampled: Mapping[str, Any], s: int, **extra: Any) -> str:
        """Plan the trial of ``sampled`` with the ``s``-th seed; returns its name."""
        config = self.config(sampled, s)
        name = f"{stem}-{s}"
        self.entries.append(
            {
                "name": name,
                "index": len(self.entries),
                "dir": f"trials/{name}",
                "group": group,
                "seed_index": s,
                **extra,
                "config": config.to_json(),
            }
        )
        return name


def _centre(
    trials: _Trials, reference: Sequence[Mapping[str, Any]], *, rung: str, seeds_rung: str
) -> list[dict[str, Any]]:
    """The chosen point's trial per seed: the seed rung's where its config is the one
    this rung would train, else one this rung plans (group :data:`CHOSEN`)."""
    by_seed = {int(r["seed_index"]): r for r in reference}
    centre = []
    for s in range(len(trials.seeds)):
        own = trials.config({}, s).to_json()
        seed_trial = by_seed.get(s)
        if seed_trial is not None and dict(seed_trial["config"]) == own:
            centre.append({"rung": seeds_rung, "name": seed_trial["name"], "seed_index": s})
        else:
            name = trials.add(CHOSEN, CHOSEN, {}, s)
            centre.append({"rung": rung, "name": name, "seed_index": s})
    return centre


def _probe(
    trials: _Trials,
    name: str,
    dist: BaseDistribution,
    *,
    position: int,
    applies: Collection[str],
    values: int,
) -> dict[str, Any]:
    """One hyperparameter's entry in the plan, its values or why it is skipped; plans
    its trials, every value but the chosen one with each seed."""
    base = trials.base
    entry: dict[str, Any] = {"chosen": base.get(name), **describe_parameter(dist)}
    if name not in applies or name not in base:
        entry["skipped"] = "does not apply to the chosen config"
        return entry
    tried = probe_values(dist, base[name], values)
    entry["values"] = tried
    if len(tried) < 2:
        entry["skipped"] = "its searched range is a single value"
        return entry
    stem = _trial_stem(name, position)
    for j, value in enumerate(tried):
        if value == base[name]:
            continue
        for s in range(len(trials.seeds)):
            trials.add(name, f"{stem}-{j}", {name: value}, s, param=name, value=value)
    return entry
