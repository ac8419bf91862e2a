"""The final rung: choose by mean over seeds, then touch the test split, once.

The chosen config is the finalist with the best mean val metric over seeds
(ties: the smaller spread, then the lower mean val loss, then the finalist that
ranked higher in the sweep). Its seed models, and the untuned baseline's, are
evaluated on the test split; nothing is selected on those numbers. Beside them,
a trivial predictor fitted to the train split (the majority class, or the
target mean) is scored on val and test, so the tuned numbers can be read
against what no model at all achieves.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneladder.core.direction import Direction, best_so_far, ok_value, tie_key, top
from tuneladder.core.hparams import TrialConfig, applicable
from tuneladder.core.stats import Bounds, bounds_text, describe, metric_bounds, welch_p_value
from tuneladder.core.text import counted
from tuneladder.data.loader import DatasetSplit
from tuneladder.data.prepared import Split, data_for, load_info, load_test, load_train_val
from tuneladder.infra.device import Loading
from tuneladder.ladder.rungs import BASELINE, SEEDS, finalist_label, trial_order
from tuneladder.store.io import read_json, write_json, write_text, write_torch
from tuneladder.store.trial_files import CONFIG_FILE, HISTORY_FILE, MODEL_FILE
from tuneladder.tasks import DataInfo, Task
from tuneladder.training.metrics import Scoring
from tuneladder.training.runner import evaluate_metrics

__all__ = [
    "BASELINE",
    "Evaluator",
    "best_so_far_rows",
    "choose",
    "finalize",
    "group_rows",
    "origins",
    "summary_markdown",
    "tie_break",
    "trivial_predictor",
    "write_views",
]

ALPHA = 0.05


def group_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
    return dict(groups)


def _finalist_order(group: str) -> tuple[int, int, str]:
    # finalists are numbered in sweep rank order: "2" before "10"
    return (0, int(group), group) if group.isdigit() else (1, 0, group)


def choose(
    groups: Mapping[str, Sequence[Mapping[str, Any]]],
    mode: Direction | str,
    *,
    metric: str | None = None,
    bounds: Bounds | None = None,
) -> list[dict[str, Any]]:
    """Finalists with their val statistics, best first (the baseline is not a candidate).

    Finalists whose seeds all finished come first: one that diverged or failed on
    a seed would do so again for whoever trains it, and its mean is of the seeds
    that went well. Within each count of failed seeds, ranked by mean val metric;
    ties go to the smaller spread (an unknown one, of a single seed, is not small),
    then to the lower mean val loss (at each seed's best epoch), then to the
    finalist that ranked higher in the sweep. The intervals are clipped to
    ``bounds``, by default those of the built-in ``metric``.
    """
    if bounds is None:
        bounds = metric_bounds(metric) if metric else (None, None)
    ranked = []
    for name, rows in groups.items():
        if name == BASELINE:
            continue
        ok = [r for r in rows if r["status"] == "ok" and r["best_val_metric"] is not None]
        losses = [r["best_val_loss"] for r in ok if r.get("best_val_loss") is not None]
        ranked.append(
            {
                "group": name,
                "params": {k: v for k, v in rows[0]["params"].items() if k != "seed"},
                "val": describe([r["best_val_metric"] for r in ok], bounds),
                "val_loss_mean": statistics.fmean(losses) if losses else None,
                "failed_seeds": len(rows) - len(ok),
            }
        )
    ranked = top(
        ranked,
        len(ranked),
        mode,
        value=lambda r: tie_key(r["val"]["mean"]) if r["val"]["n"] > 0 else None,
        tie_break=lambda r: (
            tie_key(r["val"]["std"]),
            tie_key(r["val_loss_mean"]),
            _finalist_order(r["group"]),
        ),
    )
    # fewest failed seeds first; a stable sort keeps the order above within each count
    ranked.sort(key=lambda r: r["failed_seeds"])
    if not ranked:
        raise RuntimeError(
            f"no finalist finished a single seed: see results/{SEEDS.name}/*/result.json"
        )
    return ranked


def _names(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def tie_break(
    ranked: Sequence[Mapping[str, Any]], metric: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """What decided the choice when the best finalists tie on mean val metric; None otherwise.

    ``ranked`` is :func:`choose`'s list, ``labels`` names groups (``"coarse #8"``).
    ``decided_by`` is ``spread``, ``val_loss`` or ``order`` (see :func:`choose`);
    ``identical`` says every tied finalist scored the same on every seed.
    """
    if len(ranked) < 2:
        return None
    best = ranked[0]
    tied = [
        r
        for r in ranked
        if tie_key(r["val"]["mean"]) == tie_key(best["val"]["mean"])
        and r["failed_seeds"] == best["failed_seeds"]
    ]
    if len(tied) < 2:
        return None
    other = tied[1]
    labels = labels or {}
    name = {r["group"]: labels.get(r["group"], f"finalist {r['group']}") for r in tied}
    identical = all(r["val"]["values"] == best["val"]["values"] for r in tied)
    seeds = counted(best["val"]["n"], "seed")
    who = f"all {len(tied)} finalists" if len(tied) == len(ranked) else _names(list(name.values()))
    if identical:
        values = ", ".join(f"{v:.4f}" for v in best["val"]["values"])
        text = f"{who} tie on val {metric} over {seeds}, the same on every seed ({values}): "
    else:
        text = f"{who} tie on mean val {metric} ({best['val']['mean']:.4f} over {seeds}): "
    text = text[0].upper() + text[1:]
    if tie_key(best["val"]["std"]) != tie_key(other["val"]["std"]):
        decided, ours, theirs = "spread", best["val"]["std"], other["val"]["std"]
        text += f"chose {name[best['group']]}, the one with the smaller spread: std"
        text += f" {ours:.4g} against {_spread(other)} for {name[other['group']]}."
    elif tie_key(best["val_loss_mean"]) != tie_key(other["val_loss_mean"]):
        decided, ours, theirs = "val_loss", best["val_loss_mean"], other["val_loss_mean"]
        text += f"chose {name[best['group']]}, the one with the best mean val loss:"
        text += f" {ours:.4f} against {theirs:.4f} for {name[other['group']]}."
    else:
        decided, ours, theirs = "order", None, None
        text += f"their spread and val loss tie too, so chose {name[best['group']]}, the one"
        text += " ranked higher in the sweep."
    return {
        "groups": [r["group"] for r in tied],
        "identical": identical,
        "decided_by": decided,
        "chosen": ours,
        "runner_up": theirs,
        "sentence": text,
    }


def _spread(row: Mapping[str, Any]) -> str:
    std = row["val"]["std"]
    return "unknown (1 seed)" if std is None else f"{std:.4g}"


def passed_over(
    ranked: Sequence[Mapping[str, Any]], mode: Direction | str
) -> list[dict[str, Any]]:
    """Finalists with a better mean val metric than the chosen one, ranked below it for
    seeds that did not finish (see :func:`choose`): the summary names them."""
    best, direction = ranked[0], Direction(mode)
    over = [
        r
        for r in ranked[1:]
        if r["failed_seeds"] > best["failed_seeds"]
        and direction.better(r["val"]["mean"], best["val"]["mean"])
    ]
    return [
        {
            "group": r["group"],
            "val": r["val"],
            "failed_seeds": r["failed_seeds"],
            "sentence": (
                f"Passed over {finalist_label(r.get('origin'), r['group'])}, val {_fmt(r['val'])}"
                f" on the seeds that finished: {r['failed_seeds']} of its"
                f" {r['failed_seeds'] + r['val']['n']} seeds diverged or failed."
            ),
        }
        for r in over
    ]


def origins(finalists: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Finalist group -> the sweep trial it came from (the seeds plan numbers them by rank)."""
    return {
        str(rank): {
            "rung": f["rung"],
            "name": f["name"],
            "label": f"{f['rung']} #{f['name']}",
            "search_value": f.get("best_val_metric"),
        }
        for rank, f in enumerate(finalists)
    }


class _Constant(nn.Module):
    """A model that ignores its input: the same output row for every sample."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("output", output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.expand(len(x), *self.output.shape)


def trivial_predictor(train: Split | DatasetSplit, info: DataInfo) -> tuple[nn.Module, str, str]:
    """The best constant prediction from the train split: ``(model, name, what it predicts)``.

    Classification: logits ``log(class frequency)``, so it always predicts the
    most frequent class and its loss is that of the class frequencies.
    Multilabel: each label's frequency, as logits. Regression: the train
    split's target mean, in the units the targets are stored in; scored by
    :func:`~tuneladder.training.runner.evaluate_metrics` like any model, so rmse, mae
    and r2 come out in the target's own units.
    """
    if info.kind == "multilabel":
        rate = train.y.float().mean(dim=0).cpu().clamp(1e-6, 1 - 1e-6)
        return (
            _Constant((rate / (1 - rate)).log()),
            "label frequencies",
            "each label with its train split frequency",
        )
    if info.kind == "classification":
        counts = torch.bincount(train.y.cpu(), minlength=info.n_outputs).double()
        majority = int(counts.argmax())
        logits = (counts / counts.sum()).log().float()
        return (
            _Constant(logits),
            "majority class",
            f"always class {info.class_name(majority)}, the train split's most frequent",
        )
    mean = train.y.float().mean(dim=0).cpu()
    return _Constant(mean), "mean predictor", "always the train split's target mean"


def _finite(scores: Mapping[str, float]) -> dict[str, float | None]:
    # a class absent from the train split gives the majority predictor an infinite loss
    return {k: v if math.isfinite(v) else None for k, v in scores.items()}


class Evaluator:
    """Scores the final rung's models on the test split, and the trivial predictor beside them.

    Each test split is read here, once: prepare's, and that of each other value
    of the task's data hyperparameters a finalist trained at
    (:func:`tuneladder.data.prepared.data_for`). The task reopens its Datasets
    where prepare stored them by index, read as ``loading`` says.

    Args:
        task: the task whose models are scored: its factory builds them, its own
            loss and metrics score them, its ``applies`` and metric bounds shape
            the summary.
        data_dir: the prepared data.
        device: where the models are evaluated.
        loading: how a split read through a DataLoader is read.
        amp: the autocast the seed trials trained and validated under (bf16 or fp16 on a
            GPU): their models are tested under it too.
    """

    def __init__(
        self,
        *,
        task: Task,
        data_dir: str | Path,
        device: torch.device,
        loading: Loading | None = None,
        amp: Any = None,
    ) -> None:
        self.task = task
        self.info = load_info(data_dir)
        self._data_dir = Path(data_dir)
        self._device = device
        self._loading = loading
        self._amp = amp
        self._tests: dict[Path, tuple[Split | DatasetSplit, DataInfo]] = {}

    def test_split(
        self, params: Mapping[str, Any] | None = None
    ) -> tuple[Split | DatasetSplit, DataInfo]:
        """The test split of ``params``' data values, with its info; prepare's when None."""
        folder = self._data_dir
        if params is not None:
            folder = data_for(self._data_dir, self.task, params)
        if folder not in self._tests:
            split = load_test(folder, self.task, loading=self._loading).to(self._device)
            info = self.info if folder == self._data_dir else load_info(folder)
            self._tests[folder] = (split, info)
        return self._tests[folder]

    def seed_scores(
        self, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, float]], list[Mapping[str, Any]]]:
        """Every metric of each seed trial's saved model on its test split, and the rows
        scored: those that finished ``ok`` and kept their model."""
        scores, used = [], []
        for row in rows:
            weights = Path(row["dir"]) / MODEL_FILE
            if row["status"] != "ok" or not weights.is_file():
                continue
            config = TrialConfig.from_json({**_config_of(row)})
            split, info = self.test_split(config.model)
            model = self.task.build_model(config.model, info).to(self._device)
            state = torch.load(weights, weights_only=True, map_location=self._device)
            model.load_state_dict(state)
            scores.append(
                evaluate_metrics(model, split, info, Scoring.of(self.task), amp=self._amp)
            )
            used.append(row)
        return scores, used

    def trivial(self) -> dict[str, Any]:
        """The best constant prediction from the train split (:func:`trivial_predictor`),
        scored on val and prepare's test split."""
        scoring = Scoring.of(self.task)
        test, _ = self.test_split()
        train_val = load_train_val(self._data_dir, self.task, loading=self._loading)
        model, name, what = trivial_predictor(train_val.train, self.info)
        model = model.to(self._device)
        val = train_val.val.to(self._device)
        return {
            "name": name,
            "predicts": what,
            "val": _finite(evaluate_metrics(model, val, self.info, scoring)),
            "test": _finite(evaluate_metrics(model, test, self.info, scoring)),
        }


def finalize(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    evaluator: Evaluator,
    metric: str,
    mode: Direction | str,
    experiment: str,
    finalists: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md``, the chosen config and the best seed's weights.

    ``rows`` are the seed trials' rows. ``finalists`` is the seeds plan's list
    (where each finalist came from); when None it is read from ``plan.json``
    beside the seed trials. The summary lists only the hyperparameters that
    apply to the chosen config (``best_config.json`` keeps them all). Beside the
    selected metric, ``test_metrics`` records the chosen config's mean test
    value of every metric the task records.
    """
    out_dir = Path(out_dir)
    task = evaluator.task
    bounds = task.metrics[metric].bounds
    groups = group_rows(rows)
    if finalists is None:
        finalists = read_json(Path(rows[0]["dir"]).parent / "plan.json")["finalists"]
    origin = origins(finalists)

    def shown(params: Mapping[str, Any]) -> dict[str, Any]:
        return applicable(params, model_applies=task.applies)

    ranked = choose(groups, mode, metric=metric, bounds=bounds)
    for entry in ranked:
        entry["origin"] = origin.get(entry["group"])
    best = ranked[0]
    best_all, best_rows = evaluator.seed_scores(groups.get(best["group"], []))
    base_all, _ = evaluator.seed_scores(groups.get(BASELINE, []))
    top_seed = next(iter(top(best_rows, 1, mode)), None)
    if top_seed is not None:
        state = torch.load(
            Path(top_seed["dir"]) / MODEL_FILE, weights_only=True, map_location="cpu"
        )
        write_torch(out_dir / "model.pt", state)
    write_json(out_dir / "best_config.json", _config_of(top_seed or groups[best["group"]][0]))
    best_config = shown(best["params"])
    summary = {
        "experiment": experiment,
        "metric": metric,
        "mode": mode,
        "metric_bounds": list(bounds),
        "best_config": best_config,
        "not_applicable": [k for k in best["params"] if k not in best_config],
        "best_group": best["group"],
        "best_origin": best["origin"],
        **_val_part(best),
        **_test_part(best_all, metric, bounds),
        "seeds": best["val"]["n"],
        "best_seed_trial": top_seed["name"] if top_seed else None,
        "best_seed_dir": top_seed["dir"] if top_seed else None,
        **_runner_up_part(ranked, metric, origin, shown),
        "passed_over": passed_over(ranked, mode),
        "baseline": _baseline(groups, [s[metric] for s in base_all], bounds, shown),
        "trivial": evaluator.trivial(),
        "finalists": [{**r, "params": shown(r["params"])} for r in ranked],
        # model.pt's outputs, in order, where the data named its classes
        "class_names": list(evaluator.info.class_names) if evaluator.info.class_names else None,
    }
    summary["warnings"] = result_warnings(summary)
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "summary.md", summary_markdown(summary))
    return summary


def result_warnings(summary: Mapping[str, Any]) -> list[str]:
    """What the numbers say is wrong with the result, a sentence each; nothing else in
    them would flag it."""
    return [w for w in (no_better_than_trivial(summary), behind_the_default(summary)) if w]


def no_better_than_trivial(summary: Mapping[str, Any]) -> str | None:
    """A sentence when the tuned config scores no better on test than the predictor that
    uses no model: it learnt nothing (an LR range below every LR that trains, say)."""
    metric, tuned = summary["metric"], summary.get("test_mean")
    trivial = summary.get("trivial") or {}
    floor = (trivial.get("test") or {}).get(metric)
    if tuned is None or floor is None or Direction(summary["mode"]).better(tuned, floor):
        return None
    return (
        f"the tuned config scores no better on test than the {trivial.get('name', 'trivial')}"
        f" ({metric} {tuned:.4g} against {floor:.4g}): it learnt nothing the ladder can use;"
        " check the LR range test's range (sanity/lr_range.json) and the learning curves"
    )


def behind_the_default(summary: Mapping[str, Any]) -> str | None:
    """A sentence when the untuned default, rerun over the same seeds, beats the chosen
    config on val (the search found nothing better than where it started), or else on
    test (the choice on val did not carry over to data it never saw)."""
    metric, better = summary["metric"], Direction(summary["mode"]).better
    baseline = summary.get("baseline") or {}
    tuned, default = summary.get("val_mean"), (baseline.get("val") or {}).get("mean")
    if tuned is not None and default is not None and better(default, tuned):
        return (
            f"the untuned default scores better on val than the chosen config ({metric}"
            f" {default:.4g} against {tuned:.4g} over the same seeds): the search found"
            " nothing better than the defaults; check that seeds.epochs is the length the"
            " sweeps chose at, and the search space's ranges"
        )
    tuned_test, default_test = summary.get("test_mean"), baseline.get("test") or {}
    if tuned_test is None or default_test.get("mean") is None:
        return None
    if not better(default_test["mean"], tuned_test):
        return None
    chosen = {"mean": tuned_test, "std": summary.get("test_std")}
    return (
        f"the untuned default scores better on test than the chosen config ({metric}"
        f" {_fmt(default_test)} against {_fmt(chosen)}"
        " over the same seeds), though not on val: the choice did not carry over to data"
        " it never saw; where the seeds spread this far, more seeds (seeds.seeds) or a"
        " larger val split tell the two apart"
    )


def _val_part(best: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen finalist's val metric over seeds."""
    return {
        "val_mean": best["val"]["mean"],
        "val_std": best["val"]["std"],
        "val_ci95": best["val"]["ci95"],
        "val_ci95_clipped": best["val"]["ci95_clipped"],
        "val_values": best["val"]["values"],
    }


def _test_part(
    scores: Sequence[Mapping[str, float]], metric: str, bounds: Bounds
) -> dict[str, Any]:
    """The chosen finalist's seed models on the test split: the selected metric, and the
    mean of every metric the task records."""
    values = [s[metric] for s in scores]
    stats = describe(values, bounds)
    names = scores[0] if scores else {}
    means = {name: statistics.fmean(s[name] for s in scores) for name in names}
    return {
        "test_mean": stats["mean"],
        "test_std": stats["std"],
        "test_values": values,
        "test_metrics": _finite(means),
    }


def _runner_up_part(
    ranked: Sequence[Mapping[str, Any]],
    metric: str,
    origin: Mapping[str, Mapping[str, Any]],
    shown: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The chosen finalist against the next one: Welch's test, and what broke a tie."""
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    p_value = (
        welch_p_value(best["val"]["values"], runner_up["val"]["values"]) if runner_up else None
    )
    labels = {g: finalist_label(o, g) for g, o in origin.items()}
    return {
        "runner_up": runner_up
        and {
            "group": runner_up["group"],
            "origin": runner_up["origin"],
            "val": runner_up["val"],
            "params": shown(runner_up["params"]),
        },
        "p_value_vs_runner_up": p_value,
        "distinguishable_from_runner_up": bool(p_value is not None and p_value < ALPHA),
        "tie": tie_break(ranked, metric, labels),
    }


def _baseline(
    groups: Mapping[str, Sequence[Mapping[str, Any]]],
    test: Sequence[float],
    bounds: Bounds,
    shown: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The untuned default: its applicable hyperparameters, val over seeds, and ``test``."""
    base_rows = [r for r in groups.get(BASELINE, []) if r["status"] == "ok"]
    base_params = groups[BASELINE][0]["params"] if BASELINE in groups else None
    return {
        "params": shown({k: v for k, v in base_params.items() if k != "seed"})
        if base_params
        else None,
        "val": describe([r["best_val_metric"] for r in base_rows], bounds),
        "test": describe(test, bounds),
    }


def _config_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return read_json(Path(row["dir"]) / CONFIG_FILE)


def _fmt(stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    std = stats.get("std")
    return f"{stats['mean']:.4f} ± {std:.4f}" if std is not None else f"{stats['mean']:.4f}"


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def summary_markdown(s: Mapping[str, Any]) -> str:
    """A short human summary; the full report is its own rung."""
    name = s["metric"]
    test = {"mean": s["test_mean"], "std": s["test_std"]}
    trivial = s["trivial"]
    chosen = finalist_label(s["best_origin"], s["best_group"])
    lines = [
        f"# {s['experiment']}: tuning summary",
        "",
        f"Chosen config: {chosen}, {name} over {counted(s['seeds'], 'seed')}:",
        "",
        f"| | val {name} | test {name} |",
        "|---|---|---|",
        f"| tuned | {_fmt({'mean': s['val_mean'], 'std': s['val_std']})} | {_fmt(test)} |",
        f"| untuned default | {_fmt(s['baseline']['val'])} | {_fmt(s['baseline']['test'])} |",
        f"| trivial: {trivial['name']} | {_value(trivial['val'].get(name))}"
        f" | {_value(trivial['test'].get(name))} |",
        "",
        f"The trivial row uses no model: {trivial['predicts']}.",
    ]
    if len(s.get("test_metrics") or {}) > 1:
        shown = ", ".join(f"{k} {_value(v)}" for k, v in s["test_metrics"].items())
        lines.append(f"Every metric the task records, on test (mean over seed models): {shown}.")
    if s["val_ci95"]:
        lo, hi = s["val_ci95"]
        clipped = (
            f" (clipped to {name}'s range {bounds_text(s['metric_bounds'])})"
            if s["val_ci95_clipped"]
            else ""
        )
        lines.append(f"95% interval of the tuned val mean: [{lo:.4f}, {hi:.4f}]{clipped}.")
    if s["runner_up"]:
        verdict = (
            "distinguishable from"
            if s["distinguishable_from_runner_up"]
            else "not distinguishable from"
        )
        p = s["p_value_vs_runner_up"]
        runner_up = s["runner_up"]
        lines.append(
            f"It is {verdict} the runner-up,"
            f" {finalist_label(runner_up.get('origin'), runner_up['group'])}:"
            f" val {_fmt(runner_up['val'])}, Welch t-test p = "
            f"{'n/a' if p is None else f'{p:.3g}'}."
        )
    if s["tie"]:
        lines.append(f"Tie: {s['tie']['sentence']}")
    lines += [other["sentence"] for other in s.get("passed_over") or ()]
    lines += [f"**Warning:** {warning}." for warning in s.get("warnings") or ()]
    if s.get("class_names"):
        classes = ", ".join(s["class_names"])
        lines.append(f"The model's outputs are the classes {classes}, in this order.")
    lines += ["", "Hyperparameters that apply to this config:", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(s["best_config"].items())]
    if s["not_applicable"]:
        lines += [
            "",
            "Not listed, as they do not apply to it: " + ", ".join(s["not_applicable"]) + ".",
        ]
    return "\n".join(lines) + "\n"


def best_so_far_rows(
    rows: Sequence[Mapping[str, Any]], mode: Direction | str
) -> list[dict[str, Any]]:
    """Sweep trials in ladder order (coarse then fine, by index), with the best so far.

    ``val_metric`` is the trial's :func:`~tuneladder.core.direction.ok_value`, and the
    curve is :func:`~tuneladder.core.direction.best_so_far`, the report's curve too.
    """
    ranked = sorted(rows, key=trial_order)
    values = [ok_value(row) for row in ranked]
    curve = best_so_far(values, mode)
    return [
        {
            "trial": number,
            "rung": row["rung"],
            "name": row["name"],
            "val_metric": value,
            "best_so_far": best,
        }
        for number, (row, value, best) in enumerate(zip(ranked, values, curve, strict=True), 1)
    ]


def _strict(node: Any) -> Any:
    """NaN and infinities as null: DVC reads metrics as strict JSON, which has neither
    (an r2 on a constant val target, say)."""
    if isinstance(node, Mapping):
        return {key: _strict(value) for key, value in node.items()}
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def write_views(
    summary: Mapping[str, Any], sweep_rows: Sequence[Mapping[str, Any]], out_dir: str | Path
) -> None:
    """Small files for DVC: headline metrics, best-so-far and the chosen seed's curves."""
    from tuneladder.store.io import write_csv

    out_dir = Path(out_dir)
    counts = {
        status: sum(r["status"] == status for r in sweep_rows)
        for status in ("ok", "diverged", "failed")
    }
    base = summary["baseline"]
    metrics = {
        "metric": summary["metric"],
        "val_mean": summary["val_mean"],
        "val_std": summary["val_std"],
        "test_mean": summary["test_mean"],
        "test_std": summary["test_std"],
        "baseline_val_mean": base["val"]["mean"],
        "baseline_test_mean": base["test"]["mean"],
        "trivial_val": summary["trivial"]["val"].get(summary["metric"]),
        "trivial_test": summary["trivial"]["test"].get(summary["metric"]),
        # every metric the task records, on test: `dvc metrics diff` shows them all
        "test_metrics": summary.get("test_metrics") or {},
        "distinguishable_from_runner_up": summary["distinguishable_from_runner_up"],
        # what the ladder chose: `dvc exp show` puts it beside the params each run was given
        "chosen": dict(summary["best_config"]),
        "trials": len(sweep_rows),
        **{f"trials_{k}": v for k, v in counts.items()},
    }
    write_json(out_dir / "metrics.json", _strict(metrics))
    write_csv(
        out_dir / "best_so_far.csv",
        ("trial", "rung", "name", "val_metric", "best_so_far"),
        best_so_far_rows(sweep_rows, summary["mode"]),
    )
    history = Path(summary["best_seed_dir"]) / HISTORY_FILE
    write_text(out_dir / "history.csv", history.read_text())
