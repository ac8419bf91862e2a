"""The report's numbers and verdicts, as pure functions of trial rows (no IO, no plotting).

Every rule the report applies is here, with its threshold as a module constant,
so that a unit test can state it on hand-made rows and ``docs/report.md`` can
quote it. A *row* is a rung's ``results.json`` row (``status``,
``best_val_metric``, ``params`` ...); where a rule reads the epochs, it takes
the trial's history as a list of dicts with ``train_loss`` and ``val_loss``, or
the row's summary of them (:mod:`tuneladder.core.curves`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneladder.core.curves import OVERFIT_SMOOTH, SLOW_BACK, curve_summary, usable_summary
from tuneladder.core.direction import (
    Direction,
    best_so_far,
    halving_tier,
    ok_value,
    tie_key,
    top,
)
from tuneladder.core.hparams import TRAIN_FIELDS
from tuneladder.core.text import counted
from tuneladder.ladder.rungs import BASELINE
from tuneladder.report._history import columns

__all__ = [
    "Chosen",
    "DR_THRESHOLD",
    "DR_WINDOW",
    "FAILURE_MODES",
    "LINES_MAX",
    "MIN_SEEDS",
    "POINTS_MAX",
    "OVERFIT_RISE",
    "OVERFIT_SMOOTH",
    "SLOW_DROP",
    "SLOW_GAP",
    "VAL_TEST_DROP",
    "checklist",
    "classify",
    "classify_trials",
    "describe_distribution",
    "diminishing_returns",
    "failure_ranges",
    "improvement",
    "figure_sample",
    "model_size_keys",
    "pitfalls",
    "sample_note",
    "top_ranges",
    "trends",
    "varied",
]

# Overfitting: the last val loss is this fraction above its minimum, while train loss fell;
# val loss is a trailing mean over 1/OVERFIT_SMOOTH of the epochs (at least one).
OVERFIT_RISE = 0.10
# Too slow: still learning at the end (best epoch is the last, train loss fell by more than
# SLOW_DROP over the last quarter of the epochs) and behind the best trial by more than SLOW_GAP.
SLOW_DROP = 0.10
SLOW_GAP = 0.05
# Diminishing returns (methodology): the last DR_WINDOW trials improved the best by < DR_THRESHOLD.
DR_WINDOW = 10
DR_THRESHOLD = 0.01
# Seeds per finalist the methodology asks for (3-5) before variance counts as checked.
MIN_SEEDS = 3
# A numeric parameter searched linearly over this ratio (two decades) wants a log scale.
LOG_RATIO = 100.0
# Validation overfitting is suspected when test trails val by more than this (and the noise).
VAL_TEST_DROP = 0.02
MULTIPLICATIVE = frozenset({"lr", "weight_decay"})
# Model hyperparameters whose name says they set the model's size or shape.
SIZE_WORDS = ("width", "layer", "channel", "hidden", "depth", "dim", "unit", "arch", "head")

FAILURE_MODES = ("diverged", "failed", "too slow", "overfitting")
# A figure of one line per trial draws at most LINES_MAX of them, one of points POINTS_MAX,
# the LINES_BEST best among them: 100,000 lines take minutes to draw and show one smear.
LINES_MAX = 2000
POINTS_MAX = 10_000
LINES_BEST = 200


def improvement(before: float, after: float, mode: Direction | str) -> float:
    """Relative improvement from ``before`` to ``after`` (positive is better)."""
    diff = Direction(mode).gain(after - before)
    if before == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / abs(before)


# --- failure modes -------------------------------------------------------------------


def classify(
    row: Mapping[str, Any],
    history: Sequence[Mapping[str, float]] | None,
    *,
    best: float | None,
    mode: Direction | str,
) -> tuple[str, str]:
    """A trial's failure mode and why: ``ok``, or one of :data:`FAILURE_MODES`.

    Rules, first match wins:

    * ``diverged`` / ``failed``: the trial's status (non-finite or exploding loss;
      an exception).
    * ``overfitting``: the val loss at the end is more than ``OVERFIT_RISE``
      above its lowest value, and the train loss at the last epoch is below its
      value at that lowest-val-loss epoch (train keeps falling, val climbs back).
      Val loss here is a trailing mean over a fifth of the epochs (one epoch when
      there are fewer than ten), so that a single lucky epoch is not the minimum.
    * ``too slow``: still learning when the epochs ran out (the best val metric is
      at the last epoch, and train loss fell by more than ``SLOW_DROP`` over the
      last quarter of the epochs, at least one epoch), and the best val metric
      trails ``best`` (the best ok trial) by more than ``SLOW_GAP``, relatively.
      A config that successive halving stopped is not judged by this rule: its
      epochs ran out because it lost at equal epochs, not because it learns slowly.

    Fewer than two epochs give no curve to judge: such an ok trial stays ``ok``.

    A row with a usable ``curve`` (its :func:`~tuneladder.core.curves.curve_summary`,
    which ``collect`` carries from the trial's result) is judged by it, the same verdict
    without reading ``history``; a row without one (a result from before summaries) by
    its history, which may then not be None.
    """
    status = row.get("status")
    if status in ("diverged", "failed"):
        return status, str(row.get("reason") or status)
    if status != "ok":
        return "failed", f"status {status!r}"
    curve = row.get("curve")
    if not usable_summary(curve):
        # whole columns: a dict per epoch, 1.5 million times over, cost seconds at 100,000
        curve = curve_summary(*columns(history or (), "train_loss", "val_loss"))
    if not curve["judged"]:
        return "ok", "fewer than two finite epochs"
    width, low, val_low, val_end = curve["width"], curve["low"], curve["val_low"], curve["val_end"]
    train_low, train_end = curve["train_low"], curve["train_end"]
    rise = (val_end - val_low) / abs(val_low) if val_low else float(val_end > val_low)
    if rise > OVERFIT_RISE and train_end < train_low:
        mean = f" (mean of {width} epochs)" if width > 1 else ""
        return "overfitting", (
            f"val loss{mean} {val_end:.4g} at the end is {rise:.0%} above its minimum"
            f" {val_low:.4g} (epoch {low}) while train loss fell from {train_low:.4g}"
            f" to {train_end:.4g}"
        )
    epochs = curve["epochs"]
    if halving_tier(row):
        return "ok", f"stopped by successive halving after {epochs} epochs"
    value = ok_value(row)
    back, train_back = max(1, epochs // SLOW_BACK), curve["train_back"]
    drop = (train_back - train_end) / abs(train_back) if train_back else 0.0
    at_end = row.get("best_epoch") == epochs - 1
    if at_end and drop > SLOW_DROP and value is not None and best is not None:
        gap = -improvement(best, value, mode)
        if gap > SLOW_GAP:
            # a best of 0 (an error rate, a loss) has no relative gap: say the difference
            behind = (
                f"{gap:.0%} behind the best trial"
                if math.isfinite(gap)
                else f"{abs(value - best):.4g} behind the best trial's {best:.4g}"
            )
            return "too slow", (
                f"best val metric at the last epoch, train loss still falling"
                f" ({drop:.0%} over the last {back} epoch{'s' if back > 1 else ''}),"
                f" and {behind}"
            )
    return "ok", "no failure rule matched"


def classify_trials(
    rows: Sequence[Mapping[str, Any]],
    histories: Sequence[Sequence[Mapping[str, float]] | None],
    mode: Direction | str,
) -> list[dict[str, Any]]:
    """:func:`classify` for every row, judged against the best ok row among them."""
    best = Direction(mode).best(map(ok_value, rows))
    out = []
    for row, history in zip(rows, histories, strict=True):
        label, why = classify(row, history, best=best, mode=mode)
        out.append({"rung": row.get("rung"), "name": row.get("name"), "mode": label, "why": why})
    return out


def failure_ranges(
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    params: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per failure mode: how many trials, and per parameter the values where it occurs.

    Numbers give ``{"min", "max"}``; anything else the sorted distinct values.
    """
    out: dict[str, dict[str, Any]] = {}
    for mode in FAILURE_MODES:
        hit = [row for row, label in zip(rows, labels, strict=True) if label == mode]
        out[mode] = {"count": len(hit), "ranges": _ranges(hit, params) if hit else {}}
    return out


def _ranges(rows: Sequence[Mapping[str, Any]], params: Sequence[str]) -> dict[str, Any]:
    ranges: dict[str, Any] = {}
    for name in params:
        values = [row["params"][name] for row in rows if name in row["params"]]
        if values and all(_is_number(v) for v in values):
            ranges[name] = {"min": min(values), "max": max(values)}
        elif values:
            ranges[name] = {"values": sorted({str(v) for v in values})}
    return ranges


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def figure_sample(
    rows: Sequence[Mapping[str, Any]],
    mode: Direction | str,
    *,
    limit: int = LINES_MAX,
    best: int = LINES_BEST,
) -> tuple[list[Mapping[str, Any]], dict[str, Any]]:
    """The rows a figure of one mark per trial draws, and what it drew, for the page to say.

    Up to ``limit`` rows, every one. Beyond, the ``best`` best (:func:`top`) and a
    seeded random sample of the others, ``limit`` in all, in the order given.
    Returns the rows and ``{"trials", "shown", "best"}`` (``best`` None: all shown).

    >>> rows = [{"status": "ok", "best_val_metric": i / 10, "name": str(i)} for i in range(10)]
    >>> shown, note = figure_sample(rows, "max", limit=4, best=2)
    >>> note, [r["name"] for r in shown][-2:]
    ({'trials': 10, 'shown': 4, 'best': 2}, ['8', '9'])
    """
    if len(rows) <= limit:
        return list(rows), {"trials": len(rows), "shown": len(rows), "best": None}
    leaders = {id(row) for row in top(rows, best, mode)}
    others = [i for i, row in enumerate(rows) if id(row) not in leaders]
    picked = set(random.Random(0).sample(others, limit - len(leaders)))
    shown = [row for i, row in enumerate(rows) if id(row) in leaders or i in picked]
    return shown, {"trials": len(rows), "shown": len(shown), "best": len(leaders)}


def sample_note(
    rows: Sequence[Mapping[str, Any]], *, limit: int = LINES_MAX, best: int = LINES_BEST
) -> dict[str, Any]:
    """What :func:`figure_sample` says of these rows, without ranking them."""
    if len(rows) <= limit:
        return {"trials": len(rows), "shown": len(rows), "best": None}
    # top() keeps the rows with a finite value, ok_value's rule
    ranked = min(best, sum(ok_value(row) is not None for row in rows))
    return {"trials": len(rows), "shown": limit, "best": ranked}


# --- diminishing returns --------------------------------------------------------------


def diminishing_returns(
    rows: Sequence[Mapping[str, Any]],
    mode: Direction | str,
    *,
    window: int = DR_WINDOW,
    threshold: float = DR_THRESHOLD,
) -> dict[str, Any]:
    """The methodology's stopping rule: the last ``window`` trials improved the best by less
    than ``threshold`` (relative), counting failed trials as trials that improved nothing.

    ``reached`` is None when there are not more than ``window`` trials to judge.
    """
    curve = best_so_far(map(ok_value, rows), mode)
    n = len(rows)
    out: dict[str, Any] = {
        "window": window,
        "threshold": threshold,
        "trials": n,
        "best_so_far": curve,
        "best": curve[-1] if curve else None,
        "best_before_window": None,
        "improvement": None,
        "reached": None,
    }
    if n <= window:
        out["verdict"] = (
            f"not enough trials to judge: {n} trials, the rule needs more than {window}"
        )
        return out
    before, after = curve[n - window - 1], curve[-1]
    out["best_before_window"] = before
    if before is None:
        out["reached"] = False
        out["verdict"] = f"no: the first ok trial came in the last {window}"
        return out
    gain = improvement(before, after, mode)
    out["improvement"] = gain
    out["reached"] = gain < threshold
    shown = _apart(before, after)
    out["evidence"] = (
        f"the last {window} trials improved the best val metric from {shown[0]} to"
        f" {shown[1]} ({gain:+.2%}; the rule asks for less than {threshold:.0%})"
    )
    out["verdict"] = f"{'yes' if out['reached'] else 'no'}: {out['evidence']}"
    return out


def _apart(a: float, b: float) -> tuple[str, str]:
    """Two numbers to 4 significant digits, or as many more as tell them apart (0.99991
    and 0.99998 are not "1 to 1")."""
    gap = abs(a - b)
    for digits in range(4, 10):
        shown = f"{a:.{digits}g}", f"{b:.{digits}g}"
        # each rounded by less than a tenth of their gap: the gap reads as it is
        if gap == 0 or max(abs(float(shown[0]) - a), abs(float(shown[1]) - b)) * 10 <= gap:
            return shown
    return shown


# --- parameters ------------------------------------------------------------------------


def describe_distribution(dist: BaseDistribution) -> dict[str, Any]:
    """A distribution as plain JSON: type, bounds or choices, and whether it is log."""
    if isinstance(dist, CategoricalDistribution):
        return {"type": "choice", "choices": list(dist.choices), "log": False}
    if isinstance(dist, FloatDistribution | IntDistribution):
        kind = "int" if isinstance(dist, IntDistribution) else "float"
        return {"type": kind, "low": dist.low, "high": dist.high, "log": bool(dist.log)}
    raise TypeError(f"unsupported distribution {type(dist).__name__}")


def top_ranges(
    top: Sequence[Mapping[str, Any]], space: Mapping[str, BaseDistribution]
) -> dict[str, dict[str, Any]]:
    """What the top rows have in common: per parameter their span, as a share of the searched
    span (in log space for log parameters), or the categorical values they use."""
    out: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        values = [row["params"][name] for row in top if name in row["params"]]
        if not values:
            continue
        if isinstance(dist, CategoricalDistribution):
            used = [c for c in dist.choices if c in values]
            out[name] = {"values": used, "of": list(dist.choices), "share": None}
            continue
        assert isinstance(dist, FloatDistribution | IntDistribution)
        to = math.log10 if dist.log else float
        full = to(dist.high) - to(dist.low)
        share = (to(max(values)) - to(min(values))) / full if full > 0 else 0.0
        out[name] = {"min": min(values), "max": max(values), "share": share}
    return out


def trends(
    rows: Sequence[Mapping[str, Any]],
    space: Mapping[str, BaseDistribution],
    mode: Direction | str,
) -> dict[str, dict[str, Any]]:
    """Per parameter, how the val metric moves with it over the ok rows.

    Numbers: Spearman's rank correlation, signed so that positive means "larger is
    better" (``clear`` at ``|rho| >= 0.5``, ``weak`` from 0.3). Categories: the mean
    val metric per value, and the best value.
    """
    from scipy.stats import spearmanr

    direction = Direction(mode)
    # each row's value once, not once per parameter: a million calls at 100,000 trials
    ok = [(row["params"], v) for row in rows if (v := ok_value(row)) is not None]
    out: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        pairs = [(params[name], v) for params, v in ok if name in params]
        if isinstance(dist, CategoricalDistribution):
            means = {}
            for choice in dist.choices:
                hit = [v for p, v in pairs if p == choice]
                if hit:
                    means[str(choice)] = sum(hit) / len(hit)  # type: ignore[arg-type]
            best = next(iter(top(list(means), 1, direction, value=means.get)), None)
            # choices whose mean equals the best's (to 12 digits) tie: none is named best
            tied = [
                c for c in means if best is not None and tie_key(means[c]) == tie_key(means[best])
            ]
            out[name] = {
                "kind": "choice",
                "means": means,
                "best": best if len(tied) < 2 else None,
                "tied": tied if len(tied) > 1 else [],
                "n": len(pairs),
            }
            continue
        xs = [float(p) for p, _ in pairs]
        ys = [float(v) for _, v in pairs]  # type: ignore[arg-type]
        rho = None
        if len(pairs) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
            rho = direction.gain(float(spearmanr(xs, ys).statistic))
        strength = (
            "n/a"
            if rho is None
            else "clear"
            if abs(rho) >= 0.5
            else "weak"
            if abs(rho) >= 0.3
            else "none"
        )
        out[name] = {"kind": "number", "rho": rho, "strength": strength, "n": len(pairs)}
    return out


def varied(rows: Iterable[Mapping[str, Any]], name: str) -> list[Any]:
    """The distinct values a parameter took across rows, in first-seen order."""
    # a set finds a value in constant time: the list's ``in`` alone made a sweep of 100,000
    # continuous values quadratic (minutes); an unhashable value (a list) is compared in turn
    seen: list[Any] = []
    known: set[Any] = set()
    for row in rows:
        if name not in row["params"]:
            continue
        value = row["params"][name]
        try:
            if value in known:
                continue
            known.add(value)
        except TypeError:
            if value in seen:
                continue
        seen.append(value)
    return seen


def model_size_keys(params: Iterable[str]) -> list[str]:
    """Model hyperparameters (not training ones) whose name says they set size or shape."""
    return [
        name
        for name in params
        if name not in TRAIN_FIELDS
        and name != "seed"
        and any(word in name.lower() for word in SIZE_WORDS)
    ]


# --- checklist and pitfalls -------------------------------------------------------------


def _item(question: str, answer: bool | None, evidence: str) -> dict[str, Any]:
    return {"question": question, "answer": answer, "evidence": evidence}


def _seed_counts(seed_rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per seeds group: (ok runs, all runs)."""
    counts: dict[str, tuple[int, int]] = {}
    for row in seed_rows:
        ok, total = counts.get(row["group"], (0, 0))
        counts[row["group"]] = (ok + (row["status"] == "ok"), total + 1)
    return counts


def _maybe(value: float | None) -> str:
    return "none seen" if value is None else f"{value:.3g}"


def _values_text(name: str, values: Sequence[Any]) -> str:
    shown = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values[:6])
    more = f" and {len(values) - 6} more" if len(values) > 6 else ""
    return f"{name} took {counted(len(values), 'value')} ({shown}{more})"


def _varied_item(
    question: str, rows: Sequence[Mapping[str, Any]], names: Sequence[str], what: str
) -> dict[str, Any]:
    present = [name for name in names if any(name in row["params"] for row in rows)]
    if not present:
        return _item(question, False, f"no {what} hyperparameter in the trials")
    seen = {name: varied(rows, name) for name in present}
    moved = [name for name in present if len(seen[name]) > 1]
    evidence = "; ".join(_values_text(name, seen[name]) for name in present)
    return _item(question, bool(moved), evidence + " across the coarse and fine trials")


def checklist(
    *,
    sweep_rows: Sequence[Mapping[str, Any]],
    seed_rows: Sequence[Mapping[str, Any]],
    chosen_group: str,
    space: Sequence[str],
    lr_range: Mapping[str, Any] | None,
    logs: Mapping[str, Any],
    diminishing: Mapping[str, Any],
    baseline_group: str = BASELINE,
) -> list[dict[str, Any]]:
    """The methodology's summary checklist, each question answered from this run's data.

    ``logs`` is the audit of the trial files (``planned``, ``complete``, ``missing``,
    ``git_commits``); ``diminishing`` the result of :func:`diminishing_returns`.
    """
    params = sorted({name for row in sweep_rows for name in row["params"]})
    return [
        _lr_item(sweep_rows, seed_rows, chosen_group, lr_range),
        _schedule_item(sweep_rows, seed_rows, space),
        _varied_item(
            "Have I explored different model sizes?",
            sweep_rows,
            model_size_keys(params),
            "model-size",
        ),
        _varied_item(
            "Have I tested different batch sizes?", sweep_rows, ["batch_size"], "batch-size"
        ),
        _varied_item(
            "Have I tuned regularization (weight decay, dropout)?",
            sweep_rows,
            ["weight_decay", "dropout"],
            "regularisation",
        ),
        _seeds_item(seed_rows, baseline_group),
        _logs_item(logs),
        _item(
            "Am I seeing diminishing returns from further tuning?",
            bool(diminishing["reached"]),
            # the answer column says yes or no: the evidence alone beside it
            diminishing.get("evidence", diminishing["verdict"]),
        ),
    ]


def _lr_item(
    sweep_rows: Sequence[Mapping[str, Any]],
    seed_rows: Sequence[Mapping[str, Any]],
    chosen_group: str,
    lr_range: Mapping[str, Any] | None,
) -> dict[str, Any]:
    question = "Have I found a learning rate that gives stable training?"
    if lr_range is None:
        return _item(question, False, "the LR range test did not run")
    chosen = [row for row in seed_rows if row["group"] == chosen_group]
    chosen_ok = sum(row["status"] == "ok" for row in chosen)
    diverged = sum(row["status"] == "diverged" for row in sweep_rows)
    lr = chosen[0]["params"].get("lr") if chosen else None
    lo, hi = lr_range["range"]
    return _item(
        question,
        bool(chosen) and chosen_ok == len(chosen),
        f"the LR range test suggested {lr_range['suggestion']:.3g} (range"
        f" [{lo:.3g}, {hi:.3g}], divergence at {_maybe(lr_range['divergence_lr'])});"
        f" the chosen lr {_maybe(lr)} trained ok in"
        f" {chosen_ok} of {len(chosen)} seed runs; {diverged} of {len(sweep_rows)}"
        " sweep trials diverged",
    )


def _schedule_item(
    sweep_rows: Sequence[Mapping[str, Any]],
    seed_rows: Sequence[Mapping[str, Any]],
    space: Sequence[str],
) -> dict[str, Any]:
    schedules = varied([*sweep_rows, *seed_rows], "schedule")
    in_space = "schedule" in space
    return _item(
        "Have I tried a learning rate schedule?",
        in_space or len(schedules) > 1,
        f"schedule {'is' if in_space else 'is not'} in the search space; the trials used "
        + ", ".join(map(str, schedules)),
    )


def _seeds_item(seed_rows: Sequence[Mapping[str, Any]], baseline_group: str) -> dict[str, Any]:
    counts = {g: c for g, c in _seed_counts(seed_rows).items() if g != baseline_group}
    enough = bool(counts) and all(ok >= MIN_SEEDS for ok, _ in counts.values())
    return _item(
        "Have I run top configs with multiple seeds to check variance?",
        enough,
        f"{len(counts)} finalists, ok seed runs each: "
        + ", ".join(f"{g}: {ok} of {total}" for g, (ok, total) in sorted(counts.items()))
        + f"; the methodology asks for {MIN_SEEDS}-5 seeds",
    )


def _logs_item(logs: Mapping[str, Any]) -> dict[str, Any]:
    commits = sorted({str(c) for c in logs.get("git_commits", [])})
    missing = logs["missing"]
    shown = f"; missing: {', '.join(missing[:5])}" if missing else ""
    if len(missing) > 5:
        shown += f" (the first 5 of {len(missing)})"
    return _item(
        "Have I logged all experiments for reproducibility?",
        not missing,
        f"{logs['complete']} of {logs['planned']} trials have config.json, history.csv"
        " and a result.json with seed, config hash and package versions (a config that"
        " halved: in each level's folder)"
        + shown
        + f"; git commit{'s' if len(commits) > 1 else ''}: {', '.join(commits) or 'none'}",
    )


@dataclass(frozen=True, kw_only=True)
class Chosen:
    """The chosen config as the pitfalls judge it, against the untuned default.

    Attributes:
        params: its full config (``final/summary.json``'s ``best_config``).
        baseline_params: the untuned default's (None: the default did not run).
        val: its val metric over seeds (``{"mean", "std"}``), and
        test: its test metric.
        p_value: Welch's t-test of it against the runner-up (None: no runner-up).
    """

    params: Mapping[str, Any]
    baseline_params: Mapping[str, Any] | None
    val: Mapping[str, Any]
    test: Mapping[str, Any]
    p_value: float | None


def pitfalls(
    *,
    overfit: Mapping[str, Any],
    space: Mapping[str, BaseDistribution],
    chosen: Chosen,
    checklist_items: Sequence[Mapping[str, Any]],
    mode: Direction | str,
    sensitivity: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The methodology's common pitfalls, each with whether this run avoided it.

    ``answer`` is True (avoided), False (fallen into) or None (a judgement the
    evidence leaves to the reader). Validation overfitting is suspected when the
    ``chosen`` config's test mean trails its val mean by more than ``VAL_TEST_DROP``
    (relative) and by more than two seed standard deviations. ``sensitivity`` is
    the report's sensitivity section: when the rung ran, its one-at-a-time trials
    answer "changing multiple things at once".
    """
    by_question = {item["question"]: item for item in checklist_items}
    seeds_item = by_question["Have I run top configs with multiple seeds to check variance?"]
    p_text = "n/a" if chosen.p_value is None else f"{chosen.p_value:.3g}"
    logged = by_question["Have I logged all experiments for reproducibility?"]
    return [
        _too_early_item(overfit),
        _log_scale_item(space),
        _one_at_a_time_item(space, chosen, sensitivity),
        _item(
            "Ignoring variance (one seed per config)?",
            seeds_item["answer"],
            seeds_item["evidence"]
            + f"; Welch t-test of the chosen vs the runner-up: p = {p_text}",
        ),
        _val_overfit_item(chosen, mode),
        _item("Not tracking enough?", logged["answer"], logged["evidence"]),
    ]


def _too_early_item(overfit: Mapping[str, Any]) -> dict[str, Any]:
    return _item(
        "Tuning too early (before verifying the model can overfit)?",
        bool(overfit.get("passed")),
        f"the overfit check {'passed' if overfit.get('passed') else 'did not pass'}: loss"
        f" {overfit.get('final_loss', math.nan):.3g} on {overfit.get('subset')} samples"
        f" after {overfit.get('steps')} steps (threshold"
        f" {overfit.get('loss_threshold') or math.nan:.3g});"
        " the sweep rungs depend on it in the workflow, so they ran after it",
    )


def _log_scale_item(space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    linear = []
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution | IntDistribution) and not dist.log:
            wide = dist.low > 0 and dist.high / dist.low >= LOG_RATIO
            if name in MULTIPLICATIVE or wide:
                linear.append(f"{name} [{dist.low:.3g}, {dist.high:.3g}]")
    logs = [name for name, dist in space.items() if getattr(dist, "log", False)]
    return _item(
        "Not using log scale for multiplicative parameters?",
        not linear,
        f"searched on a log scale: {', '.join(logs) or 'none'}"
        + (f"; searched linearly but should not be: {', '.join(linear)}" if linear else ""),
    )


def _one_at_a_time_item(
    space: Mapping[str, BaseDistribution],
    chosen: Chosen,
    sensitivity: Mapping[str, Any] | None,
) -> dict[str, Any]:
    differ = []
    if chosen.baseline_params is not None:
        differ = sorted(
            name
            for name, value in chosen.params.items()
            if name not in ("seed", "epochs") and chosen.baseline_params.get(name) != value
        )
    evidence = (
        f"random search varies all {len(space)} searched parameters at once by design; the"
        " scatter plots and fANOVA separate their effects statistically. The chosen config"
        f" differs from the untuned default in {counted(len(differ), 'parameter')}"
        f" ({', '.join(differ) or 'none'})"
    )
    if sensitivity and sensitivity.get("enabled"):
        one_by_one = list(sensitivity["parameters"])
        evidence += (
            f"; the sensitivity rung then varied {len(one_by_one)} of them one at a time around"
            f" the chosen config ({', '.join(one_by_one) or 'none'}): {sensitivity['verdict']}"
        )
        answer: bool | None = True
    else:
        evidence += (
            "; run a targeted one-at-a-time comparison (the sensitivity rung,"
            " sensitivity.enabled) to attribute the gain to one of them"
        )
        answer = None
    return _item("Changing multiple things at once?", answer, evidence)


def _val_overfit_item(chosen: Chosen, mode: Direction | str) -> dict[str, Any]:
    val, test = chosen.val, chosen.test
    gap, avoided = None, True
    if val.get("mean") is not None and test.get("mean") is not None:
        gap = test["mean"] - val["mean"]
        noise = 2 * max(val.get("std") or 0.0, test.get("std") or 0.0)
        drop = -improvement(val["mean"], test["mean"], mode)
        avoided = not (drop > VAL_TEST_DROP and abs(gap) > noise)
    return _item(
        "Overfitting to the validation set?",
        avoided,
        "selection used only the val split; the test split was read once, by the final rule,"
        " for the chosen config's seed models and the default's; chosen val"
        f" {_mean_text(val)} vs test {_mean_text(test)}"
        + ("" if gap is None else f" (test - val = {gap:+.4g})")
        + ("" if avoided else "; test trails val by more than 2% and 2 seed std: suspect"),
    )


def _mean_text(stats: Mapping[str, Any]) -> str:
    if stats.get("mean") is None:
        return "n/a"
    std = stats.get("std")
    return f"{stats['mean']:.4g}" + ("" if std is None else f" ± {std:.2g}")
