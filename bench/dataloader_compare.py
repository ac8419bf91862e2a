"""The runner's DataLoader path against a plain PyTorch loop over the same Dataset.

The data is a folder of PNG images of shapes (written first, into a temporary
folder), read by the built-in ``image_folder`` task with ``materialize: never``,
so every sample is decoded from its file each time it is read. Both sides train
the same CNN with the same batch size and optimizer, each epoch a shuffled pass
over the train split and a loss over the val split:

* plain: ``DataLoader(Subset(folder, train), shuffle=True, num_workers=w,
  persistent_workers=w > 0)`` and the loop written by hand;
* runner: :func:`tuneladder.training.runner.train` on ``load_train_val(...)`` with
  ``Loading(num_workers=w)``, all its measurements included.

Printed per worker count: training samples/s over the epochs (best of
``--repeats`` after a warm-up run, sides taken in turns), their ratio, and the
time from a fresh loader to its first batch (worker start-up included).

    python bench/dataloader_compare.py [--per-class 300] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.infra.device import Loading
from tuneladder.tasks import load_task
from tuneladder.training.metrics import loss_fn
from tuneladder.training.optimizers import make_optimizer
from tuneladder.training.runner import TrainingRun, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, beside bench/
from examples.shapes_task import write_folder  # noqa: E402

MODEL = {"arch": "cnn", "width": 32, "num_layers": 2, "channels": 8, "dropout": 0.1}


def plain_loop(config: TrialConfig, task, data_dir: Path, workers: int) -> float:
    """Seconds of the epochs of the loop a PyTorch user writes over the same folder."""
    folder = task.load_datasets()  # the one ImageFolder: the prepared indices pick its parts
    parts = {n: torch.load(data_dir / f"{n}.pt")["indices"].tolist() for n in ("train", "val")}
    generator = torch.Generator().manual_seed(config.seed)
    common = {"num_workers": workers, "persistent_workers": workers > 0}
    train_loader = DataLoader(
        Subset(folder, parts["train"]),
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        **common,
    )
    val_loader = DataLoader(Subset(folder, parts["val"]), batch_size=256, **common)
    torch.manual_seed(config.seed)
    info = load_train_val(data_dir, task).info
    model = task.build_model(config.model, info)
    optimizer = make_optimizer(model.parameters(), config)
    started = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        for x, y in train_loader:
            loss = loss_fn("classification", model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            total = sum(loss_fn("classification", model(x), y) * len(y) for x, y in val_loader)
        float(total)
    return time.perf_counter() - started


def runner_loop(config: TrialConfig, task, data_dir: Path, workers: int) -> float:
    """Seconds of the runner's epochs, from the first epoch's start to the last one's end."""
    data = load_train_val(data_dir, task, loading=Loading(num_workers=workers))
    ends: list[tuple[float, float]] = []
    run = TrainingRun(
        config=config,
        data=data,
        task=task,
        metric="accuracy",
        mode="max",
        device=torch.device("cpu"),
    )
    outcome = train(
        run, on_epoch=lambda row: ends.append((time.perf_counter(), row["epoch_seconds"]))
    )
    if outcome.status != "ok":
        raise RuntimeError(f"the runner's trial {outcome.status}: {outcome.reason}")
    return ends[-1][0] - (ends[0][0] - ends[0][1])


def first_batch(task, data_dir: Path, workers: int, batch: int) -> tuple[float, float]:
    """(plain, runner) seconds from a fresh loader to its first training batch."""
    folder = task.load_datasets()
    indices = torch.load(data_dir / "train.pt")["indices"].tolist()
    started = time.perf_counter()
    loader = DataLoader(
        Subset(folder, indices),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    next(iter(loader))
    plain = time.perf_counter() - started
    del loader
    data = load_train_val(data_dir, task, loading=Loading(num_workers=workers))
    order = torch.randperm(len(data.train)).split(batch)
    started = time.perf_counter()  # the split makes its loader on first use
    next(data.train.batches(order))
    return plain, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=300, help="images of each of 3 shapes")
    parser.add_argument("--size", type=int, default=32, help="image side, pixels")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrialConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, model=MODEL)
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp) / "shapes", per_class=args.per_class, size=args.size)
        options = {"path": str(root), "image_size": args.size, "channels": 1}
        task = load_task("image_folder", options)
        data_dir = Path(tmp) / "data"
        prepare(task, data_dir, seed=0, materialize="never")
        n = len(load_train_val(data_dir, task).train)
        trained = (n - 1 if n % args.batch_size == 1 else n) * args.epochs
        print(
            f"image folder: {n} training PNGs of {args.size}x{args.size}, {args.epochs} epochs,"
            f" batch {args.batch_size}, 1 torch thread; samples/s, best of {args.repeats}"
        )
        print(f"{'workers':>7}{'plain/s':>9}{'runner/s':>10}{'ratio':>7}{'first batch s':>23}")
        for workers in args.workers:
            plain_loop(config, task, data_dir, workers)  # warm-up: first-use costs
            runner_loop(config, task, data_dir, workers)
            plain, ours = [], []
            for _ in range(args.repeats):  # in turns: a busy machine slows both alike
                plain.append(plain_loop(config, task, data_dir, workers))
                ours.append(runner_loop(config, task, data_dir, workers))
            firsts = [first_batch(task, data_dir, workers, args.batch_size) for _ in range(3)]
            row = {
                "plain_samples_per_s": n * args.epochs / min(plain),
                "runner_samples_per_s": trained / min(ours),
                "plain_first_batch_s": min(f[0] for f in firsts),
                "runner_first_batch_s": min(f[1] for f in firsts),
            }
            row["ratio"] = row["runner_samples_per_s"] / row["plain_samples_per_s"]
            figures[f"workers_{workers}"] = row
            print(
                f"{workers:>7}{row['plain_samples_per_s']:>9.0f}{row['runner_samples_per_s']:>10.0f}"
                f"{row['ratio']:>7.2f}   plain {row['plain_first_batch_s']:.3f}"
                f" runner {row['runner_first_batch_s']:.3f}"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
