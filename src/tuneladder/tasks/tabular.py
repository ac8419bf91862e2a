"""Any CSV or Parquet file with a target column: classification or regression, MLP."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tuneladder.tasks._base import DataInfo, Task
from tuneladder.tasks.models import MLP

__all__ = ["check_data_path", "data_path", "make_task"]

DEFAULT_MODEL = {"width": 128, "num_layers": 2, "dropout": 0.1}
OPTIONS = {"path", "target", "kind", "split"}


def make_task(options: Mapping[str, Any]) -> Task:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown option task.options.{unknown[0]} (csv takes {sorted(OPTIONS)})")
    for key in ("path", "target"):
        if not options.get(key):
            raise ValueError(f"task.options.{key} is required for the csv task")
    kind = options.get("kind", "classification")
    # resolved once, against the directory the ladder runs in (config.py checks it exists)
    path = data_path(options["path"])
    target = str(options["target"])
    return Task(
        name=f"csv:{path.name}",
        kind=kind,
        load_arrays=lambda: load_table(path, target, kind),
        build_model=_build_model,
        default_model=DEFAULT_MODEL,
        standardize=True,
        split=tuple(options.get("split", (0.6, 0.2, 0.2))),
    )


def data_path(value: Any) -> Path:
    """``task.options.path`` as an absolute path, relative ones from the working directory."""
    return Path(str(value)).expanduser().resolve()


def check_data_path(value: Any) -> None:
    """Refuse a data path that is not an existing file, naming the key and the path."""
    path = data_path(value)
    if not path.is_file():
        what = "is a directory, not a data file" if path.is_dir() else "data file not found"
        raise ValueError(f"task.options.path: {what}: {path}")


def load_table(path: Path, target: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the file and check it, naming the file and column of any problem."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"task.options.path: data file not found: {path}")
    try:
        table = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as err:  # pandas raises many types for unreadable files
        raise ValueError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if table.empty:
        raise ValueError(f"{path}: has no rows")
    if target not in table.columns:
        raise ValueError(
            f"{path}: no target column {target!r} (columns: {', '.join(map(str, table.columns))})"
        )
    features = table.drop(columns=[target])
    if features.shape[1] == 0:
        raise ValueError(f"{path}: has no feature columns besides {target!r}")
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise ValueError(f"{path}: feature column {text[0]!r} is not numeric")
    missing = features.columns[features.isna().any()].tolist()
    if missing:
        raise ValueError(f"{path}: feature column {missing[0]!r} has missing values")
    x = features.to_numpy(dtype=np.float32)
    y_col = table[target]
    if y_col.isna().any():
        raise ValueError(f"{path}: target column {target!r} has missing values")
    if kind == "classification":
        classes, y = np.unique(y_col.to_numpy(), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{path}: target {target!r} has a single class ({classes[0]!r})")
        return x, y.astype(np.int64)
    if not pd.api.types.is_numeric_dtype(y_col):
        raise ValueError(f"{path}: regression target {target!r} is not numeric")
    return x, y_col.to_numpy(dtype=np.float32)[:, None]


def _build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    return MLP(
        info.input_shape,
        info.n_outputs,
        width=int(hp["width"]),
        num_layers=int(hp["num_layers"]),
        dropout=float(hp["dropout"]),
    )
