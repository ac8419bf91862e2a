"""The report page: one self-contained HTML file rendered from ``summary.json`` and PNGs.

No scripts, no external stylesheets, fonts or images: figures are embedded as
base64 ``data:`` URIs, so the file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tuneladder.core.stats import bounds_text
from tuneladder.ladder.rungs import (
    FINAL,
    LR_RANGE,
    OVERFIT,
    PREPARE,
    SEARCH_RUNGS,
    SEEDS,
    SELECT,
    SENSITIVITY,
    by_name,
    finalist_label,
)
from tuneladder.report._analysis import FAILURE_MODES
from tuneladder.report._async_halving import async_note
from tuneladder.report._contents import SECTIONS, figure

__all__ = ["render"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;
line-height:1.45;background:#fafafa}
main{max-width:1080px;margin:0 auto;padding:1rem 1.5rem 4rem;background:#fff}
nav{font-size:.85rem;border-bottom:1px solid #ddd;padding:.5rem 0}
nav a{margin-right:.8rem;color:#1f5fa8;text-decoration:none}
h1{font-size:1.6rem}h2{border-bottom:2px solid #eee;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}
.yes{color:#1a7f37;font-weight:600}.no{color:#b42318;font-weight:600}
.na{color:#8a6d00;font-weight:600}.caveat{background:#fff8e1;border-left:4px solid #f0b400;
padding:.4rem .7rem;font-size:.9rem}
.big{font-size:1.15rem}pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}
.searched{font-weight:600}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers to ``digits`` significant digits; None as n/a; the rest as text."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pm(stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    std = stats.get("std")
    n = stats.get("n", len(stats.get("values") or []))
    return f"{fmt(stats['mean'])} ± {fmt(std, 2)}" + (f" (n={n})" if n else "")


def _table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: frozenset[int] = frozenset()
) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in header), "</tr>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            out.append(f"<td{cls}>{cell}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _answer(value: bool | None) -> str:
    if value is None:
        return '<span class="na">judge</span>'
    return '<span class="yes">yes</span>' if value else '<span class="no">no</span>'


def _lr(value: float | None) -> str:
    return "none seen" if value is None else fmt(value, 3)


def _range(desc: Mapping[str, Any] | None) -> str:
    if not desc:
        return "n/a"
    if desc.get("type") == "choice":
        return "{" + ", ".join(map(str, desc["choices"])) + "}"
    scale = " log" if desc.get("log") else ""
    return f"[{fmt(desc['low'])}, {fmt(desc['high'])}]{scale}"


def _figure(name: str, png: bytes | None) -> str:
    caption = figure(name).caption
    if png is None:
        return f"<p><em>figure {_e(name)} not drawn</em></p>"
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="fig-{name}"><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _test_metrics(values: Mapping[str, float | None], metric: str) -> str:
    """Every metric the task records, on test: read beside the one selected on."""
    if len(values) < 2:
        return ""
    shown = ", ".join(f"{_e(name)} {_e(fmt(value))}" for name, value in values.items())
    return (
        f"<p>Every metric the task records, on test (mean over the chosen config's seed"
        f" models): {shown}. The choice used only val {_e(metric)}.</p>"
    )


def _headline(s: Mapping[str, Any]) -> str:
    h, metric = s["headline"], s["metric"]["name"]
    trivial = h.get("trivial")
    rows = [
        ["tuned (chosen)", _e(_pm(h["val"])), _e(_pm(h["test"]))],
        [
            "untuned default",
            _e(_pm(h["baseline"]["val"])),
            _e(_pm(h["baseline"]["test"])),
        ],
    ]
    if trivial:
        rows.append(
            [
                _e(f"trivial: {trivial['name']}"),
                _e(fmt(trivial["val"].get(metric))),
                _e(fmt(trivial["test"].get(metric))),
            ]
        )
    ci = h["val"].get("ci95")
    clipped = (
        f" (clipped to {_e(metric)}'s range {_e(bounds_text(h.get('metric_bounds')))})"
        if h["val"].get("ci95_clipped")
        else ""
    )
    p = h["p_value_vs_runner_up"]
    verdict = "distinguishable" if h["distinguishable_from_runner_up"] else "not distinguishable"
    params = [
        [
            f'<span class="{"searched" if k in h["searched"] else ""}">{_e(k)}</span>',
            _e(fmt(v)),
            _e(fmt(h["default_params"].get(k))),
        ]
        for k, v in h["params"].items()
    ]
    unused = h.get("not_applicable") or []
    return (
        f'<p class="big">Chosen configuration:'
        f" {_e(finalist_label(h['source'], h['chosen_group']))},"
        f" {metric} mean ± std over {_e(h['seeds'])} seeds.</p>"
        + _table(["", f"val {metric}", f"test {metric}"], rows)
        + (
            f"<p>The trivial row uses no model: {_e(trivial['predicts'])}. It is what the"
            " tuned numbers should be read against.</p>"
            if trivial
            else ""
        )
        + _test_metrics(h.get("test_metrics") or {}, metric)
        + (
            f"<p>95% interval of the tuned val mean: [{fmt(ci[0])}, {fmt(ci[1])}]{clipped}"
            + (
                " (of zero width: every seed scored the same, so the seeds measured no"
                " noise here; on a small val split the metric moves in coarse steps). "
                if ci[0] == ci[1]
                else ". "
            )
            if ci
            else "<p>"
        )
        + (
            "Against the runner-up,"
            f" {_e(finalist_label(h.get('runner_up_source'), h['runner_up']))}: Welch t-test p ="
            f" {_e(fmt(p, 3))}, {verdict} at 0.05.</p>"
            if h["runner_up"] is not None
            else "No runner-up to compare with.</p>"
        )
        + (f"<p><strong>Tie.</strong> {_e(h['tie']['sentence'])}</p>" if h.get("tie") else "")
        + "".join(f"<p>{_e(sentence)}</p>" for sentence in h.get("passed_over") or ())
        + "".join(f"<p><strong>Warning:</strong> {_e(w)}.</p>" for w in h.get("warnings") or ())
        + "<p>Hyperparameters that apply to this configuration (searched ones in bold),"
        " beside the untuned default:</p>"
        + _table(["parameter", "chosen", "default"], params)
        + (
            f"<p>Not listed, as they do not apply to it: {_e(', '.join(unused))}.</p>"
            if unused
            else ""
        )
    )


def _prepare_text(d: Mapping[str, Any]) -> str:
    return f"split {d['sizes']} with seed {d['split_seed']}, data {d['fingerprint']}"


def _overfit_text(d: Mapping[str, Any]) -> str:
    verdict = "passed" if d["passed"] else "FAILED"
    return (
        f"{verdict}: loss {fmt(d['final_loss'])} after {d['steps']} steps"
        f" (threshold {fmt(d['loss_threshold'])}){_by_accuracy(d)}"
    )


def _by_accuracy(overfit: Mapping[str, Any]) -> str:
    """A pass on accuracy, said: the loss beside it did not reach the threshold."""
    if overfit.get("passed_by") != "accuracy":
        return ""
    return "; passed on accuracy, every sample right (the loss did not reach the threshold)"


def _lr_range_text(d: Mapping[str, Any]) -> str:
    used = "used as the coarse lr range" if d["used_for_coarse"] else "not used (lr fixed)"
    return (
        f"suggestion {fmt(d['suggestion'], 3)}, minimum at {fmt(d['min_loss_lr'], 3)},"
        f" divergence at {_lr(d['divergence_lr'])}; range [{fmt(d['range'][0], 3)},"
        f" {fmt(d['range'][1], 3)}] {used}"
    )


def _sweep_text(d: Mapping[str, Any]) -> str:
    best = d["best"]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(d["counts"].items()))
    best_text = f"; best #{best['name']}: {fmt(best['value'])}" if best else ""
    return f"{d['trials']} trials ({d['sampler']}): {counts}{best_text}"


def _select_text(d: Mapping[str, Any]) -> str:
    top = ", ".join(f"{t['rung']} #{t['name']} ({fmt(t['value'])})" for t in d["top_k"])
    return f"top-{len(d['top_k'])}: {top}; fine ranges below"


def _seeds_text(d: Mapping[str, Any]) -> str:
    fin = ", ".join(f"{f['group']} = {f['rung']} #{f['name']}" for f in d["finalists"])
    counts = ", ".join(f"{v} {k}" for k, v in sorted(d["counts"].items()))
    return f"finalists {fin}, and the default; {d['seeds_per_config']} seeds each: {counts}"


def _final_text(d: Mapping[str, Any]) -> str:
    chosen = (
        f"{d['chosen']} (finalist {d['chosen_group']})"
        if d.get("chosen")
        else (f"finalist {d['chosen_group']}")
    )
    return f"chose {chosen}: val {fmt(d['val_mean'])}, test {fmt(d['test_mean'])}"


def _sensitivity_text(d: Mapping[str, Any]) -> str:
    return (
        f"{d['trials']} trials: sensitive to {', '.join(d['sensitive']) or 'none'};"
        f" flat in {', '.join(d['flat']) or 'none'}"
    )


# rung name -> the sentence for what it decided (summary's ``ladder.rungs[].decided``)
DECIDED_TEXT = {
    PREPARE.name: _prepare_text,
    OVERFIT.name: _overfit_text,
    LR_RANGE.name: _lr_range_text,
    **{r.name: _sweep_text for r in SEARCH_RUNGS},
    SELECT.name: _select_text,
    SEEDS.name: _seeds_text,
    FINAL.name: _final_text,
    SENSITIVITY.name: _sensitivity_text,
}


def _decided(key: str, d: Mapping[str, Any] | None) -> str:
    if key == "other":
        return "jobs outside the ladder's rungs"
    if key not in DECIDED_TEXT:  # a rung the report has no summary of: what it is for
        return _e(by_name(key).decides)
    return _e(DECIDED_TEXT[key](d)) if d else "not run"


def _ladder(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    ladder = s["ladder"]
    rows = [
        [
            _e(r["label"]),
            _e(fmt(r["seconds"], 3)),
            _e(r["jobs"]),
            _decided(r["key"], r.get("decided")),
        ]
        for r in ladder["rungs"]
    ]
    select = next((r["decided"] for r in ladder["rungs"] if r["key"] == "select"), None) or {}
    narrowed = [
        [
            _e(name),
            _e(_range(v["coarse"])),
            _e(_range(v["fine"])),
            _e("n/a" if v.get("kept") is None else f"{v['kept']:.0%}"),
            _e(v.get("note") or ("the top-k agree" if v.get("agree") else "")),
        ]
        for name, v in (select.get("narrowed") or {}).items()
    ]
    disagree = select.get("disagree") or []
    train = ", ".join(f"{k} {fmt(v, 3)} s" for k, v in ladder["train_seconds"].items())
    return (
        f"<p>About {fmt(ladder['total_seconds'], 3)} s of wall-clock time in all"
        f" (per rung: its jobs in sequence, workers in parallel). Training time summed over"
        f" trials: {_e(train)}.</p>"
        + _table(["rung", "seconds", "jobs", "what it decided"], rows, frozenset({1, 2}))
        + "<p>Narrowing: the coarse ranges and the fine ranges derived from the top-k, each"
        " centred on the best of them and as wide as the others lie from it (log parameters"
        " in log space).</p>"
        + (
            f'<p class="caveat">The top-k disagree on {_e(", ".join(disagree))}: their fine'
            " ranges keep more than half of the coarse ones, so the fine sweep searches there"
            " almost as widely as the coarse one did.</p>"
            if disagree
            else ""
        )
        + _table(["parameter", "coarse", "fine", "kept", "top-k"], narrowed, frozenset({3}))
        + _figure("ladder", figures.get("ladder"))
    )


# Long lists on the page (a halving level's configs, a failure mode's trials) show this many;
# summary.json keeps them whole.
LIST_SHOWN = 20


def _names(names: Sequence[str], rung: str) -> str:
    shown = ", ".join(f"{rung} #{n}" for n in names[:LIST_SHOWN]) or "none"
    return shown + (f" and {len(names) - LIST_SHOWN:,} more" if len(names) > LIST_SHOWN else "")


def _sample_text(note: Mapping[str, Any] | None, what: str) -> str:
    """What a figure of lines left out (``_analysis.figure_sample``'s note), or nothing."""
    if not note or note.get("best") is None:
        return ""
    return (
        f"<p>The figure shows {note['shown']:,} of the {note['trials']:,} {_e(what)}: the best"
        f" {note['best']:,} and a seeded random sample of {note['shown'] - note['best']:,} of"
        " the others.</p>"
    )


def _halving(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    parts = []
    for rung, h in s["halving"].items():
        rows = [
            [
                _e(lv["level"]),
                _e(lv["epochs"]),
                _e(f"{lv['trained']} of {lv['planned']}"),
                _e(_names(lv["continued"], rung)),
                _e(_names(lv["ended"], rung)),
                _e(f"{rung} #{lv['best']['name']} ({fmt(lv['best']['value'])})")
                if lv["best"]
                else "n/a",
            ]
            for lv in h["levels"]
        ]
        full = h["full_trial_epochs"]
        share = f"{h['trial_epochs'] / full:.0%}" if full else "n/a"
        parts.append(
            f"<p>{_e(rung)}: level 0 trained every config for {_e(h['min_epochs'])} epochs;"
            f" each later level continued the best 1/{_e(h['eta'])} from where they stopped."
            f" {_e(h['trial_epochs'])} trial-epochs of the {_e(h['full_trial_epochs'])} that"
            f" training every config to the end would take ({_e(share)}).</p>"
            + _table(
                [
                    "level",
                    "epochs",
                    "configs trained",
                    "went on",
                    "ended here",
                    "best at these epochs",
                ],
                rows,
                frozenset({0, 1}),
            )
            + async_note(rung, h)
        )
    return (
        "".join(parts)
        + "<p>Configs are compared at equal epochs: within a level by their val metric at"
        " its epochs; across levels, a config that went further ranks above any stopped"
        " before it (top-k, finalists, best trial). Trends and importance use every config"
        " at level 0's epochs.</p>"
        + "".join(
            _sample_text(h.get("figure"), f"configs of the {rung} sweep")
            for rung, h in s["halving"].items()
        )
        + _figure("halving", figures.get("halving"))
    )


def _sanity(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    o, lr = s["sanity"]["overfit"], s["sanity"]["lr_range"]
    text = (
        f"<p>Overfit check {'passed' if o.get('passed') else '<strong>failed</strong>'}:"
        f" training loss {fmt(o.get('final_loss'))} on {_e(o.get('subset'))} samples after"
        f" {_e(o.get('steps'))} steps (threshold {_e(fmt(o.get('loss_threshold')))})"
        f"{_e(_by_accuracy(o))}.</p>" + _figure("overfit", figures.get("overfit"))
    )
    if lr:
        text += (
            f"<p>LR range test: suggestion {fmt(lr['suggestion'], 3)} (steepest descent),"
            f" lowest loss at {fmt(lr['min_loss_lr'], 3)}, divergence at"
            f" {_lr(lr['divergence_lr'])}; derived range [{fmt(lr['range'][0], 3)},"
            f" {fmt(lr['range'][1], 3)}] by the rule {_e(lr.get('rule'))}.</p>"
        )
    else:
        text += "<p>The LR range test did not run.</p>"
    text += _figure("lr_range", figures.get("lr_range"))
    return text + _gpu_probe(s["sanity"].get("gpu_probe"))


def _gpu_probe(probe: Mapping[str, Any] | None) -> str:
    """How many trials each GPU trained side by side, and the throughput that chose it."""
    if probe is None:
        return ""
    rows = [
        [
            _e(level["trials"]),
            _e(fmt(level["samples_per_s"], 3) if level["complete"] else "incomplete"),
            _e(f"{level['speedup']:.2f}x" if level["speedup"] is not None else "n/a"),
        ]
        for level in probe["levels"]
    ]
    memory = (
        f", {probe['per_trial_mb']:.0f} MB a trial of {probe['total_mb']:.0f} MB"
        if probe["per_trial_mb"] and probe["total_mb"]
        else ""
    )
    return (
        f"<p>GPU probe: {_e(probe['chosen'])}"
        f" {'trial' if probe['chosen'] == 1 else 'trials side by side'} on each GPU"
        f" ({_e(probe['device_name'] or 'no GPU name recorded')}{_e(memory)}), chosen as"
        f" {_e(probe['rule'])}. Training samples per second of all trials together,"
        f" each level timed for {_e(fmt(probe['probe_seconds'], 2))} s:</p>"
        + _table(
            ["trials side by side", "samples/s in all", "against one"], rows, frozenset({1, 2})
        )
    )


def _curves(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    rows = [
        [
            _e(c["role"]),
            _e(f"{c['rung']} #{c['name']}"),
            _e(fmt(c["best_val_metric"])),
            _e(c["epochs"]),
            _e(c["why"] or ""),
        ]
        for c in s["learning_curves"]
    ]
    shown = {c["role"] for c in s["learning_curves"]}
    absent = [m for m in ("diverged", "failed", "too slow", "overfitting") if m not in shown]
    return (
        _table(["panel", "trial", "best val metric", "epochs", "why"], rows, frozenset({2, 3}))
        + (f"<p>No trial showed: {_e(', '.join(absent))}.</p>" if absent else "")
        + _figure("learning_curves", figures.get("learning_curves"))
    )


def _top_text(top: Mapping[str, Any] | None) -> str:
    if not top:
        return "n/a"
    if top.get("values") is not None:
        return ", ".join(map(str, top["values"]))
    return f"[{fmt(top['min'], 3)}, {fmt(top['max'], 3)}] ({top['share']:.0%} of range)"


def _trend_text(trend: Mapping[str, Any] | None) -> str:
    if not trend:
        return "n/a"
    if trend["kind"] == "choice":
        means = ", ".join(f"{k}: {fmt(v)}" for k, v in trend["means"].items())
        if trend.get("tied"):
            return f"no best: {', '.join(trend['tied'])} tie (means {means})"
        return f"best {trend['best']} (means {means})"
    if trend["rho"] is None:
        return "n/a (too few or constant values)"
    return f"Spearman {trend['rho']:+.2f} ({trend['strength']}; + means larger is better)"


def _hyperparameters(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    h = s["hyperparameters"]
    rows = [
        [
            _e(name),
            _e(_range(p["coarse"])),
            _e(_range(p["fine"])),
            _e(fmt(p["chosen"])),
            _e(_top_text(p["top"])),
            _e(_trend_text(p["trend"])),
        ]
        for name, p in h["params"].items()
    ]
    names = list(h["params"])
    top = [
        [_e(f"{t['rung']} #{t['name']}"), _e(fmt(t["value"]))]
        + [_e(fmt(t["params"].get(n), 3)) for n in names]
        for t in h["top"]
    ]
    return (
        _sample_text(h.get("figure"), "trials in each scatter")
        + _figure("hyperparameters", figures.get("hyperparameters"))
        + _table(
            ["parameter", "coarse range", "fine range", "chosen", f"top {len(h['top'])}", "trend"],
            rows,
        )
        + f"<p>The top {len(h['top'])} trials (compare top performers):</p>"
        + _table(["trial", "best val metric", *names], top, frozenset({1}))
    )


def _parallel(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    p = s["parallel"]
    return (
        f"<p>{p['trials']} trials, {p['with_metric']} with a val metric (the others grey,"
        " dashed). Axes span the coarse ranges, the metric's axis and the colours every"
        " trial's values.</p>"
        + _sample_text(p.get("figure"), "trials")
        + _figure("parallel", figures.get("parallel"))
    )


def _importance(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    imp = s["importance"]
    caveats = "".join(f'<p class="caveat">{_e(c)}</p>' for c in imp["caveats"])
    conditional = imp.get("conditional") or {}
    rows = [
        [
            _e(
                k
                + (
                    f" (among the {conditional[k]} trials that sampled it)"
                    if k in conditional
                    else ""
                )
            ),
            _e(fmt(v, 3)),
        ]
        for k, v in imp["importances"].items()
    ]
    inter = imp["interactions"]
    return (
        f"<p>{_e(imp['method'])}, seed {_e(imp['seed'])}, on {_e(imp['trials'])} ok coarse and"
        " fine trials, in the coarse space (log parameters as log10). Each number is the"
        " fraction of the val metric's variance the parameter explains alone.</p>"
        + caveats
        + _table(["parameter", "main effect"], rows, frozenset({1}))
        + (f"<p>Left to interactions and noise: {fmt(inter, 3)}.</p>" if inter is not None else "")
        + _figure("importance", figures.get("importance"))
    )


def _analysis(s: Mapping[str, Any]) -> str:
    rows = [[_e(a["question"]), _e(a["answer"])] for a in s["analysis"]]
    return (
        "<p>The methodology's analysis questions, answered from the figures above.</p>"
        + _table(["question", "answer"], rows)
    )


def _seeds(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    rows = []
    for g in s["seeds"]["groups"]:
        source = g["source"]
        rows.append(
            [
                _e(g["group"] + (" (chosen)" if g["chosen"] else "")),
                _e(f"{source['rung']} #{source['name']}" if source else "train section"),
                _e(_pm(g["val"])),
                _e(fmt(g["spread"], 3)),
                _e(g["failed_seeds"]),
                _e(_pm(g["test"]) if g["test"] else "not measured"),
            ]
        )
    seeds = ", ".join(map(str, s["seeds"]["seeds"]))
    return (
        f"<p>Every finalist and the default ran with the same seeds ({_e(seeds)}).</p>"
        + _table(
            ["finalist", "from", "val mean ± std", "spread (max-min)", "failed seeds", "test"],
            rows,
        )
        + _figure("seeds", figures.get("seeds"))
    )


def _value(value: Any) -> str:
    return fmt(value, 3) if isinstance(value, float) else str(value)


def _sensitivity(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    d, metric = s["sensitivity"], s["metric"]["name"]
    if not d["enabled"]:
        return (
            "<p>The sensitivity rung did not run. With <code>sensitivity: {enabled: true}</code>"
            " it varies each searched hyperparameter alone around the chosen config, the"
            " methodology's targeted experiment, after the final choice.</p>"
            + _figure("sensitivity", figures.get("sensitivity"))
        )
    seeds = ", ".join(map(str, d["seeds"]))
    centre = (
        "the seed rung's own trials of it, reused"
        if d["centre_reused"]
        else "trained by this rung where the seed rung's trials differ in epochs or seeds"
    )
    rows = []
    for name, p in d["parameters"].items():
        points = "; ".join(
            f"{'<strong>' if q['chosen'] else ''}{_e(_value(q['value']))}:"
            f" {_e(_pm(q) if q['n'] else 'all seeds failed')}{'</strong>' if q['chosen'] else ''}"
            for q in p["points"]
        )
        ratio = p["effect_over_spread"]
        rows.append(
            [
                _e(name),
                _e(_range(p)),
                points,
                _e(fmt(p["spread"], 3)),
                _e(f"{fmt(p['effect'], 3)} ({fmt(ratio, 3)}x)" if ratio is not None else "n/a"),
                _answer(p["sensitive"]),
                _e(p["shape"] + (f", {p['range_edge']} end" if p["range_edge"] else "")),
            ]
        )
    verdicts = "".join(f"<li>{_e(p['verdict'])}</li>" for p in d["parameters"].values())
    skipped = ", ".join(f"{name} ({why})" for name, why in d["skipped"].items())
    return (
        f"<p>After the final choice, each searched hyperparameter that applies to the chosen"
        f" config took {_e(d['values'])} values around the chosen one (over half its searched"
        " range, log ranges in log space, kept inside it; every choice of a categorical)"
        f" while the others stayed as chosen: {_e(d['trials'])} trials of {_e(d['epochs'])}"
        f" epochs, each value with the seed rung's seeds ({_e(seeds)}), scored on the val"
        f" split only. The chosen value's point is {centre}. The test score above was read"
        " once, for the choice; nothing here changes it.</p>"
        f"<p>A change counts when it exceeds {fmt(d['noise_ratio'])} x the spread over seeds"
        " (the pooled std of the hyperparameter's points). Verdict:"
        f" <strong>{_e(d['verdict'])}</strong>.</p>"
        + _table(
            [
                "parameter",
                "searched range",
                f"val {metric} per value (chosen in bold)",
                "seed spread (std)",
                "largest change (x spread)",
                "sensitive",
                "chosen value sits",
            ],
            rows,
            frozenset({3, 4}),
        )
        + f"<ul>{verdicts}</ul>"
        + (f"<p>Not varied: {_e(skipped)}.</p>" if skipped else "")
        + _figure("sensitivity", figures.get("sensitivity"))
    )


def _diminishing(s: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    d = s["diminishing_returns"]
    return (
        f"<p>Rule: the last {d['window']} trials improve the best val metric by less than"
        f" {d['threshold']:.0%} (relative). Verdict over {d['trials']} coarse and fine trials:"
        f" <strong>{_e(d['verdict'])}</strong>.</p>"
        + _sample_text(d.get("figure"), "trials' points (the best-so-far line follows all)")
        + _figure("best_so_far", figures.get("best_so_far"))
    )


def _ranges_text(ranges: Mapping[str, Any]) -> str:
    parts = []
    for name, r in ranges.items():
        if "values" in r:
            parts.append(f"{name} in {{{', '.join(r['values'])}}}")
        else:
            parts.append(f"{name} {fmt(r['min'], 3)}–{fmt(r['max'], 3)}")
    return "; ".join(parts)


def _failing_trials(trials: Sequence[Mapping[str, Any]]) -> tuple[list[list[str]], str]:
    """The failure table's rows, the first ``LIST_SHOWN`` trials of each mode, and a line
    saying how many of each mode it left out (summary.json lists them all)."""
    rows, count = [], dict.fromkeys(FAILURE_MODES, 0)
    for t in trials:
        count[t["mode"]] = count.get(t["mode"], 0) + 1
        if count[t["mode"]] <= LIST_SHOWN:
            rows.append([_e(f"{t['rung']} #{t['name']}"), _e(t["mode"]), _e(t["why"])])
    cut = [f"{n - LIST_SHOWN:,} of the {n:,} {m}" for m, n in count.items() if n > LIST_SHOWN]
    if not cut:
        return rows, ""
    return rows, (
        f"<p>The table shows the first {LIST_SHOWN} trials of each mode; left out: "
        + _e("; ".join(cut))
        + " (summary.json's failures.trials lists every one).</p>"
    )


def _failures(s: Mapping[str, Any]) -> str:
    f = s["failures"]
    rules = "".join(f"<li><strong>{_e(k)}</strong>: {_e(v)}</li>" for k, v in f["rules"].items())
    modes = [
        [_e(mode), _e(m["count"]), _e(_ranges_text(m["ranges"]) or "—")]
        for mode, m in f["modes"].items()
    ]
    trials, left_out = _failing_trials(f["trials"])
    status = [
        [_e(rung), _e(", ".join(f"{v} {k}" for k, v in sorted(c.items())))]
        for rung, c in f["status_counts"].items()
    ]
    return (
        "<p>Each coarse and fine trial is classified by these rules, first match wins"
        f" (documented in docs/report.md):</p><ul>{rules}</ul>"
        + _table(
            ["failure mode", "trials", "where it occurs (min–max per parameter)"],
            modes,
            frozenset({1}),
        )
        + (_table(["trial", "mode", "why"], trials) if trials else "<p>No failures.</p>")
        + left_out
        + "<p>Statuses per rung, as the trials recorded them:</p>"
        + _table(["rung", "statuses"], status)
        + _retried_alone(f.get("retried_alone", []))
    )


def _retried_alone(trials: Sequence[Mapping[str, Any]]) -> str:
    """The trials that ran out of GPU memory beside others and trained again alone: their
    statuses above are those of the run alone."""
    if not trials:
        return ""
    rows = [[_e(t["trial"]), _e(t["reason"])] for t in trials]
    return (
        f"<p>{len(trials)} trial(s) ran out of GPU memory beside the other trials on their"
        " GPU, waited for them and trained again alone; their statuses above are those of"
        " the run alone:</p>" + _table(["trial", "out of memory beside others"], rows)
    )


def _items(items: Sequence[Mapping[str, Any]], first: str, answer: str = "answer") -> str:
    rows = [[_e(i["question"]), _answer(i["answer"]), _e(i["evidence"])] for i in items]
    return _table([first, answer, "evidence from this run"], rows)


def _checklist(s: Mapping[str, Any]) -> str:
    yes = sum(bool(i["answer"]) for i in s["checklist"])
    return (
        f"<p>{yes} of {len(s['checklist'])} answered yes. The methodology: if yes to most of"
        " these, proceed to the next stage.</p>" + _items(s["checklist"], "question")
    )


def _pitfalls(s: Mapping[str, Any]) -> str:
    return "<p>Whether this run avoided each pitfall: yes, it did.</p>" + _items(
        s["pitfalls"], "pitfall", "avoided?"
    )


def _reproducibility(s: Mapping[str, Any]) -> str:
    r = s["reproducibility"]
    versions = "; ".join(
        ", ".join(f"{k} {v}" for k, v in (vs or {}).items()) for vs in r["trial_versions"]
    )
    report_versions = ", ".join(f"{k} {v}" for k, v in r["report_versions"].items())
    rows = [
        ["command", f"<code>{_e(r['command'])}</code>"],
        ["git commit (trials)", _e(", ".join(r["git_commits"]) or "n/a")],
        ["git commit (tuneladder source)", _e(r["source_commit"] or "not a git checkout")],
        ["experiment config hash", f"<code>{_e(r['experiment_hash'])}</code>"],
        ["chosen trial, its config hash", _e(f"{r['chosen_trial']}: {r['chosen_config_hash']}")],
        ["data fingerprint", _e(r["data_fingerprint"])],
        [
            "seeds",
            _e(
                f"ladder {r['ladder_seed']}, data split {r['split_seed']}, seed reruns"
                f" {', '.join(map(str, r['seed_rerun_seeds']))}, fANOVA {r['fanova_seed']}"
            ),
        ],
        ["package versions (trials)", _e(versions)],
        ["package versions (report)", _e(report_versions)],
        ["devices, hosts", _e(", ".join(r["devices"]) + "; " + ", ".join(r["hosts"]))],
        ["precision (trials)", _e(", ".join(r.get("precisions", [])) or "n/a")],
    ]
    builds = [
        [
            _e(b["torch"] or "not recorded"),
            _e(b["cuda_built"] or "none (CPU build)"),
            _e(fmt(b["cudnn_built"]) if b["cudnn_built"] is not None else "none"),
            _e(b["device"] or "n/a"),
            _e(b["device_name"] or "—"),
            _e(b["driver"] or "—"),
            _e(b["trials"]),
        ]
        for b in r.get("builds", [])
    ]
    config = json.dumps(r["config"], indent=2, sort_keys=True, default=str)
    return (
        _table(["what", "value"], rows)
        + "<p>The torch builds the trials ran on (CUDA and cuDNN as torch was built with"
        " them; device name and driver on a GPU):</p>"
        + _table(
            ["torch", "CUDA", "cuDNN", "device", "device name", "driver", "trials"],
            builds,
            frozenset({6}),
        )
        + "<p>The resolved experiment config (hashed above):</p>"
        + f"<pre>{_e(config)}</pre>"
    )


def render(summary: Mapping[str, Any], figures: Mapping[str, bytes | None]) -> str:
    """The whole page; every number on it comes from ``summary``."""
    bodies = {
        "headline": _headline(summary),
        "ladder": _ladder(summary, figures),
        "halving": _halving(summary, figures) if summary.get("halving") else None,
        "sanity": _sanity(summary, figures),
        "learning-curves": _curves(summary, figures),
        "hyperparameters": _hyperparameters(summary, figures),
        "parallel": _parallel(summary, figures),
        "importance": _importance(summary, figures),
        "analysis": _analysis(summary),
        "seeds": _seeds(summary, figures),
        "sensitivity": _sensitivity(summary, figures),
        "diminishing-returns": _diminishing(summary, figures),
        "failures": _failures(summary),
        "checklist": _checklist(summary),
        "pitfalls": _pitfalls(summary),
        "reproducibility": _reproducibility(summary),
    }
    shown = {key: title for key, title in SECTIONS.items() if bodies[key] is not None}
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in shown.items())
    sections = "".join(
        f'<section id="{key}"><h2>{_e(title)}</h2>{bodies[key]}</section>'
        for key, title in shown.items()
    )
    title = f"{summary.get('experiment') or 'tuneladder'}: tuning report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{_e(title)}</h1><nav>{nav}</nav>{sections}</main></body></html>\n"
    )
