"""How many asks a sweep that halves asynchronously serves per second, by its size.

Every worker of such a sweep asks for its next training under one lock on the
promotion log (``execution.promotions.AsyncSweep``): it replays what others
appended, asks the rule (``search.asha.Asha``), appends its ask and claims the
trial. The time the lock is held per ask bounds how many workers one sweep can
feed: W workers whose trainings take T seconds need W / T asks a second.

Here W worker replicas (each its own ``AsyncSweep`` and claims, in one process)
take turns over a plan of N configs (halving eta 3, levels of 3, 9 and 15
epochs, asynchronous); each tells a result for every ask, so promotions happen
as they would. Printed per N: asks served, the mean and 99th-percentile seconds
of ``next`` (lock held, replay, ask, append, claim) and of ``tell``, and asks a
second one log serves. ``--warm K`` makes K asks (and their tells) first,
untimed, so that the timed ones are those of a sweep K asks in.
``--level-plans`` also rewrites the asked level's ``plan.json`` under the lock
after each timed ask, as the workers did before status read the log instead
(the figure that change is measured by).

    python bench/async_asks.py --configs 1000 16000 100000 [--workers 8] [--asks 3000]
        [--warm K] [--level-plans]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from tuneladder.execution.promotions import AsyncSweep
from tuneladder.search.halving import Halving, asked_level, level_dir, with_halving
from tuneladder.store.claims import ClaimBook
from tuneladder.store.io import read_json, write_json


def sweep_plan(configs: int) -> dict:
    """N configs with configs as a sampler writes them (a dozen hyperparameters each)."""
    rng = random.Random(0)
    entries = []
    for i in range(configs):
        config = {
            "lr": 10 ** rng.uniform(-4, -1),
            "weight_decay": 10 ** rng.uniform(-6, -2),
            "dropout": rng.uniform(0, 0.5),
            "batch_size": rng.choice([32, 64, 128]),
            "optimizer": rng.choice(["adamw", "sgd"]),
            "schedule": rng.choice(["cosine", "constant"]),
            "width": rng.choice([64, 128, 256]),
            "num_layers": rng.randint(1, 4),
            "epochs": 15,
            "seed": i,
        }
        entries.append({"name": str(i), "index": i, "config": config})
    halving = Halving(trials=configs, epochs=15, eta=3, min_epochs=3, mode="async")
    return with_halving({"rung": "coarse", "trials": entries}, halving)


def measure(
    configs: int, workers: int, asks: int, level_plans: bool, warm: int = 0
) -> dict[str, float]:
    plan = sweep_plan(configs)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="async-asks-") as tmp:
        folder = Path(tmp)
        replicas = [AsyncSweep(plan, folder, mode="max") for _ in range(workers)]
        books = [
            {
                level: ClaimBook(folder / level_dir(level) / "claims", host=f"h{w}", pid=w)
                for level in range(3)
            }
            for w in range(workers)
        ]
        next_s, tell_s, served = [], [], 0
        started = time.perf_counter()
        while served < warm + asks:
            w = served % workers
            timed = served >= warm
            t = time.perf_counter()
            ask = replicas[w].next(books[w].__getitem__, worker=w)
            if ask is not None and level_plans and timed:  # as the workers did before
                with replicas[w].locked() as rule:
                    path = folder / level_dir(ask.level) / "plan.json"
                    level_plan = asked_level(plan, ask.level, rule.asked_at(ask.level))
                    if not (path.is_file() and read_json(path) == level_plan):
                        write_json(path, level_plan)
            if timed:
                next_s.append(time.perf_counter() - t)
            if ask is None:
                break
            served += 1
            epochs = plan["halving"]["levels"][ask.level]["epochs"]
            row = {
                "name": ask.name,
                "status": "ok",
                "best_val_metric": rng.random() + ask.level,
                "epochs_run": epochs,
                "stopped_early": False,
                "train_seconds": 60.0 * epochs,
            }
            t = time.perf_counter()
            replicas[w].tell(ask.level, row)
            if timed:
                tell_s.append(time.perf_counter() - t)
            books[w][ask.level].release(ask.name)
        wall = time.perf_counter() - started
    quantiles = statistics.quantiles(next_s, n=100)
    return {
        "asks": len(tell_s),
        "next_mean_s": statistics.fmean(next_s),
        "next_p99_s": quantiles[98],
        "tell_mean_s": statistics.fmean(tell_s),
        "asks_per_s": len(next_s) / sum(next_s),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, nargs="+", default=[1000, 16000, 100000])
    parser.add_argument("--workers", type=int, default=8, help="replicas taking turns")
    parser.add_argument("--asks", type=int, default=3000, help="asks timed per size")
    parser.add_argument("--warm", type=int, default=0, help="untimed asks made first")
    parser.add_argument("--level-plans", action="store_true", help="also write level plans")
    args = parser.parse_args()
    print(f"{args.workers} worker replicas, up to {args.asks} asks each size after"
          f" {args.warm} untimed"
          + (", level plans rewritten after each ask" if args.level_plans else ""))  # fmt: skip
    print(" configs  asks   next mean   next p99   tell mean   asks/s  wall-s")
    for n in args.configs:
        m = measure(n, args.workers, args.asks, args.level_plans, min(args.warm, n))
        print(
            f"{n:8d} {m['asks']:5d} {1000 * m['next_mean_s']:8.2f} ms"
            f" {1000 * m['next_p99_s']:7.2f} ms {1000 * m['tell_mean_s']:8.2f} ms"
            f" {m['asks_per_s']:8.0f} {m['wall_s']:7.1f}"
        )


if __name__ == "__main__":
    main()
