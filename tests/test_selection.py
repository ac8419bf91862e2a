from __future__ import annotations

import math
import warnings

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from scipy.stats import ttest_ind

from tuneladder.core.stats import describe, welch_p_value
from tuneladder.search.selection import narrow, narrow_space, top_distinct
from tuneladder.stages.final import choose, passed_over, tie_break


def row(index, status="ok", value=None, **params):
    return {"index": index, "status": status, "best_val_metric": value, "params": params}


def test_top_leaves_out_diverged_failed_and_non_finite_trials() -> None:
    rows = [
        row(0, "failed"),
        row(1, value=0.9, a=1),
        row(2, "diverged"),
        row(3, value=0.95, a=3),
        row(4, value=float("nan"), a=4),
    ]
    assert [r["index"] for r in top_distinct(rows, 5, "max")] == [3, 1]
    assert [r["index"] for r in top_distinct(rows, 5, "min")] == [1, 3]
    assert top_distinct(rows, 0, "max") == []


def test_top_distinct_skips_repeated_configs_and_ties_keep_ladder_order() -> None:
    # as in a sweep's results: every trial has its own seed, which the reruns replace
    rows = [
        row(0, value=0.9, a=1, seed=11, epochs=15),
        row(1, value=0.9, a=1, seed=12, epochs=15),
        row(2, value=0.8, a=2, seed=13, epochs=15),
    ]
    assert [r["index"] for r in top_distinct(rows, 2, "max")] == [0, 2]
    tied = [row(0, value=0.8, a=1), row(1, value=0.9, a=2), row(2, value=0.9, a=3)]
    assert [r["index"] for r in top_distinct(tied, 3, "max")] == [1, 2, 0]


def test_narrowing_centres_on_the_best_and_spans_the_others_distance() -> None:
    space = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "layers": IntDistribution(1, 6),
        "opt": CategoricalDistribution(["sgd", "adam", "adamw"]),
    }
    top = [  # best first
        row(0, lr=1e-3, dropout=0.1, layers=2, opt="adamw"),
        row(1, lr=1e-2, dropout=0.2, layers=3, opt="sgd"),
        row(2, lr=1e-4, dropout=0.3, layers=2, opt="adamw"),
    ]
    fine, record = narrow(space, top)
    # lr: the others lie one decade from the best (RMS 1): [1e-4, 1e-2], half the 4 decades
    assert math.isclose(fine["lr"].low, 1e-4) and math.isclose(fine["lr"].high, 1e-2)
    assert math.isclose(record["lr"]["kept"], 0.5) and record["lr"]["agree"] is True
    # dropout: RMS of 0.1 and 0.2 is 0.158; clipped at 0 the range keeps 52%: they disagree
    assert fine["dropout"].low == 0.0 and math.isclose(fine["dropout"].high, 0.1 + 0.025**0.5)
    assert record["dropout"]["agree"] is False
    assert record["dropout"]["note"] == (
        "the top 3 disagree: spread 0.16 around the best, so the fine range keeps 52% of the"
        " coarse one"
    )
    # layers: RMS of 1 and 0 is 0.71 around 2, widened to whole numbers: [1, 3]
    assert (fine["layers"].low, fine["layers"].high) == (1, 3) and record["layers"]["agree"]
    assert fine["opt"].choices == ("sgd", "adamw")  # original order, unused value gone
    assert record["opt"] == {
        "used_by": 3,
        "of": 3,
        "values": ["sgd", "adamw"],
        "kept": 2 / 3,
        "agree": True,
    }
    for name, dist in fine.items():
        if hasattr(dist, "low"):
            assert space[name].low <= dist.low <= dist.high <= space[name].high


