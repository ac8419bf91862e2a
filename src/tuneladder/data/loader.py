"""A split read through a DataLoader: Datasets not held in memory, and augmentation.

The in-memory path (:class:`Split`) indexes tensors on the
device. A :class:`DatasetSplit` reads its samples from a Dataset through one
DataLoader, made on first use and kept as long as the split: with
``num_workers`` its worker processes persist across epochs, and across the
trials of a worker job. The loader does not choose the order: the training loop
draws the same index batches as on the in-memory path and hands them to the
loader's batch sampler, so both paths train on the same batches.

A ``train_transform`` is seeded per sample from (trial seed, epoch, sample's
position in the split), inside whichever process reads the sample, so neither
the number of workers nor which worker reads a sample changes what it draws,
and a resumed trial draws what it would have drawn.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import default_collate as collate

from tuneladder.data.datasets import as_input
from tuneladder.infra.device import Loading

# Loading lives in tuneladder.infra.device, beside the Runtime it comes from; importable here too
__all__ = [
    "EVAL_BATCH",
    "EVAL_BATCH_SAMPLES",
    "DatasetSplit",
    "Loading",
    "Split",
    "TensorPairs",
    "epoch_seed",
]

EVAL_BATCH = 4096  # samples per evaluation batch of a split held in memory

# Samples per evaluation batch read through a loader: a tenth of the in-memory
# path's, since a sample here may be a full-size image.
EVAL_BATCH_SAMPLES = 256
_GOLDEN = 0x9E3779B97F4A7C15  # spreads consecutive positions over the 64-bit seeds
_MASK = (1 << 64) - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's augmentation draws, from the trial's seed and the epoch."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])


@dataclass(frozen=True)
class Split:
    """A split held as tensors: batched by indexing, on the device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n])

    def take(self, positions: torch.Tensor) -> Split:
        positions = positions.to(self.x.device)
        return Split(self.x[positions], self.y[positions])

    def batches(
        self, order: Iterable[torch.Tensor], *, seed: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` for each batch of indices in ``order`` (``seed``: for DatasetSplit)."""
        for idx in order:
            yield self.x[idx], self.y[idx]

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self), EVAL_BATCH):
            yield self.x[start : start + EVAL_BATCH], self.y[start : start + EVAL_BATCH]


class TensorPairs(Dataset):
    """Materialised samples as a Dataset: augmentation on data held in memory."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class _Samples(Dataset):
    """What the loader reads: key ``(seed, index)`` gives the sample, transformed if asked."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any] | None) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, Any]:
        seed, index = key
        x, y = self.dataset[index]
        x = as_input(x)
        if self.transform is not None:
            with _seeded(seed):
                x = as_input(self.transform(x))
        return x, y


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Torch's CPU generator and Python's seeded for one sample, then put back.

    Only the CPU generator: seeding CUDA too (``torch.manual_seed``) would move the
    training loop's own stream when samples are read in the main process.
    """
    torch_state, python_state = torch.default_generator.get_state(), random.getstate()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.default_generator.set_state(torch_state)
        random.setstate(python_state)


class _Order:
    """The loader's batch sampler: yields the batches of keys set before each pass."""

    def __init__(self) -> None:
        self.pending: Iterable[list[tuple[int, int]]] = ()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches, self.pending = self.pending, ()
        yield from batches


def _keys(
    order: Iterable[torch.Tensor], index: list[int] | None, seed: int
) -> Iterator[list[tuple[int, int]]]:
    """Batches of ``(sample seed, index in the Dataset)``, from batches of positions.

    A function of its arguments alone: were it a closure over the split, a pass
    left unfinished would tie the split and its loader's workers in a cycle.
    """
    for idx in order:
        yield [
            ((seed + p * _GOLDEN) & _MASK, index[p] if index is not None else p)
            for p in idx.tolist()
        ]


class DatasetSplit:
    """A train, val or test split whose samples a Dataset reads when asked.

    Args:
        dataset: The Dataset of ``(x, y)`` samples.
        indices: The split's samples in ``dataset``; None: all of them.
        kind: The task's kind: targets become class indices or float rows.
        y: The split's targets as prepare stored them (train and val), for what
            needs them without reading samples (the trivial predictor); None
            for test.
        transform: Applied to ``x`` of every sample read for training.
        target_scale: ``(mean, std)`` per output that standardise a regression
            target as read; None when targets are used as they are.
        loading: Workers and pinned memory.
        device: Where batches go.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        indices: torch.Tensor | None,
        kind: str,
        y: torch.Tensor | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_scale: tuple[torch.Tensor, torch.Tensor] | None = None,
        loading: Loading | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.dataset, self.indices, self.kind, self.y = dataset, indices, kind, y
        self.transform, self.target_scale = transform, target_scale
        self.loading = loading or Loading()
        self._device = torch.device(device)
        # on the device once: a copy per batch would wait for the GPU at every step
        self._scale = (
            None if target_scale is None else tuple(t.to(self._device) for t in target_scale)
        )
        self._index = indices.tolist() if indices is not None else None
        self._loader: DataLoader | None = None
        self._order = _Order()

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else len(self.dataset)

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> DatasetSplit:
        return self._with(device=device)

    def with_loading(self, loading: Loading) -> DatasetSplit:
        return self._with(loading=loading)

    def _with(self, **changes: Any) -> DatasetSplit:
        fields = {
            "indices": self.indices,
            "kind": self.kind,
            "y": self.y,
            "transform": self.transform,
            "target_scale": self.target_scale,
            "loading": self.loading,
            "device": self._device,
        }
        return DatasetSplit(self.dataset, **{**fields, **changes})

    def take(self, positions: torch.Tensor) -> Split:
        """The samples at ``positions`` as tensors on the device, without augmentation."""
        plain = _Samples(self.dataset, None)
        xs, ys = zip(*(plain[(0, self._at(p))] for p in positions.tolist()), strict=True)
        return Split(torch.stack(xs), self._targets(collate(list(ys)))).to(self._device)

    def batches(
        self, order: Iterable[torch.Tensor], *, seed: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` on the device for each batch of positions in ``order``.

        ``seed`` (:func:`epoch_seed`) seeds the transform's draws of this pass.
        """
        if isinstance(order, tuple | list) and order and order[0].device.type != "cpu":
            sizes = [len(idx) for idx in order]  # one transfer for the epoch, not one a step
            order = torch.cat(list(order)).cpu().split(sizes)
        self._order.pending = _keys(order, self._index, seed)
        pinned = self._pinned()
        for xb, yb in self._get_loader():
            yield xb.to(self._device, non_blocking=pinned), self._targets(yb)

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split in order, in batches of :data:`EVAL_BATCH_SAMPLES`."""
        return self.batches(torch.arange(len(self)).split(EVAL_BATCH_SAMPLES))

    def _at(self, position: int) -> int:
        return self._index[position] if self._index is not None else position

    def _pinned(self) -> bool:
        return self.loading.pin_memory and self._device.type == "cuda"

    def _get_loader(self) -> DataLoader:
        if self._loader is None:
            workers = self.loading.num_workers
            self._loader = DataLoader(
                _Samples(self.dataset, self.transform),
                batch_sampler=self._order,
                num_workers=workers,
                pin_memory=self._pinned(),
                persistent_workers=workers > 0,
                # its own generator: making an iterator draws a seed, which must not
                # come from (and move) the global stream the model's dropout uses
                generator=torch.Generator(),
            )
        return self._loader

    def _targets(self, y: Any) -> torch.Tensor:
        y = torch.as_tensor(y)
        if self.kind == "classification":
            return y.to(self._device, torch.long, non_blocking=self._pinned())
        y = y.to(self._device, torch.float32, non_blocking=self._pinned()).reshape(len(y), -1)
        if self._scale is not None:
            mean, std = self._scale
            y = (y - mean) / std
        return y
