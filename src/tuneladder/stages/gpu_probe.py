"""How many trials one GPU should train side by side: measured, not guessed.

For ``gpu: {trials_per_gpu: auto}`` the probe job starts as many lanes
(:mod:`tuneladder.execution.lanes`) as it may try, each training the default config as a
trial would (its model, optimizer, batches and precision). Then, for 1, 2, 4 ...
lanes at a time, the first ``k`` lanes train for ``probe_seconds`` while the
others wait, and each counts the samples it trained. The lanes meet between
rounds through files in the probe's folder; the job only starts them and reads
their figures.

The choice is the fewest lanes that reach 90% of the best total throughput
measured, and no more than 80% of the GPU's memory holds beside what other
processes hold there. A trial's memory (its CUDA context, model and data) is
measured as the device's memory in use grew from the first lane alone to every
lane alive: the first lane gets ready before the others start their CUDA, so what
the device held then, less one trial, is what others hold (a notebook, another
run). Everything measured, and the rule, go to ``sanity/gpu_probe.json``.
On a machine without CUDA the same measurement runs on the CPU.

    python -m tuneladder.stages.gpu_probe SPEC.json    (one lane; the job starts them)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneladder.execution.lanes import clear, lane_main, run_lanes
from tuneladder.infra.device import Runtime
from tuneladder.store.io import read_json, write_json

__all__ = ["choose", "gpu_probe_stage", "memory_split", "probe_levels"]

log = logging.getLogger("tuneladder")

# the fewest lanes within this share of the best total throughput
NEAR_BEST = 0.9
# the most of the device's memory the chosen lanes may take
MEMORY_SHARE = 0.8
# how long a lane waits for the others at a meeting point before it gives up
MEET_TIMEOUT_S = 120.0
POLL_S = 0.01


def probe_levels(most: int) -> list[int]:
    """1, 2, 4 ... up to ``most``, and ``most`` itself."""
    levels = [1]
    while levels[-1] * 2 <= most:
        levels.append(levels[-1] * 2)
    if levels[-1] != most:
        levels.append(most)
    return levels


def choose(
    throughput: Mapping[int, float],
    *,
    per_trial_mb: float | None,
    total_mb: float | None,
    others_mb: float | None = None,
) -> tuple[int, str]:
    """The lanes to run, and why, from total samples/s by lane count; ``others_mb`` is
    the device's memory held by other processes, which the lanes cannot use."""
    if not throughput:
        return 1, "nothing was measured: one trial per GPU"
    best = max(throughput.values())
    chosen = min(k for k, rate in throughput.items() if rate >= NEAR_BEST * best)
    rule = (
        f"the fewest trials side by side within {NEAR_BEST:.0%} of the best total"
        f" throughput ({best:.0f} samples/s with {max(throughput, key=throughput.get)})"
    )
    if per_trial_mb and total_mb:
        room = MEMORY_SHARE * total_mb - (others_mb or 0.0)
        fits = max(1, math.floor(room / per_trial_mb))
        if fits < chosen:
            chosen = fits
            held = f", less {others_mb:.0f} MB other processes hold" if others_mb else ""
            rule += (
                f"; memory allows {fits} ({per_trial_mb:.0f} MB each,"
                f" {MEMORY_SHARE:.0%} of {total_mb:.0f} MB{held})"
            )
    return chosen, rule


def memory_split(
    one_mb: float | None, all_mb: float | None, lanes: int
) -> tuple[float | None, float | None]:
    """(a trial's memory, what other processes hold), in MB, from the device's memory in
    use with the first lane alone (``one_mb``) and with all ``lanes`` alive (``all_mb``).

    With one lane, or without the first figure, the device's whole use is the trials'
    (what others hold is unknown, None): a trial's memory is overstated, never under."""
    if all_mb is None:
        return None, None
    if one_mb is None or lanes < 2 or all_mb <= one_mb:
        # (the last: others gave memory back between the two readings; nothing to split)
        return all_mb / lanes, None
    per_trial = max(all_mb - one_mb, 0.0) / (lanes - 1)
    return per_trial, max(one_mb - per_trial, 0.0)


