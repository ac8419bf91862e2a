"""Compare tuneladder's LR range test with torch-lr-finder on the built-in digits task.

Both sides get the same model init (same torch seed), the same AdamW optimizer, the
same LR sweep (start, end and steps from config/config.yaml's ``lr_range``), the same
smoothing weight and divergence factor, and the same mini-batches in the same order,
so their raw loss curves should match and any gap in the suggestion comes from how
each reads the curve. torch-lr-finder's suggestion is taken by its own
``LRFinder.plot(suggest_lr=True)`` (drawn on an off-screen figure).

    pip install torch-lr-finder
    python bench/lr_range_compare.py [--seeds 0 1 2] [--batches same|shuffled]
                                     [--reference K] [--out rows.json]

``--batches shuffled`` gives torch-lr-finder an ordinary shuffled DataLoader instead
(same data and batch size, different batches), to see how much batch noise moves it.
``--reference K`` (default 16, 0 to skip) also averages our raw loss curves over K seeds
per arch and reads the steepest descent off that mean curve, with no smoothing lag, and
again after a forward EMA like torch-lr-finder's: a yardstick for both suggestions.

torch-lr-finder is a benchmark-only dependency, not one of the project's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneladder.data.prepared import TrainVal, load_train_val, prepare
from tuneladder.ladder.config import load_config
from tuneladder.sanity.lr_range import (
    SKIP_FRACTION,
    LRRangeSettings,
    analyse,
    lr_range_test,
    smooth,
)
from tuneladder.stages.common import _base_config
from tuneladder.tasks import load_task
from tuneladder.training.metrics import loss_fn
from tuneladder.training.optimizers import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ("mlp", "cnn")


def _config(task: Any, train: dict[str, Any], seed: int, arch: str) -> Any:
    """The sanity rung's base config; for ``cnn``, the task's default model with arch=cnn."""
    config = _base_config(task, train, seed)
    if config.model["arch"] == arch:
        return config
    return replace(config, model={**config.model, "arch": arch})


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """The index batches ``lr_range_test`` draws: a seeded permutation, reshuffled when spent."""
    generator = torch.Generator().manual_seed(seed)
    order, cursor, out = torch.randperm(n, generator=generator), 0, []
    for _ in range(steps):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        out.append(order[cursor : cursor + batch_size].tolist())
        cursor += batch_size
    return out


def run_theirs(
    config: Any,
    data: TrainVal,
    task: Any,
    *,
    start: float,
    end: float,
    steps: int,
    smoothing: float,
    diverge_factor: float,
    batches: str = "same",
) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    kind = data.info.kind
    torch.manual_seed(config.seed)  # as lr_range_test does, right before building the model
    model = task.build_model(config.model, data.info)
    optimizer = make_optimizer(model.parameters(), config)
    batch_size = min(config.batch_size, len(data.train))
    dataset = torch.utils.data.TensorDataset(data.train.x, data.train.y)
    # the loader gets its own generator, so that iterating it leaves the global RNG
    # (which dropout draws from) where lr_range_test leaves it
    if batches == "same":
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=_batches(len(data.train), batch_size, steps, config.seed),
            generator=torch.Generator().manual_seed(0),
        )
    else:  # an ordinary shuffled loader: same data and batch size, other batches
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(config.seed + 1),
        )
    finder = LRFinder(model, optimizer, lambda out, y: loss_fn(kind, out, y), device="cpu")
    quiet = io.StringIO()
    started = time.perf_counter()
    with (
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        finder.range_test(
            loader,
            start_lr=start,
            end_lr=end,
            num_iter=steps,
            step_mode="exp",
            smooth_f=smoothing,
            diverge_th=diverge_factor,
        )
        seconds = time.perf_counter() - started
        lrs = np.array(finder.history["lr"], dtype=float)
        smoothed = np.array(finder.history["loss"], dtype=float)
        fig, ax = plt.subplots()
        try:  # its own rule: steepest np.gradient after skip_start=10, skip_end=5
            _, suggestion = finder.plot(ax=ax, suggest_lr=True)
            suggestion = float(suggestion)
        except RuntimeError:  # too few points before it stopped
            suggestion = None
        finally:
            plt.close(fig)
    finite = np.isfinite(smoothed)
    lowest = int(np.nanargmin(np.where(finite, smoothed, np.nan)))
    return {
        "suggestion": suggestion,
        "min_loss_lr": float(lrs[lowest]),
        "steps_run": len(lrs),
        "lrs": lrs.tolist(),
        "smoothed": smoothed.tolist(),
        "seconds": seconds,
    }


def _raw_from_theirs(smoothed: list[float], smoothing: float) -> np.ndarray:
    """Undo torch-lr-finder's EMA (first value raw, then a*x + (1-a)*prev)."""
    s = np.asarray(smoothed, dtype=float)
    if smoothing == 0:  # torch-lr-finder records the raw loss then
        return s
    raw = s.copy()
    raw[1:] = (s[1:] - (1 - smoothing) * s[:-1]) / smoothing
    return raw


