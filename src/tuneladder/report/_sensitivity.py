"""The sensitivity rung's verdicts: which hyperparameters move the val metric, and where the
chosen value sits.

Each hyperparameter's points are its values with the val metric of each seed;
the chosen value's point is the chosen config's own trials (the seed rung's, when
reused). A change counts when it is larger than :data:`NOISE` times the spread
over seeds, the pooled sample std of the hyperparameter's points: run-to-run
luck alone rarely moves a mean that far. docs/report.md states the rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tuneladder.core.direction import Direction, ok_value
from tuneladder.core.stats import describe

__all__ = ["NOISE", "SHAPES", "analyse", "sensitivity_summary"]

# A point differs from the chosen one when their means are further apart than this many
# seed standard deviations.
NOISE = 2.0
# Equal to 12 digits is equal (float sums of the same values differ in the last bit).
_TIE = 1e-12
_RELATIVE = 1e-6  # a relative difference this small is float rounding, not a change

# shape -> where the chosen value sits, the rule (docs/report.md)
SHAPES = {
    "plateau": "no value tried is better beyond the noise, and none on either side is worse",
    "peak": "values on both sides are worse beyond the noise",
    "plateau edge": "values on one side are worse beyond the noise, none on the other",
    "edge": "at an end of the searched range (no value tried lies between it and that end),"
    " with values toward the inside worse: the best may lie outside the range",
    "best": "a categorical: no other choice is better beyond the noise, and some are worse",
    "beaten": "a value tried is better beyond the noise",
    "unknown": "no spread over seeds to compare with (fewer than two ok seeds per value)",
}


def _point(value: Any, rows: Sequence[Mapping[str, Any]], chosen: bool) -> dict[str, Any]:
    values = [v for v in map(ok_value, rows) if v is not None]
    stats = describe(values)
    return {
        "value": value,
        "chosen": chosen,
        "values": values,
        "n": len(values),
        "failed": len(rows) - len(values),
        "mean": stats["mean"],
        "std": stats["std"],
    }


def _pooled(points: Sequence[Mapping[str, Any]]) -> float | None:
    """The pooled sample std of the points with two or more ok seeds."""
    dof = sum(p["n"] - 1 for p in points if p["std"] is not None)
    if dof == 0:
        return None
    return math.sqrt(
        math.fsum((p["n"] - 1) * p["std"] ** 2 for p in points if p["std"] is not None) / dof
    )


def _shape(points: Sequence[Mapping[str, Any]], chosen: Any, kind: str) -> dict[str, Any]:
    """Where the chosen value sits: its ``shape`` (:data:`SHAPES`), the end of the searched
    range it lies at (``range_edge``: no value tried between it and that end) and the side
    the val metric falls toward (``falls``: ``lower``, ``higher``, ``both`` or None)."""
    others = [p for p in points if not p["chosen"]]
    beaten = any(p["better"] for p in others)
    if kind == "choice":
        shape = "beaten" if beaten else "best" if any(p["worse"] for p in others) else "plateau"
        return {"shape": shape, "range_edge": None, "falls": None}
    sides = {
        "lower": [p for p in others if p["value"] < chosen],
        "higher": [p for p in others if p["value"] > chosen],
    }
    edge = "low" if not sides["lower"] else "high" if not sides["higher"] else None
    falling = [side for side, near in sides.items() if any(p["worse"] for p in near)]
    falls = "both" if len(falling) == 2 else falling[0] if falling else None
    if beaten:
        shape = "beaten"
    elif edge is not None:
        shape = "edge" if falls else "plateau"
    else:
        shape = {"both": "peak", None: "plateau"}.get(falls, "plateau edge")
    return {"shape": shape, "range_edge": edge, "falls": falls}


def _text(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _place(p: Mapping[str, Any], metric: str) -> str:
    """Where the chosen value sits, in a sentence."""
    chosen, shape = _text(p["chosen"]), p["shape"]
    if shape == "plateau":
        return f"the chosen {chosen} sits on a plateau"
    if shape == "peak":
        return f"the chosen {chosen} sits on a peak: val {metric} falls on both sides"
    if shape == "plateau edge":
        flat = "higher" if p["falls"] == "lower" else "lower"
        return (
            f"the chosen {chosen} sits at the edge of a plateau: val {metric} falls toward"
            f" {p['falls']} values and stays flat toward {flat} ones"
        )
    if shape == "edge":
        beyond = "below" if p["range_edge"] == "low" else "above"
        return (
            f"the chosen {chosen} lies {_near_end(p)} and val {metric} falls away from it:"
            f" the best may lie {beyond} the range; widen it to see"
        )
    if shape == "best":
        return f"the chosen {chosen} is the best choice: every other that differs is worse"
    best = p["better_values"][0]
    return (
        f"{_text(best['value'])} beats the chosen {chosen} by {best['delta']:.3g} on val: the"
        " choice stands (the test split was read for it); retune around"
        f" {_text(best['value'])} in a next ladder"
    )


def _near_end(p: Mapping[str, Any]) -> str:
    end = p["range_edge"]
    bound = p["low"] if end == "low" else p["high"]
    if bound == p["chosen"]:
        return f"at the {end} end of the searched range"
    return f"near the {end} end of the searched range ({_text(bound)}; no value tried between)"


def _verdict(name: str, p: Mapping[str, Any], metric: str) -> str:
    if p["shape"] == "unknown":
        return f"{name}: {SHAPES['unknown']}."
    tried = ", ".join(_text(point["value"]) for point in p["points"])
    if not p["sensitive"]:
        what = (
            f"flat: no value tried ({tried}) moves val {metric} by more than"
            f" {NOISE:g} seed std ({p['noise']:.3g})"
        )
    else:
        parts = []
        if p["effect"] is not None and p["effect"] > p["noise"]:
            parts.append(
                f"over {tried}, val {metric} moves by up to {p['effect']:.3g}"
                f" ({p['effect_over_spread']:.3g} seed std)"
            )
        if p["failed_values"]:
            parts.append("every seed failed at " + ", ".join(map(_text, p["failed_values"])))
        what = "sensitive: " + "; ".join(parts)
    place = _place(p, metric)
    text = f"{name}: {what}. {place[0].upper()}{place[1:]}"
    if p["range_edge"] and p["shape"] != "edge":
        text += f"; it lies {_near_end(p)}"
    return text + "."


def analyse(
    plan: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    centre_rows: Sequence[Mapping[str, Any]],
    *,
    mode: Direction | str,
    metric: str,
) -> dict[str, Any]:
    """Per hyperparameter of the plan: its curve, whether the val metric is sensitive to it,
    and where the chosen value sits (:data:`SHAPES`).

    Args:
        plan: the rung's ``plan.json`` (``parameters``, ``trials``).
        rows: the rung's trial rows (``name``, ``status``, ``best_val_metric``).
        centre_rows: the chosen config's own trials, one per seed.
        mode: which way the metric is better.
        metric: its name, for the sentences.
    """
    direction = Direction(mode)
    entries = {e["name"]: e for e in plan["trials"]}
    centre = _point(None, centre_rows, True)
    out: dict[str, Any] = {}
    for name, spec in plan["parameters"].items():
        if "skipped" in spec:
            continue
        mine = [r for r in rows if entries[r["name"]].get("param") == name]
        points = []
        for value in spec["values"]:
            if value == spec["chosen"]:
                points.append({**centre, "value": value})
            else:
                hit = [r for r in mine if entries[r["name"]]["value"] == value]
                points.append(_point(value, hit, False))
        spread = _pooled(points)
        noise = None if spread is None else NOISE * spread
        for point in points:
            known = point["mean"] is not None and centre["mean"] is not None
            delta = direction.gain(point["mean"] - centre["mean"]) if known else None
            # beyond the bar by more than rounding: metrics stored in float32 put a change
            # of exactly 2 seed std a hair above it (0.13333333656 against 0.13333333284)
            bar = max(noise or 0.0, _TIE) * (1 + _RELATIVE)
            point["delta"] = delta
            point["worse"] = point["n"] == 0 or (
                noise is not None and delta is not None and delta < -bar
            )
            point["better"] = noise is not None and delta is not None and delta > bar
        deltas = [abs(p["delta"]) for p in points if p["delta"] is not None and not p["chosen"]]
        effect = max(deltas, default=None)
        entry = {
            **{k: v for k, v in spec.items() if k != "values"},
            "points": points,
            "spread": spread,
            "noise": noise,
            "effect": effect,
            "effect_over_spread": effect / spread if effect is not None and spread else None,
            "sensitive": any(p["worse"] or p["better"] for p in points),
            "failed_values": [p["value"] for p in points if p["n"] == 0],
        }
        if noise is None:
            entry.update(shape="unknown", range_edge=None, falls=None)
        else:
            entry.update(_shape(points, spec["chosen"], spec["kind"]))
        entry["better_values"] = sorted(
            ({"value": p["value"], "delta": p["delta"]} for p in points if p["better"]),
            key=lambda b: -b["delta"],
        )
        entry["verdict"] = _verdict(name, entry, metric)
        out[name] = entry
    return out


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def sensitivity_summary(
    plan: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]],
    centre_rows: Sequence[Mapping[str, Any]],
    *,
    mode: Direction | str,
    metric: str,
) -> dict[str, Any]:
    """The report's ``sensitivity`` section: ``{"enabled": False}`` when the rung did not run."""
    if plan is None:
        return {"enabled": False}
    params = analyse(plan, rows, centre_rows, mode=mode, metric=metric)
    sensitive = [n for n, p in params.items() if p["sensitive"]]
    flat = [n for n, p in params.items() if not p["sensitive"] and p["shape"] != "unknown"]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    reused = all(c["rung"] != plan["rung"] for c in plan["centre"])
    return {
        "enabled": True,
        "values": plan["values"],
        "seeds": plan["seeds"],
        "epochs": plan["epochs"],
        "noise_ratio": NOISE,
        "trials": len(rows),
        "counts": counts,
        "centre": [f"{c['rung']}/{c['name']}" for c in plan["centre"]],
        "centre_reused": reused,
        "parameters": params,
        "skipped": {n: p["skipped"] for n, p in plan["parameters"].items() if "skipped" in p},
        "sensitive": sensitive,
        "flat": flat,
        "beaten": [n for n, p in params.items() if p["shape"] == "beaten"],
        "at_range_edge": [n for n, p in params.items() if p["range_edge"]],
        "verdict": f"sensitive to {_names(sensitive)}; flat in {_names(flat)}",
    }
