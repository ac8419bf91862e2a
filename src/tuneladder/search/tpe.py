"""TPE in rounds: the fine sweep asks Optuna's TPE sampler for ``batch`` trials at a time.

The plan fixes the rounds (trial ``i`` belongs to round ``i // batch``), so the
DAG is static. The trials of round ``r`` are asked when every trial before it
has finished, from a study rebuilt from the files: the coarse trials that lie
inside the fine space (the plan's ``prior``, when they trained as many epochs),
then every fine trial of the earlier rounds with its ``result.json``. Its TPE
sampler is seeded by the ladder's seed and the round, so the same files give
the same asks: round ``r`` is a pure function of the plan and the results
before it. Optuna is imported only to ask: ``collect`` reads the round files
without it. The workers ask (:func:`ask_round`) and write what they asked to
``rounds/<r>.json``; two workers asking at once write the same file.

Within a round the asks are made one after another with the constant liar:
the trials asked but not yet told count as bad, so one round does not ask
for the same point ``batch`` times. Every dimension is asked, as random and
Sobol draw every dimension, and :func:`tuneladder.search.space.active` then drops the
values the trial would not read; those never reach the study, so TPE models
each conditional parameter on the trials that used it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.core.direction import Direction, ok_value
from tuneladder.store.io import read_json, write_json
from tuneladder.store.trial_files import RESULT_FILE
from tuneladder.store.trials import derive_seed

if TYPE_CHECKING:
    from tuneladder.search.plan import ConfigMaker
    from tuneladder.search.space import Space

__all__ = [
    "ROUNDS_DIR",
    "STARTUP_TRIALS",
    "TPE",
    "ask_round",
    "inside",
    "is_rounds",
    "plan_tpe",
    "resolved_entries",
    "rounds",
]

TPE = "tpe"
ROUNDS_DIR = "rounds"
# Below this many finished trials (the prior included) TPE samples at random (Optuna's default).
STARTUP_TRIALS = 10


def is_rounds(plan: Mapping[str, Any]) -> bool:
    """Whether a plan's trials are asked in rounds (their configs are not in the plan)."""
    return plan.get("sampler") == TPE


def plan_tpe(
    rung: str,
    space: Space,
    *,
    trials: int,
    batch: int,
    configs: ConfigMaker,
    ladder_seed: int,
    prior: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The rounds of a TPE sweep; each trial's config is asked when its round comes.

    ``configs`` makes an ask's config; the plan keeps its base, epochs and
    conditions (the task's ``model_applies`` is given again to :func:`ask_round`).
    ``prior`` are finished trials (``name``, ``sampled``, ``status``,
    ``best_val_metric``) inside ``space`` that every round's study starts from.
    """
    from tuneladder.search.space import space_to_json

    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch=}")
    entries = [
        {
            "name": str(index),
            "index": index,
            "dir": f"trials/{index}",
            "round": index // batch,
            "seed": derive_seed(ladder_seed, rung, index),
        }
        for index in range(trials)
    ]
    return {
        "rung": rung,
        "sampler": TPE,
        "space": space_to_json(space),
        "conditions": dict(configs.conditions),
        "batch": batch,
        "epochs": configs.epochs,
        "base": dict(configs.base),
        "seed": derive_seed(ladder_seed, f"{rung}-space", 0),
        "prior": [dict(p) for p in prior],
        "trials": entries,
    }


def inside(space: Space, sampled: Mapping[str, Any]) -> bool:
    """Whether every sampled value lies in ``space`` (a study can hold the trial)."""
    for name, value in sampled.items():
        dist = space.get(name)
        if dist is None:
            return False
        try:
            if not dist._contains(dist.to_internal_repr(value)):
                return False
        except ValueError:  # a categorical value that is not a choice
            return False
    return True


def rounds(plan: Mapping[str, Any]) -> list[list[Mapping[str, Any]]]:
    """The plan's entries, round by round."""
    out: list[list[Mapping[str, Any]]] = []
    for entry in plan["trials"]:
        while len(out) <= entry["round"]:
            out.append([])
        out[entry["round"]].append(entry)
    return out


def round_path(rung_dir: str | Path, round_index: int) -> Path:
    return Path(rung_dir) / ROUNDS_DIR / f"{round_index}.json"


def ask_round(
    plan: Mapping[str, Any],
    rung_dir: str | Path,
    round_index: int,
    *,
    mode: Direction | str,
    model_applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
) -> list[dict[str, Any]]:
    """The entries of round ``round_index`` with their ``sampled`` values and ``config``.

    Every trial of the rounds before it must have a result (the workers wait
    for them); their configs come from the round files those asks wrote. The
    answer is also written to ``rounds/<round_index>.json``.
    """
    import optuna

    from tuneladder.search.plan import ConfigMaker
    from tuneladder.search.space import space_from_json

    space = space_from_json(plan["space"])
    configs = ConfigMaker(
        base=plan["base"],
        epochs=plan["epochs"],
        conditions=plan["conditions"],
        model_applies=model_applies,
    )
    earlier = _earlier(plan, rung_dir, round_index)
    seed = derive_seed(plan["seed"], TPE, round_index)
    with warnings.catch_warnings():
        # multivariate, group and constant_liar are marked experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=STARTUP_TRIALS,
            multivariate=True,
            group=True,
            constant_liar=True,
        )
        study = optuna.create_study(direction=Direction(mode).optuna, sampler=sampler)
        study.add_trials(_observations(space, [*plan["prior"], *earlier]))
        asked = []
        for entry in rounds(plan)[round_index]:
            trial = study.ask(fixed_distributions=space)
            sampled, config = configs.make(trial.params, seed=entry["seed"])
            asked.append({**entry, "sampled": sampled, "config": config.to_json()})
    write_json(
        round_path(rung_dir, round_index),
        {
            "round": round_index,
            "seed": seed,
            "observed": len(study.trials) - len(asked),
            "trials": asked,
        },
    )
    return asked


def _earlier(
    plan: Mapping[str, Any], rung_dir: str | Path, round_index: int
) -> list[dict[str, Any]]:
    """The trials of the rounds before ``round_index``: what they sampled, how they did."""
    out = []
    for r in range(round_index):
        for entry in read_json(round_path(rung_dir, r))["trials"]:
            result = read_json(Path(rung_dir) / entry["dir"] / RESULT_FILE)
            out.append(
                {
                    "name": entry["name"],
                    "sampled": entry["sampled"],
                    "status": result["status"],
                    "best_val_metric": result["best_val_metric"],
                }
            )
    return out


def _observations(space: Space, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Finished trials as Optuna trials: ok ones with their value, the others as failed."""
    import optuna

    out = []
    for row in rows:
        params = dict(row["sampled"])
        value = ok_value(row)
        out.append(
            optuna.trial.create_trial(
                params=params,
                distributions={name: space[name] for name in params},
                value=value,
                state=optuna.trial.TrialState.COMPLETE
                if value is not None
                else optuna.trial.TrialState.FAIL,
            )
        )
    return out


def resolved_entries(plan: Mapping[str, Any], rung_dir: str | Path) -> list[Mapping[str, Any]]:
    """The plan's entries, with ``sampled`` and ``config`` from the round files written so far.

    An entry of a round not asked yet has neither.
    """
    if not is_rounds(plan):
        return list(plan["trials"])
    asked = {}
    for r in range(len(rounds(plan))):
        path = round_path(rung_dir, r)
        if path.is_file():
            asked.update({e["name"]: e for e in read_json(path)["trials"]})
    return [asked.get(entry["name"], entry) for entry in plan["trials"]]
