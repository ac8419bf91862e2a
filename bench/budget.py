"""Where the ladder's budget goes, and what it buys, over several ladder seeds.

For each ladder seed, on the given config (the default one unless told):

- the whole ladder, timed from the `snakemake` command to its summary and report;
- its coarse sweep against the same sweep with halving turned off (or on, if the
  config does not halve): best val metric and trial-epochs planned;
- its fine sweep against the same fine sweep with the other sampler (random for
  TPE, TPE for random) at the same trial count, on the same narrowed space;
- a plain in-process Optuna study (`bench/plain_optuna.py`: TPE with median
  pruning over the ladder's coarse space) given the ladder's wall time, its best
  config retrained with the seed rung's seeds and scored once on test.

    python bench/budget.py [--config config/config.yaml] [--seeds 0 1 2] [--cores 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plain_optuna  # noqa: E402  (a sibling script)
from _workflow import REPO, snakemake_command  # noqa: E402

from tuneladder.ladder.config import resolve_config  # noqa: E402

HALVING = {"eta": 3, "min_epochs": 3}  # what a config that does not halve is compared with


def snakemake(
    workdir: Path, config: dict, cores: int, *targets: str, forcerun: str | None = None
) -> float:
    """Seconds from the command to its last target (the summary and the report by default)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    extra = ("--forcerun", forcerun) if forcerun else ()
    command = snakemake_command(workdir, workdir / "config.yaml", cores, *targets, extra=extra)
    started = time.time()
    subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    results = workdir / "results" / config["experiment"]
    ends = [results / t.removeprefix(f"results/{config['experiment']}/") for t in targets] or [
        results / "final" / "summary.md",
        results / "report" / "index.html",
    ]
    return max(p.stat().st_mtime for p in ends) - started


def sweep_figures(results: Path, rung: str, mode: str) -> dict[str, Any]:
    """The sweep's best val metric and the trial-epochs its plan spends."""
    rows = json.loads((results / rung / "results.json").read_text())["trials"]
    values = [r["best_val_metric"] for r in rows if r.get("status") == "ok"]
    plan = json.loads((results / rung / "plan.json").read_text())
    if plan.get("halving"):
        epochs = plan["halving"]["trial_epochs"]
    else:
        # a TPE plan leaves each trial's config to its round: every trial runs the sweep's
        epochs = sum(
            t["config"]["epochs"] if "config" in t else plan["epochs"] for t in plan["trials"]
        )
    best = max(values) if mode == "max" else min(values)
    return {"best_val": best, "trial_epochs": epochs, "sampler": plan.get("sampler")}


def one_seed(base: dict, seed: int, cores: int, scratch: Path) -> dict[str, Any]:
    config = copy.deepcopy(base)
    config["seed"] = seed
    resolved = resolve_config(config)
    experiment, mode = resolved["experiment"], resolved["metric"]["mode"]
    ladder = scratch / f"ladder-{seed}"
    ladder.mkdir()
    wall = snakemake(ladder, config, cores)
    results = ladder / "results" / experiment
    summary = json.loads((results / "final" / "summary.json").read_text())
    out: dict[str, Any] = {
        "seed": seed,
        "wall_s": wall,
        "test": summary["test_values"],
        "test_mean": summary["test_mean"],
        "test_std": summary["test_std"],
        "baseline_test_mean": summary["baseline"]["test"]["mean"],
        "coarse": sweep_figures(results, "coarse", mode),
        "fine": sweep_figures(results, "fine", mode),
    }
    print(f"seed {seed}: ladder {wall:.0f} s, test {summary['test_mean']:.4f}", flush=True)

    # the coarse sweep with halving the other way round, up to its table
    other = copy.deepcopy(config)
    coarse = dict(other.get("coarse", {}))
    if resolved["coarse"].get("halving"):
        coarse.pop("halving", None)
    else:
        coarse["halving"] = HALVING
    other["coarse"] = coarse
    alt = scratch / f"coarse-{seed}"
    alt.mkdir()
    snakemake(alt, other, cores, f"results/{experiment}/coarse/results.json")
    out["coarse_other"] = sweep_figures(alt / "results" / experiment, "coarse", mode)
    out["coarse_other"]["halving"] = bool(coarse.get("halving"))
    out["coarse"]["halving"] = bool(resolved["coarse"].get("halving"))

    # the same fine sweep (same narrowed space, same count) with the other sampler
    fine_alt = scratch / f"fine-{seed}"
    shutil.copytree(ladder, fine_alt, ignore=shutil.ignore_patterns(".snakemake"))
    other = copy.deepcopy(config)
    sampler = "random" if resolved["fine"]["sampler"] == "tpe" else "tpe"
    other["fine"] = {**other.get("fine", {}), "sampler": sampler}
    other["fine"].pop("halving", None)  # TPE rounds do not halve; the trial-epochs say so
    # a copy has no Snakemake metadata to see the changed params by: force the fine plan
    target = f"results/{experiment}/fine/results.json"
    snakemake(fine_alt, other, cores, target, forcerun="plan_fine")
    out["fine_other"] = sweep_figures(fine_alt / "results" / experiment, "fine", mode)

    # the hand-written study, given the ladder's wall time
    params, figures = plain_optuna.study(results, seconds=wall, jobs=cores, seed=seed)
    scores = plain_optuna.test_over_seeds(results, params)
    out["optuna"] = {
        **figures,
        "test_mean": statistics.mean(scores),
        "test_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
    }
    print(f"seed {seed}: optuna test {out['optuna']['test_mean']:.4f}", flush=True)
    return out


