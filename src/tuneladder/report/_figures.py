"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

No pyplot: figures are built as ``Figure`` objects on a ``FigureCanvasAgg``,
so no global state or display backend is involved, and each function takes
plain data (rows, dicts, lists) and returns a figure.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneladder.core.direction import Direction, ok_value
from tuneladder.ladder.rungs import SEARCH_RUNGS
from tuneladder.report._analysis import POINTS_MAX, figure_sample

__all__ = [
    "best_so_far_figure",
    "curves_figure",
    "halving_figure",
    "hyperparameters_figure",
    "importance_figure",
    "ladder_figure",
    "lr_range_figure",
    "overfit_figure",
    "parallel_figure",
    "metric_limits",
    "png_bytes",
    "seeds_figure",
    "sensitivity_figure",
]

# one colour and marker per searching rung, in ladder order
_STYLES = (
    {"color": "#1f77b4", "marker": "o"},
    {"color": "#ff7f0e", "marker": "^"},
    {"color": "#2ca02c", "marker": "s"},
    {"color": "#9467bd", "marker": "D"},
)
RUNG_STYLE = {
    rung.name: {**style, "label": rung.name}
    for rung, style in zip(SEARCH_RUNGS, itertools.cycle(_STYLES))
}
FAILURE_COLOR = "#d62728"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, without a software tag (same data, same file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def metric_limits(values: Sequence[float], mode: Direction | str) -> tuple[float, float]:
    """Axis limits that keep the bulk of the trials readable.

    The worse tail (below the lower quartile minus 1.5 interquartile ranges for a
    ``max`` metric, above the upper quartile plus 1.5 for ``min``) is cut off; the
    figures draw those trials on the edge with a triangle pointing out.
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return 0.0, 1.0
    q1, q3 = np.percentile(v, [25, 75])
    lo, hi = float(v.min()), float(v.max())
    if Direction(mode) is Direction.MAXIMIZE:
        lo = max(lo, float(q1 - 1.5 * (q3 - q1)))
    else:
        hi = min(hi, float(q3 + 1.5 * (q3 - q1)))
    pad = 0.05 * (hi - lo) or 0.01 * abs(hi) or 0.01
    return lo - pad, hi + pad


def _scatter_metric(
    ax: Any,
    x: Any,
    y: Sequence[float],
    limits: tuple[float, float],
    mode: Direction | str,
    **style: Any,
) -> None:
    """Scatter, with points past the worse limit drawn on it as triangles pointing out."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    lo, hi = limits
    worse_low = Direction(mode) is Direction.MAXIMIZE
    out = y < lo if worse_low else y > hi
    ax.scatter(x[~out], y[~out], s=22, alpha=0.8, **style)
    if out.any():
        edge = {k: v for k, v in style.items() if k != "label"}
        edge["marker"] = "v" if worse_low else "^"
        ax.scatter(x[out], np.clip(y[out], lo, hi), s=30, alpha=0.8, clip_on=False, **edge)
    ax.set_ylim(lo, hi)


def ladder_figure(rungs: Sequence[Mapping[str, Any]]) -> Figure:
    """Wall-clock seconds per rung (from Snakemake's benchmarks), in ladder order."""
    fig = _figure(7, 0.4 * len(rungs) + 1.2)
    ax = fig.add_subplot()
    labels = [r["label"] for r in rungs]
    seconds = [r["seconds"] or 0.0 for r in rungs]
    ax.barh(labels, seconds, color="#4c72b0")
    for i, value in enumerate(seconds):
        ax.text(value, i, f" {value:.1f} s", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("wall-clock seconds (parallel workers: the slowest)")
    ax.set_xlim(0, max(seconds, default=1.0) * 1.2 or 1.0)
    return fig


def halving_figure(
    sweeps: Sequence[Mapping[str, Any]], *, metric: str, mode: Direction | str
) -> Figure:
    """Val metric per epoch of every config of each sweep that halves, one panel per sweep.

    Each sweep gives its ``levels`` (epochs) and ``rows`` (with ``history`` and
    ``halving``): configs that reached the last level are drawn in colour, those
    stopped earlier in grey, so a line ends where its config stopped. Above
    ``LINES_MAX`` configs a panel draws the best and a seeded sample of the others
    (:func:`~tuneladder.report._analysis.figure_sample`).
    """
    fig = _figure(10, 3.6)
    if not sweeps:
        return _empty(fig, "no sweep halves")
    for i, sweep in enumerate(sweeps):
        ax = fig.add_subplot(1, len(sweeps), i + 1)
        colour = RUNG_STYLE.get(sweep["rung"], _STYLES[0])["color"]
        lines: dict[bool, list[Any]] = {True: [], False: []}  # finished: their lines
        drawn, _ = figure_sample(sweep["rows"], mode)
        for row in drawn:
            if row["history"]:  # epoch n has trained n epochs
                points = [(h["epoch"] + 1, h["val_metric"]) for h in row["history"]]
                lines[row["halving"]["level"] == row["halving"]["last_level"]].append(points)
        for finished, style in (
            (False, {"colors": "#999999", "linewidths": 0.8, "alpha": 0.7}),
            (True, {"colors": colour, "linewidths": 1.4}),
        ):
            if lines[finished]:
                ax.add_collection(LineCollection(lines[finished], **style))
                ends = np.asarray([line[-1] for line in lines[finished]], dtype=float)
                ax.scatter(ends[:, 0], ends[:, 1], s=9, color=style["colors"])
        ax.autoscale_view()
        for level in sweep["levels"]:
            ax.axvline(level["epochs"], color="black", ls=":", lw=0.8)
        ax.set_title(f"{sweep['rung']}: halving by {sweep['eta']}", fontsize=9)
        ax.set_xlabel("epochs trained", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"val {metric}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.plot([], [], "-", color="#999999", label="stopped early")
        ax.plot([], [], "-", color=colour, label="trained to the end")
        ax.legend(fontsize=7)
    return fig


def overfit_figure(overfit: Mapping[str, Any]) -> Figure:
    """The overfit check's training loss per step, with its threshold."""
    fig = _figure(7, 3.2)
    curve = overfit.get("curve") or []
    if not curve:
        return _empty(fig, "the overfit check recorded no curve")
    ax = fig.add_subplot()
    steps = [p["step"] for p in curve]
    ax.plot(steps, [p["loss"] for p in curve], color="#4c72b0", label="train loss (subset)")
    ax.axhline(overfit["loss_threshold"], color="grey", ls="--", label="pass threshold")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if "accuracy" in curve[0]:
        acc = ax.twinx()
        acc.plot(steps, [p["accuracy"] for p in curve], color="#55a868", label="accuracy")
        acc.set_ylabel("accuracy")
        acc.set_ylim(0, 1.05)
        acc.legend(loc="center right", fontsize=8)
    verdict = "passed" if overfit.get("passed") else "FAILED"
    if overfit.get("passed_by") == "accuracy":
        verdict += " on accuracy (every sample right)"
    ax.set_title(f"overfit check {verdict}: {overfit.get('subset')} samples", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def lr_range_figure(
    lr_range: Mapping[str, Any] | None, coarse_lr: tuple[float, float] | None
) -> Figure:
    """The LR range curve with the suggestion, minimum, divergence point and ranges marked."""
    fig = _figure(7, 3.6)
    if not lr_range:
        return _empty(fig, "the LR range test did not run")
    ax = fig.add_subplot()
    lrs = np.asarray(lr_range["lrs"])
    raw = np.asarray(lr_range["losses"])
    smooth = np.asarray(lr_range["smoothed"])
    ax.plot(lrs[: len(raw)], raw, color="#c0c0c0", lw=0.8, label="loss per step")
    ax.plot(lrs[: len(smooth)], smooth, color="#4c72b0", label="smoothed (EMA)")
    centred = np.asarray(lr_range.get("smoothed_zero_lag") or [])
    if len(centred):
        ax.plot(lrs[: len(centred)], centred, color="#8172b2", ls=":", label="zero-lag smoothing")
    low, high = lr_range["range"]
    ax.axvspan(low, high, color="#55a868", alpha=0.15, label="derived range")
    if coarse_lr is not None and tuple(coarse_lr) != (low, high):
        ax.axvline(coarse_lr[0], color="#55a868", ls="--", lw=1)
        ax.axvline(coarse_lr[1], color="#55a868", ls="--", lw=1, label="coarse lr range used")
    ax.axvline(lr_range["suggestion"], color="#c44e52", label="suggestion")
    ax.axvline(lr_range["min_loss_lr"], color="#dd8452", ls="-.", label="minimum loss")
    if lr_range.get("divergence_lr") is not None:
        ax.axvline(lr_range["divergence_lr"], color="black", ls="--", label="divergence")
    finite = smooth[np.isfinite(smooth)]
    if len(finite):
        # from the lowest loss to half the start's distance above it again: the blow-up
        # at the end would squash the rest; a task's own loss may lie below zero
        start, lowest = float(finite[0]), float(np.min(finite))
        pad = max(start - lowest, abs(lowest) * 0.2, 1e-12)
        bottom = max(0.0, lowest - 0.25 * pad) if lowest >= 0 else lowest - 0.25 * pad
        ax.set_ylim(bottom, start + 0.5 * pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def curves_figure(panels: Sequence[Mapping[str, Any]]) -> Figure:
    """Train and val loss per epoch, one panel per trial (``title``, ``history``, ``note``)."""
    cols = 3
    rows = max(1, math.ceil(len(panels) / cols))
    fig = _figure(10, 2.6 * rows)
    if not panels:
        return _empty(fig, "no trials")
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        history = panel["history"]
        ax.set_title(panel["title"], fontsize=9)
        if not history:
            ax.text(0.5, 0.5, panel.get("note") or "no epochs recorded", ha="center", wrap=True)
            ax.set_axis_off()
            continue
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], "-o", ms=3, label="train loss")
        ax.plot(epochs, [h["val_loss"] for h in history], "-s", ms=3, label="val loss")
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 0.5
        ax.tick_params(labelsize=7)
        finite = [v for h in history for v in (h["train_loss"], h["val_loss"]) if math.isfinite(v)]
        # a log axis only where every loss is above zero (a task's own loss may not be)
        if finite and min(finite) > 0 and max(finite) / min(finite) > 50:
            ax.set_yscale("log")
        if i == 0:
            ax.legend(fontsize=7)
    return fig


def _mark_failures(ax: Any, xs: Any, label: str) -> None:
    """Crosses along the bottom edge at ``xs``: a failed run has no metric to plot at."""
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    ax.scatter(
        xs,
        [0.03] * len(xs),
        transform=bottom,
        marker="x",
        color=FAILURE_COLOR,
        label=label,
        clip_on=False,
    )


def _positions(dist: BaseDistribution, values: Sequence[Any], rng: np.random.Generator) -> Any:
    if isinstance(dist, CategoricalDistribution):
        index = [dist.choices.index(v) if v in dist.choices else -1 for v in values]
        return np.asarray(index, dtype=float) + rng.uniform(-0.15, 0.15, len(index))
    return np.asarray(values, dtype=float)


def _set_axis(ax: Any, name: str, dist: BaseDistribution) -> None:
    if isinstance(dist, CategoricalDistribution):
        ax.set_xticks(range(len(dist.choices)))
        ax.set_xticklabels([str(c) for c in dist.choices], fontsize=8)
        ax.set_xlim(-0.5, len(dist.choices) - 0.5)
    elif getattr(dist, "log", False):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short spans
    if isinstance(dist, IntDistribution):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(name + (" (log)" if getattr(dist, "log", False) else ""), fontsize=9)


def hyperparameters_figure(
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    space: Mapping[str, BaseDistribution],
    *,
    chosen: Mapping[str, Any],
    metric: str,
    mode: Direction | str,
) -> Figure:
    """One scatter per searched parameter: value against the best val metric.

    Coarse and fine trials differ in colour and marker; trials without a metric
    (diverged, failed) are red crosses along the bottom; the chosen value is a line.
    Outliers on the worse side sit on the axis edge (see :func:`metric_limits`).
    Above ``POINTS_MAX`` trials it draws the best and a seeded sample of the others
    (:func:`~tuneladder.report._analysis.figure_sample`); the axes span them all.
    """
    limits = metric_limits([r["best_val_metric"] for r in rows if r["status"] == "ok"], mode)
    drawn = {id(row) for row in figure_sample(rows, mode, limit=POINTS_MAX)[0]}
    pairs = [(r, label) for r, label in zip(rows, labels, strict=True) if id(r) in drawn]
    rows, labels = [r for r, _ in pairs], [label for _, label in pairs]
    names = list(space)
    cols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / cols))
    fig = _figure(10, 2.8 * nrows)
    if not names:
        return _empty(fig, "nothing was searched")
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, cols, i + 1)
        dist = space[name]
        for rung, style in RUNG_STYLE.items():
            hit = [
                r
                for r in rows
                if r["rung"] == rung
                and r["status"] == "ok"
                and r["best_val_metric"] is not None
                and name in r["params"]  # absent where the trial did not sample it
            ]
            if hit:
                x = _positions(dist, [r["params"][name] for r in hit], rng)
                y = [r["best_val_metric"] for r in hit]
                _scatter_metric(ax, x, y, limits, mode, **style)
        bad = [
            r
            for r, label in zip(rows, labels, strict=True)
            if label in ("diverged", "failed") and name in r["params"]
        ]
        if bad:
            x = _positions(dist, [r["params"][name] for r in bad], rng)
            _mark_failures(ax, x, "diverged/failed")
        if name in chosen:
            value = _positions(dist, [chosen[name]], np.random.default_rng(0))[0]
            if isinstance(dist, CategoricalDistribution):
                value = round(value)
            ax.axvline(value, color="black", ls=":", lw=1, label="chosen")
        _set_axis(ax, name, dist)
        ax.set_ylabel(f"best val {metric}", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    return fig


def _unit(dist: BaseDistribution, value: Any) -> float:
    if isinstance(dist, CategoricalDistribution):
        k = len(dist.choices)
        return dist.choices.index(value) / (k - 1) if k > 1 else 0.5
    assert isinstance(dist, FloatDistribution | IntDistribution)
    to = math.log10 if dist.log else float
    span = to(dist.high) - to(dist.low)
    return (to(value) - to(dist.low)) / span if span > 0 else 0.5


def _end_label(dist: BaseDistribution, end: str) -> str:
    if isinstance(dist, CategoricalDistribution):
        return ""
    value = getattr(dist, end)
    return f"{value:.3g}"


# Where the parallel coordinates put a parameter a trial did not sample: below the axis.
ABSENT_Y = -0.2


@dataclass(frozen=True)
class _MetricScale:
    """The parallel coordinates' metric axis and colours.

    Both span the robust range of the values (:func:`metric_limits`), so one bad
    outlier does not squeeze every other line into one colour and one spot:
    outliers sit on the axis end, which is then marked "<=" (or ">=").
    """

    lo: float  # the values' range
    hi: float
    c_lo: float  # the axis's and the colours' range
    c_hi: float
    worse_low: bool  # the worse end is the low one (a max metric)

    @classmethod
    def of(cls, values: Sequence[float], mode: Direction | str) -> _MetricScale:
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        c_lo, c_hi = metric_limits(values, mode) if values else (lo, hi)
        worse_low = Direction(mode) is Direction.MAXIMIZE
        return cls(lo, hi, max(c_lo, lo), min(c_hi, hi), worse_low)

    @property
    def cut(self) -> bool:
        return self.c_lo > self.lo if self.worse_low else self.c_hi < self.hi

    def norm(self, *, clip: bool = False) -> Normalize:
        top = self.c_hi if self.c_hi > self.c_lo else self.c_lo + 1e-12
        return Normalize(vmin=self.c_lo, vmax=top, clip=clip)

    def ends(self) -> tuple[str, str]:
        """The axis's end labels."""
        low = f"≤ {self.c_lo:.3g}" if self.cut and self.worse_low else f"{self.c_lo:.3g}"
        high = f"≥ {self.c_hi:.3g}" if self.cut and not self.worse_low else f"{self.c_hi:.3g}"
        return low, high


def parallel_figure(
    rows: Sequence[Mapping[str, Any]],
    space: Mapping[str, BaseDistribution],
    *,
    metric: str,
    mode: Direction | str,
) -> Figure:
    """Parallel coordinates of the sweep trials, coloured by the best val metric.

    Each axis spans the coarse range (log parameters on a log scale; categories
    evenly spaced); the last axis is the metric. Trials without a metric are grey.
    Above ``LINES_MAX`` trials it draws the best and a seeded sample of the others
    (:func:`~tuneladder.report._analysis.figure_sample`); the colours and the metric
    axis still span every trial's values.
    """
    names = list(space)
    fig = _figure(10, 4.2)
    if not names or not rows:
        return _empty(fig, "nothing to draw")
    ax = fig.add_subplot()
    scale = _MetricScale.of([v for v in map(ok_value, rows) if v is not None], mode)
    cmap = "viridis" if scale.worse_low else "viridis_r"
    mappable = ScalarMappable(norm=scale.norm(), cmap=cmap)
    drawn, _ = figure_sample(rows, mode)
    scored, scores, unscored = _parallel_lines(drawn, space, scale, mode)
    # one collection per kind, in the order above (the best drawn last, on top): a
    # sweep of thousands draws in a second, with thinner, fainter lines to stay legible
    crowd = max(1.0, len(drawn) / 300)
    if unscored:
        ax.add_collection(
            LineCollection(unscored, colors="#999999", linewidths=1, linestyles="--", alpha=0.7)
        )
    if scored:
        ax.add_collection(
            LineCollection(
                scored,
                colors=mappable.to_rgba(scores),
                linewidths=1.4 / crowd**0.5,
                alpha=max(0.1, 0.85 / crowd),
            )
        )
    absent = {n for n in names if any(n not in row["params"] for row in drawn)}
    _parallel_axes(ax, space, absent, scale, metric)
    extend = ("min" if scale.worse_low else "max") if scale.cut else "neither"
    fig.colorbar(mappable, ax=ax, label=f"best val {metric}", extend=extend)
    return fig


def _parallel_lines(
    rows: Sequence[Mapping[str, Any]],
    space: Mapping[str, BaseDistribution],
    scale: _MetricScale,
    mode: Direction | str,
) -> tuple[list[Any], list[float], list[Any]]:
    """The lines of the trials with a metric, their values, and those of the trials without,
    worst first and the best last (on top); trials without a metric first of all."""
    names = list(space)
    xs = list(range(len(names) + 1))
    place = scale.norm(clip=True)
    direction = Direction(mode)
    ordered = sorted(rows, key=lambda row: direction.sort_key(ok_value(row)), reverse=True)
    scored, scores, unscored = [], [], []
    for row in ordered:
        # a parameter the trial did not sample sits below its axis, at "absent"
        ys = [_unit(space[n], row["params"][n]) if n in row["params"] else ABSENT_Y for n in names]
        value = ok_value(row)
        if value is not None:
            ys.append(float(place(value)) if scale.hi > scale.lo else 0.5)
            scored.append(list(zip(xs, ys, strict=True)))
            scores.append(value)
        else:
            unscored.append(list(zip(xs[:-1], ys, strict=True)))
    return scored, scores, unscored


def _parallel_axes(
    ax: Any,
    space: Mapping[str, BaseDistribution],
    absent: set[str],
    scale: _MetricScale,
    metric: str,
) -> None:
    """Each parameter's axis with its ends (and choices), then the metric's."""
    names = list(space)
    for x, name in enumerate(names):
        ax.axvline(x, color="black", lw=0.8)
        dist = space[name]
        ax.text(x, -0.04, _end_label(dist, "low"), ha="center", va="top", fontsize=7)
        ax.text(x, 1.04, _end_label(dist, "high"), ha="center", va="bottom", fontsize=7)
        if isinstance(dist, CategoricalDistribution):
            for choice in dist.choices:
                ax.text(x + 0.03, _unit(dist, choice), str(choice), fontsize=7, va="center")
        if name in absent:
            ax.text(x + 0.03, ABSENT_Y, "absent", fontsize=7, va="center", style="italic")
    ax.axvline(len(names), color="black", lw=0.8)
    low_end, high_end = scale.ends()
    ax.text(len(names), -0.04, low_end, ha="center", va="top", fontsize=7)
    ax.text(len(names), 1.04, high_end, ha="center", va="bottom", fontsize=7)
    labels = [n + (" (log)" if getattr(space[n], "log", False) else "") for n in names]
    ax.set_xticks(range(len(names) + 1))
    # many axes: tilt the names so that neighbours do not overlap
    tilt = {"rotation": 20, "ha": "right"} if len(names) > 8 else {}
    ax.set_xticklabels([*labels, f"val {metric}"], fontsize=8, **tilt)
    ax.set_yticks([])
    ax.set_ylim(ABSENT_Y - 0.06 if absent else -0.12, 1.12)
    ax.set_xlim(-0.3, len(names) + 0.3)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def importance_figure(importance: Mapping[str, Any]) -> Figure:
    """fANOVA main effects as bars, with what they leave to interactions."""
    scores = {k: v for k, v in importance["importances"].items() if v is not None}
    fig = _figure(7, 0.35 * (len(scores) + 1) + 1.4)
    if not scores:
        reason = "; ".join(importance.get("caveats") or []) or "not computed"
        return _empty(fig, f"importance not computed: {reason}")
    ax = fig.add_subplot()
    # a parameter only some trials sampled is measured among those: a lighter bar
    conditional = importance.get("conditional") or {}
    names = [n + (f" ({conditional[n]} trials)" if n in conditional else "") for n in scores]
    bars = list(scores.values())
    colors = ["#a6bddb" if n in conditional else "#4c72b0" for n in scores]
    if importance.get("interactions") is not None:
        names.append("(interactions)")
        bars.append(importance["interactions"])
        colors.append("#bbbbbb")
    ax.barh(names, bars, color=colors)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of val-metric variance explained (fANOVA main effect)")
    note = " (few trials: a rough hint)" if importance["trials"] < importance["min_trials"] else ""
    ax.set_title(f"{importance['trials']} ok trials{note}", fontsize=10)
    return fig


def seeds_figure(groups: Sequence[Mapping[str, Any]], *, metric: str) -> Figure:
    """Per finalist (and the default): val metric of each seed, mean and std; test if measured."""
    fig = _figure(7, 3.4)
    if not groups:
        return _empty(fig, "no seed reruns")
    ax = fig.add_subplot()
    for i, group in enumerate(groups):
        val = group["val"]["values"]
        ax.scatter([i - 0.08] * len(val), val, color="#4c72b0", s=20, zorder=3)
        if group["val"]["mean"] is not None:
            ax.errorbar(
                i - 0.08,
                group["val"]["mean"],
                yerr=group["val"]["std"] or 0.0,
                fmt="_",
                color="black",
                capsize=6,
                markersize=14,
                zorder=4,
            )
        test = (group.get("test") or {}).get("values") or []
        if test:
            ax.scatter([i + 0.08] * len(test), test, color="#dd8452", marker="D", s=18, zorder=3)
    ax.scatter([], [], color="#4c72b0", s=20, label="val, one seed")
    ax.scatter([], [], color="#dd8452", marker="D", s=18, label="test, one seed")
    ax.errorbar([], [], yerr=[], fmt="_", color="black", label="val mean ± std")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g["label"] for g in groups], fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    return fig


