"""The report: its rules on hand-made rows, and the page built from a real tiny ladder."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from matplotlib.image import imread
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from helpers import REPO, copy_ladder, results_of, snakemake
from tuneladder.core.curves import curve_summary
from tuneladder.report import FIGURE_NAMES, FIGURES, SECTIONS
from tuneladder.report._analysis import (
    Chosen,
    checklist,
    classify,
    classify_trials,
    diminishing_returns,
    failure_ranges,
    pitfalls,
)
from tuneladder.report._importance import fanova_importance
from tuneladder.report._summary import builds
from tuneladder.store.io import read_json, write_json

# The tiny ladder does not halve: its page has neither the halving section nor its figure.
SHOWN = [f.name for f in FIGURES if not f.needs_halving]
PAGE_SECTIONS = [key for key in SECTIONS if key != "halving"]

# --- the rules, on hand-made rows --------------------------------------------------------


def row(index=0, status="ok", value=None, best_epoch=None, rung="coarse", **params):
    return {
        "rung": rung,
        "name": str(index),
        "index": index,
        "status": status,
        "reason": None,
        "best_val_metric": value,
        "best_epoch": best_epoch,
        "params": params,
    }


def history(train, val):
    return [
        {"epoch": i, "train_loss": t, "val_loss": v}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]


def test_status_decides_diverged_and_failed() -> None:
    assert classify(row(status="diverged"), [], best=0.9, mode="max")[0] == "diverged"
    assert classify(row(status="failed"), [], best=0.9, mode="max")[0] == "failed"


def test_overfitting_needs_val_loss_up_and_train_loss_down() -> None:
    curve = history([1.0, 0.5, 0.3, 0.1], [0.8, 0.6, 0.65, 0.7])  # val 17% above its minimum
    assert classify(row(value=0.9, best_epoch=1), curve, best=0.9, mode="max")[0] == "overfitting"
    flat_train = history([1.0, 0.5, 0.6, 0.7], [0.8, 0.6, 0.65, 0.7])  # train rose too
    assert classify(row(value=0.9, best_epoch=1), flat_train, best=0.9, mode="max")[0] == "ok"
    small_rise = history([1.0, 0.5, 0.3, 0.1], [0.8, 0.6, 0.62, 0.65])  # 8%: under the bar
    assert classify(row(value=0.9, best_epoch=1), small_rise, best=0.9, mode="max")[0] == "ok"


def test_one_lucky_epoch_is_not_overfitting_but_a_sustained_rise_is() -> None:
    train = [1.0 / (i + 1) for i in range(15)]
    dip = [0.19, 0.12, 0.09, 0.09, 0.024, 0.075, 0.048, 0.047, 0.042, 0.037]
    dip += [0.048, 0.036, 0.035, 0.035, 0.035]  # one epoch at 0.024, then about 0.035
    assert (
        classify(row(value=0.99, best_epoch=4), history(train, dip), best=0.99, mode="max")[0]
        == "ok"
    )
    rise = [0.5, 0.3, 0.2, 0.15, 0.14, 0.14, 0.15, 0.16, 0.18, 0.2, 0.22, 0.24, 0.26, 0.28, 0.3]
    label, why = classify(row(value=0.9, best_epoch=4), history(train, rise), best=0.9, mode="max")
    assert label == "overfitting" and "mean of 3 epochs" in why


def test_metric_limits_cut_the_worse_tail_only() -> None:
    from tuneladder.report._figures import metric_limits

    values = [0.90 + 0.005 * i for i in range(20)] + [0.37]
    lo, hi = metric_limits(values, "max")
    assert 0.37 < lo < 0.90 and hi > 0.995
    lo, hi = metric_limits([0.1 + 0.01 * i for i in range(20)] + [5.0], "min")
    assert lo < 0.1 and 0.29 < hi < 5.0


def test_too_slow_is_still_learning_and_behind() -> None:
    curve = history([2.3, 2.0, 1.8, 1.5], [2.2, 2.0, 1.7, 1.4])  # train -17% in the last epoch
    slow = row(value=0.5, best_epoch=3)
    assert classify(slow, curve, best=0.9, mode="max")[0] == "too slow"
    # the same curve on the best trial is not "too slow": it is the best
    assert classify(row(value=0.9, best_epoch=3), curve, best=0.9, mode="max")[0] == "ok"
    # best epoch before the last: it stopped improving, so it is not slow
    assert classify(row(value=0.5, best_epoch=2), curve, best=0.9, mode="max")[0] == "ok"
    # loss metric (min mode): 0.5 is 25% worse than 0.4
    assert classify(row(value=0.5, best_epoch=3), curve, best=0.4, mode="min")[0] == "too slow"
    # a best of 0 (an error rate): the difference, not "inf%"
    mode, why = classify(row(value=0.2, best_epoch=3), curve, best=0.0, mode="min")
    assert mode == "too slow" and why.endswith("and 0.2 behind the best trial's 0"), why
    # one epoch: nothing to judge
    assert classify(row(value=0.1, best_epoch=0), curve[:1], best=0.9, mode="max")[0] == "ok"
    # a config successive halving stopped ran out of epochs by losing, not by being slow
    stopped = {**slow, "halving": {"level": 0, "last_level": 2}}
    assert classify(stopped, curve, best=0.9, mode="max") == (
        "ok",
        "stopped by successive halving after 4 epochs",
    )
    finished = {**slow, "halving": {"level": 2, "last_level": 2}}
    assert classify(finished, curve, best=0.9, mode="max")[0] == "too slow"


def test_a_curve_summary_gives_the_verdicts_its_history_gives() -> None:
    """A row judged by its ``curve`` (what collect carries) and by its history agree on
    every rule and every word, over random curves of 1-30 epochs, in both modes."""
    import random

    rng = random.Random(7)
    seen = set()
    for _ in range(3000):
        epochs = rng.randint(1, 30)
        train = [rng.uniform(0.01, 3.0) for _ in range(epochs)]
        val = [rng.uniform(0.01, 3.0) for _ in range(epochs)]
        if rng.random() < 0.05:
            val[rng.randrange(epochs)] = rng.choice([math.nan, math.inf])
        if rng.random() < 0.5:  # a falling curve: the slow and overfitting rules' ground
            train.sort(reverse=True)
        mode = rng.choice(["max", "min"])
        trial = row(value=rng.uniform(0.1, 0.9), best_epoch=rng.randrange(epochs))
        if rng.random() < 0.2:
            trial["halving"] = {"level": rng.randint(0, 2), "last_level": 2}
        best = rng.uniform(0.1, 0.9)
        want = classify(trial, history(train, val), best=best, mode=mode)
        summarised = {**trial, "curve": curve_summary(train, val)}
        assert classify(summarised, None, best=best, mode=mode) == want
        seen.add(want[0])
    assert seen == {"ok", "overfitting", "too slow"}
    # a summary made by other rules (or before they were recorded) is not used: judged
    # from its history, or without one, not judged
    train, val = [1.0, 0.5, 0.2, 0.1, 0.05], [1.0, 0.5, 0.6, 0.9, 1.2]
    trial = row(value=0.5, best_epoch=1)
    want = classify(trial, history(train, val), best=0.9, mode="max")
    assert want[0] == "overfitting"
    made = curve_summary(train, val)
    for stale in (
        {**made, "rules": {**made["rules"], "back": 3}},
        {**made, "rules": {**made["rules"], "smooth": 3}},
        {k: v for k, v in made.items() if k != "rules"},
    ):
        stale["val_end"] = stale["val_low"]  # a verdict of its own: not overfitting
        judged = {**trial, "curve": stale}
        assert classify(judged, history(train, val), best=0.9, mode="max") == want
        alone = classify(judged, None, best=0.9, mode="max")
        assert alone == ("ok", "fewer than two finite epochs")


def _same_epochs(got, want) -> bool:
    """Epoch dicts equal, NaN equal to NaN."""
    return len(got) == len(want) and all(
        g.keys() == w.keys()
        and all(g[k] == w[k] or (math.isnan(g[k]) and math.isnan(w[k])) for k in w)
        for g, w in zip(got, want, strict=True)
    )


def test_a_history_file_reads_as_numbers_whatever_its_shape(tmp_path: Path) -> None:
    from tuneladder.report._history import columns
    from tuneladder.report._load import read_history

    def read(text):
        path = tmp_path / "history.csv"
        path.write_bytes(text.encode())
        return read_history(path)

    nan = math.nan
    runner = "epoch,train_loss,val_loss\r\n0,2.0,2.1\r\n1,1.0,1.2\r\n"  # as csv.writer writes
    plain = read(runner)
    want = [
        {"epoch": 0.0, "train_loss": 2.0, "val_loss": 2.1},
        {"epoch": 1.0, "train_loss": 1.0, "val_loss": 1.2},
    ]
    assert len(plain) == 2 and list(plain) == want and plain[-1] == want[1]
    # a rule's columns, parsed alone, agree with the epochs
    assert columns(read(runner), "val_loss", "train_loss") == [[2.1, 1.2], [2.0, 1.0]]
    assert classify(row(value=0.5, best_epoch=1), read(runner), best=0.5, mode="max") == (
        classify(row(value=0.5, best_epoch=1), want, best=0.5, mode="max")
    )
    # an empty cell or a word is NaN, a short row ends in NaN, a long row is cut, blank
    # lines are skipped; a quoted file reads the same as a plain one
    odd = "epoch,train_loss,val_loss\n0,,x\n\n1,1.0\n2,0.5,0.6,9\n"
    odd_want = [
        {"epoch": 0.0, "train_loss": nan, "val_loss": nan},
        {"epoch": 1.0, "train_loss": 1.0, "val_loss": nan},
        {"epoch": 2.0, "train_loss": 0.5, "val_loss": 0.6},
    ]
    assert _same_epochs(list(read(odd)), odd_want)
    assert _same_epochs(list(read(odd.replace("x", '"x"'))), odd_want)
    words = read("epoch,train_loss,val_loss\n0,1.0,nope\n1,0.5,0.4\n")
    assert words.column("train_loss") == [1.0, 0.5]
    assert math.isnan(words.column("val_loss")[0]) and words.column("val_loss")[1] == 0.4
    # no epochs: an empty file, a header alone, no file
    for empty in (read(""), read("epoch,train_loss\n"), read_history(tmp_path / "absent.csv")):
        assert len(empty) == 0 and list(empty) == [] and columns(empty, "val_loss") == [[]]


def test_failure_ranges_are_per_mode_and_parameter() -> None:
    rows = [
        row(0, "diverged", lr=0.5, batch_size=32),
        row(1, "diverged", lr=0.9, batch_size=64),
        row(2, value=0.9, lr=0.01, batch_size=32),
    ]
    classes = classify_trials(rows, [[], [], []], "max")
    assert [c["mode"] for c in classes] == ["diverged", "diverged", "ok"]
    ranges = failure_ranges(rows, [c["mode"] for c in classes], ["lr", "batch_size"])
    assert ranges["diverged"] == {
        "count": 2,
        "ranges": {"lr": {"min": 0.5, "max": 0.9}, "batch_size": {"min": 32, "max": 64}},
    }
    assert ranges["failed"] == {"count": 0, "ranges": {}}


def test_diminishing_returns_rule() -> None:
    flat = [row(i, value=0.90) for i in range(5)] + [row(5 + i, value=0.904) for i in range(10)]
    verdict = diminishing_returns(flat, "max")
    assert verdict["reached"] is True and math.isclose(verdict["improvement"], 0.004 / 0.9)
    rising = [row(i, value=0.80) for i in range(5)] + [row(5 + i, value=0.85) for i in range(10)]
    assert diminishing_returns(rising, "max")["reached"] is False
    assert diminishing_returns(rising[:10], "max")["reached"] is None  # 10 trials: too few
    losses = [row(i, value=1.0) for i in range(3)] + [row(3 + i, value=0.995) for i in range(10)]
    assert diminishing_returns(losses, "min")["reached"] is True
    failed_first = [row(i, "failed") for i in range(3)] + [
        row(3 + i, value=0.9) for i in range(10)
    ]
    assert diminishing_returns(failed_first, "max")["reached"] is False
    # failed trials in the window improve nothing
    tail = [row(i, value=0.9) for i in range(3)] + [row(3 + i, "diverged") for i in range(10)]
    assert diminishing_returns(tail, "max")["reached"] is True
    # numbers close to each other are shown with the digits that tell them apart, and the
    # evidence (what the checklist shows beside its yes) does not say yes again
    near = [row(i, value=0.99991) for i in range(3)] + [
        row(3 + i, value=0.99998) for i in range(10)
    ]
    verdict = diminishing_returns(near, "max")
    assert "from 0.99991 to 0.99998" in verdict["evidence"]
    assert verdict["verdict"] == f"yes: {verdict['evidence']}"
    items = _checklist(diminishing=verdict)
    assert items["Am I seeing diminishing returns from further tuning?"]["evidence"].startswith(
        "the last 10 trials improved"
    )


def _checklist(seeds_per_group=3, **changes):
    sweep = [
        row(0, value=0.8, lr=1e-3, schedule="constant", batch_size=32, width=64, dropout=0.1),
        row(1, value=0.9, lr=1e-2, schedule="cosine", batch_size=64, width=128, dropout=0.2),
    ]
    seeds = [
        {**row(i, value=0.9, lr=1e-2), "group": g}
        for g in ("0", "1", "default")
        for i in range(seeds_per_group)
    ]
    args = {
        "sweep_rows": sweep,
        "seed_rows": seeds,
        "chosen_group": "0",
        "space": ["lr", "schedule", "batch_size", "width", "dropout"],
        "lr_range": {"suggestion": 3e-3, "range": [3e-4, 3e-2], "divergence_lr": 1.0},
        "logs": {"planned": 11, "complete": 11, "missing": [], "git_commits": ["abc"]},
        "diminishing": {"reached": None, "verdict": "not enough trials to judge"},
    }
    args.update(changes)
    return {item["question"]: item for item in checklist(**args)}


def test_checklist_answers_from_the_rows() -> None:
    items = _checklist()
    assert len(items) == 8
    answers = {q.split("?")[0]: i["answer"] for q, i in items.items()}
    assert answers == {
        "Have I found a learning rate that gives stable training": True,
        "Have I tried a learning rate schedule": True,
        "Have I explored different model sizes": True,
        "Have I tested different batch sizes": True,
        "Have I tuned regularization (weight decay, dropout)": True,
        "Have I run top configs with multiple seeds to check variance": True,
        "Have I logged all experiments for reproducibility": True,
        "Am I seeing diminishing returns from further tuning": False,
    }
    assert "width took 2 values" in items["Have I explored different model sizes?"]["evidence"]
    assert all(item["evidence"] for item in items.values())


def test_checklist_says_no_where_the_data_says_no() -> None:
    items = _checklist(seeds_per_group=2, lr_range=None, space=["lr"])
    assert not items["Have I run top configs with multiple seeds to check variance?"]["answer"]
    assert not items["Have I found a learning rate that gives stable training?"]["answer"]
    items = _checklist(logs={"planned": 3, "complete": 2, "missing": ["fine/1"]})
    assert not items["Have I logged all experiments for reproducibility?"]["answer"]
    same = [row(i, value=0.9, schedule="constant", batch_size=64, width=64) for i in range(2)]
    items = _checklist(sweep_rows=same, space=["lr"])
    assert not items["Have I tried a learning rate schedule?"]["answer"]
    assert not items["Have I tested different batch sizes?"]["answer"]
    assert not items["Have I explored different model sizes?"]["answer"]
    assert not items["Have I tuned regularization (weight decay, dropout)?"]["answer"]


def test_pitfalls_flag_a_linear_lr_and_a_val_test_gap() -> None:
    items = list(_checklist().values())
    overfit = {"passed": True, "final_loss": 0.01, "subset": 64, "steps": 100}

    def chosen(val, test):
        return Chosen(
            params={"lr": 1e-2}, baseline_params={"lr": 3e-4}, val=val, test=test, p_value=0.2
        )

    good = pitfalls(
        overfit=overfit,
        space={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
        chosen=chosen({"mean": 0.90, "std": 0.01}, {"mean": 0.89, "std": 0.01}),
        checklist_items=items,
        mode="max",
    )
    bad = pitfalls(
        overfit=overfit,
        space={"lr": FloatDistribution(1e-4, 1e-1)},
        chosen=chosen({"mean": 0.90, "std": 0.005}, {"mean": 0.80, "std": 0.005}),
        checklist_items=items,
        mode="max",
    )
    by = {p["question"]: p["answer"] for p in good}
    assert by["Not using log scale for multiplicative parameters?"] is True
    assert by["Overfitting to the validation set?"] is True
    assert by["Changing multiple things at once?"] is None
    by = {p["question"]: p["answer"] for p in bad}
    assert by["Not using log scale for multiplicative parameters?"] is False
    assert by["Overfitting to the validation set?"] is False


SPACE = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "width": IntDistribution(16, 128, log=True),
    "arch": CategoricalDistribution(["mlp", "cnn"]),
}


def _sweep(n):
    rows = []
    for i in range(n):
        lr = 10 ** (-4 + 3 * (i % 7) / 6)
        value = 0.9 - abs(math.log10(lr) + 2.5) / 10 + 0.01 * (i % 2)
        rows.append(row(i, value=value, lr=lr, width=16 * (1 + i % 8), arch=["mlp", "cnn"][i % 2]))
    return rows


def test_fanova_is_seeded_and_warns_when_trials_are_few() -> None:
    rows = _sweep(24)
    a = fanova_importance(rows, SPACE, mode="max", seed=0)
    b = fanova_importance(rows, SPACE, mode="max", seed=0)
    assert a["importances"] == b["importances"] and a["trials"] == 24 and not a["caveats"]
    assert max(a["importances"], key=a["importances"].get) == "lr"
    assert 0.0 <= a["interactions"] <= 1.0
    few = fanova_importance(rows[:6], SPACE, mode="max", seed=0)
    assert few["trials"] == 6 and "fewer than 20" in few["caveats"][0]


def test_fanova_survives_degenerate_inputs() -> None:
    rows = _sweep(8)
    one = fanova_importance(rows, {"lr": SPACE["lr"]}, mode="min", seed=1)
    assert set(one["importances"]) == {"lr"} and one["importances"]["lr"] is not None
    empty = fanova_importance(rows, {}, mode="max", seed=0)
    assert empty["importances"] == {} and empty["caveats"]
    single = fanova_importance(rows[:1], SPACE, mode="max", seed=0)
    assert all(v is None for v in single["importances"].values())
    constant = [{**r, "best_val_metric": 0.5} for r in rows]
    flat = fanova_importance(constant, SPACE, mode="max", seed=0)
    assert "scored the same" in flat["caveats"][0]
    failed = [{**r, "status": "failed", "best_val_metric": None} for r in rows]
    assert fanova_importance(failed, SPACE, mode="max", seed=0)["trials"] == 0
    outside = [{**rows[0], "params": {**rows[0]["params"], "lr": 5.0}}, *rows[1:]]
    assert "outside" in fanova_importance(outside, SPACE, mode="max", seed=0)["caveats"][0]


def _conditional_sweep(n):
    """``channels`` only where arch is cnn, and there it decides the value."""
    rows = []
    for r in _sweep(n):
        if r["params"]["arch"] == "cnn":
            r["params"]["channels"] = [16, 32][(r["index"] // 2) % 2]
            r["best_val_metric"] += 0.3 * (r["params"]["channels"] == 32)
        rows.append(r)
    return rows


def test_fanova_measures_a_conditional_parameter_among_the_trials_that_sampled_it() -> None:
    space = {**SPACE, "channels": CategoricalDistribution([16, 32])}
    rows = _conditional_sweep(40)
    result = fanova_importance(rows, space, mode="max", seed=0)
    assert result["trials"] == 40 and result["conditional"] == {"channels": 20}
    assert (
        "sampled by some trials only, so measured among those trials: channels (20 trials)"
        in (result["caveats"])
    )
    # among the cnn trials channels explains most of the variance
    assert result["importances"]["channels"] > 0.5
    # the interactions' share sums the parameters every trial sampled, not channels
    always = sum(result["importances"][n] for n in SPACE)
    assert math.isclose(result["interactions"], max(0.0, 1.0 - always))
    # the one-feature fit gives what Optuna's evaluator gives for channels among all nine
    import optuna

    from tuneladder.report._importance import _fitted_pairs, _study_trials

    study = optuna.create_study(direction="maximize")
    study.add_trials(_study_trials(_fitted_pairs(rows, space)[0], space))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    full = evaluator.evaluate(study, params=[*SPACE, "channels"])
    assert result["importances"]["channels"] == full["channels"]
    # absent values are drawn, not tripped over
    from tuneladder.report import _figures as figs

    labels = ["ok"] * len(rows)
    for fig in (
        figs.parallel_figure(rows, space, metric="acc", mode="max"),
        figs.hyperparameters_figure(rows, labels, space, chosen={}, metric="acc", mode="max"),
        figs.importance_figure(result),
    ):
        assert figs.png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")


# --- the page, from a real tiny ladder -------------------------------------------------------


@pytest.fixture(scope="module")
def ladder(tiny_ladder: Path) -> Path:
    return tiny_ladder


@pytest.fixture(scope="module")
def summary(ladder: Path) -> dict:
    return read_json(results_of(ladder) / "report" / "summary.json")


@pytest.fixture(scope="module")
def page(ladder: Path) -> str:
    return (results_of(ladder) / "report" / "index.html").read_text()


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
    assert match, f"section {key} is missing"
    return match[1]


def _within(given: object, resolved: object) -> bool:
    """Every value of ``given`` is in ``resolved``; dicts may have more keys there."""
    if isinstance(given, dict) and isinstance(resolved, dict):
        return all(k in resolved and _within(v, resolved[k]) for k, v in given.items())
    return given == resolved


def _mode_counts(failures: str) -> dict[str, int]:
    """The failure-mode table of the page's failures section: mode -> trials."""
    rows = re.findall(r'<tr><td>([\w ]+)</td><td class="num">(\d+)</td>', failures)
    return {mode: int(count) for mode, count in rows}


