"""Any CSV or Parquet file with a target column: classification or regression, MLP."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneladder.preflight import DataError
from tuneladder.tasks._base import DataInfo, Task

if TYPE_CHECKING:
    from torch import nn

__all__ = ["check_data_path", "check_header", "data_path", "load_table", "make_task"]

DEFAULT_MODEL = {"width": 128, "num_layers": 2, "dropout": 0.1}
OPTIONS = {"path", "target", "kind", "split"}
SHOWN_COLUMNS = 10  # of a header, in an error line


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


def check_header(value: Any, target: str) -> None:
    """Refuse a CSV file whose header line lacks the target column; reads that line only.

    Runs at config time, on every parse of the Snakefile, so only what the
    header shows is checked here; the contents (text, missing values, classes)
    are checked by the prepare rung. Other formats are left to the prepare rung
    too: a Parquet schema needs pyarrow, an import on every parse (about 0.2 s),
    for a mistake that prepare reports seconds later anyway.
    """
    import csv

    path = data_path(value)
    if path.suffix.lower() != ".csv":
        return
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, csv.Error) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not header:
        raise DataError(f"{path}: cannot read (the file is empty: no header line)")
    _check_target(path, target, header)


def _check_target(path: Path, target: str, columns: list[str]) -> None:
    if target not in columns:
        shown = ", ".join(columns[:SHOWN_COLUMNS])
        more = len(columns) - SHOWN_COLUMNS
        shown += f" and {more} more" if more > 0 else ""
        hint = difflib.get_close_matches(target, columns, n=1)
        close = f"; did you mean {hint[0]!r}?" if hint else ""
        raise DataError(f"{path}: no target column {target!r} (columns: {shown}{close})")


def load_table(path: Path, target: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the file and check it, naming the file and column of any problem."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"task.options.path: data file not found: {path}")
    try:
        table = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as err:  # pandas raises many types for unreadable files
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if table.empty:
        raise DataError(f"{path}: has no rows")
    _check_target(path, target, [str(c) for c in table.columns])
    features = table.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{path}: has no feature columns besides {target!r}")
    for column in features.columns:
        _check_column(path, f"feature column {column!r}", features[column], numeric=True)
    _check_column(path, f"target column {target!r}", table[target], numeric=kind == "regression")
    x = features.to_numpy(dtype=np.float32)
    if kind == "classification":
        classes, y = np.unique(table[target].to_numpy(), return_inverse=True)
        if len(classes) < 2:
            only = classes[:1].tolist()[0]
            raise DataError(f"{path}: target {target!r} has a single class ({only!r})")
        return x, y.astype(np.int64)
    return x, table[target].to_numpy(dtype=np.float32)[:, None]


def _check_column(path: Path, name: str, values: Any, *, numeric: bool) -> None:
    """Refuse missing, non-numeric (where numbers are needed) or infinite values."""
    import pandas as pd

    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(f"{path}: {name} has missing values ({_rows(missing)})")
    if not numeric:
        return
    if not pd.api.types.is_numeric_dtype(values):
        text = pd.to_numeric(values, errors="coerce").isna().to_numpy()
        if not text.any():  # dates, say: every value converts, but not to a number
            raise DataError(f"{path}: {name} is not numeric (dtype {values.dtype})")
        first = str(values.to_numpy()[text.argmax()])
        raise DataError(f"{path}: {name} is not numeric ({_rows(text)}, e.g. {first!r})")
    infinite = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if infinite.any():
        raise DataError(f"{path}: {name} has infinite values ({_rows(infinite)})")


def _rows(bad: np.ndarray) -> str:
    """``3 rows, first: data row 7`` (rows counted from 1 below the header)."""
    count = int(bad.sum())
    return f"{count} row{'s' if count > 1 else ''}, first: data row {int(bad.argmax()) + 1}"


def _build_model(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    from tuneladder.tasks.models import MLP  # torch only where a model is built

    return MLP(
        info.input_shape,
        info.n_outputs,
        width=int(hp["width"]),
        num_layers=int(hp["num_layers"]),
        dropout=float(hp["dropout"]),
    )
