"""A task's torch Datasets as the prepare rung meets them: opened, labelled, read.

``Task.load_datasets`` returns one Dataset (the library splits it) or the
task's own fixed splits. Everything here reads through ``dataset[i]`` and
``len(dataset)`` only, so any map-style Dataset works; the test part is never
passed to a function here that reads samples (:mod:`tuneladder.data.prepared` sees to
that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tuneladder.core.errors import DataError, call_task_function, user_error, wrong_return
from tuneladder.tasks import SPLIT_NAMES

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from tuneladder.tasks import Task

__all__ = ["ALL", "as_input", "input_of", "labels_of", "open_sources", "read_inputs"]

ALL = "all"  # the name of a task's one Dataset, which the library splits


def open_sources(task: Task) -> dict[str, Dataset]:
    """``{"all": dataset}`` for one Dataset, else the task's fixed splits by name.

    Constructing a Dataset reads no sample; this only calls ``load_datasets``.
    """
    assert task.load_datasets is not None
    value = call_task_function(task.load_datasets)
    expected = "a Dataset, or a mapping {'train', 'test'[, 'val']} of Datasets"
    if isinstance(value, Mapping):
        names = set(value)
        if not names <= set(SPLIT_NAMES) or not {"train", "test"} <= names:
            raise wrong_return(task.load_datasets, value, f"{expected}; got keys {sorted(names)}")
        for name, part in value.items():
            if not _is_dataset(part):
                raise wrong_return(task.load_datasets, part, f"a Dataset for {name!r}")
        return {name: value[name] for name in SPLIT_NAMES if name in value}
    if _is_dataset(value):
        return {ALL: value}
    raise wrong_return(task.load_datasets, value, expected)


def _is_dataset(value: Any) -> bool:
    return hasattr(value, "__getitem__") and hasattr(value, "__len__")


def as_input(x: Any) -> torch.Tensor:
    """A sample's input as a float32 tensor (images from torchvision are already)."""
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def _sample(dataset: Dataset, index: int, what: str) -> tuple[Any, Any]:
    try:
        sample = dataset[index]
    except Exception as err:  # the user's Dataset may fail in any way: point at its line
        raise user_error(type(dataset).__getitem__, err) from err
    if not (isinstance(sample, tuple | list) and len(sample) == 2):
        raise DataError(
            f"{what}: sample {index} is {type(sample).__name__}, expected a pair (x, y)"
        )
    return sample[0], sample[1]


def input_of(dataset: Dataset, index: int, what: str) -> torch.Tensor:
    """One sample's input, checked: a tensor or array of numbers."""
    x, _ = _sample(dataset, index, what)
    try:
        tensor = as_input(x)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(
            f"{what}: sample {index}'s x is {type(x).__name__}, expected a tensor or array"
            " (an image needs a transform that makes a tensor, such as torchvision's"
            " ToTensor)"
        ) from None
    if tensor.ndim == 0:
        raise DataError(f"{what}: sample {index}'s x is a single number, expected features")
    return tensor


def labels_of(dataset: Dataset, what: str) -> np.ndarray:
    """Every sample's target, from ``dataset.targets`` when it has them, else by reading.

    Reading means one pass over the samples (decoding every image): torchvision's
    datasets carry ``targets``, and a Dataset of one's own can too.
    """
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return np.asarray(targets.numpy() if isinstance(targets, torch.Tensor) else targets)
    return np.asarray([_target(_sample(dataset, i, what)[1]) for i in range(len(dataset))])


def _target(y: Any) -> Any:
    return y.numpy() if isinstance(y, torch.Tensor) else y


def read_inputs(dataset: Dataset, indices: Sequence[int], what: str) -> torch.Tensor:
    """The inputs of the samples at ``indices``, stacked: materialising a split."""
    first = input_of(dataset, int(indices[0]), what)
    out = torch.empty((len(indices), *first.shape), dtype=torch.float32)
    for row, index in enumerate(indices):
        x = as_input(_sample(dataset, int(index), what)[0])
        if x.shape != first.shape:
            raise DataError(
                f"{what}: sample {int(index)}'s x has shape {tuple(x.shape)}, sample"
                f" {int(indices[0])}'s {tuple(first.shape)}: every sample needs one shape"
            )
        out[row] = x
    return out