@pytest.mark.slow
def test_page_has_every_section_with_its_content(page: str, summary: dict) -> None:
    assert PAGE_SECTIONS == re.findall(r'<section id="([\w-]+)">', page)
    metric = summary["metric"]["name"]
    headline = _section(page, "headline")
    assert f"val {metric}" in headline and "untuned default" in headline
    assert f"{summary['headline']['test']['mean']:.4g}" in headline
    source, trivial = summary["headline"]["source"], summary["headline"]["trivial"]
    assert f"Chosen configuration: {source['rung']} #{source['name']} (finalist" in headline
    assert (
        f"<tr><td>trivial: majority class</td><td>{trivial['val'][metric]:.4g}</td>"
        f"<td>{trivial['test'][metric]:.4g}</td></tr>"
    ) in headline
    ladder = _section(page, "ladder")
    for label in ("overfit check", "LR range test", "coarse sweep", "top-k", "fine sweep"):
        assert label in ladder
    assert "seed reruns" in ladder and "final choice" in ladder and "Narrowing" in ladder
    sanity = _section(page, "sanity")
    assert 'id="fig-overfit"' in sanity and 'id="fig-lr_range"' in sanity
    assert "suggestion" in sanity and "divergence" in sanity
    assert 'id="fig-learning_curves"' in _section(page, "learning-curves")
    assert "top 1" in _section(page, "learning-curves")
    hyper = _section(page, "hyperparameters")
    for name in summary["hyperparameters"]["params"]:
        assert f"<td>{name}</td>" in hyper
    assert 'id="fig-parallel"' in _section(page, "parallel")
    importance = _section(page, "importance")
    assert "fewer than 20" in importance  # the tiny run has 7 trials: the caveat shows
    assert "Are there interactions" in _section(page, "analysis")
    assert 'id="fig-seeds"' in _section(page, "seeds")
    assert "not enough trials to judge" in _section(page, "diminishing-returns")
    modes = summary["failures"]["modes"]
    assert _mode_counts(_section(page, "failures")) == {m: modes[m]["count"] for m in modes}
    checklist_html = _section(page, "checklist")
    assert checklist_html.count('class="yes"') + checklist_html.count('class="no"') == 8
    assert len(re.findall(r"<tr><td>", _section(page, "pitfalls"))) == 6
    assert "<th>avoided?</th>" in _section(page, "pitfalls")  # yes reads as avoided
    repro = _section(page, "reproducibility")
    assert summary["reproducibility"]["experiment_hash"] in repro and "snakemake --cores" in repro
    for build in summary["reproducibility"]["builds"]:
        assert f"<td>{build['torch']}</td>" in repro and f"<td>{build['device']}</td>" in repro