def show(runs: list[dict[str, Any]]) -> None:
    print(
        f"\n{'seed':>4} {'wall s':>7} {'ladder test':>12} {'untuned':>8} {'optuna test':>12}"
        f" {'optuna trials':>14}"
    )
    for r in runs:
        o = r["optuna"]
        print(
            f"{r['seed']:>4} {r['wall_s']:>7.0f} {r['test_mean']:>12.4f}"
            f" {r['baseline_test_mean']:>8.4f} {o['test_mean']:>12.4f}"
            f" {o['trials']:>6} ({o['pruned']} pruned)"
        )
    print(
        f"\n{'seed':>4} {'coarse':<12} {'best val':>9} {'trial-ep':>9}   {'other':<12}"
        f" {'best val':>9} {'trial-ep':>9}"
    )
    for r in runs:
        a, b = r["coarse"], r["coarse_other"]
        label = {True: "halving", False: "full"}
        print(
            f"{r['seed']:>4} {label[a['halving']]:<12} {a['best_val']:>9.4f}"
            f" {a['trial_epochs']:>9}   {label[b['halving']]:<12} {b['best_val']:>9.4f}"
            f" {b['trial_epochs']:>9}"
        )
    print(
        f"\n{'seed':>4} {'fine':<8} {'best val':>9} {'trial-ep':>9}   {'other':<8}"
        f" {'best val':>9} {'trial-ep':>9}"
    )
    for r in runs:
        a, b = r["fine"], r["fine_other"]
        print(
            f"{r['seed']:>4} {a['sampler']:<8} {a['best_val']:>9.4f} {a['trial_epochs']:>9}"
            f"   {b['sampler']:<8} {b['best_val']:>9.4f} {b['trial_epochs']:>9}"
        )

    def mean(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {sd:.4f}"

    print("\nover the seeds (mean ± std):")
    print(f"  ladder wall time      {statistics.mean(r['wall_s'] for r in runs):.0f} s")
    print(f"  ladder test           {mean([r['test_mean'] for r in runs])}")
    print(f"  plain Optuna test     {mean([r['optuna']['test_mean'] for r in runs])}")
    print(f"  coarse best val       {mean([r['coarse']['best_val'] for r in runs])}")
    print(f"  coarse other best val {mean([r['coarse_other']['best_val'] for r in runs])}")
    print(f"  fine best val         {mean([r['fine']['best_val'] for r in runs])}")
    print(f"  fine other best val   {mean([r['fine_other']['best_val'] for r in runs])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    base = yaml.safe_load(args.config.read_text())
    with tempfile.TemporaryDirectory() as scratch:
        runs = [one_seed(base, s, args.cores, Path(scratch)) for s in args.seeds]
    show(runs)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
