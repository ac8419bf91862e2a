"""The final rung: choose by mean over seeds, then touch the test split, once.

The chosen config is the finalist with the best mean val metric over seeds
(ties: the smaller spread). Its seed models, and the untuned baseline's, are
evaluated on the test split; nothing is selected on those numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tuneladder.data import load_test
from tuneladder.hparams import TrialConfig
from tuneladder.io import write_json, write_text, write_torch
from tuneladder.runner import BuildModel, evaluate_metrics
from tuneladder.stats import describe, welch_p_value
from tuneladder.tasks import DataInfo

__all__ = [
    "BASELINE",
    "best_so_far",
    "choose",
    "finalize",
    "group_rows",
    "summary_markdown",
    "write_views",
]

BASELINE = "default"
ALPHA = 0.05


def group_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
    return dict(groups)


def choose(groups: Mapping[str, Sequence[Mapping[str, Any]]], mode: str) -> list[dict[str, Any]]:
    """Finalists with their val statistics, best first (the baseline is not a candidate)."""
    ranked = []
    for name, rows in groups.items():
        if name == BASELINE:
            continue
        ok = [r for r in rows if r["status"] == "ok" and r["best_val_metric"] is not None]
        val = describe([r["best_val_metric"] for r in ok])
        ranked.append(
            {
                "group": name,
                "params": {k: v for k, v in rows[0]["params"].items() if k != "seed"},
                "val": val,
                "failed_seeds": len(rows) - len(ok),
            }
        )
    sign = -1.0 if mode == "max" else 1.0
    ranked = [r for r in ranked if r["val"]["n"] > 0]
    # means equal to 12 digits are a tie (float sums of the same values differ in the last bit)
    ranked.sort(
        key=lambda r: (round(sign * r["val"]["mean"], 12), r["val"]["std"] or 0.0, r["group"])
    )
    if not ranked:
        raise RuntimeError("no finalist finished a single seed: see results/seeds/*/result.json")
    return ranked


def finalize(
    rows: Sequence[Mapping[str, Any]],
    data_dir: str | Path,
    build_model: BuildModel,
    info: DataInfo,
    out_dir: str | Path,
    *,
    metric: str,
    mode: str,
    device: torch.device,
    experiment: str,
) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md``, the chosen config and the best seed's weights."""
    out_dir = Path(out_dir)
    groups = group_rows(rows)
    ranked = choose(groups, mode)
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    p_value = (
        welch_p_value(best["val"]["values"], runner_up["val"]["values"]) if runner_up else None
    )
    test = load_test(data_dir).to(device)

    def test_scores(group: str) -> tuple[list[float], list[Mapping[str, Any]]]:
        scores, used = [], []
        for row in groups.get(group, []):
            weights = Path(row["dir"]) / "model.pt"
            if row["status"] != "ok" or not weights.is_file():
                continue
            config = TrialConfig.from_json({**_config_of(row)})
            model = build_model(config.model, info).to(device)
            model.load_state_dict(torch.load(weights, weights_only=True, map_location=device))
            scores.append(evaluate_metrics(model, test, info.kind)[metric])
            used.append(row)
        return scores, used

    best_test, best_rows = test_scores(best["group"])
    base_test, _ = test_scores(BASELINE)
    base_rows = [r for r in groups.get(BASELINE, []) if r["status"] == "ok"]
    baseline = {
        "params": groups[BASELINE][0]["params"] if BASELINE in groups else None,
        "val": describe([r["best_val_metric"] for r in base_rows]),
        "test": describe(base_test),
    }
    sign = 1.0 if mode == "max" else -1.0
    top_seed = max(best_rows, key=lambda r: sign * r["best_val_metric"]) if best_rows else None
    if top_seed is not None:
        state = torch.load(
            Path(top_seed["dir"]) / "model.pt", weights_only=True, map_location="cpu"
        )
        write_torch(out_dir / "model.pt", state)
    write_json(out_dir / "best_config.json", _config_of(top_seed or groups[best["group"]][0]))
    summary = {
        "experiment": experiment,
        "metric": metric,
        "mode": mode,
        "best_config": best["params"],
        "best_group": best["group"],
        "val_mean": best["val"]["mean"],
        "val_std": best["val"]["std"],
        "val_ci95": best["val"]["ci95"],
        "val_values": best["val"]["values"],
        "test_mean": describe(best_test)["mean"],
        "test_std": describe(best_test)["std"],
        "test_values": best_test,
        "seeds": best["val"]["n"],
        "best_seed_trial": top_seed["name"] if top_seed else None,
        "best_seed_dir": top_seed["dir"] if top_seed else None,
        "runner_up": runner_up
        and {"group": runner_up["group"], "val": runner_up["val"], "params": runner_up["params"]},
        "p_value_vs_runner_up": p_value,
        "distinguishable_from_runner_up": bool(p_value is not None and p_value < ALPHA),
        "baseline": baseline,
        "finalists": ranked,
    }
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "summary.md", summary_markdown(summary))
    return summary