@pytest.mark.slow
def test_page_is_self_contained(page: str, ladder: Path) -> None:
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(SHOWN)
    for name in SHOWN:  # the embedded figures are the PNG files
        png = (results_of(ladder) / "report" / "figures" / f"{name}.png").read_bytes()
        assert base64.b64encode(png).decode() in images


@pytest.mark.slow
def test_summary_agrees_with_the_result_files(summary: dict, ladder: Path) -> None:
    results = results_of(ladder)
    final = read_json(results / "final" / "summary.json")
    tables = {
        rung: read_json(results / rung / "results.json") for rung in ("coarse", "fine", "seeds")
    }
    for rung, table in tables.items():
        assert summary["trials"][rung] == {
            "total": len(table["trials"]),
            "counts": table["counts"],
        }
        assert summary["failures"]["status_counts"][rung] == table["counts"]
    sweep = tables["coarse"]["trials"] + tables["fine"]["trials"]
    ok = [r["best_val_metric"] for r in sweep if r["status"] == "ok"]
    assert summary["hyperparameters"]["top"][0]["value"] == max(ok)
    assert summary["diminishing_returns"]["best"] == max(ok)
    assert summary["diminishing_returns"]["trials"] == len(sweep)
    assert summary["importance"]["trials"] == len(ok)
    for status in ("diverged", "failed"):
        expected = sum(r["status"] == status for r in sweep)
        assert summary["failures"]["modes"][status]["count"] == expected
    headline = summary["headline"]
    assert headline["test"]["mean"] == final["test_mean"]
    assert (
        headline["val"]["mean"] == final["val_mean"] and headline["val"]["std"] == final["val_std"]
    )
    assert headline["baseline"]["test"] == final["baseline"]["test"]
    assert headline["params"] == final["best_config"]
    assert len(summary["seeds"]["groups"]) == len(final["finalists"]) + 1
    chosen = next(g for g in summary["seeds"]["groups"] if g["chosen"])
    assert chosen["val"]["values"] == final["val_values"]
    topk = read_json(results / "coarse" / "topk.json")["trials"]
    select = next(r for r in summary["ladder"]["rungs"] if r["key"] == "select")
    assert [t["name"] for t in select["decided"]["top_k"]] == [t["name"] for t in topk]
    lr_range = read_json(results / "sanity" / "lr_range.json")
    assert summary["sanity"]["lr_range"]["suggestion"] == lr_range["suggestion"]
    assert select["seconds"] == float(
        (results / "benchmarks" / "select_top_k.tsv").read_text().splitlines()[1].split("\t")[0]
    )
    repro = summary["reproducibility"]
    # the resolved config: the file's values, with defaults added around them
    assert _within(yaml.safe_load((ladder / "config.yaml").read_text()), repro["config"])
    # the hash, spelled out: sha256 of the config as sorted, compact JSON, first 16 hex digits
    text = json.dumps(repro["config"], sort_keys=True, separators=(",", ":"), default=str)
    assert repro["experiment_hash"] == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert repro["ladder_seed"] == 0
    trial_results = [
        read_json(ladder / row["dir"] / "result.json")
        for table in tables.values()
        for row in table["trials"]
    ]
    trial_builds = {(r["build"]["torch"], r["build"]["device"]) for r in trial_results}
    assert {(b["torch"], b["device"]) for b in repro["builds"]} == trial_builds
    assert sum(b["trials"] for b in repro["builds"]) == len(trial_results)
    # torch's own version string, build tag included (2.14.1+cu130, 2.5.0+cpu)
    assert {b["torch"] for b in repro["builds"]} == {torch.__version__}
    assert [c["question"] for c in summary["checklist"]][-1].startswith("Am I seeing")
    assert set(summary["figures"]) == set(SHOWN) and summary["halving"] == {}


