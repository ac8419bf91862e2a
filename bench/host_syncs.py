"""Where a trial makes the GPU wait for the host, and what one training step launches.

A step that reads a device value on the host (``.item()``, ``bool(tensor)``, a
shape that depends on data) stalls the CPU until the GPU has caught up, and a
small model then trains at the speed of Python rather than of the GPU. This
runs one trial of the digits CNN through the runner with
``torch.cuda.set_sync_debug_mode("warn")`` and prints every line of code that
synchronised, with how often per epoch; then it profiles one epoch of the runner
and of a plain loop and prints the kernels launched and the host time per step.

    python bench/host_syncs.py [--epochs 3] [--precision fp32] [--optimizers adamw ...]
                               [--json out.json]

With several optimizers, a trial of each is watched (fp16 reads the loss
scaler's overflow flag where each optimizer's step reads it); the profile is AdamW's.

Needs CUDA; on a machine without it, it says so and exits 0.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from trial_throughput import minimal_loop, runner_loop  # bench/, beside this file

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.infra.device import PRECISIONS
from tuneladder.tasks import load_task
from tuneladder.training.optimizers import OPTIMIZERS
from tuneladder.training.runner import Batches, TrainingRun, train

CNN = {"arch": "cnn", "width": 64, "num_layers": 3, "channels": 32, "dropout": 0.1}


def sync_sites(
    config: TrialConfig, data, task, precision: str
) -> tuple[dict[str, int], str, str | None, float | None]:
    """``file:line`` of each synchronising call of a runner trial, with its count; the
    trial's status, why it failed if it did, and its best val accuracy."""
    sites: collections.Counter[str] = collections.Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run = TrainingRun(
                config=config,
                data=data,
                task=task,
                metric="accuracy",
                mode="max",
                device=torch.device("cuda"),
                precision=precision,
            )
            outcome = train(run)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for warning in caught:
        if "synchroniz" in str(warning.message):
            sites[f"{Path(warning.filename).name}:{warning.lineno}"] += 1
    # train() turns errors into a failed trial: one that failed early syncs little
    return dict(sites.most_common()), outcome.status, outcome.reason, outcome.best_val_metric


def plain_epoch(config: TrialConfig, data, task, precision: str) -> None:
    minimal_loop(config, data, task, torch.device("cuda"), precision)


def runner_epoch(config: TrialConfig, data, task, precision: str) -> None:
    runner_loop(config, data, task, torch.device("cuda"), precision)


def profile(fn, *args) -> dict[str, float]:
    """Kernels launched, and host seconds, of one call, after one untimed call."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    fn(*args)
    torch.cuda.synchronize()
    with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn(*args)
        torch.cuda.synchronize()
    events = prof.key_averages()
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel"))
    syncs = sum(
        e.count
        for e in events
        if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpyAsync")
    )
    started = time.perf_counter()
    fn(*args)
    torch.cuda.synchronize()
    return {
        "kernel_launches": launches,
        "sync_or_copy_calls": syncs,
        "seconds": time.perf_counter() - started,
        "top": [
            (e.key, round(e.self_cpu_time_total / 1e3, 2), e.count)
            for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--optimizers", nargs="+", default=["adamw"], choices=OPTIMIZERS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("host_syncs: no CUDA device; nothing to measure")
        return
    task = load_task("digits")
    with tempfile.TemporaryDirectory() as tmp:
        prepare(task, tmp, seed=0)
        data = load_train_val(tmp).to("cuda")
    config = TrialConfig(epochs=args.epochs, batch_size=64, lr=1e-3, model=CNN)
    steps = Batches.plan(len(data.train), config).steps
    figures: dict = {"steps": steps, "per_step_sites": [], "trials": {}}
    for optimizer in args.optimizers:
        trial = dataclasses.replace(config, optimizer=optimizer, momentum=0.9)
        sites, status, reason, best = sync_sites(trial, data, task, args.precision)
        print(
            f"the {optimizer} trial: {status}{f' ({reason})' if reason else ''},"
            f" best val accuracy {best}"
        )
        total = sum(sites.values())
        print(
            f"host syncs in a {args.epochs}-epoch runner trial ({steps} steps an epoch,"
            f" {args.precision}, {optimizer}): {total} ({total / args.epochs:.1f} an epoch)"
        )
        for site, count in sites.items():
            print(f"  {count:6d}  {site}")
        # a line that synchronises on most steps is a per-step sync: the loop must have none
        per_step = [site for site, count in sites.items() if count >= args.epochs * steps / 2]
        print(f"lines that synchronise on every step: {', '.join(per_step) or 'none'}")
        figures["trials"][optimizer] = {
            "syncs": sites,
            "syncs_per_epoch": total / args.epochs,
            "per_step_sites": per_step,
            "status": status,
            "reason": reason,
            "best_val_metric": best,
        }
        figures["per_step_sites"] += [f"{site} ({optimizer})" for site in per_step]
    # the first optimizer's figures under the names gpu_check and earlier runs read
    first = figures["trials"][args.optimizers[0]]
    figures.update(
        syncs=first["syncs"],
        syncs_per_epoch=first["syncs_per_epoch"],
        trial_best_val_metric=first["best_val_metric"],
    )
    failed = [(o, t) for o, t in figures["trials"].items() if t["status"] != "ok"]
    figures["trial_status"] = failed[0][1]["status"] if failed else "ok"
    figures["trial_reason"] = f"{failed[0][0]}: {failed[0][1]['reason']}" if failed else None
    one_epoch = TrialConfig(epochs=1, batch_size=64, lr=1e-3, model=CNN)
    for name, fn in (("plain", plain_epoch), ("runner", runner_epoch)):
        result = profile(fn, one_epoch, data, task, args.precision)
        figures[name] = result
        print(
            f"{name:>7}: {result['kernel_launches'] / steps:.1f} kernels a step,"
            f" {result['seconds'] / steps * 1e6:.0f} us a step (one epoch, host clock)"
        )
        for key, ms, count in result["top"]:
            print(f"           {ms:9.2f} ms {count:6d}x {key}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
