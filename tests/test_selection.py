from __future__ import annotations

import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuneladder.final import choose
from tuneladder.selection import narrow_space, rank_trials, top_distinct
from tuneladder.stats import describe, welch_p_value


def row(index, status="ok", value=None, **params):
    return {"index": index, "status": status, "best_val_metric": value, "params": params}


def test_ranking_puts_diverged_then_failed_last() -> None:
    rows = [
        row(0, "failed"),
        row(1, value=0.9),
        row(2, "diverged"),
        row(3, value=0.95),
        row(4, value=float("nan")),
    ]
    assert [r["index"] for r in rank_trials(rows, "max")] == [3, 1, 2, 4, 0]
    assert [r["index"] for r in rank_trials(rows, "min")][:2] == [1, 3]


def test_top_distinct_skips_repeated_configs() -> None:
    rows = [row(0, value=0.9, a=1), row(1, value=0.9, a=1), row(2, value=0.8, a=2)]
    assert [r["index"] for r in top_distinct(rows, 2, "max")] == [0, 2]


def test_narrowing_stays_inside_and_uses_log_space() -> None:
    space = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "layers": IntDistribution(1, 6),
        "opt": CategoricalDistribution(["sgd", "adam", "adamw"]),
    }
    top = [
        row(0, lr=1e-3, dropout=0.1, layers=2, opt="adamw"),
        row(1, lr=1e-2, dropout=0.2, layers=3, opt="sgd"),
    ]
    fine = narrow_space(space, top)
    lo, hi = fine["lr"].low, fine["lr"].high
    # log span of one decade, widened by half a decade each side
    assert math.isclose(math.log10(lo), -3.5) and math.isclose(math.log10(hi), -1.5)
    assert math.isclose(fine["dropout"].low, 0.05) and math.isclose(fine["dropout"].high, 0.25)
    assert (fine["layers"].low, fine["layers"].high) == (1, 4)
    assert fine["opt"].choices == ("sgd", "adamw")  # original order, unused value gone
    for name, dist in fine.items():
        if hasattr(dist, "low"):
            assert space[name].low <= dist.low <= dist.high <= space[name].high


def test_narrowing_never_widens_past_the_original() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    fine = narrow_space(space, [row(0, x=0.0), row(1, x=1.0)])
    assert (fine["x"].low, fine["x"].high) == (0.0, 1.0)
    single = narrow_space(space, [row(0, x=0.5)])
    assert 0.4 < single["x"].low < 0.5 < single["x"].high < 0.6


def test_narrowing_needs_a_successful_trial() -> None:
    with pytest.raises(ValueError, match="no successful trial"):
        narrow_space({"x": FloatDistribution(0.0, 1.0)}, [])


def seed_rows(group, values, status="ok"):
    return [
        {"group": group, "status": status, "best_val_metric": v, "params": {"g": group, "seed": i}}
        for i, v in enumerate(values)
    ]


def test_final_choice_is_the_best_mean_and_ties_go_to_less_spread() -> None:
    groups = {
        "0": seed_rows("0", [0.90, 0.99]),
        "1": seed_rows("1", [0.945, 0.945]),
        "2": seed_rows("2", [0.93, 0.93]),
        "default": seed_rows("default", [0.99, 0.99]),
    }
    ranked = choose(groups, "max")
    assert [r["group"] for r in ranked] == ["1", "0", "2"]  # baseline is not a candidate
    assert "seed" not in ranked[0]["params"]


def test_failed_seeds_are_counted_not_averaged() -> None:
    groups = {"0": seed_rows("0", [0.9, 0.9]) + seed_rows("0", [None], status="failed")}
    best = choose(groups, "max")[0]
    assert best["val"]["n"] == 2 and best["failed_seeds"] == 1


def test_interval_and_welch() -> None:
    stats = describe([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["std"] == 1.0
    assert stats["ci95"][0] < 2.0 < stats["ci95"][1]
    assert math.isclose(stats["ci95"][1] - 2.0, 4.302652729911275 / math.sqrt(3), rel_tol=1e-6)
    assert describe([1.0])["ci95"] is None
    assert welch_p_value([0.9, 0.91, 0.92], [0.5, 0.51, 0.52]) < 0.001
    assert welch_p_value([0.9, 0.95, 0.85], [0.91, 0.86, 0.93]) > 0.5
    assert welch_p_value([1.0], [2.0, 3.0]) is None