def test_narrowing_never_widens_past_the_original_nor_to_a_point() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    fine, record = narrow(space, [row(0, x=0.0), row(1, x=1.0)])
    assert (fine["x"].low, fine["x"].high) == (0.0, 1.0) and record["x"]["agree"] is False
    # all agree: the narrowest range, a twentieth of the coarse on each side
    same = narrow_space(space, [row(i, x=0.5) for i in range(3)])
    assert math.isclose(same["x"].low, 0.45) and math.isclose(same["x"].high, 0.55)
    single = narrow_space(space, [row(0, x=0.5)])  # top_k 1: the same around it
    assert math.isclose(single["x"].low, 0.45) and math.isclose(single["x"].high, 0.55)


def test_a_parameter_few_of_the_top_k_sampled_keeps_its_coarse_range() -> None:
    space = {"x": FloatDistribution(0.0, 1.0), "channels": CategoricalDistribution([16, 32])}
    top = [row(0, x=0.5), row(1, x=0.52, channels=32), row(2, x=0.48)]
    fine, record = narrow(space, top)
    assert fine["channels"] == space["channels"]
    assert record["channels"]["note"] == "only 1 of the top 3 sampled it: coarse range kept"
    assert record["channels"]["agree"] is None
    # x: only the trials that sampled it count, and all three did
    assert record["x"]["used_by"] == 3 and record["x"]["agree"] is True
    none, record = narrow(space, [row(0, x=0.5), row(1, x=0.6)])
    assert none["channels"] == space["channels"] and record["channels"]["used_by"] == 0


def test_narrowing_needs_a_successful_trial() -> None:
    with pytest.raises(ValueError, match="no successful trial"):
        narrow_space({"x": FloatDistribution(0.0, 1.0)}, [])


