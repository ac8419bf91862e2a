"""How fast the trial runner trains, against a minimal hand-written loop.

Prints training samples/s of `tuneladder.runner.train` and of the plainest loop
that trains the same model on the same data (same batches, same optimizer,
validation loss each epoch), and
the time from process start to the first training step of a worker-like process.

    python bench/trial_throughput.py [--epochs 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from tuneladder.data import load_train_val, prepare
from tuneladder.hparams import TrialConfig
from tuneladder.metrics import loss_fn
from tuneladder.optimizers import make_optimizer
from tuneladder.runner import train
from tuneladder.tasks import load_task

MODELS = {
    "mlp": {"arch": "mlp", "width": 128, "num_layers": 2, "channels": 16, "dropout": 0.1},
    "cnn": {"arch": "cnn", "width": 64, "num_layers": 3, "channels": 32, "dropout": 0.1},
}


def minimal_loop(config: TrialConfig, data, build_model) -> float:
    """Seconds for config.epochs of the plainest loop: train, then the val loss, per epoch.

    This is the loop the methodology writes by hand (train_epoch, then validate),
    without any of the runner's measurements.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.info)
    optimizer = make_optimizer(model.parameters(), config)
    generator = torch.Generator().manual_seed(config.seed)
    x, y = data.train.x, data.train.y
    started = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=generator).split(config.batch_size):
            loss = loss_fn(data.info.kind, model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            loss_fn(data.info.kind, model(data.val.x), data.val.y).item()
    return time.perf_counter() - started


def runner_loop(config: TrialConfig, data, build_model) -> tuple[float, float]:
    """Seconds of the runner's whole run, and of its epochs (training + validation)."""
    started = time.perf_counter()
    outcome = train(
        config, data, build_model, metric="accuracy", mode="max", device=torch.device("cpu")
    )
    total = time.perf_counter() - started
    return total, sum(row["epoch_seconds"] for row in outcome.history)


STARTUP = textwrap.dedent(
    """
    import sys, time
    import torch
    from tuneladder.data import load_train_val
    from tuneladder.hparams import TrialConfig
    from tuneladder.runner import train
    from tuneladder.tasks import load_task
    imported = time.time()
    torch.set_num_threads(1)
    task = load_task("digits")
    data = load_train_val(sys.argv[1])
    marks = {}

    def on_epoch(row):
        marks["first_step"] = time.time() - row["epoch_seconds"]

    train(TrialConfig(epochs=1, model=task.default_model), data, task.build_model,
          metric="accuracy", mode="max", device=torch.device("cpu"), on_epoch=on_epoch)
    print(imported, marks["first_step"])
    """
)


def startup_seconds(data_dir: Path) -> tuple[float, float]:
    """(process start to imports done, process start to first training step), seconds."""
    launched = time.time()
    out = subprocess.run(
        [sys.executable, "-c", STARTUP, str(data_dir)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]) - launched, float(out[1]) - launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task("digits")
    with tempfile.TemporaryDirectory() as tmp:
        prepare(task, tmp, seed=0)
        data = load_train_val(tmp)
        n = len(data.train)
        figures = {}
        print(f"digits: {n} training samples, {args.epochs} epochs, {args.threads} thread(s)")
        print(
            f"{'model':<6}{'batch':>6}{'minimal/s':>12}{'runner/s':>11}{'ratio':>7}"
            f"{'runner+val/s':>14}"
        )
        for name, model in MODELS.items():
            for batch in (32, 128):
                config = TrialConfig(epochs=args.epochs, batch_size=batch, lr=1e-3, model=model)
                minimal_loop(config, data, task.build_model)  # warm-up: first-use costs
                plain = min(
                    minimal_loop(config, data, task.build_model) for _ in range(args.repeats)
                )
                runs = [runner_loop(config, data, task.build_model) for _ in range(args.repeats)]
                ours = min(total for total, _ in runs)
                # the runner drops a final batch of one sample: count what it trained on
                trained = (n - 1 if n % batch == 1 else n) * args.epochs
                row = {
                    "minimal_samples_per_s": n * args.epochs / plain,
                    "runner_samples_per_s": trained / ours,
                }
                row["ratio"] = row["runner_samples_per_s"] / row["minimal_samples_per_s"]
                figures[f"{name}-b{batch}"] = row
                print(
                    f"{name:<6}{batch:>6}{row['minimal_samples_per_s']:>12.0f}"
                    f"{row['runner_samples_per_s']:>11.0f}{row['ratio']:>7.2f}"
                    f"{'(incl.)':>14}"
                )
        imports, first_step = min(startup_seconds(Path(tmp)) for _ in range(args.repeats))
        bare = min(_bare_torch_import() for _ in range(args.repeats))
        figures["startup"] = {
            "import_torch_s": bare,
            "imports_done_s": imports,
            "first_step_s": first_step,
        }
        print(f"process start -> `import torch` done: {bare:.2f} s (python + torch alone)")
        print(f"process start -> imports done:       {imports:.2f} s")
        print(f"process start -> first training step: {first_step:.2f} s")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not math.isfinite(first_step):
        raise SystemExit(1)


def _bare_torch_import() -> float:
    launched = time.time()
    out = subprocess.run(
        [sys.executable, "-c", "import time, torch; print(time.time())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out) - launched


if __name__ == "__main__":
    main()
