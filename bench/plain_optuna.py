"""The baseline a user would write by hand: one in-process Optuna study.

TPE with median pruning over the ladder's own coarse space (the LR range
included), the coarse rung's epochs, and a wall-clock budget; then its best
config is retrained with the seed rung's seeds and epochs and scored once on
the test split, exactly as the ladder scores its choice. `bench/budget.py`
gives it the same wall time the ladder took in the same run.

    python bench/plain_optuna.py RESULTS_DIR --seconds 100 [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_test, load_train_val
from tuneladder.search.space import space_from_json
from tuneladder.tasks import load_task
from tuneladder.training.runner import TrainingRun, evaluate_metrics, train


class _Pruned(Exception):
    """Raised from the epoch callback; the runner reports it as a failed trial."""


def study(
    results: Path, *, seconds: float, jobs: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(best flat params, figures) of a TPE + median-pruning study run for ``seconds``."""
    plan = json.loads((results / "coarse" / "plan.json").read_text())
    space = space_from_json(plan["space"])
    first = TrialConfig.from_json(plan["trials"][0]["config"])
    base = {
        k: v for k, v in first.flat().items() if k not in space and k not in ("epochs", "seed")
    }
    epochs = first.epochs
    task, metric, mode, data = _ladder(results)
    torch.set_num_threads(1)
    lock = threading.Lock()
    epochs_run = [0]

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        config = TrialConfig.from_flat({**base, **params}, epochs=epochs, seed=trial.number)

        def report(row: Mapping[str, float]) -> None:
            with lock:
                epochs_run[0] += 1
            step = int(row["epoch"])
            trial.report(row["val_metric"], step)
            if trial.should_prune():
                raise _Pruned

        outcome = _train(config, data, task, metric, mode, on_epoch=report)
        if outcome.reason and outcome.reason.startswith("_Pruned"):
            raise optuna.TrialPruned
        if outcome.best_val_metric is None:  # diverged or failed: no value to learn from
            raise optuna.TrialPruned(outcome.reason)
        return outcome.best_val_metric

    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    found = optuna.create_study(direction=f"{mode}imize", sampler=sampler, pruner=pruner)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    found.optimize(objective, timeout=seconds, n_jobs=jobs)
    states = [t.state.name for t in found.trials]
    figures = {
        "seconds": time.perf_counter() - started,
        "trials": len(states),
        "pruned": states.count("PRUNED"),
        "trial_epochs": epochs_run[0],
        "best_val": found.best_value,
    }
    return {**base, **found.best_params}, figures


def test_over_seeds(results: Path, params: Mapping[str, Any]) -> list[float]:
    """The test metric of ``params`` retrained with each of the seed rung's seeds."""
    seeds_plan = json.loads((results / "seeds" / "plan.json").read_text())
    runs = [TrialConfig.from_json(t["config"]) for t in seeds_plan["trials"]]
    seeds = sorted({c.seed for c in runs})
    epochs = runs[0].epochs
    task, metric, mode, data = _ladder(results)
    test = load_test(results / "data")
    scores = []
    for seed in seeds:
        config = TrialConfig.from_flat(dict(params), epochs=epochs, seed=seed)
        outcome = _train(config, data, task, metric, mode, keep_best_state=True)
        torch.manual_seed(0)
        model = task.build_model(config.model, data.info)
        model.load_state_dict(outcome.best_state)
        scores.append(evaluate_metrics(model.eval(), test, data.info)[metric])
    return scores


def _suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
    """The study's suggestion for one of the ladder's distributions."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def _ladder(results: Path) -> tuple[Any, str, str, Any]:
    """The finished ladder's task, selection metric and direction, and its train/val data."""
    summary = json.loads((results / "final" / "summary.json").read_text())
    config = json.loads((results / "report" / "summary.json").read_text())["reproducibility"]
    task = config["config"]["task"]
    loaded = load_task(task["name"], task.get("options"))
    return loaded, summary["metric"], summary["mode"], load_train_val(results / "data")


def _train(config: TrialConfig, data: Any, task: Any, metric: str, mode: str, **kw: Any) -> Any:
    """One training run on the CPU, as the ladder's runner does it."""
    run = TrainingRun(
        config=config, data=data, task=task, metric=metric, mode=mode, device=torch.device("cpu")
    )
    return train(run, **kw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a finished ladder's results/<experiment>")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params, figures = study(args.results, seconds=args.seconds, jobs=args.jobs, seed=args.seed)
    scores = test_over_seeds(args.results, params)
    print(json.dumps({**figures, "params": params, "test": scores}, indent=2))
    print(f"test: {statistics.mean(scores):.4f} ± {statistics.stdev(scores):.4f}")


if __name__ == "__main__":
    main()