def _config_of(row: Mapping[str, Any]) -> dict[str, Any]:
    from tuneladder.io import read_json

    return read_json(Path(row["dir"]) / "config.json")


def _fmt(stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    std = stats.get("std")
    return f"{stats['mean']:.4f} ± {std:.4f}" if std is not None else f"{stats['mean']:.4f}"


def summary_markdown(s: Mapping[str, Any]) -> str:
    """A short human summary; the full report is its own rung."""
    name = s["metric"]
    test = {"mean": s["test_mean"], "std": s["test_std"]}
    lines = [
        f"# {s['experiment']}: tuning summary",
        "",
        f"Chosen config (finalist {s['best_group']}), {name} over {s['seeds']} seeds:",
        "",
        f"| | val {name} | test {name} |",
        "|---|---|---|",
        f"| tuned | {_fmt({'mean': s['val_mean'], 'std': s['val_std']})} | {_fmt(test)} |",
        f"| untuned default | {_fmt(s['baseline']['val'])} | {_fmt(s['baseline']['test'])} |",
        "",
    ]
    if s["val_ci95"]:
        lo, hi = s["val_ci95"]
        lines.append(f"95% interval of the tuned val mean: [{lo:.4f}, {hi:.4f}].")
    if s["runner_up"]:
        verdict = (
            "distinguishable from"
            if s["distinguishable_from_runner_up"]
            else "not distinguishable from"
        )
        p = s["p_value_vs_runner_up"]
        lines.append(
            f"It is {verdict} the runner-up (finalist {s['runner_up']['group']},"
            f" val {_fmt(s['runner_up']['val'])}; Welch t-test p = "
            f"{'n/a' if p is None else f'{p:.3g}'})."
        )
    lines += ["", "Hyperparameters:", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(s["best_config"].items())]
    return "\n".join(lines) + "\n"


def best_so_far(rows: Sequence[Mapping[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Coarse then fine trials in index order, with the best val metric seen so far."""
    order = {"coarse": 0, "fine": 1}
    ranked = sorted(rows, key=lambda r: (order.get(r["rung"], 2), int(r["index"])))
    sign = 1.0 if mode == "max" else -1.0
    best: float | None = None
    out = []
    for number, row in enumerate(ranked, start=1):
        value = row["best_val_metric"] if row["status"] == "ok" else None
        if value is not None and (best is None or sign * value > sign * best):
            best = value
        out.append(
            {
                "trial": number,
                "rung": row["rung"],
                "name": row["name"],
                "val_metric": value,
                "best_so_far": best,
            }
        )
    return out


def write_views(
    summary: Mapping[str, Any], sweep_rows: Sequence[Mapping[str, Any]], out_dir: str | Path
) -> None:
    """Small files for DVC: headline metrics, best-so-far and the chosen seed's curves."""
    from tuneladder.io import write_csv

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
        "distinguishable_from_runner_up": summary["distinguishable_from_runner_up"],
        "trials": len(sweep_rows),
        **{f"trials_{k}": v for k, v in counts.items()},
    }
    write_json(out_dir / "metrics.json", metrics)
    write_csv(
        out_dir / "best_so_far.csv",
        ("trial", "rung", "name", "val_metric", "best_so_far"),
        best_so_far(sweep_rows, summary["mode"]),
    )
    history = Path(summary["best_seed_dir"]) / "history.csv"
    write_text(out_dir / "history.csv", history.read_text())