@pytest.mark.slow
def test_snakemake_report_zip_holds_the_figures(ladder: Path, tmp_path: Path) -> None:
    ladder = copy_ladder(ladder, tmp_path / "ladder")  # the report writes into the workdir
    snakemake(ladder, "--report", "report.zip")
    with zipfile.ZipFile(ladder / "report.zip") as archive:
        names = {Path(n).name for n in archive.namelist()}
    assert {f"{name}.png" for name in SHOWN} | {"index.html", "report.html"} <= names
    for name in FIGURE_NAMES:
        assert (REPO / "workflow" / "report" / f"{name}.rst").is_file()


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ]
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


def _console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line
    ]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_page_renders_in_headless_chromium(ladder: Path, tmp_path: Path) -> None:
    page = results_of(ladder) / "report" / "index.html"
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert not _console_errors(dom.stderr)
    assert re.findall(r'<section id="([\w-]+)">', dom.stdout) == PAGE_SECTIONS
    sources = re.findall(r'<img src="([^"]+)"', dom.stdout)
    assert len(sources) == len(SHOWN)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        pixels = imread(io.BytesIO(base64.b64decode(source.split(",", 1)[1])), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    # the same page with a probe appended: did every image load and decode in the browser?
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load', () => {const i = [...document.images];"
            " document.body.dataset.loaded = i.filter(x => x.complete && x.naturalWidth > 0)"
            ".length + '/' + i.length;});</script></body>",
        )
    )
    loaded = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert f'data-loaded="{len(SHOWN)}/{len(SHOWN)}"' in loaded.stdout
    assert not _console_errors(loaded.stderr)
    shot = tmp_path / "page.png"
    _chromium(tmp_path, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri())
    pixels = imread(shot, format="png")
    assert shot.stat().st_size > 50_000 and pixels.shape[:2] == (3000, 1200)
    assert pixels.std() > 0.05  # not a blank page