def gpu_probe_stage(
    *,
    data_dir: str | Path,
    task: Mapping[str, Any],
    train: Mapping[str, Any],
    seed: int,
    gpu: Mapping[str, Any],
    runtime: Runtime,
    out: str | Path,
    log_path: str | Path | None = None,
) -> None:
    """Start the lanes on this job's GPU, wait for them, and write the choice."""
    started = time.perf_counter()
    claim = runtime.claim()
    most = max(1, min(int(gpu["max_trials_per_gpu"]), runtime.threads))
    levels = probe_levels(most)
    folder = Path(out).with_suffix(".lanes")
    clear(folder)  # meeting files of a killed probe would let the lanes run ahead
    lane_runtime = runtime.for_lanes(threads=1)
    common = {
        "data_dir": str(data_dir),
        "task": dict(task),
        "train": dict(train),
        "seed": seed,
        "runtime": dataclasses.asdict(lane_runtime),
        "seconds": float(gpu["probe_seconds"]),
        "levels": levels,
        "lanes": most,
        "folder": str(folder),
    }
    log.info("probing %s lanes side by side, %.1f s each", levels, common["seconds"])
    codes = run_lanes(
        [{**common, "lane": lane} for lane in range(most)],
        folder,
        module="tuneladder.stages.gpu_probe",
        claim=claim,
        log=log_path,
    )
    figures = _figures(folder, levels)
    device = read_json(folder / "device.json") if (folder / "device.json").is_file() else {}
    alone = read_json(folder / "alone.json") if (folder / "alone.json").is_file() else {}
    per_trial, others = memory_split(alone.get("used_mb"), device.get("used_mb"), most)
    throughput = {k: f["samples_per_s"] for k, f in figures.items() if f["complete"]}
    chosen, rule = choose(
        throughput, per_trial_mb=per_trial, total_mb=device.get("total_mb"), others_mb=others
    )
    one = throughput.get(1)
    report = {
        "chosen": chosen,
        "rule": rule,
        "device": device.get("device"),
        "device_name": device.get("device_name"),
        "total_mb": device.get("total_mb"),
        "per_trial_mb": per_trial,
        "others_mb": others,
        "lanes_started": most,
        "lane_exit_codes": codes,
        "levels": [
            {
                "trials": k,
                **f,
                "speedup": f["samples_per_s"] / one if one and f["complete"] else None,
            }
            for k, f in figures.items()
        ],
        "probe_seconds": common["seconds"],
        "seconds": time.perf_counter() - started,
    }
    for level in report["levels"]:
        log.info(
            "%2d side by side: %.0f samples/s in all (%s)",
            level["trials"],
            level["samples_per_s"],
            f"{level['speedup']:.2f}x one" if level["speedup"] else "incomplete",
        )
    log.info("chosen: %d trials per GPU (%s)", chosen, rule)
    write_json(out, report)
    clear(folder)


def _figures(folder: Path, levels: Sequence[int]) -> dict[int, dict[str, Any]]:
    figures = {}
    for k in levels:
        lanes = [folder / f"level-{k}-lane-{i}.json" for i in range(k)]
        results = [read_json(p) for p in lanes if p.is_file()]
        ok = [r for r in results if "samples_per_s" in r]
        figures[k] = {
            "samples_per_s": sum(r["samples_per_s"] for r in ok),
            "per_trial_samples_per_s": [r["samples_per_s"] for r in ok],
            "complete": len(ok) == k,
            "errors": [r["error"] for r in results if "error" in r],
        }
    return figures


