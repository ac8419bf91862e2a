"""Assemble ``summary.json``: every number and verdict the report page shows.

The page is rendered from this dictionary alone (plus the figures), so what the
user reads and what a script reads from ``summary.json`` cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneladder.core.direction import Direction, ok_value, top
from tuneladder.core.hparams import applicable
from tuneladder.ladder.rungs import (
    BASELINE,
    COARSE,
    FINAL,
    LADDER,
    LR_RANGE,
    OVERFIT,
    PREPARE,
    REPORT,
    SEARCH_RUNGS,
    SEEDS,
    SELECT,
    SENSITIVITY,
    Rung,
    by_name,
)
from tuneladder.report import _analysis as analysis
from tuneladder.report._importance import fanova_importance
from tuneladder.report._load import RunData
from tuneladder.report._sensitivity import sensitivity_summary
from tuneladder.search.halving import level_trial_dirs
from tuneladder.store.trial_files import CONFIG_FILE, HISTORY_FILE, RESULT_FILE

__all__ = [
    "DECIDED",
    "Provenance",
    "build_summary",
    "builds",
    "experiment_hash",
    "curve_panels",
    "sweep_numbers",
    "sweep_summary",
]

TOP_N = 5
CURVE_TOP = 3
# A main effect this large counts as a clear effect even without a monotone rank trend.
STRONG = 0.1


def experiment_hash(config: Mapping[str, Any]) -> str:
    """A short hash of the resolved experiment config (sorted JSON); a trial's own
    config has :func:`tuneladder.core.hparams.config_hash`."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _timing(
    benchmarks: Mapping[str, float], ran: Sequence[str]
) -> tuple[list[dict[str, Any]], float]:
    """Seconds per rung; an optional rung has a row when it ran (its name is in ``ran``)."""
    rungs, known = [], set()
    for rung in LADDER:
        walls, total, count = [], 0.0, 0
        for job in rung.jobs:
            # a job that runs as several workers at once has a file each: <job>-<w>-of-<n>
            hits = {
                name: seconds
                for name, seconds in benchmarks.items()
                if name == job or name.startswith(job + "-")
            }
            known.update(hits)
            if hits:
                walls.append(max(hits.values()))
                total += sum(hits.values())
                count += len(hits)
        if rung.enabled is not None and rung.name not in ran:
            continue
        rungs.append(
            {
                "key": rung.name,
                "label": rung.label,
                "seconds": sum(walls) if walls else None,
                "job_seconds": total if count else None,
                "jobs": count,
            }
        )
    other = {k: v for k, v in benchmarks.items() if k not in known and k not in REPORT.jobs}
    if other:
        rungs.append(
            {
                "key": "other",
                "label": "other jobs (" + ", ".join(sorted(other)) + ")",
                "seconds": sum(other.values()),
                "job_seconds": sum(other.values()),
                "jobs": len(other),
            }
        )
    return rungs, sum(r["seconds"] or 0.0 for r in rungs)


