from __future__ import annotations

import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuneladder.search.space import (
    active,
    conditions_from_config,
    sample,
    space_from_config,
    space_from_json,
    space_to_json,
)
from tuneladder.tasks.digits import applies

SPEC = {
    "lr": {"dist": "loguniform", "low": 1e-5, "high": 1e-1},
    "dropout": {"dist": "uniform", "low": 0.0, "high": 0.5},
    "layers": {"dist": "int", "low": 1, "high": 4},
    "width": {"dist": "int", "low": 16, "high": 512, "log": True},
    "batch_size": {"dist": "choice", "values": [32, 64, 128, 256]},
}


def test_config_maps_to_optuna_distributions() -> None:
    space = space_from_config(SPEC)
    assert space["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert space["dropout"] == FloatDistribution(0.0, 0.5)
    assert space["layers"] == IntDistribution(1, 4)
    assert space["width"] == IntDistribution(16, 512, log=True)
    assert space["batch_size"] == CategoricalDistribution([32, 64, 128, 256])


def test_auto_lr_needs_and_uses_the_range_test() -> None:
    with pytest.raises(ValueError, match="auto"):
        space_from_config({"lr": "auto"})
    assert space_from_config({"lr": "auto"}, lr_range=(1e-4, 1e-2))["lr"] == FloatDistribution(
        1e-4, 1e-2, log=True
    )


@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_sampling_is_a_pure_function_of_space_sampler_index_seed(sampler: str) -> None:
    space = space_from_config(SPEC)
    first = [sample(space, sampler=sampler, index=i, seed=3) for i in range(12)]
    again = [sample(space, sampler=sampler, index=i, seed=3) for i in reversed(range(12))]
    assert first == list(reversed(again))
    other_seed = [sample(space, sampler=sampler, index=i, seed=4) for i in range(12)]
    assert first != other_seed


@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_samples_stay_in_bounds_and_cover_choices(sampler: str) -> None:
    space = space_from_config(SPEC)
    draws = [sample(space, sampler=sampler, index=i, seed=0) for i in range(64)]
    for d in draws:
        assert 1e-5 <= d["lr"] <= 1e-1 and 0.0 <= d["dropout"] <= 0.5
        assert 1 <= d["layers"] <= 4 and isinstance(d["layers"], int)
        assert 16 <= d["width"] <= 512
    assert {d["batch_size"] for d in draws} == {32, 64, 128, 256}
    assert {d["layers"] for d in draws} == {1, 2, 3, 4}
    # log scale: about half the draws below the geometric middle (1e-3)
    below = sum(d["lr"] < 1e-3 for d in draws)
    assert 20 <= below <= 44


def test_sobol_spreads_more_evenly_than_random() -> None:
    space = space_from_config({"x": {"dist": "uniform", "low": 0.0, "high": 1.0}})

    def worst_gap(sampler: str) -> float:
        xs = sorted(sample(space, sampler=sampler, index=i, seed=1)["x"] for i in range(16))
        return max(b - a for a, b in zip([0.0, *xs], [*xs, 1.0], strict=True))

    assert worst_gap("sobol") < worst_gap("random")
    assert worst_gap("sobol") <= 1 / 16 * 2 + 1e-9


def test_space_survives_json() -> None:
    space = space_from_config(SPEC)
    assert space_from_json(space_to_json(space)) == space


def test_unknown_sampler_is_named() -> None:
    with pytest.raises(ValueError, match="sampler must be one of random, sobol"):
        sample(space_from_config(SPEC), sampler="grid", index=0, seed=0)


def test_log_int_reaches_its_bounds() -> None:
    space = {"w": IntDistribution(1, 8, log=True)}
    values = {sample(space, sampler="random", index=i, seed=0)["w"] for i in range(400)}
    assert min(values) == 1 and max(values) == 8
    assert not any(math.isnan(v) for v in values)


@pytest.mark.parametrize("index", [0, 1, 5, 63, 64, 100, 1000])
def test_sobol_point_i_is_the_sequences_point_i(index: int) -> None:
    """The engine is built once per plan; trial i still gets the sequence's point i."""
    import numpy as np
    from scipy.stats import qmc

    from tuneladder.search.space import _unit_point

    engine = qmc.Sobol(d=5, scramble=True, seed=np.random.default_rng(7))
    if index:
        engine.fast_forward(index)
    assert np.array_equal(engine.random(1)[0], _unit_point("sobol", dims=5, index=index, seed=7))


COND_SPEC = {
    "arch": {"dist": "choice", "values": ["mlp", "cnn"]},
    "channels": {"dist": "choice", "values": [16, 32]},
    "schedule": {"dist": "choice", "values": ["constant", "warmup_cosine"]},
    "warmup_epochs": {"dist": "uniform", "low": 0.5, "high": 3.0},
    "optimizer": {"dist": "choice", "values": ["adamw", "momentum"]},
    "momentum": {"dist": "uniform", "low": 0.8, "high": 0.99},
    "grad_clip": {"dist": "uniform", "low": 0.5, "high": 2.0, "when": {"optimizer": "momentum"}},
}
BASE = {"arch": "mlp", "channels": 16, "num_layers": 2, "width": 64, "dropout": 0.1}


def test_a_trial_samples_only_what_it_reads() -> None:
    """momentum only with the momentum optimizer, warm-up only for warmup_cosine, channels only
    for the cnn (the digits task's applies), grad_clip only where its `when` holds."""
    space = space_from_config(COND_SPEC)
    conditions = conditions_from_config(COND_SPEC)
    assert conditions == {"grad_clip": {"optimizer": ["momentum"]}}
    seen = []
    for i in range(64):
        drawn = sample(space, sampler="sobol", index=i, seed=0)
        used = active(drawn, BASE, conditions=conditions, model_applies=applies)
        assert set(used) <= set(drawn) and all(used[k] == drawn[k] for k in used)
        assert ("channels" in used) == (drawn["arch"] == "cnn")
        assert ("warmup_epochs" in used) == (drawn["schedule"] == "warmup_cosine")
        assert ("momentum" in used) == (drawn["optimizer"] == "momentum")
        assert ("grad_clip" in used) == (drawn["optimizer"] == "momentum")
        seen.append(used)
    # every combination occurs, so each parameter is both present and absent somewhere
    for name in ("channels", "warmup_epochs", "momentum", "grad_clip"):
        assert 0 < sum(name in used for used in seen) < len(seen)


def test_dropping_a_value_can_drop_another() -> None:
    # arch is sampled only with warm-up; when it falls back to the fixed mlp, channels goes too
    conditions = {"arch": {"schedule": ["warmup_cosine"]}}
    drawn = {"schedule": "constant", "arch": "cnn", "channels": 32}
    assert active(drawn, BASE, conditions=conditions, model_applies=applies) == {
        "schedule": "constant"
    }
    drawn["schedule"] = "warmup_cosine"
    assert active(drawn, BASE, conditions=conditions, model_applies=applies) == drawn


def test_conditions_keep_trial_i_a_function_of_i() -> None:
    """Every dimension is drawn, then some dropped: trial i does not depend on the others."""
    space = space_from_config(COND_SPEC)
    conditions = conditions_from_config(COND_SPEC)

    def trial(i: int) -> dict:
        drawn = sample(space, sampler="sobol", index=i, seed=5)
        return active(drawn, BASE, conditions=conditions, model_applies=applies)

    forward = [trial(i) for i in range(20)]
    assert forward == list(reversed([trial(i) for i in reversed(range(20))]))
