"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneladder.tasks._base import DataInfo, Task

if TYPE_CHECKING:
    from torch import nn

__all__ = ["applies", "build_model", "make_task"]

DEFAULT_MODEL = {"arch": "mlp", "width": 128, "num_layers": 2, "channels": 16, "dropout": 0.1}


def make_task(options: Mapping[str, Any]) -> Task:
    unknown = set(options) - {"split"}
    if unknown:
        raise ValueError(f"unknown option task.options.{sorted(unknown)[0]} (digits takes split)")
    split = tuple(options.get("split", (0.6, 0.2, 0.2)))
    return Task(
        name="digits",
        kind="classification",
        load_arrays=_load_arrays,
        build_model=build_model,
        default_model=DEFAULT_MODEL,
        split=split,
        applies=applies,
    )


def _load_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # the prepare rung only: keeps trials light

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return x, digits.target.astype(np.int64)


def build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    """``arch`` picks the family; ``channels`` is read by the CNN only."""
    # torch only where a model is built: resolving a config (every `snakemake -n`,
    # every cluster job's parse) loads this module and must stay light
    from tuneladder.tasks.models import mlp_or_cnn

    return mlp_or_cnn(hp, info)


def applies(hp: Mapping[str, Any]) -> list[str]:
    """The model hyperparameters :func:`build_model` reads for this ``arch``.

    The CNN reads all of them (``width`` is its hidden dense layer); the MLP never
    reads ``channels``, and with no hidden layer it has no ``width`` or ``dropout``.
    """
    unused = set()
    if hp.get("arch") == "mlp":
        unused.add("channels")
        if int(hp.get("num_layers", 1)) == 0:
            unused.update(("width", "dropout"))
    return [name for name in hp if name not in unused]
