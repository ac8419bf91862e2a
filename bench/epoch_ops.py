"""What a trial's epoch adds to a plain loop, counted in tensor operations, on any device.

On a GPU a small model's epoch is bound by kernel launches, one per tensor
operation that computes something; this counts those operations (views and
other metadata-only ones left out) with a ``TorchDispatchMode``, for the
runner's ``train`` and for the plain loop of ``bench/trial_throughput.py``, and
prints the ones the runner adds per epoch. Runs on the CPU: the count is a
deterministic stand-in for the GPU profiler's (which ``bench/host_syncs.py``
takes where there is a GPU). The CPU has no fused (``foreach``) norms, so norms
count several operations here where CUDA launches one.

    python bench/epoch_ops.py [--epochs 5] [--batch 128] [--model cnn]
"""

from __future__ import annotations

import argparse
import collections
import tempfile

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from trial_throughput import MODELS, minimal_loop, runner_loop  # bench/, beside this file

from tuneladder.core.hparams import TrialConfig
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.tasks import load_task

# operations that only make a new view of a tensor: no kernel runs for them
VIEWS = frozenset(
    "view _unsafe_view reshape t detach expand select slice diagonal alias as_strided"
    " unsqueeze squeeze permute transpose split split_with_sizes unbind lift_fresh".split()
)


class OpCount(TorchDispatchMode):
    """Counts each tensor operation dispatched inside it, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name not in VIEWS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--model", default="cnn", choices=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task("digits")
    with tempfile.TemporaryDirectory() as tmp:
        prepare(task, tmp, seed=0)
        data = load_train_val(tmp)
        config = TrialConfig(
            epochs=args.epochs, batch_size=args.batch, lr=1e-3, model=MODELS[args.model]
        )
        counted = {}
        for side, loop in (("plain loop", minimal_loop), ("trial", runner_loop)):
            with OpCount() as ops:
                loop(config, data, task, torch.device("cpu"))
            counted[side] = ops.counts
    plain, trial = counted["plain loop"], counted["trial"]
    per_epoch = {side: sum(c.values()) / args.epochs for side, c in counted.items()}
    print(
        f"digits {args.model}, batch {args.batch}, {args.epochs} epochs (CPU):"
        f" plain loop {per_epoch['plain loop']:.1f} ops an epoch,"
        f" trial {per_epoch['trial']:.1f}: {per_epoch['trial'] - per_epoch['plain loop']:+.1f}"
    )
    differences = {"the trial adds": trial - plain, "the plain loop adds": plain - trial}
    for title, extra in differences.items():
        items = sorted(extra.items(), key=lambda kv: -kv[1])
        print(f"{title}, per epoch: " + ", ".join(f"{k} {v / args.epochs:g}" for k, v in items))


if __name__ == "__main__":
    main()