def _steepest(lrs: np.ndarray, curve: np.ndarray) -> float:
    """Plain steepest descent against log10(LR), from 10% of the steps to the minimum."""
    lowest = int(np.argmin(curve))
    first = min(int(SKIP_FRACTION * len(curve)), max(lowest - 1, 0))
    slope = np.gradient(curve, np.log10(lrs))
    return float(lrs[first + int(np.argmin(slope[first : lowest + 1]))])


def reference(
    data: TrainVal, task: Any, train: dict[str, Any], settings: dict[str, Any], arch: str, k: int
) -> dict[str, Any]:
    """Average the raw loss curves of ``k`` seeds (init and batch order): the mean curve is
    smooth enough to read without an EMA, so its steepest descent carries no smoothing lag."""
    curves = []
    for seed in range(k):
        config = _config(task, train, seed, arch)
        run = lr_range_test(
            config, data, task.build_model, LRRangeSettings(**settings), device=torch.device("cpu")
        )
        curves.append(np.array(run["losses"]))
    n = min(len(c) for c in curves) - 1  # drop the step that stopped the shortest run
    lrs = np.array(run["lrs"][:n])
    mean = np.mean([c[:n] for c in curves], axis=0)
    return {
        "arch": arch,
        "seeds": k,
        "steps": n,
        "steepest_of_mean": _steepest(lrs, mean),
        "steepest_of_mean_after_ema": _steepest(lrs, smooth(mean, settings["smoothing"])),
    }


def _settings() -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = load_config(ROOT / "config" / "config.yaml")
    sweep = cfg["lr_range"]
    keys = ("start", "end", "steps", "smoothing", "diverge_factor")
    return cfg, {key: sweep[key] for key in keys}