def _sensitivity_panel(ax: Any, name: str, p: Mapping[str, Any], metric: str) -> None:
    points = p["points"]
    choice = p["kind"] == "choice"
    xs: list[Any] = list(range(len(points))) if choice else [q["value"] for q in points]
    if not choice:
        low, high = p["low"], p["high"]
        ax.axvspan(low, high, color="#4c72b0", alpha=0.08, label="searched range")
        if p["kind"] == "log":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            pad = (high / low) ** 0.04
            ax.set_xlim(low / pad, high * pad)
        else:
            pad = 0.04 * (high - low)
            ax.set_xlim(low - pad, high + pad)
        if p["kind"] == "int":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for x, q in zip(xs, points, strict=True):
        if q["values"]:
            ax.scatter([x] * len(q["values"]), q["values"], color="#4c72b0", s=12, alpha=0.5)
    known = [(x, q) for x, q in zip(xs, points, strict=True) if q["mean"] is not None]
    if known:
        kx = [x for x, _ in known]
        means = np.asarray([q["mean"] for _, q in known])
        stds = np.asarray([q["std"] or 0.0 for _, q in known])
        if choice:
            ax.errorbar(
                kx, means, yerr=stds, fmt="o", color="black", capsize=4, label="mean ± std"
            )
        else:
            ax.plot(kx, means, "-o", color="black", ms=4, label="mean ± std")
            ax.fill_between(kx, means - stds, means + stds, color="black", alpha=0.12, lw=0)
    failed = [x for x, q in zip(xs, points, strict=True) if q["n"] == 0]
    if failed:
        _mark_failures(ax, failed, "all seeds failed")
    chosen = next(x for x, q in zip(xs, points, strict=True) if q["chosen"])
    ax.axvline(chosen, color="black", ls=":", lw=1, label="chosen")
    if choice:
        ax.set_xticks(xs)
        ax.set_xticklabels([str(q["value"]) for q in points], fontsize=8)
        ax.set_xlim(-0.5, len(points) - 0.5)
    verdict = "sensitive" if p["sensitive"] else "flat"
    ax.set_title(f"{name}: {verdict}, {p['shape']}", fontsize=9)
    ax.set_xlabel(name + (" (log)" if p["kind"] == "log" else ""), fontsize=8)
    ax.set_ylabel(f"val {metric}", fontsize=8)
    ax.tick_params(labelsize=7)