def _counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _sampled(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The searched values of a trial; None where it did not sample the parameter."""
    values = row.get("sampled", row["params"])
    return {name: values.get(name) for name in names}


# --- what each rung decided: one function per rung, keyed by the rung's name ------------


def _prepare_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    meta = run.meta
    return {
        "sizes": meta.get("sizes"),
        "split_seed": meta.get("seed"),
        "fingerprint": meta.get("fingerprint"),
    }


def _overfit_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    overfit = run.overfit
    return {
        "passed": overfit.get("passed"),
        "passed_by": overfit.get("passed_by"),
        "steps": overfit.get("steps"),
        "final_loss": overfit.get("final_loss"),
        "loss_threshold": overfit.get("loss_threshold"),
    }


def _lr_range_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any] | None:
    lr = run.lr_range
    if not lr:
        return None
    coarse_lr = run.coarse_space.get("lr")
    bounds = [getattr(coarse_lr, "low", None), getattr(coarse_lr, "high", None)]
    return {
        "suggestion": lr["suggestion"],
        "min_loss_lr": lr["min_loss_lr"],
        "divergence_lr": lr["divergence_lr"],
        "range": lr["range"],
        "rule": lr.get("rule"),
        "used_for_coarse": bounds == [float(v) for v in lr.get("range", [])],
    }


def _sweep_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    rows = run.rows[rung.name]
    best = [
        {"rung": row["rung"], "name": row["name"], "value": row["best_val_metric"]}
        for row in top(rows, 1, mode)
    ]
    decided = {
        "trials": len(rows),
        "sampler": run.plans[rung.name].get("sampler"),
        "counts": _counts(rows),
        "best": best[0] if best else None,
    }
    if rung is COARSE:  # the space the search started from (the fine one is under select)
        decided["space"] = {
            n: analysis.describe_distribution(d) for n, d in run.coarse_space.items()
        }
    return decided


def _select_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    names = list(run.coarse_space)
    coarse_space, fine_space = run.coarse_space, run.narrowed_space
    narrowing = run.fine_space.get("narrowing", {})
    return {
        "top_k": [
            {
                "rung": row["rung"],
                "name": row["name"],
                "value": row["best_val_metric"],
                "params": _sampled(row, names),
            }
            for row in run.topk["trials"]
        ],
        "narrowed": {
            name: {
                "coarse": analysis.describe_distribution(coarse_space[name]),
                "fine": analysis.describe_distribution(fine_space[name]),
                # how far it narrowed, and whether the top-k agreed (older ladders: unknown)
                "kept": narrowing.get(name, {}).get("kept"),
                "agree": narrowing.get(name, {}).get("agree"),
                "note": narrowing.get(name, {}).get("note"),
            }
            for name in names
            if name in fine_space
        },
        "disagree": [name for name in names if narrowing.get(name, {}).get("agree") is False],
    }


def _seeds_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    rows = run.rows[rung.name]
    groups = sorted({row["group"] for row in rows})
    return {
        "finalists": [
            {"group": str(i), "rung": f["rung"], "name": f["name"], "value": f["best_val_metric"]}
            for i, f in enumerate(run.plans[rung.name]["finalists"])
        ],
        "seeds_per_config": max((sum(r["group"] == g for r in rows) for g in groups), default=0),
        "counts": _counts(rows),
    }


def _final_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    final = run.final
    return {
        "chosen_group": final["best_group"],
        "chosen": (_source(run, final["best_group"]) or {}).get("label"),
        "val_mean": final["val_mean"],
        "test_mean": final["test_mean"],
    }


def _sensitivity_decided(run: RunData, rung: Rung, mode: Direction) -> dict[str, Any]:
    section = _sensitivity(run, mode)
    return {
        "trials": section["trials"],
        "sensitive": section["sensitive"],
        "flat": section["flat"],
    }


# rung name -> what the report's ladder table says it decided (a rung without an entry
# shows its `decides` text from the rung table)
DECIDED = {
    PREPARE.name: _prepare_decided,
    OVERFIT.name: _overfit_decided,
    LR_RANGE.name: _lr_range_decided,
    **{r.name: _sweep_decided for r in SEARCH_RUNGS},
    SELECT.name: _select_decided,
    SEEDS.name: _seeds_decided,
    FINAL.name: _final_decided,
    SENSITIVITY.name: _sensitivity_decided,
}


def _halving(run: RunData, mode: Direction) -> dict[str, Any]:
    """Per sweep that halved: each level's epochs, the configs it trained, which of them
    went on and which stopped there, and the trial-epochs spent against training all."""
    out = {}
    for rung in SEARCH_RUNGS:
        halving = run.plans[rung.name].get("halving")
        if not halving:
            continue
        rows = run.rows[rung.name]
        levels = []
        for level in halving["levels"]:
            index = level["level"]
            here = [r for r in rows if r["halving"]["level"] >= index]
            best = top([at_level(r, index) for r in here], 1, mode)
            levels.append(
                {
                    "level": index,
                    "epochs": level["epochs"],
                    "planned": level["configs"],
                    "trained": len(here),
                    "continued": [r["name"] for r in here if r["halving"]["level"] > index],
                    "ended": [r["name"] for r in here if r["halving"]["level"] == index],
                    "best": {"name": best[0]["name"], "value": best[0]["best_val_metric"]}
                    if best
                    else None,
                }
            )
        out[rung.name] = {
            "eta": halving["eta"],
            "min_epochs": halving["min_epochs"],
            "mode": halving.get("mode", "sync"),
            "levels": levels,
            # a growing async sweep's configs beyond its trials (tuneladder.search.asha)
            "grown": [r["name"] for r in rows if r.get("grown")],
            "trial_epochs": sum(r.get("epochs_run") or 0 for r in rows),
            "full_trial_epochs": halving["full_trial_epochs"],
            "figure": analysis.sample_note(rows),
        }
    return out


def at_level(row: Mapping[str, Any], level: int) -> dict[str, Any]:
    """A halving sweep's row as its config stood at ``level``'s epochs (its status and best
    val metric there), ranked as an equal of the level's other configs."""
    here = row["halving"]["levels"][level]
    plain = {k: v for k, v in row.items() if k != "halving"}
    return {**plain, "status": here["status"], "best_val_metric": here["best_val_metric"]}


def equal_epochs(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a sweep that halves, each at level 0's epochs: every config, trained alike.

    What the hyperparameters did is compared there (trends, fANOVA): a config's
    furthest level would credit the configs that went on with the epochs
    halving gave them. Rows without halving are returned as they are.
    """
    return [at_level(row, 0) if row.get("halving") else dict(row) for row in rows]


def _ladder(run: RunData, mode: Direction) -> dict[str, Any]:
    rungs, total = _timing(run.benchmarks, list(run.rows))
    for row in rungs:
        if row["key"] in DECIDED:
            row["decided"] = DECIDED[row["key"]](run, by_name(row["key"]), mode)
    return {"rungs": rungs, "total_seconds": total}


def _source(run: RunData, group: str) -> dict[str, Any] | None:
    """The sweep trial a finalist came from, as the final rung recorded it."""
    for entry in run.final["finalists"]:
        origin = entry.get("origin")
        if entry["group"] == group and origin:
            return {
                "rung": origin["rung"],
                "name": origin["name"],
                "label": origin["label"],
                "search_value": origin["search_value"],
            }
    return None


def _headline(run: RunData) -> dict[str, Any]:
    final = run.final
    baseline = final.get("baseline") or {}
    base_params = baseline.get("params") or {}
    chosen = applicable(final["best_config"])
    searched = list(run.coarse_space)
    runner_up = final.get("runner_up") or {}
    return {
        "chosen_group": final["best_group"],
        "source": _source(run, final["best_group"]),
        "params": chosen,
        "not_applicable": final.get("not_applicable", []),
        "searched": searched,
        "default_params": {k: base_params.get(k) for k in chosen},
        "seeds": final.get("seeds"),
        "val": {
            "mean": final["val_mean"],
            "std": final["val_std"],
            "ci95": final["val_ci95"],
            "ci95_clipped": final.get("val_ci95_clipped", False),
            "values": final.get("val_values"),
        },
        "metric_bounds": final.get("metric_bounds"),
        "test": {
            "mean": final["test_mean"],
            "std": final["test_std"],
            "values": final.get("test_values"),
        },
        "test_metrics": final.get("test_metrics") or {},
        "baseline": {"val": baseline.get("val"), "test": baseline.get("test")},
        "trivial": final.get("trivial"),
        "runner_up": runner_up.get("group"),
        "runner_up_source": _source(run, runner_up["group"]) if runner_up else None,
        "p_value_vs_runner_up": final.get("p_value_vs_runner_up"),
        "distinguishable_from_runner_up": final.get("distinguishable_from_runner_up"),
        "tie": final.get("tie"),
        "passed_over": [p["sentence"] for p in final.get("passed_over") or ()],
        "warnings": final.get("warnings") or [],
    }


def curve_panels(
    rows: Sequence[Mapping[str, Any]],
    classes: Sequence[Mapping[str, Any]],
    mode: Direction | str,
) -> list[dict[str, Any]]:
    """The trials whose learning curves the report shows: the top few, and the first trial of
    each failure mode (``role`` says which)."""
    picked = [
        {"row": row, "role": f"top {i + 1}"} for i, row in enumerate(top(rows, CURVE_TOP, mode))
    ]
    for failure in analysis.FAILURE_MODES:
        for row, cls in zip(rows, classes, strict=True):
            if cls["mode"] == failure:
                picked.append({"row": row, "role": failure, "why": cls["why"]})
                break
    return picked


def sweep_numbers(run: RunData, *, mode: Direction | str, seed: int) -> dict[str, Any]:
    """The numbers of the sweeps that take seconds: fANOVA, the rank trends, and what reads
    every trial's history (the failure modes, the learning curves' epochs).

    The ``report_sweeps`` job computes them (with SciPy and scikit-learn, about a
    second to import) while the seed reruns and the final rung still run; the
    ``report`` job reads them (``build_summary``'s ``sweeps``), so it reads no history.
    """
    mode = Direction(mode)
    rows = equal_epochs(run.sweep_rows())
    failures = _failures(run, mode)
    # the sweeps' statuses only, whichever rungs this job read (sweep_summary adds the rest)
    failures["status_counts"] = {r.name: _counts(run.rows[r.name]) for r in SEARCH_RUNGS}
    panels = curve_panels(run.sweep_rows(), failures["classes"], mode)
    return {
        "importance": fanova_importance(rows, run.coarse_space, mode=mode, seed=seed),
        "trends": analysis.trends(rows, run.coarse_space, mode),
        "failures": failures,
        # "rung/name" -> the epochs in its history, for the trials whose curves are shown
        "curve_epochs": {
            f"{p['row']['rung']}/{p['row']['name']}": len(p["row"]["history"]) for p in panels
        },
    }


def sweep_summary(
    run: RunData, *, metric: str, mode: Direction | str, sweeps: Mapping[str, Any]
) -> dict[str, Any]:
    """The parts of the summary that read only the sanity checks and the sweeps, given their
    :func:`sweep_numbers`: what the figures ``from_sweeps`` show."""
    mode = Direction(mode)
    failures = dict(sweeps["failures"])  # the statuses of every rung this job read
    failures["status_counts"] = {name: _counts(rows) for name, rows in run.rows.items()}
    return {
        "metric": {"name": metric, "mode": mode},
        "halving": _halving(run, mode),
        "importance": sweeps["importance"],
        "diminishing_returns": {
            **analysis.diminishing_returns(run.sweep_rows(), mode),
            "figure": analysis.sample_note(run.sweep_rows(), limit=analysis.POINTS_MAX),
        },
        "failures": failures,
    }


def _hyperparameters(
    run: RunData, mode: Direction, trend: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    rows = run.sweep_rows()
    space = run.coarse_space
    fine = run.narrowed_space
    best = top(rows, TOP_N, mode)
    common = analysis.top_ranges(best, space)
    params = {}
    for name, dist in space.items():
        params[name] = {
            "coarse": analysis.describe_distribution(dist),
            "fine": analysis.describe_distribution(fine[name]) if name in fine else None,
            "chosen": run.final["best_config"].get(name),
            "top": common.get(name),
            "trend": trend.get(name),
        }
    return {
        "params": params,
        "figure": analysis.sample_note(rows, limit=analysis.POINTS_MAX),
        "top": [
            {
                "rung": row["rung"],
                "name": row["name"],
                "value": row["best_val_metric"],
                "params": _sampled(row, list(space)),
            }
            for row in best
        ],
    }


def _seeds(run: RunData) -> dict[str, Any]:
    final = run.final
    groups = []
    for entry in final["finalists"]:
        chosen = entry["group"] == final["best_group"]
        source = _source(run, entry["group"])
        label = f"finalist {entry['group']}"
        if source:
            label = f"{source['label']}\n(finalist {entry['group']})"
        values = entry["val"]["values"]
        groups.append(
            {
                "group": entry["group"],
                "label": label + ("\nchosen" if chosen else ""),
                "source": source,
                "chosen": chosen,
                "val": entry["val"],
                "spread": (max(values) - min(values)) if values else None,
                "failed_seeds": entry["failed_seeds"],
                "test": {
                    "values": final["test_values"],
                    "mean": final["test_mean"],
                    "std": final["test_std"],
                    "n": len(final["test_values"] or []),
                }
                if chosen
                else None,
            }
        )
    baseline = final.get("baseline") or {}
    if baseline.get("val"):
        values = baseline["val"]["values"]
        groups.append(
            {
                "group": BASELINE,
                "label": "untuned\ndefault",
                "source": None,
                "chosen": False,
                "val": baseline["val"],
                "spread": (max(values) - min(values)) if values else None,
                "failed_seeds": sum(
                    r["status"] != "ok" for r in run.rows[SEEDS.name] if r["group"] == BASELINE
                ),
                "test": baseline.get("test"),
            }
        )
    seeds = sorted({(r.get("seed_index", 0), r["seed"]) for r in run.rows[SEEDS.name]})
    return {"groups": groups, "seeds": [s for _, s in seeds]}


def _sensitivity(run: RunData, mode: Direction) -> dict[str, Any]:
    """The sensitivity rung's curves and verdicts; ``{"enabled": False}`` when it did not run."""
    plan = run.plans.get(SENSITIVITY.name)
    centre = []
    for ref in (plan or {}).get("centre", []):
        centre += [row for row in run.rows[ref["rung"]] if row["name"] == ref["name"]]
    return sensitivity_summary(
        plan,
        run.rows.get(SENSITIVITY.name, []),
        centre,
        mode=mode,
        metric=run.final["metric"],
    )


def _failures(run: RunData, mode: Direction) -> dict[str, Any]:
    rows = run.sweep_rows()
    # lazy histories: only a row without its curve's summary has its file read
    classes = analysis.classify_trials(rows, [r["history"] for r in rows], mode)
    labels = [c["mode"] for c in classes]
    ranges = analysis.failure_ranges(rows, labels, list(run.coarse_space))
    return {
        "rules": {
            "diverged": "status diverged: a non-finite loss, or train loss above"
            " diverge_factor x the first step's loss",
            "failed": "status failed: the trial raised an error (out of memory included)",
            "overfitting": f"val loss at the end more than {analysis.OVERFIT_RISE:.0%}"
            " above its minimum, while train loss at the last epoch is below its value at"
            " that minimum (val loss as a trailing mean over a fifth of the epochs, so one"
            " lucky epoch is not the minimum)",
            "too slow": "still learning when the epochs ran out (best val metric at the last"
            f" epoch, train loss down more than {analysis.SLOW_DROP:.0%} over the last quarter"
            " of the epochs) and the best val metric more than"
            f" {analysis.SLOW_GAP:.0%} (relative) behind the best trial",
        },
        "thresholds": {
            "overfit_rise": analysis.OVERFIT_RISE,
            "overfit_smooth": analysis.OVERFIT_SMOOTH,
            "slow_drop": analysis.SLOW_DROP,
            "slow_gap": analysis.SLOW_GAP,
        },
        "modes": ranges,
        "trials": [c for c in classes if c["mode"] != "ok"],
        "status_counts": {name: _counts(rows) for name, rows in run.rows.items()},
        "classes": classes,
        # out of GPU memory beside other trials, then trained alone (decision 055)
        "retried_alone": [
            {"trial": name.replace("/", " #", 1), "reason": r["retried_alone"]["reason"]}
            for name, r in run.results.items()  # rung by rung, in plan order
            if r.get("retried_alone")
        ],
    }


# The files of a complete training: in each level's folder, for a config that halved.
TRIAL_FILES = (CONFIG_FILE, HISTORY_FILE, RESULT_FILE)
# What a trial's result.json records of the torch build it ran on (env.torch_build).
BUILD_FIELDS = ("torch", "cuda_built", "cudnn_built", "device", "device_name", "driver")


def builds(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct torch builds and devices the trials ran on, each with its trial count.

    ``results`` maps ``rung/name`` to a trial's ``result.json``; a trial from
    before builds were recorded counts under a build of all-None fields.
    """
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for name in sorted(results):
        build = results[name].get("build") or {}
        entry = {k: build.get(k) for k in BUILD_FIELDS}
        key = tuple(json.dumps(v) for v in entry.values())
        seen.setdefault(key, {**entry, "trials": 0, "example": name})["trials"] += 1
    return list(seen.values())


def _logs(run: RunData) -> dict[str, Any]:
    """Whether every training left its files: each config of each rung (a growing
    sweep's grown ones too), in every level's folder a halving config reached."""
    planned, complete, missing, commits = 0, 0, [], set()
    needed = ("seed", "config_hash", "versions")
    for rung, plan in run.plans.items():
        rows = {row["name"]: row for row in run.rows[rung]}
        names = [entry["name"] for entry in plan["trials"]]
        in_plan = set(names)
        names += [name for name in rows if name not in in_plan]  # grown: the table's order
        for name in names:
            planned += 1
            key = f"{rung}/{name}"
            row, result = rows.get(name), run.results.get(key)
            if (
                row is not None
                and result is not None
                and all(result.get(k) is not None for k in needed)
                # os.path on strings: Path objects cost more than the checks, 100,000 times over
                and all(
                    os.path.isfile(os.path.join(folder, f))
                    for folder in level_trial_dirs(row, row["trial_dir"])
                    for f in TRIAL_FILES
                )
            ):
                complete += 1
                commits.add(result.get("git_commit") or "not recorded (not a git checkout)")
            else:
                missing.append(key)
    return {
        "planned": planned,
        "complete": complete,
        "missing": missing,
        "git_commits": sorted(commits),
    }


def _analysis_answers(
    hyper: Mapping[str, Any], importance: Mapping[str, Any], mode: Direction
) -> list[dict[str, str]]:
    params = hyper["params"]
    common, spread = [], []
    for name, info in params.items():
        top = info["top"]
        if top is None:
            continue
        if top.get("values") is not None:
            if len(top["values"]) == 1:
                common.append(f"{name} = {top['values'][0]}")
            else:
                spread.append(f"{name} in {{{', '.join(map(str, top['values']))}}}")
        elif top["share"] is not None and top["share"] < 0.5:
            common.append(
                f"{name} in [{top['min']:.3g}, {top['max']:.3g}] ({top['share']:.0%} of the"
                " searched range)"
            )
        else:
            spread.append(f"{name} (spread over {top['share']:.0%} of its range)")
    n_top = len(hyper["top"])
    clear, little = [], []
    scores = importance["importances"]
    for name, info in params.items():
        trend = info["trend"] or {}
        score = scores.get(name)
        if trend.get("strength") == "clear":
            direction = "larger is better" if trend["rho"] > 0 else "smaller is better"
            clear.append(f"{name} (Spearman {trend['rho']:+.2f}, {direction})")
        elif trend.get("kind") == "choice" and score is not None and score >= STRONG:
            best = trend["best"] if trend["best"] is not None else " = ".join(trend["tied"])
            clear.append(f"{name} (best value {best}, fANOVA {score:.2f})")
        elif score is not None and score >= STRONG:
            clear.append(f"{name} (fANOVA {score:.2f} but no monotone trend: see its scatter)")
        if score is not None and score < 0.05 and trend.get("strength") in ("none", "n/a", None):
            little.append(name)
    inter = importance.get("interactions")
    caveat = (
        " (few trials: a rough hint)" if importance["trials"] < importance["min_trials"] else ""
    )
    return [
        {
            "question": f"What do the top {n_top} runs have in common?",
            "answer": ("they agree on " + "; ".join(common) if common else "no parameter")
            + (". They differ in " + "; ".join(spread) if spread else "")
            + ".",
        },
        {
            "question": "Which parameters show clear trends?",
            "answer": ", ".join(clear)
            if clear
            else f"none (no |Spearman rho| >= 0.5, no fANOVA main effect >= {STRONG})",
        },
        {
            "question": "Which have little effect?",
            "answer": (", ".join(little) if little else "none clearly")
            + " (fANOVA main effect below 0.05 and no rank trend)"
            + caveat,
        },
        {
            "question": "Are there interactions between parameters?",
            "answer": "not computed"
            if inter is None
            else f"main effects explain {1 - inter:.0%} of the val metric's variance; the other"
            f" {inter:.0%} is interactions (and noise){caveat}"
            + (": substantial, see the parallel coordinates" if inter > 0.3 else ""),
        },
    ]


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where the report itself comes from, for its reproducibility section.

    Attributes:
        command: the command that reproduces the run.
        versions: the report's own packages and their versions.
        source_commit: the commit of the tuneladder source the report ran from
            (None: not a git checkout).
    """

    command: str
    versions: Mapping[str, str]
    source_commit: str | None


def build_summary(
    run: RunData,
    *,
    seed: int,
    config: Mapping[str, Any],
    provenance: Provenance,
    sweeps: Mapping[str, Any],
) -> dict[str, Any]:
    """Every number the report shows, from the loaded run.

    ``config`` is the resolved experiment config (shown and hashed), ``provenance``
    what the report ran from, ``sweeps`` the run's :func:`sweep_numbers` (fANOVA
    seeded with ``seed``).
    """
    final = run.final
    mode, metric = Direction(final["mode"]), final["metric"]
    sweep = run.sweep_rows()
    hyper = _hyperparameters(run, mode, sweeps["trends"])
    part = sweep_summary(run, metric=metric, mode=mode, sweeps=sweeps)
    logs = _logs(run)
    checklist = _checklist(run, logs, part["diminishing_returns"])
    headline = _headline(run)
    sensitivity = _sensitivity(run, mode)
    pitfalls = analysis.pitfalls(
        overfit=run.overfit,
        space=run.coarse_space,
        chosen=_chosen(run, headline),
        checklist_items=checklist,
        mode=mode,
        sensitivity=sensitivity,
    )
    seeds = _seeds(run)
    panels = curve_panels(sweep, part["failures"]["classes"], mode)
    return {
        "schema": 1,
        "experiment": final.get("experiment"),
        "metric": {"name": metric, "mode": mode},
        "trials": {
            rung: {"total": len(rows), "counts": _counts(rows)} for rung, rows in run.rows.items()
        },
        "headline": headline,
        "ladder": {**_ladder(run, mode), "train_seconds": _train_seconds(run)},
        "halving": part["halving"],
        "sanity": _sanity(run),
        "learning_curves": _learning_curves(panels, sweeps["curve_epochs"]),
        "hyperparameters": hyper,
        "parallel": {
            "trials": len(sweep),
            "with_metric": sum(ok_value(r) is not None for r in sweep),
            "figure": analysis.sample_note(sweep),
        },
        "importance": part["importance"],
        "analysis": _analysis_answers(hyper, part["importance"], mode),
        "seeds": seeds,
        "sensitivity": sensitivity,
        "diminishing_returns": part["diminishing_returns"],
        "failures": part["failures"],
        "checklist": checklist,
        "pitfalls": pitfalls,
        "reproducibility": _reproducibility(
            run, seed=seed, config=config, provenance=provenance, logs=logs, seeds=seeds
        ),
    }


def _checklist(
    run: RunData, logs: Mapping[str, Any], diminishing: Mapping[str, Any]
) -> list[dict[str, Any]]:
    return analysis.checklist(
        sweep_rows=run.sweep_rows(),
        seed_rows=run.rows[SEEDS.name],
        chosen_group=run.final["best_group"],
        space=list(run.coarse_space),
        lr_range=run.lr_range,
        logs=logs,
        diminishing=diminishing,
    )


def _chosen(run: RunData, headline: Mapping[str, Any]) -> analysis.Chosen:
    final = run.final
    return analysis.Chosen(
        params=final["best_config"],
        baseline_params=(final.get("baseline") or {}).get("params"),
        val=headline["val"],
        test=headline["test"],
        p_value=final.get("p_value_vs_runner_up"),
    )


def _train_seconds(run: RunData) -> dict[str, float]:
    return {
        rung: sum(r.get("train_seconds") or 0.0 for r in rows) for rung, rows in run.rows.items()
    }


def _sanity(run: RunData) -> dict[str, Any]:
    return {
        "overfit": {k: v for k, v in run.overfit.items() if k not in ("curve", "config")},
        "lr_range": {
            k: v
            for k, v in (run.lr_range or {}).items()
            if k not in ("lrs", "losses", "smoothed", "smoothed_zero_lag", "config")
        }
        or None,
        "gpu_probe": _gpu_probe(run.gpu_probe),
    }


def _gpu_probe(probe: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the GPU probe measured and chose (``trials_per_gpu: auto``); None where it did
    not run."""
    if probe is None:
        return None
    keep = ("chosen", "rule", "device_name", "total_mb", "per_trial_mb", "probe_seconds")
    levels = ("trials", "samples_per_s", "speedup", "complete")
    return {
        **{k: probe.get(k) for k in keep},
        "levels": [{k: level.get(k) for k in levels} for level in probe.get("levels", [])],
    }


def _learning_curves(
    panels: Sequence[Mapping[str, Any]], epochs: Mapping[str, int]
) -> list[dict[str, Any]]:
    return [
        {
            "rung": p["row"]["rung"],
            "name": p["row"]["name"],
            "role": p["role"],
            "why": p.get("why"),
            "best_val_metric": p["row"]["best_val_metric"],
            "epochs": epochs[f"{p['row']['rung']}/{p['row']['name']}"],
        }
        for p in panels
    ]


def _reproducibility(
    run: RunData,
    *,
    seed: int,
    config: Mapping[str, Any],
    provenance: Provenance,
    logs: Mapping[str, Any],
    seeds: Mapping[str, Any],
) -> dict[str, Any]:
    final = run.final
    trial_versions = sorted(
        {json.dumps(r.get("versions"), sort_keys=True) for r in run.results.values()}
    )
    return {
        "command": provenance.command,
        "experiment_hash": experiment_hash(config),
        "config": dict(config),
        "ladder_seed": config.get("seed"),
        "split_seed": run.meta.get("seed"),
        "seed_rerun_seeds": seeds["seeds"],
        "fanova_seed": seed,
        "data_fingerprint": run.meta.get("fingerprint"),
        "git_commits": logs["git_commits"],
        "source_commit": provenance.source_commit,
        "chosen_trial": final.get("best_seed_trial"),
        "chosen_config_hash": (
            run.results.get(f"{SEEDS.name}/{final.get('best_seed_trial')}") or {}
        ).get("config_hash"),
        "trial_versions": [json.loads(v) for v in trial_versions],
        "report_versions": dict(provenance.versions),
        "builds": builds(run.results),
        "devices": sorted({str(r.get("device")) for r in run.results.values()}),
        "precisions": sorted({str(r.get("precision", "fp32")) for r in run.results.values()}),
        "hosts": sorted({str(r.get("host")) for r in run.results.values()}),
    }


def finite_or_none(value: Any) -> Any:
    """NaN and infinities are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
