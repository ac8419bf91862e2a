"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes."""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Mapping
from pathlib import Path
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
    images, target = _read_digits()
    x = (images / 16.0).astype(np.float32)[:, None, :, :]
    return x, target.astype(np.int64)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 images (0-16) and labels, as ``sklearn.datasets.load_digits`` gives them.

    Its file is read directly: importing scikit-learn (pandas, scipy.stats) took
    1.2 of the prepare rung's 3.5 s, for a 1,797-line table. Should the file move
    in a later scikit-learn, its own loader still works.
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                table = np.loadtxt(handle, delimiter=",")
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
    from sklearn.datasets import load_digits  # the prepare rung only: keeps trials light

    digits = load_digits()
    return digits.images, digits.target


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