def sensitivity_figure(section: Mapping[str, Any], *, metric: str) -> Figure:
    """One panel per hyperparameter the sensitivity rung varied: the val metric per value,
    each seed a dot, mean ± std, the chosen value dotted and the searched range shaded."""
    params = section.get("parameters") or {}
    cols = min(3, max(1, len(params)))
    nrows = max(1, math.ceil(len(params) / cols))
    fig = _figure(10, 2.8 * nrows)
    if not section.get("enabled"):
        return _empty(fig, "the sensitivity rung did not run (sensitivity.enabled is false)")
    if not params:
        return _empty(fig, "no searched hyperparameter applies to the chosen config")
    # the legend goes on the first panel that shows every element: a number's, if any
    keyed = next((n for n, p in params.items() if p["kind"] != "choice"), next(iter(params)))
    for i, (name, p) in enumerate(params.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        _sensitivity_panel(ax, name, p, metric)
        if name == keyed:
            ax.legend(fontsize=6)
    return fig


def best_so_far_figure(
    rows: Sequence[Mapping[str, Any]],
    curve: Sequence[float | None],
    *,
    window: int,
    metric: str,
    mode: Direction | str,
) -> Figure:
    """Each sweep trial's best val metric and the best so far, with the rule's last window.

    Above ``POINTS_MAX`` trials the points are the best and a seeded sample of the others;
    the best-so-far line follows every trial.
    """
    fig = _figure(7, 3.4)
    if not rows:
        return _empty(fig, "no trials")
    ax = fig.add_subplot()
    numbers = np.arange(1, len(rows) + 1)
    limits = metric_limits([r["best_val_metric"] for r in rows if r["status"] == "ok"], mode)
    drawn = {id(row) for row in figure_sample(rows, mode, limit=POINTS_MAX)[0]}
    for rung, style in RUNG_STYLE.items():
        hit = [
            (n, r["best_val_metric"])
            for n, r in zip(numbers, rows, strict=True)
            if r["rung"] == rung
            and r["status"] == "ok"
            and r["best_val_metric"] is not None
            and id(r) in drawn
        ]
        if hit:
            x, y = zip(*hit, strict=True)
            _scatter_metric(ax, x, y, limits, mode, **style)
    known = [(n, v) for n, v in zip(numbers, curve, strict=True) if v is not None]
    if known:
        ax.step(*zip(*known, strict=True), where="post", color="black", label="best so far")
    if len(rows) > window:
        ax.axvspan(
            len(rows) - window + 0.5,
            len(rows) + 0.5,
            color="#c44e52",
            alpha=0.1,
            label=f"last {window} trials",
        )
    for i in range(1, len(rows)):
        if rows[i]["rung"] != rows[i - 1]["rung"]:  # where the next rung's trials start
            ax.axvline(i + 0.5, color="grey", ls=":", lw=1)
    ax.set_xlabel(f"trial number ({', then '.join(r.name for r in SEARCH_RUNGS)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"best val {metric}")
    ax.legend(fontsize=7)
    return fig
