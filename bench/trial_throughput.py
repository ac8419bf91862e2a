"""How fast the trial runner trains, against a minimal hand-written loop.

Prints training samples/s of `tuneladder.training.runner.train` and of the plainest loop
that trains the same model on the same data (same batch size, same optimizer,
validation loss each epoch), over two spans timed the same way on both sides:
the whole call (building the model and optimizer, then every epoch) and the
epochs alone (from the first epoch's start to the last one's end). Each side
runs once untimed first (first-use costs), then the best of `--repeats` runs,
taken in turns, is shown, and the spread of the ratio of each turn's two runs
(a noisy machine moves both loops; the spread says how far). Last, the time
from process start to the first training step of a worker-like process.

    python bench/trial_throughput.py [--epochs 20] [--threads 1] [--repeats 3]
        [--device cpu|cuda] [--precision fp32|tf32|bf16|fp16] [--norm-samples 2]

On CUDA both sides keep the data on the GPU and read one number back per epoch
(the plain loop its val loss, the runner its epoch's values).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.infra.device import PRECISIONS, autocast, fp32_math, grad_scaler
from tuneladder.tasks import load_task
from tuneladder.training import runner as trial_runner
from tuneladder.training.metrics import loss_fn
from tuneladder.training.optimizers import make_optimizer
from tuneladder.training.runner import TrainingRun, train

# what each pair of columns times, on both sides
SPANS = {"call": "whole call (build + epochs)", "epochs": "epochs only"}
MODELS = {
    "mlp": {"arch": "mlp", "width": 128, "num_layers": 2, "channels": 16, "dropout": 0.1},
    "cnn": {"arch": "cnn", "width": 64, "num_layers": 3, "channels": 32, "dropout": 0.1},
}


def minimal_loop(
    config: TrialConfig, data, task, device: torch.device, precision: str = "fp32"
) -> tuple[float, float]:
    """(seconds of the whole call, seconds of its epochs) for the plainest loop.

    This is the loop the methodology writes by hand (train_epoch, then validate),
    without any of the runner's measurements; in fp16, with AMP's loss scaling.
    """
    called = time.perf_counter()
    torch.manual_seed(config.seed)
    model = task.build_model(config.model, data.info).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    x, y = data.train.x, data.train.y
    amp, scaler = autocast(device, precision), grad_scaler(device, precision)
    started = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=generator, device=device).split(
            config.batch_size
        ):
            with amp:
                output = model(x[idx])
            loss = loss_fn(data.info.kind, output, y[idx])
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        model.eval()
        with torch.inference_mode(), amp:
            loss_fn(data.info.kind, model(data.val.x), data.val.y).item()
    ended = time.perf_counter()
    return ended - called, ended - started


def runner_loop(
    config: TrialConfig, data, task, device: torch.device, precision: str = "fp32"
) -> tuple[float, float]:
    """(seconds of the whole call, seconds of its epochs) for the runner's ``train``.

    The epochs span runs from the start of the first epoch (its end, less its
    ``epoch_seconds``) to the end of the last, bookkeeping between epochs included.
    """
    ends: list[tuple[float, float]] = []

    def on_epoch(row: dict[str, float]) -> None:
        ends.append((time.perf_counter(), row["epoch_seconds"]))

    called = time.perf_counter()
    run = TrainingRun(
        config=config,
        data=data,
        task=task,
        metric="accuracy",
        mode="max",
        device=device,
        precision=precision,
    )
    outcome = train(run, on_epoch=on_epoch)
    ended = time.perf_counter()
    if outcome.status != "ok":
        raise RuntimeError(f"the runner's trial {outcome.status}: {outcome.reason}")
    first_end, first_seconds = ends[0]
    return ended - called, ends[-1][0] - (first_end - first_seconds)


STARTUP = textwrap.dedent(
    """
    import sys, time
    import torch
    from tuneladder.data.prepared import load_train_val
    from tuneladder.core.hparams import TrialConfig
    from tuneladder.training.runner import TrainingRun, train
    from tuneladder.tasks import load_task
    imported = time.time()
    torch.set_num_threads(1)
    task = load_task("digits")
    data = load_train_val(sys.argv[1])
    marks = {}

    def on_epoch(row):
        marks["first_step"] = time.time() - row["epoch_seconds"]

    config = TrialConfig(epochs=1, model=task.default_model)
    run = TrainingRun(config=config, data=data, task=task, metric="accuracy", mode="max",
                      device=torch.device("cpu"))
    train(run, on_epoch=on_epoch)
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
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument(
        "--no-startup", action="store_true", help="skip timing a worker-like process's start"
    )
    parser.add_argument(
        "--norm-samples",
        type=int,
        default=trial_runner.NORM_SAMPLES,
        help="steps an epoch whose gradient norm the trial measures (what the diagnostic costs)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    trial_runner.NORM_SAMPLES = args.norm_samples  # read by Batches.plan, at each trial's start
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fp32_math(device, args.precision)  # tf32: both loops' matrix products
    task = load_task("digits")
    with tempfile.TemporaryDirectory() as tmp:
        prepare(task, tmp, seed=0)
        data = load_train_val(tmp).to(device)
        n = len(data.train)
        figures = {}
        print(
            f"digits on {device} ({args.precision}): {n} training samples, {args.epochs} epochs,"
            f" {args.threads} thread(s), gradient norm on {args.norm_samples} step(s) an epoch;"
            f" training samples/s, best of {args.repeats} after one warm-up run each"
        )
        print(f"{'':12}" + "".join(f"{title:^27}" for title in SPANS.values()))
        print(f"{'model':<6}{'batch':>6}" + f"{'minimal/s':>11}{'runner/s':>10}{'ratio':>6}" * 2)
        for name in args.models:
            model = MODELS[name]
            for batch in args.batches:
                config = TrialConfig(epochs=args.epochs, batch_size=batch, lr=1e-3, model=model)
                sides = (config, data, task, device, args.precision)
                minimal_loop(*sides)  # warm-up: first-use costs
                runner_loop(*sides)
                plain, ours = [], []
                for _ in range(args.repeats):  # in turns: a busy machine slows both alike
                    plain.append(minimal_loop(*sides))
                    ours.append(runner_loop(*sides))
                # the runner drops a final batch of one sample: count what it trained on
                trained = (n - 1 if n % batch == 1 else n) * args.epochs
                row = {}
                for i, span in enumerate(SPANS):
                    minimal = n * args.epochs / min(t[i] for t in plain)
                    runner = trained / min(t[i] for t in ours)
                    # each repeat's two runs back to back: how far the ratio moves with
                    # the machine's noise, beside the ratio of the bests
                    paired = sorted(
                        (trained / b[i]) / (n * args.epochs / a[i])
                        for a, b in zip(plain, ours, strict=True)
                    )
                    row[span] = {
                        "minimal_samples_per_s": minimal,
                        "runner_samples_per_s": runner,
                        "ratio": runner / minimal,
                        "paired_ratios": paired,
                        "paired_median": statistics.median(paired),
                    }
                figures[f"{name}-b{batch}"] = row
                cells = "".join(
                    f"{r['minimal_samples_per_s']:>11.0f}{r['runner_samples_per_s']:>10.0f}"
                    f"{r['ratio']:>6.2f}"
                    for r in row.values()
                )
                epochs = row["epochs"]["paired_ratios"]
                spread = f"  (epochs, run by run: {epochs[0]:.2f}-{epochs[-1]:.2f})"
                print(f"{name:<6}{batch:>6}{cells}" + (spread if len(epochs) > 1 else ""))
        if args.no_startup:
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2) + "\n")
            return
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
