"""Direction: the one type that decides "better", and the one top-N and best-so-far."""

from __future__ import annotations

import json
import math

import pytest

from tuneladder.core.direction import Direction, best_so_far, ok_value, top

NAN, INF = float("nan"), float("inf")
MAX, MIN = Direction.MAXIMIZE, Direction.MINIMIZE


def test_a_direction_is_the_config_mode() -> None:
    assert Direction("max") is MAX and Direction("min") is MIN and Direction(MAX) is MAX
    assert MAX == "max" and f"{MIN}" == "min" and json.dumps({"mode": MAX}) == '{"mode": "max"}'
    with pytest.raises(ValueError, match=r"mode must be 'max' or 'min', got mode='maximize'"):
        Direction("maximize")
    assert (MAX.optuna, MIN.optuna) == ("maximize", "minimize")


def test_better_best_worst_and_gain() -> None:
    assert MAX.better(2, 1) and not MAX.better(1, 2) and not MAX.better(1, 1)
    assert MIN.better(1, 2) and not MIN.better(2, 1)
    for d in Direction:
        assert d.better(0.5, None) and d.better(0.5, NAN) and not d.better(NAN, 0.5)
        assert not d.better(None, None) and not d.better(INF, 0.5) and not d.better(-INF, 0.5)
        assert d.better(0.0, d.worst) and math.isinf(d.worst)
    assert MAX.best([0.2, NAN, 0.9, None, 0.9]) == 0.9 and MIN.best([0.2, NAN, 0.9]) == 0.2
    assert MAX.best([NAN, None]) is None and MAX.best([]) is None
    assert MAX.gain(0.1) == 0.1 and MIN.gain(0.1) == -0.1
    assert sorted([0.3, None, 0.9, NAN, 0.5], key=MAX.sort_key)[:3] == [0.9, 0.5, 0.3]
    assert sorted([0.3, 0.9, 0.5], key=MIN.sort_key) == [0.3, 0.5, 0.9]


def test_best_so_far_ignores_non_finite_values() -> None:
    # a NaN first used to become the best of the DVC plot's curve and stay there
    assert best_so_far([NAN, 0.5, None, 0.7, 0.6], MAX) == [None, 0.5, 0.5, 0.7, 0.7]
    assert best_so_far([0.5, INF, 0.4, 0.6], "min") == [0.5, 0.5, 0.4, 0.4]
    assert best_so_far([], MAX) == []


def row(name, value, status="ok", **params):
    return {"name": name, "status": status, "best_val_metric": value, "params": params}


def test_ok_value_is_the_metric_of_an_ok_trial_when_finite() -> None:
    assert ok_value(row("a", 0.5)) == 0.5
    assert ok_value(row("a", 0.5, status="diverged")) is None
    assert ok_value(row("a", NAN)) is None and ok_value(row("a", None)) is None


def test_top_is_the_one_top_n() -> None:
    rows = [row("a", 0.7), row("b", 0.9), row("c", NAN), row("d", 0.9), row("e", 1.0, "failed")]
    assert [r["name"] for r in top(rows, 3, MAX)] == ["b", "d", "a"]  # ties keep their order
    assert [r["name"] for r in top(rows, 2, MIN)] == ["a", "b"]
    assert top(rows, 0, MAX) == [] and top([], 3, MAX) == []
    # a tie-break after the value, and only the first of each distinct key
    ranked = top(rows, 3, MAX, tie_break=lambda r: r["name"] == "b")
    assert [r["name"] for r in ranked] == ["d", "b", "a"]
    same = [row("a", 0.9, x=1), row("b", 0.9, x=1), row("c", 0.8, x=2)]
    assert [r["name"] for r in top(same, 2, MAX, distinct=lambda r: r["params"]["x"])] == [
        "a",
        "c",
    ]
    # any value: here the mean of a group
    groups = [{"g": "0", "mean": 0.8}, {"g": "1", "mean": None}, {"g": "2", "mean": 0.85}]
    assert [g["g"] for g in top(groups, 3, "max", value=lambda g: g["mean"])] == ["2", "0"]