def compare(
    seeds: list[int], batches: str = "same", reference_seeds: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cfg, settings = _settings()
    task = load_task("digits")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prepare(task, tmp, seed=0)
        data = load_train_val(tmp)
        for arch in ARCHS:
            for seed in seeds:
                config = _config(task, cfg["train"], seed, arch)
                ours = lr_range_test(
                    config,
                    data,
                    task.build_model,
                    LRRangeSettings(**settings),
                    device=torch.device("cpu"),
                )
                theirs = run_theirs(config, data, task, batches=batches, **settings)
                n = min(ours["steps_run"], theirs["steps_run"])
                raw_theirs = _raw_from_theirs(theirs["smoothed"], settings["smoothing"])
                raw_gap = float(np.max(np.abs(np.array(ours["losses"][:n]) - raw_theirs[:n])))
                # our rule on their curve: separates the rule from batch-to-batch noise
                ours_on_theirs = analyse(
                    theirs["lrs"],
                    raw_theirs,
                    smoothing=settings["smoothing"],
                    diverge_factor=settings["diverge_factor"],
                )["suggestion"]
                # a one-sided reading of their curve: steepest one-step slope of the forward
                # EMA, from 10% of the steps to its minimum (no lag correction)
                one_sided = _steepest(
                    np.array(theirs["lrs"]), smooth(raw_theirs, settings["smoothing"])
                )
                ratio = ours["suggestion"] / theirs["suggestion"] if theirs["suggestion"] else None
                rows.append(
                    {
                        "arch": arch,
                        "seed": seed,
                        "trial_seed": config.seed,
                        "ours": ours["suggestion"],
                        "theirs": theirs["suggestion"],
                        "ratio": ratio,
                        "ours_rule_on_their_curve": ours_on_theirs,
                        "one_sided_on_their_curve": one_sided,
                        "range": ours["range"],
                        "min_loss_lr": ours["min_loss_lr"],
                        "divergence_lr": ours["divergence_lr"],
                        "theirs_min_loss_lr": theirs["min_loss_lr"],
                        "steps_run": ours["steps_run"],
                        "theirs_steps_run": theirs["steps_run"],
                        "raw_loss_max_abs_diff": raw_gap,
                        "seconds": ours["seconds"],
                        "theirs_seconds": theirs["seconds"],
                    }
                )
        refs = [
            reference(data, task, cfg["train"], settings, arch, reference_seeds)
            for arch in ARCHS
            if reference_seeds > 0
        ]
    return rows, refs


def _g(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "arch",
        "seed",
        "ours",
        "theirs",
        "ours/theirs",
        "our range",
        "min-loss LR",
        "divergence LR",
        "steps",
        "raw gap",
    )
    body = [
        (
            r["arch"],
            str(r["seed"]),
            _g(r["ours"]),
            _g(r["theirs"]),
            _g(r["ratio"]),
            f"[{_g(r['range'][0])}, {_g(r['range'][1])}]",
            _g(r["min_loss_lr"]),
            _g(r["divergence_lr"]),
            f"{r['steps_run']}/{r['theirs_steps_run']}",
            f"{r['raw_loss_max_abs_diff']:.1e}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]

    def fmt(line: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), rule, *(fmt(line) for line in body)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="ladder seeds (the trial seed is derived from each as the sanity rung does)",
    )
    parser.add_argument(
        "--batches",
        choices=("same", "shuffled"),
        default="same",
        help="same: torch-lr-finder sees our exact batch sequence (default); "
        "shuffled: an ordinary DataLoader(shuffle=True, drop_last=True) with its own seed",
    )
    parser.add_argument(
        "--reference",
        type=int,
        default=16,
        metavar="K",
        help="also read the steepest descent off the mean raw curve of K seeds (0: skip)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write rows and reference as JSON"
    )
    args = parser.parse_args(argv)
    try:
        import torch_lr_finder  # noqa: F401
    except ImportError:
        print("needs torch-lr-finder: pip install torch-lr-finder", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows, refs = compare(args.seeds, args.batches, args.reference)
    print(table(rows))
    print(
        "\nours, theirs: suggested LR; steps: steps run (ours/theirs); raw gap: largest"
        " |difference| of the per-step raw losses (theirs recovered from its smoothed curve)"
    )
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    if ratios:
        spread = max(max(r, 1 / r) for r in ratios)
        print(f"ours/theirs within a factor of {spread:.3g} over {len(ratios)} runs")
    same_rule = sum(
        r["theirs"] is not None and math.isclose(r["ours_rule_on_their_curve"], r["theirs"])
        for r in rows
    )
    print(f"our rule on their recorded curve gives their suggestion in {same_rule}/{len(rows)}")
    one_sided = sum(
        r["theirs"] is not None and math.isclose(r["one_sided_on_their_curve"], r["theirs"])
        for r in rows
    )
    print(
        "steepest one-step slope of the forward EMA of their curve (10% of the steps to its"
        f" minimum) gives their suggestion in {one_sided}/{len(rows)}"
    )
    for ref in refs:
        print(
            f"{ref['arch']}: mean raw curve of {ref['seeds']} seeds: steepest descent at"
            f" {_g(ref['steepest_of_mean'])}, {_g(ref['steepest_of_mean_after_ema'])} after a"
            " forward EMA"
        )
    print(f"({time.perf_counter() - started:.1f} s)")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "reference": refs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