def seed_rows(group, values, status="ok", losses=None):
    losses = losses or [1.0] * len(values)
    return [
        {
            "group": group,
            "status": status,
            "best_val_metric": v,
            "best_val_loss": loss,
            "params": {"g": group, "seed": i},
        }
        for i, (v, loss) in enumerate(zip(values, losses, strict=True))
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


def test_a_finalist_whose_seeds_failed_ranks_below_those_whose_seeds_all_finished() -> None:
    diverged = seed_rows("0", [None, None], status="diverged")
    groups = {
        "0": seed_rows("0", [0.95]) + diverged,  # best on the one seed that finished
        "1": seed_rows("1", [0.94, 0.94, 0.94]),
        "2": seed_rows("2", [0.90, 0.89, 0.91]),
    }
    ranked = choose(groups, "max")
    assert [r["group"] for r in ranked] == ["1", "2", "0"]
    (over,) = passed_over(ranked, "max")
    assert over["group"] == "0" and over["failed_seeds"] == 2 and over["val"]["mean"] == 0.95


def test_a_single_seeds_unknown_spread_does_not_win_a_tie() -> None:
    groups = {
        "0": seed_rows("0", [0.9]) + seed_rows("0", [None], status="failed"),
        "1": seed_rows("1", [0.89, 0.90, 0.91]) + seed_rows("1", [None], status="failed"),
    }
    ranked = choose(groups, "max")
    assert [r["group"] for r in ranked] == ["1", "0"]
    tie = tie_break(ranked, "accuracy")
    assert tie["decided_by"] == "spread"
    assert "std 0.01 against unknown (1 seed) for finalist 0" in tie["sentence"]


def test_interval_and_welch() -> None:
    stats = describe([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["std"] == 1.0
    assert stats["ci95"][0] < 2.0 < stats["ci95"][1]
    assert math.isclose(stats["ci95"][1] - 2.0, 4.302652729911275 / math.sqrt(3), rel_tol=1e-6)
    assert describe([1.0])["ci95"] is None
    assert welch_p_value([0.9, 0.91, 0.92], [0.5, 0.51, 0.52]) < 0.001
    assert welch_p_value([0.9, 0.95, 0.85], [0.91, 0.86, 0.93]) > 0.5
    assert welch_p_value([1.0], [2.0, 3.0]) is None
    a, b = [0.9, 0.95, 0.85, 0.97], [0.91, 0.86, 0.93]
    assert math.isclose(welch_p_value(a, b), ttest_ind(a, b, equal_var=False).pvalue)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one side's values all equal, as seeds' accuracy often is
        tied = [358 / 359] * 5
        assert 0.1 < welch_p_value(tied, [359 / 359, 358 / 359, 358 / 359, 357 / 359, 358 / 359])


def test_when_all_seeds_tie_the_lower_val_loss_wins_and_says_so() -> None:
    groups = {
        "0": seed_rows("0", [1.0, 1.0, 1.0], losses=[0.05, 0.06, 0.04]),
        "1": seed_rows("1", [1.0, 1.0, 1.0], losses=[0.02, 0.03, 0.01]),
        "default": seed_rows("default", [0.5, 0.5, 0.5]),
    }
    ranked = choose(groups, "max", metric="accuracy")
    assert [r["group"] for r in ranked] == ["1", "0"]  # not the first finalist: the lower loss
    assert math.isclose(ranked[0]["val_loss_mean"], 0.02)
    tie = tie_break(ranked, "accuracy", {"0": "coarse #8", "1": "fine #2"})
    assert tie["groups"] == ["1", "0"] and tie["identical"] and tie["decided_by"] == "val_loss"
    assert tie["sentence"] == (
        "All 2 finalists tie on val accuracy over 3 seeds, the same on every seed"
        " (1.0000, 1.0000, 1.0000): chose fine #2, the one with the best mean val loss:"
        " 0.0200 against 0.0500 for coarse #8."
    )


def test_tie_break_says_what_decided_or_nothing_without_a_tie() -> None:
    spread = {"0": seed_rows("0", [0.8, 1.0]), "1": seed_rows("1", [0.9, 0.9])}
    tie = tie_break(choose(spread, "max"), "accuracy")
    assert tie["decided_by"] == "spread" and not tie["identical"]
    assert tie["groups"] == ["1", "0"] and "tie on mean val accuracy (0.9000" in tie["sentence"]
    same = {g: seed_rows(g, [0.9, 0.9]) for g in ("10", "2")}
    ranked = choose(same, "max")
    assert [r["group"] for r in ranked] == ["2", "10"]  # finalist order, numerically
    assert tie_break(ranked, "accuracy")["decided_by"] == "order"
    apart = {"0": seed_rows("0", [0.9, 0.9]), "1": seed_rows("1", [0.8, 0.8])}
    assert tie_break(choose(apart, "max"), "accuracy") is None
    # a loss metric: lower is better
    losses = {"0": seed_rows("0", [0.3, 0.3]), "1": seed_rows("1", [0.2, 0.2])}
    assert [r["group"] for r in choose(losses, "min", metric="loss")] == ["1", "0"]


@pytest.mark.parametrize(
    ("metric", "values", "ci"),
    [
        ("accuracy", [0.99, 1.0], (None, 1.0)),
        ("accuracy", [0.0, 0.02], (0.0, None)),
        ("r2", [0.97, 0.999], (None, 1.0)),
        ("rmse", [0.01, 0.3], (0.0, None)),
        ("mae", [0.01, 0.3], (0.0, None)),
    ],
)
def test_intervals_stay_inside_the_metric_bounds(metric, values, ci) -> None:
    from tuneladder.core.stats import metric_bounds

    stats = describe(values, metric_bounds(metric))
    assert stats["ci95_clipped"]
    low, high = stats["ci95"]
    unclipped = describe(values)["ci95"]
    assert low == (ci[0] if ci[0] is not None else unclipped[0])
    assert high == (ci[1] if ci[1] is not None else unclipped[1])
    assert low <= stats["mean"] <= high


def test_an_interval_inside_the_bounds_is_left_alone() -> None:
    stats = describe([0.90, 0.91, 0.92], (0.0, 1.0))
    assert stats["ci95"] == describe([0.90, 0.91, 0.92])["ci95"] and not stats["ci95_clipped"]
    assert describe([], (0.0, 1.0))["ci95_clipped"] is False