def test_figures_draw_failures_and_degenerate_inputs() -> None:
    from tuneladder.report import _figures as figs

    rows = [
        {**row(0, value=0.8, lr=1e-3, width=32, arch="mlp"), "history": []},
        {**row(1, "diverged", lr=0.09, width=64, arch="cnn"), "history": []},
        {**row(2, value=0.9, rung="fine", lr=3e-3, width=128, arch="cnn"), "history": []},
        {**row(3, "failed", rung="fine", lr=1e-2, width=16, arch="mlp"), "history": []},
        *({**row(4 + i, value=0.9 + 0.01 * i, lr=1e-3, width=32, arch="mlp")} for i in range(8)),
        {**row(12, value=0.1, rung="fine", lr=1e-4, width=32, arch="mlp"), "history": []},
    ]
    labels = ["ok", "diverged", "ok", "failed", *["ok"] * 9]
    lr_range = {
        "lrs": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "losses": [2.3, 2.2, 1.5, 3.0, float("nan")],
        "smoothed": [2.3, 2.25, 2.0, 2.3, float("nan")],
        "suggestion": 1e-3,
        "min_loss_lr": 1e-3,
        "divergence_lr": 1e-1,
        "range": [1e-4, 1e-2],
    }
    drawn = [
        figs.ladder_figure([{"label": "coarse sweep", "seconds": None}]),
        figs.overfit_figure({"curve": [], "loss_threshold": 0.05}),
        figs.lr_range_figure(lr_range, (1e-4, 1e-1)),
        figs.lr_range_figure(None, None),
        figs.curves_figure(
            [
                {"title": "failed", "history": [], "note": "RuntimeError: boom"},
                {"title": "diverged", "history": history([2.3, 1e6], [2.3, float("inf")])},
            ]
        ),
        figs.hyperparameters_figure(
            rows, labels, SPACE, chosen=rows[2]["params"], metric="acc", mode="max"
        ),
        figs.parallel_figure(rows, SPACE, metric="acc", mode="min"),
        figs.parallel_figure(rows[1:2], SPACE, metric="acc", mode="max"),
        figs.importance_figure({"importances": {"lr": None}, "caveats": ["too few"]}),
        figs.seeds_figure(
            [{"label": "0", "val": {"values": [0.9], "mean": 0.9, "std": None}, "test": None}],
            metric="acc",
        ),
        figs.best_so_far_figure(
            rows, [None, None, *[0.9] * 11], window=10, metric="acc", mode="min"
        ),
    ]
    for fig in drawn:
        assert figs.png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")