def _wait_for(paths: Sequence[Path], what: str) -> None:
    deadline = time.monotonic() + MEET_TIMEOUT_S
    while not all(p.is_file() for p in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {MEET_TIMEOUT_S:.0f} s for {what}")
        time.sleep(POLL_S)


def run_lane(spec: Mapping[str, Any]) -> None:
    """One lane: get ready, then take part in every level, in step with the others."""
    from tuneladder.infra.startup import import_torch

    import_torch(dynamo=True)
    import torch

    folder, lane = Path(spec["folder"]), int(spec["lane"])
    runtime = Runtime(**spec["runtime"])
    if lane > 0:  # the first lane alone on the device: what it holds then is the baseline
        _wait_for([folder / "alone.json"], "the first lane to get ready")
    step, device = _trainer(spec, runtime)
    for _ in range(3):  # first-use costs (kernels, autotuning, allocator) before any timing
        step()
    _sync(device)
    if lane == 0:
        write_json(folder / "alone.json", _device_memory(device, torch))
    write_json(folder / f"ready-{lane}.json", {"pid": os.getpid()})
    _wait_for([folder / f"ready-{i}.json" for i in range(spec["lanes"])], "every lane to start")
    failed = None
    for k in spec["levels"]:
        go = folder / f"go-{k}.json"
        if lane == 0:
            write_json(go, {"at": time.time() + 0.3})
        _wait_for([go], f"level {k} to start")
        if lane < k:
            result = _timed(step, device, read_json(go)["at"], spec["seconds"], failed)
            failed = failed or result.get("error")
            if lane == 0 and k == spec["levels"][-1]:
                # before its last figure: every lane is alive until that is written
                write_json(folder / "device.json", _device_memory(device, torch))
            write_json(folder / f"level-{k}-lane-{lane}.json", result)
        _wait_for([folder / f"level-{k}-lane-{i}.json" for i in range(k)], f"level {k}")


def _timed(step: Any, device: Any, at: float, seconds: float, failed: str | None) -> dict:
    """Samples/s of ``step`` over ``seconds`` from wall-clock time ``at``."""
    if failed:
        return {"error": f"an earlier level failed: {failed}"}
    try:
        while time.time() < at:  # the others are starting too: keep warm meanwhile
            step()
        _sync(device)
        started, samples = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            samples += step()
        _sync(device)
        return {"samples_per_s": samples / (time.perf_counter() - started)}
    except Exception as err:  # out of memory with this many side by side: a figure too
        return {"error": f"{type(err).__name__}: {err}"}


def _trainer(spec: Mapping[str, Any], runtime: Runtime) -> tuple[Any, Any]:
    """``step() -> samples``: one training step of the default config, as a trial takes it."""
    from tuneladder.data.prepared import load_train_val
    from tuneladder.stages.common import _base_config, _task
    from tuneladder.training.metrics import Scoring, make_loss
    from tuneladder.training.runner import Batches
    from tuneladder.training.step import setup, train_step

    device = runtime.start()
    task_obj = _task(spec["task"])
    data = load_train_val(spec["data_dir"], task_obj, loading=runtime.loading()).to(device)
    config = _base_config(task_obj, spec["train"], spec["seed"])
    model, optimizer = setup(config, task_obj.build_model, data.info, device)
    loss = make_loss(data.info, device, Scoring.of(task_obj).loss)
    batches = Batches.plan(len(data.train), config)
    amp, scaler = runtime.autocast(device), runtime.grad_scaler(device)
    import torch

    shuffle = torch.Generator(device=device)
    shuffle.manual_seed(config.seed)
    epoch: Iterator[Any] = iter(())

    def step() -> int:
        # a batch at a time, as a trial reads them: a whole epoch's batches held at once
        # would count as the trial's memory, and read a Dataset's epoch in one burst
        nonlocal epoch
        batch = next(epoch, None)
        if batch is None:
            epoch = iter(data.train.batches(batches.indices(shuffle, device)))
            batch = next(epoch)
        xb, yb = batch
        train_step(model, optimizer, loss, xb, yb, amp=amp, scaler=scaler)
        return len(yb)

    return step, device


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_memory(device: Any, torch: Any) -> dict[str, Any]:
    """The device and what it had in use with every lane alive (None on the CPU)."""
    if device.type != "cuda":
        return {"device": str(device), "device_name": None, "total_mb": None, "used_mb": None}
    free, total = torch.cuda.mem_get_info(device)
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device),
        "total_mb": total / 2**20,
        "used_mb": (total - free) / 2**20,
    }


if __name__ == "__main__":
    lane_main(sys.argv, run_lane)