def _rewrite_history(path: Path, train: list[float], val: list[float]) -> dict[str, Any]:
    """Replace a trial's history.csv by these losses (the other columns from its first row);
    returns the curve summary its result would carry."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for epoch, (t, v) in enumerate(zip(train, val, strict=True)):
            writer.writerow({**rows[0], "epoch": epoch, "train_loss": t, "val_loss": v})
    return curve_summary(train, val)


@pytest.mark.slow
def test_report_of_a_ladder_with_failures(tiny_ladder: Path, tmp_path: Path) -> None:
    from tuneladder.report import report_inputs, report_stage

    results = tmp_path / "results"
    shutil.copytree(results_of(tiny_ladder), results)
    coarse = read_json(results / "coarse" / "results.json")
    for index, status in ((0, "diverged"), (2, "failed")):
        trial = coarse["trials"][index]
        trial.update(status=status, best_val_metric=None, reason=f"made {status} by the test")
    coarse["counts"] = {"ok": 2, "diverged": 1, "failed": 1}
    (results / "coarse" / "trials" / "2" / "history.csv").write_text("")
    # coarse #1 overfits: val loss climbs 17% back from its minimum while train loss falls;
    # its row carries the curve's summary, as collect copies it from the trial's result
    curve = _rewrite_history(
        results / "coarse" / "trials" / "1" / "history.csv",
        train=[1.0, 0.5, 0.3, 0.1],
        val=[0.8, 0.6, 0.65, 0.7],
    )
    coarse["trials"][1].update(best_epoch=1, curve=curve)
    write_json(results / "coarse" / "results.json", coarse)
    # fine #2 is too slow: best at its last epoch, train loss still falling, far behind the
    # best; its row has no summary (a result written before there were any): its history says
    fine = read_json(results / "fine" / "results.json")
    _rewrite_history(
        results / "fine" / "trials" / "2" / "history.csv", train=[2.0, 1.0], val=[1.9, 1.2]
    )
    fine["trials"][2].update(best_epoch=1, best_val_metric=0.3)
    del fine["trials"][2]["curve"]
    write_json(results / "fine" / "results.json", fine)
    # coarse #3 ran out of GPU memory beside other trials and trained again alone
    result_3 = results / "coarse" / "trials" / "3" / "result.json"
    alone = {"reason": "OutOfMemoryError: CUDA out of memory", "waited_s": 2.0, "seconds": 1.0}
    write_json(result_3, {**read_json(result_3), "retried_alone": alone})

    summary = report_stage(
        inputs=report_inputs(results),
        benchmarks_dir=results / "benchmarks",
        out_dir=results / "report",
        seed=0,
        config={"seed": 0},
    )
    labels = {(c["rung"], c["name"]): c["mode"] for c in summary["failures"]["classes"]}
    assert labels[("coarse", "0")] == "diverged" and labels[("coarse", "2")] == "failed"
    assert labels[("coarse", "1")] == "overfitting" and labels[("fine", "2")] == "too slow"
    modes = summary["failures"]["modes"]
    assert (modes["diverged"]["count"], modes["failed"]["count"]) == (1, 1)
    lr = coarse["trials"][0]["params"]["lr"]
    assert modes["diverged"]["ranges"]["lr"] == {"min": lr, "max": lr}
    assert summary["trials"]["coarse"]["counts"] == coarse["counts"]
    assert {c["role"] for c in summary["learning_curves"]} >= set(modes)
    ok = [r for r in coarse["trials"] + fine["trials"] if r["status"] == "ok"]
    assert summary["importance"]["trials"] == len(ok)
    page = (results / "report" / "index.html").read_text()
    assert "made diverged by the test" in page and "made failed by the test" in page
    failures = _section(page, "failures")
    # every label, on the page, with the count of the trials that earned it
    assert _mode_counts(failures) == {m: modes[m]["count"] for m in modes}
    assert all(count >= 1 for count in _mode_counts(failures).values())
    for (rung, name), mode in labels.items():
        if mode != "ok":
            assert f"<tr><td>{rung} #{name}</td><td>{mode}</td>" in failures
    assert summary["failures"]["retried_alone"] == [
        {"trial": "coarse #3", "reason": alone["reason"]}
    ]
    assert "1 trial(s) ran out of GPU memory beside the other trials" in failures
    assert "<td>coarse #3</td><td>OutOfMemoryError: CUDA out of memory</td>" in failures
    assert summary["reproducibility"]["precisions"] == ["fp32"]


@pytest.mark.slow
def test_the_sweep_part_runs_without_the_seed_reruns_and_changes_nothing(
    tiny_ladder: Path, tmp_path: Path
) -> None:
    from tuneladder.report import (
        SWEEP_READS,
        SWEEPS_FILE,
        report_inputs,
        report_stage,
        report_sweeps_stage,
    )

    results = results_of(tiny_ladder)
    config = read_json(results / "report" / "summary.json")["reproducibility"]["config"]
    # the report_sweeps job, in a folder the seed reruns and the final rung never wrote to
    early = tmp_path / "early"
    shutil.copytree(results, early, ignore=shutil.ignore_patterns("seeds", "final", "report"))
    numbers = report_sweeps_stage(
        inputs=report_inputs(early, config, SWEEP_READS),
        out_dir=early / "report",
        seed=config["seed"],
        config=config,
    )
    assert set(numbers) == {"importance", "trends", "failures", "curve_epochs"}
    # the whole report in one process, as report_stage does when not given the sweep part
    alone = tmp_path / "alone"
    shutil.copytree(results, alone, ignore=shutil.ignore_patterns("report"))
    summary = report_stage(
        inputs=report_inputs(alone, config),
        benchmarks_dir=None,
        out_dir=alone / "report",
        seed=config["seed"],
        config=config,
    )
    made = results / "report"  # by the workflow's two jobs
    for report in (early / "report", made):
        assert read_json(report / SWEEPS_FILE) == read_json(alone / "report" / SWEEPS_FILE)
    for figure in FIGURES:
        if figure.name not in SHOWN or figure.name == "ladder":  # the ladder's: job timings
            continue
        drawn = (alone / "report" / figure.path).read_bytes()
        assert (made / figure.path).read_bytes() == drawn, figure.name
        if figure.from_sweeps:
            assert (early / "report" / figure.path).read_bytes() == drawn, figure.name
        else:
            assert not (early / "report" / figure.path).exists(), figure.name
    by_jobs = read_json(made / "summary.json")
    for key in ("importance", "hyperparameters", "analysis", "failures", "learning_curves"):
        assert summary[key] == by_jobs[key], key
    # fANOVA saw every ok trial of both sweeps, read from their tables here
    ok = [
        row
        for rung in ("coarse", "fine")
        for row in read_json(results / rung / "results.json")["trials"]
        if row["status"] == "ok"
    ]
    assert summary["importance"]["trials"] == len(ok) > 0


def test_epoch_axes_have_whole_epochs_only() -> None:
    from tuneladder.report import _figures as figs

    fig = figs.curves_figure([{"title": "two epochs", "history": history([2.0, 1.0], [2.1, 1.2])}])
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_builds_are_the_distinct_torch_builds_with_their_trial_counts() -> None:
    cpu = {"torch": "2.14.1+cu130", "cuda_built": "13.0", "cudnn_built": 92400, "device": "cpu"}
    gpu = {**cpu, "device": "cuda:0", "device_name": "NVIDIA H100", "driver": "580.82"}
    results = {
        "coarse/0": {"build": cpu},
        "coarse/1": {"build": gpu},
        "fine/0": {"build": gpu},
        "seeds/0-0": {},  # recorded before builds were
    }
    found = {b["device"]: b for b in builds(results)}
    assert found["cuda:0"] == {
        **gpu,
        "trials": 2,
        "example": "coarse/1",
    }
    assert found["cpu"]["trials"] == 1 and found["cpu"]["device_name"] is None
    assert found[None] == {
        "torch": None,
        "cuda_built": None,
        "cudnn_built": None,
        "device": None,
        "device_name": None,
        "driver": None,
        "trials": 1,
        "example": "seeds/0-0",
    }


def test_headline_shows_the_trivial_row_the_origin_and_the_tie() -> None:
    from tuneladder.report._html import _headline

    stats = {"n": 3, "mean": 1.0, "std": 0.0, "values": [1.0, 1.0, 1.0]}
    tie = {"sentence": "All 2 finalists tie on val accuracy over 3 seeds: chose coarse #8."}
    headline = {
        "chosen_group": "0",
        "source": {"rung": "coarse", "name": "8", "label": "coarse #8"},
        "runner_up": "1",
        "runner_up_source": {"rung": "fine", "name": "2", "label": "fine #2"},
        "params": {"lr": 0.01, "width": 64},
        "not_applicable": ["channels", "diverge_factor"],
        "searched": ["lr"],
        "default_params": {"lr": 3e-4, "width": 128},
        "seeds": 3,
        "val": {**stats, "ci95": [0.9, 1.0], "ci95_clipped": True},
        "metric_bounds": [0.0, 1.0],
        "test": stats,
        "baseline": {"val": stats, "test": stats},
        "trivial": {
            "name": "majority class",
            "predicts": "always class 3",
            "val": {"accuracy": 0.1031},
            "test": {"accuracy": 0.1},
        },
        "p_value_vs_runner_up": 1.0,
        "distinguishable_from_runner_up": False,
        "tie": tie,
    }
    page = _headline({"headline": headline, "metric": {"name": "accuracy", "mode": "max"}})
    assert "Chosen configuration: coarse #8 (finalist 0)" in page
    assert "the runner-up, fine #2 (finalist 1)" in page
    assert "<tr><td>trivial: majority class</td><td>0.1031</td><td>0.1</td></tr>" in page
    assert "[0.9, 1] (clipped to accuracy's range [0, 1])" in page
    assert tie["sentence"] in page
    assert (
        "<td>channels</td>" not in page and "do not apply to it: channels, diverge_factor" in page
    )


def test_fanova_on_a_large_sweep_fits_a_seeded_sample_and_says_so() -> None:
    rows = _sweep(70)
    sampled = fanova_importance(rows, SPACE, mode="max", seed=0, max_trials=40)
    assert (sampled["trials"], sampled["ok_trials"]) == (40, 70)
    assert "random sample of 40 of the 70 ok trials" in sampled["caveats"][0]
    again = fanova_importance(rows, SPACE, mode="max", seed=0, max_trials=40)
    assert again["importances"] == sampled["importances"]
    # the sample still finds what drives the metric
    assert max(sampled["importances"], key=sampled["importances"].get) == "lr"
    whole = fanova_importance(rows, SPACE, mode="max", seed=0)
    assert whole["trials"] == whole["ok_trials"] == 70


def test_figures_of_a_large_sweep_draw_the_best_and_a_seeded_sample_and_say_so() -> None:
    from tuneladder.report import _figures as figs
    from tuneladder.report._analysis import figure_sample, sample_note
    from tuneladder.report._html import _failing_trials, _names, _sample_text

    rows = _sweep(60) + [row(60 + i, "diverged", lr=1e-3, width=16, arch="mlp") for i in range(5)]
    shown, note = figure_sample(rows, "max", limit=20, best=5)
    assert note == sample_note(rows, limit=20, best=5) == {"trials": 65, "shown": 20, "best": 5}
    assert len(shown) == 20 and shown == figure_sample(rows, "max", limit=20, best=5)[0]
    best = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["best_val_metric"])
    assert all(any(s is r for s in shown) for r in best[:5])
    assert [r["index"] for r in shown] == sorted(r["index"] for r in shown)  # plan order
    assert figure_sample(rows, "max")[1] == {"trials": 65, "shown": 65, "best": None}
    text = _sample_text(note, "trials")
    assert "20 of the 65 trials: the best 5 and a seeded random sample of 15" in text
    assert _sample_text(sample_note(rows), "trials") == ""
    assert _names([str(i) for i in range(25)], "coarse").endswith("coarse #19 and 5 more")
    slow = {"rung": "coarse", "mode": "too slow", "why": "w"}
    failing = [{**slow, "name": str(i)} for i in range(30)]
    table, left_out = _failing_trials(failing)
    assert len(table) == 20 and "10 of the 30 too slow" in left_out
    labels = ["ok"] * 60 + ["diverged"] * 5
    for fig in (
        figs.parallel_figure(rows, SPACE, metric="acc", mode="max"),
        figs.hyperparameters_figure(rows, labels, SPACE, chosen={}, metric="acc", mode="max"),
    ):
        assert figs.png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")


def test_losses_below_zero_stay_on_a_linear_axis_in_view() -> None:
    """A task's own loss (a negative log-likelihood) may fall below zero."""
    from tuneladder.report import _figures as figs

    fig = figs.curves_figure([{"title": "nll", "history": history([2.0, -1.5], [2.1, -1.2])}])
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "linear" and low <= -1.5 and high >= 2.1
    smoothed = [-0.5, -1.0, -2.0, -1.8, 5.0]
    lr_range = {
        "lrs": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "losses": smoothed,
        "smoothed": smoothed,
        "suggestion": 1e-4,
        "min_loss_lr": 1e-3,
        "divergence_lr": 1e-1,
        "range": [1e-5, 1e-3],
    }
    low, high = figs.lr_range_figure(lr_range, None).axes[0].get_ylim()
    assert low < -2.0 < -0.5 < high < 5.0  # the whole descent, not the blow-up


def test_choices_that_tie_on_their_mean_have_no_best() -> None:
    from tuneladder.report._analysis import trends
    from tuneladder.report._html import _trend_text

    space = {"width": CategoricalDistribution([8, 32, 64])}
    rows = [row(0, value=0.07778, width=8), row(1, value=0.07778, width=32),
            row(2, value=0.05, width=64)]  # fmt: skip
    found = trends(rows, space, "max")["width"]
    assert found["best"] is None and found["tied"] == ["8", "32"]
    assert _trend_text(found).startswith("no best: 8, 32 tie (means 8: 0.07778")
    apart = trends([*rows[:1], row(1, value=0.06, width=32)], space, "max")["width"]
    assert apart["best"] == "8" and apart["tied"] == []
