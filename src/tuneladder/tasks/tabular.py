"""Any CSV or Parquet file with a target column: classification or regression, MLP."""

from __future__ import annotations

import codecs
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneladder.core.errors import DataError
from tuneladder.tasks._base import DataInfo, Encoded, Task

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

__all__ = [
    "TableOptions",
    "check_data_path",
    "check_header",
    "data_path",
    "encode_table",
    "load_table",
    "make_task",
]

DEFAULT_MODEL = {"width": 128, "num_layers": 2, "dropout": 0.1}
OPTIONS = {
    "path",
    "target",
    "kind",
    "split",
    "categorical",
    "max_categories",
    "missing",
    "missing_target",
    "drop",
    "sep",
    "decimal",
    "thousands",
    "encoding",
}
# what sep: auto chooses among, the comma first (it wins a tie)
SEPARATORS = (",", ";", "\t", "|")
SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods")
# what load_table changed in the rows, for encode_table to report with its own changes
# (the table travels from one to the other through prepare as it is)
ROW_CHANGES = "tuneladder_row_changes"
# the columns that counted the rows before load_table dropped any (an ID with a gap
# where a row went still counts them)
COUNTING_COLUMNS = "tuneladder_counting_columns"
SHOWN_COLUMNS = 10  # of a header, in an error line
SHOWN_CATEGORIES = 5  # of a text column's categories, in prepare's summary


@dataclass(frozen=True)
class TableOptions:
    """How the csv task turns a table's columns into features (``task.options``)."""

    categorical: str = "onehot"  # text feature columns: onehot, or error
    max_categories: int = 20  # a text column with more distinct values is refused
    missing: str = "fill"  # missing feature values: fill (train median + indicator), or error
    missing_target: str = "error"  # rows without a target value: error, or drop them
    drop: tuple[str, ...] = ()  # columns left out
    # how a CSV file is written: its separator (auto: the header line's), decimal mark
    # (None: '.', and a text column of numbers with decimal commas is refused as such),
    # and text encoding
    sep: str = "auto"
    decimal: str | None = None
    thousands: str | None = None
    encoding: str = "utf-8"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TableOptions:
        made = cls(
            categorical=str(options.get("categorical", cls.categorical)),
            max_categories=int(options.get("max_categories", cls.max_categories)),
            missing=str(options.get("missing", cls.missing)),
            missing_target=str(options.get("missing_target", cls.missing_target)),
            drop=dropped_columns(options.get("drop")),
            sep=_separator_option(options.get("sep", cls.sep)),
            decimal=None if options.get("decimal") is None else str(options["decimal"]),
            thousands=None if options.get("thousands") is None else str(options["thousands"]),
            encoding=str(options.get("encoding", cls.encoding)),
        )
        if made.sep != "auto" and len(made.sep) != 1:
            raise ValueError(
                f"task.options.sep must be auto or one character (',' ';' tab '|'),"
                f" got {made.sep!r}"
            )
        if made.decimal not in (None, ".", ","):
            raise ValueError(f"task.options.decimal must be '.' or ',', got {made.decimal!r}")
        if made.thousands not in (None, ".", ",", " ", "'"):
            raise ValueError(
                f"task.options.thousands must be '.', ',', ' ' or \"'\", got {made.thousands!r}"
            )
        try:
            codecs.lookup(made.encoding)
        except LookupError:
            raise ValueError(
                f"task.options.encoding: unknown encoding {made.encoding!r}"
                " (utf-8, latin-1 and cp1252 are common)"
            ) from None
        for key, allowed in (
            ("categorical", ("onehot", "error")),
            ("missing", ("fill", "error")),
            ("missing_target", ("error", "drop")),
        ):
            if (value := getattr(made, key)) not in allowed:
                choices = " or ".join(allowed)
                raise ValueError(f"task.options.{key} must be {choices}, got {value!r}")
        if made.max_categories < 2:
            raise ValueError(
                f"task.options.max_categories must be >= 2, got {made.max_categories}"
            )
        return made


def _separator_option(value: Any) -> str:
    """``task.options.sep`` as the character: YAML's single quotes keep ``'\\t'`` as
    two, and ``tab`` says it in words."""
    text = str(value)
    return "\t" if text in ("\\t", "tab") else text


def dropped_columns(value: Any) -> tuple[str, ...]:
    """``task.options.drop`` as column names: a list of them, or one name alone (a string
    read as a list would name its letters)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise ValueError(f"task.options.drop must be a list of column names, got {value!r}")
    return tuple(str(c) for c in value)


def make_task(options: Mapping[str, Any]) -> Task:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown option task.options.{unknown[0]} (csv takes {sorted(OPTIONS)})")
    for key in ("path", "target"):
        if not options.get(key):
            raise ValueError(f"task.options.{key} is required for the csv task")
    # unset, classification: the table decides whether its target can be classes
    kind = options.get("kind") or "classification"
    kind_set = options.get("kind") is not None
    table_options = TableOptions.from_options(options)
    # resolved once, against the directory the ladder runs in (config.py checks it exists)
    path = data_path(options["path"])
    target = str(options["target"])
    return Task(
        name=f"csv:{path.name}",
        kind=kind,
        load_arrays=lambda: load_table(path, target, kind, table_options, kind_set=kind_set),
        encode=lambda table, train_rows: encode_table(table, train_rows, table_options),
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


def check_header(
    value: Any, target: str, drop: Any = (), options: TableOptions | None = None
) -> None:
    """Refuse a CSV file whose header line lacks the target column, or a column
    ``task.options.drop`` names, and a spreadsheet or a file not in its encoding;
    reads the file's start only.

    Runs at config time, on every parse of the Snakefile, so only what the
    header shows is checked here; the contents (text, missing values, classes)
    are checked by the prepare rung. Other formats are left to the prepare rung
    too: a Parquet schema needs pyarrow, an import on every parse (about 0.2 s),
    for a mistake that prepare reports seconds later anyway.
    """
    import csv
    import io

    options = options or TableOptions()
    path = data_path(value)
    _refuse_spreadsheet(path)
    if path.suffix.lower() != ".csv":
        return
    start = _text_start(path, options.encoding)
    sep = separator(start, options.sep)
    try:
        header = next(csv.reader(io.StringIO(start), delimiter=sep), None)
    except csv.Error as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not header:
        raise DataError(f"{path}: cannot read (the file is empty: no header line)")
    _check_target(path, target, header)
    named = _pandas_names(header)  # what prepare's pandas calls them: drop may use either
    for column in dropped_columns(drop):
        if column not in header and column not in named:
            raise DataError(
                f"task.options.drop names {column!r}, which is not a column of {path}"
                f"{_close(column, named)}"
            )


def separator(start: str, sep: str = "auto") -> str:
    """The column separator of a CSV file that starts with ``start``: ``sep`` unless it
    is ``auto``; then the one of comma, ``;``, tab and ``|`` the header line holds most
    often outside quotes, a comma on a tie (files saved where the comma is the
    decimal mark use ``;``, and a column name may hold a comma)."""
    if sep != "auto":
        return sep
    header = re.sub(r'"[^"]*"', "", start.split("\n", 1)[0])  # quoted names' own commas
    return max(SEPARATORS, key=header.count)  # the first of the most frequent: a tie, ','.


def _text_start(path: Path, encoding: str, size: int = 1 << 16) -> str:
    """The file's first ``size`` bytes, and on to the end of its header line (a wide
    table's can be longer), as text; refused when not in ``encoding``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(size)
            while b"\n" not in head and (more := handle.read(size)):
                head += more
    except OSError as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    try:  # not final: the read may end inside a character
        return codecs.getincrementaldecoder(_codec(encoding))().decode(head, final=False)
    except UnicodeDecodeError as err:
        raise DataError(_not_text(path, encoding, err)) from None


def _codec(encoding: str) -> str:
    """The codec that reads ``encoding``: UTF-8 past the byte-order mark Excel writes."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _not_text(path: Path, encoding: str, err: UnicodeDecodeError) -> str:
    byte = err.object[err.start : err.start + 1].hex()
    return (
        f"{path}: is not {encoding} text (byte 0x{byte} cannot be read as {encoding}): save"
        " it as UTF-8, or set task.options.encoding to the file's (latin-1 and cp1252 are"
        " common for files from Excel)"
    )


def _refuse_spreadsheet(path: Path) -> None:
    if path.suffix.lower() in SPREADSHEETS:
        raise DataError(
            f"{path}: a spreadsheet, which the csv task does not read: save the sheet as"
            " CSV (UTF-8) or Parquet and point task.options.path at that"
        )


def _pandas_names(header: list[str]) -> list[str]:
    """The header's columns as ``pandas.read_csv`` names them: a blank one ``Unnamed: i``
    (an index ``to_csv`` wrote), a repeated one ``name.1``, ``name.2`` ..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw if raw != "" else f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            while f"{name}.{seen[name]}" in seen:
                seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def _close(name: str, columns: list[str]) -> str:
    """``; did you mean 'x'?`` for the column nearest ``name`` (spaces and case aside
    first: a header's padding is the usual slip), else nothing."""
    plain = {c.strip().lower(): c for c in columns}
    near = plain.get(name.strip().lower())
    if near is None:
        close = difflib.get_close_matches(name, columns, n=1)
        near = close[0] if close else None
    return f"; did you mean {near!r}?" if near is not None else ""


def _check_target(path: Path, target: str, columns: list[str]) -> None:
    if target not in columns:
        shown = ", ".join(map(repr, columns[:SHOWN_COLUMNS]))  # quoted: spaces show
        more = len(columns) - SHOWN_COLUMNS
        # the target is most often the last column: it is named, whatever the width
        shown += f" and {more} more, the last {columns[-1]!r}" if more > 0 else ""
        one = len(columns) == 1 and any(c in columns[0] for c in SEPARATORS)
        split = "; the header came out as one column: task.options.sep names the separator"
        raise DataError(
            f"{path}: no target column {target!r} (columns: {shown}{_close(target, columns)})"
            + (split if one else "")
        )


def load_table(
    path: Path,
    target: str,
    kind: str,
    options: TableOptions | None = None,
    *,
    kind_set: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's feature columns as a table, and its targets; every problem at once.

    What cannot be used is one :class:`DataError` that lists each problem with
    the option that fixes it. Text labels of a classification target stay text:
    prepare names the classes by them. ``kind_set`` False: the kind is the default
    (classification), and a target that looks like a quantity is refused rather
    than split into a class per value.
    """
    import pandas as pd

    options = options or TableOptions()
    if not path.is_file():
        raise DataError(f"task.options.path: data file not found: {path}")
    _refuse_spreadsheet(path)
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        sep = None if parquet else separator(_text_start(path, options.encoding), options.sep)
        table = pd.read_parquet(path) if parquet else _read_csv(path, options, sep)
    except UnicodeDecodeError as err:
        raise DataError(_not_text(path, options.encoding, err)) from None
    except DataError:
        raise
    except Exception as err:  # pandas raises many types for unreadable files
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if table.empty:
        raise DataError(f"{path}: has no rows")
    table.columns = [str(c) for c in table.columns]
    _check_target(path, target, list(table.columns))
    # text that reads as numbers in another notation: said where a comma is no separator
    hints = sep not in (None, ",")
    absent = [c for c in options.drop if c not in table]
    problems = [
        f"task.options.drop names {c!r}, which is not a column{_close(c, list(table.columns))}"
        for c in absent
    ]
    features = table.drop(columns=[target, *(c for c in options.drop if c in table)])
    if features.shape[1] == 0:
        raise DataError(f"{path}: has no feature columns besides {target!r}")
    for column in features.columns:
        problems += _column_problems(
            f"feature column {column!r}", features[column], options, hints
        )
    labels = table[target]
    missing = labels.isna().to_numpy()
    if missing.any() and options.missing_target == "error":
        problems.append(
            f"target column {target!r} has missing values ({_rows(missing)}): remove those"
            " rows from the file, or set task.options.missing_target: drop"
        )
    if kind != "classification":  # the rows with a value: each problem listed at once
        problems += _numeric_problems(f"target column {target!r}", labels, options, hints)
    elif not kind_set and labels.dtype.kind in "biuf":  # text labels are names of classes
        problems += _quantity_problems(target, labels[~missing])
    elif not kind_set and hints and (fix := _number_notation(labels[~missing], options)):
        problems.append(
            f"target column {target!r} holds numbers written with {_NOTATIONS[fix]} (e.g."
            f" {str(labels[~missing].iloc[0])!r}), a class for each value: set"
            f" task.options.{fix} and kind: regression, or kind: classification to keep"
            " them as classes"
        )
    if problems:
        shown = problems[0] if len(problems) == 1 else "".join(f"\n  - {p}" for p in problems)
        raise DataError(f"{path}: {shown}")
    if missing.all():
        raise DataError(f"{path}: target column {target!r} has no values")
    if missing.any():  # missing_target: drop
        counting = [
            column
            for column in features.columns
            if _is_numeric(features[column])
            and _counts_rows(pd.to_numeric(features[column], errors="coerce").to_numpy())
        ]
        features = features[~missing].reset_index(drop=True)
        labels = labels[~missing].reset_index(drop=True)
        features.attrs[COUNTING_COLUMNS] = counting
        features.attrs[ROW_CHANGES] = [
            f"target {target!r}: missing in {_rows(missing)}; those rows dropped"
            " (task.options.missing_target: drop)"
        ]
    if kind == "classification":
        values = labels.to_numpy()
        if len(np.unique(values.astype(str))) < 2:
            only = values[:1].tolist()[0]
            raise DataError(f"{path}: target {target!r} has a single class ({only!r})")
        # text labels stay text (prepare names the classes by them); whole numbers are
        # indices where they are 0, 1, ..., else names too (ratings 1-5, labels -1/1)
        whole = labels.dtype.kind in "biu" or (
            labels.dtype.kind == "f" and np.all(values == np.round(values))
        )
        if whole:
            indices = values.astype(np.int64)
            if np.array_equal(np.unique(indices), np.arange(indices.max() + 1)):
                return features, indices
            return features, indices.astype(str)
        return features, values.astype(str)
    # float64: prepare standardises it first, and float32 would lose a spread far from 0
    return features, labels.to_numpy(dtype=np.float64)[:, None]


def _read_csv(path: Path, options: TableOptions, sep: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(
        path,
        sep=sep,
        decimal=options.decimal or ".",
        thousands=options.thousands,
        encoding=_codec(options.encoding),
    )


# a target with more distinct values than this, and fewer rows than FEW_ROWS_A_CLASS for
# each, is a quantity rather than classes, unless the config says classification
MANY_CLASSES = 20
FEW_ROWS_A_CLASS = 5


def _quantity_problems(target: str, labels: pd.Series) -> list[str]:
    """Why a target whose kind was not set does not look like classes: fractional numbers,
    or a distinct value for nearly every few rows (a price, a count)."""
    fix = "set task.options.kind: regression for a quantity"
    values = labels.to_numpy()
    if labels.dtype.kind == "f" and not np.all(values == np.round(values)):
        example = float(next(v for v in values if v != round(v)))
        return [
            f"target column {target!r} holds fractional numbers (e.g. {example}), not"
            f" classes, and task.options.kind is not set (classification by default): {fix}"
        ]
    classes = labels.nunique()
    if classes > MANY_CLASSES and len(labels) < FEW_ROWS_A_CLASS * classes:
        return [
            f"target column {target!r} has {classes} distinct values in {len(labels)} rows,"
            " which reads as a quantity, not classes, and task.options.kind is not set"
            f" (classification by default): {fix}, or kind: classification to train"
            f" {classes} classes"
        ]
    return []


def _column_problems(
    name: str, values: pd.Series, options: TableOptions, hints: bool = False
) -> list[str]:
    """What keeps a feature column out of the features, each with the option that fixes it."""
    import pandas as pd

    missing = values.isna().to_numpy()
    problems = []
    numeric = _is_numeric(values)
    if missing.any() and options.missing == "error":
        filled = (
            "the train median and an indicator column"
            if numeric
            else "a missing text value is a category of its own"
        )
        problems.append(
            f"{name} has missing values ({_rows(missing)}): set task.options.missing: fill"
            f" ({filled})"
        )
    if numeric:
        if options.missing == "error":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            infinite = np.isinf(numbers)
            if infinite.any():
                problems.append(
                    f"{name} has infinite values ({_rows(infinite)}): set task.options.missing:"
                    " fill (they are filled as missing values are)"
                )
        return problems
    text = values[~missing].astype(str)
    if hints and (fix := _number_notation(text, options)):
        problems.append(
            f"{name} holds numbers written with {_NOTATIONS[fix]} (e.g. {text.iloc[0]!r}):"
            f" set task.options.{fix} to read them as numbers (or decimal: '.' to keep"
            " them as text)"
        )
        return problems
    if options.categorical == "error":
        problems.append(
            f"{name} is text (e.g. {text.iloc[0]!r}): set task.options.categorical: onehot,"
            f" or leave it out with task.options.drop: [{_yaml_str(values.name)}]"
        )
    elif (distinct := text.nunique()) > options.max_categories:
        problems.append(
            f"{name} has {distinct} distinct text values, more than task.options.max_categories"
            f" ({options.max_categories}): raise it, or leave the column out with"
            f" task.options.drop: [{_yaml_str(values.name)}]"
        )
    return problems


def _yaml_str(name: Any) -> str:
    """A column's name as YAML reads it back, spaces and all: quoted (JSON is YAML)."""
    return json.dumps(str(name))


def _numeric_problems(
    name: str, values: pd.Series, options: TableOptions, hints: bool = False
) -> list[str]:
    """A column that must be numbers (a regression target): text and infinities."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    text = numbers.isna().to_numpy() & ~values.isna().to_numpy()
    if text.any():
        first = str(values.to_numpy()[text.argmax()])
        fix = _number_notation(values.dropna().astype(str), options) if hints else None
        said = f": set task.options.{fix} (it holds {_NOTATIONS[fix]})" if fix else ""
        return [f"{name} is not numeric ({_rows(text)}, e.g. {first!r}){said}"]
    if not pd.api.types.is_numeric_dtype(values):
        return [f"{name} is not numeric (dtype {values.dtype})"]
    infinite = np.isinf(numbers.to_numpy(dtype=np.float64))
    if infinite.any():
        return [f"{name} has infinite values ({_rows(infinite)})"]
    return []


# the options that read a notation of numbers, and the notation in words
_NOTATIONS = {
    "decimal: ','": "a decimal comma",
    "decimal: ',' and thousands: '.'": "a decimal comma and '.' between thousands",
    "thousands: '.'": "'.' between thousands",
}


def _number_notation(text: pd.Series, options: TableOptions) -> str | None:
    """The options (a key of :data:`_NOTATIONS`) that would read text which pandas left
    as text as numbers: a decimal comma ('12,50'), '.' between thousands ('1.250,5'),
    or both; None when it is not numbers in either notation, or the options already
    say both."""
    if len(text) == 0:
        return None
    plain = text.str.fullmatch(r"\s*[-+]?\d+(?:,\d+)?\s*")
    grouped = text.str.fullmatch(r"\s*[-+]?\d{1,3}(?:\.\d{3})+(?:,\d+)?\s*")
    if not (plain | grouped).all():
        return None
    comma = options.decimal is None and text.str.contains(",", regex=False).any()
    dots = options.thousands is None and grouped.any()
    if comma and dots:
        return "decimal: ',' and thousands: '.'"
    if comma:
        return "decimal: ','"
    return "thousands: '.'" if dots else None


def _is_numeric(values: pd.Series) -> bool:
    """Numbers (booleans included), or text that is all numbers where it is not missing."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return True
    present = values.dropna()
    return len(present) > 0 and not pd.to_numeric(present, errors="coerce").isna().any()


def encode_table(table: pd.DataFrame, train_rows: np.ndarray, options: TableOptions) -> Encoded:
    """The table as float features; categories and fill values from the train rows only.

    A text column becomes one 0/1 column per category seen in the train rows
    (a value only val or test has is all zeros), plus one for a missing value
    when its train rows have any. A numeric column's missing (and infinite) values
    become the train rows' median, with an indicator column beside it when its
    train rows have any. Missing only in val or test, a value gets no column of
    its own, as an unseen category does not: a column that is 0 in every train row
    leaves its weights as they were initialised, which would then move only the
    predictions of the rows training never saw.
    """
    import pandas as pd

    columns: list[np.ndarray] = []
    names: list[str] = []
    changes: list[str] = list(table.attrs.get(ROW_CHANGES, ()))
    for column in table.columns:
        values = table[column]
        if _is_numeric(values):
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(numbers)
            columns.append(numbers)
            names.append(column)
            if _counts_rows(numbers) or column in table.attrs.get(COUNTING_COLUMNS, ()):
                changes.append(
                    f"{column}: counts the rows ({numbers[0]:.0f}, {numbers[1]:.0f},"
                    f" {numbers[2]:.0f} ...), like an index or an ID; it is a feature as given,"
                    f" and task.options.drop: [{_yaml_str(column)}] leaves it out"
                )
            if bad.any():
                train_values = numbers[train_rows][~bad[train_rows]]
                fill = float(np.median(train_values)) if len(train_values) else 0.0
                columns[-1] = np.where(bad, fill, numbers)
                change = f"{column}: missing or infinite in {_rows(bad)}; filled with the train"
                if bad[train_rows].any():
                    columns.append(bad.astype(np.float64))
                    names.append(f"{column} (missing)")
                    change += (
                        f" median {fill:.6g}, beside an indicator column '{column} (missing)'"
                    )
                else:
                    change += f" median {fill:.6g} (no train row misses it: no indicator)"
                changes.append(change)
            continue
        missing = values.isna().to_numpy()
        text = values.astype(str).to_numpy()
        categories = sorted(set(text[train_rows][~missing[train_rows]]))
        for category in categories:
            columns.append(((text == category) & ~missing).astype(np.float64))
            names.append(f"{column}={category}")
        if missing[train_rows].any():
            columns.append(missing.astype(np.float64))
            names.append(f"{column} (missing)")
        shown = ", ".join(categories[:SHOWN_CATEGORIES])
        more = len(categories) - SHOWN_CATEGORIES
        shown += f" and {more} more" if more > 0 else ""
        unseen = ~missing & ~np.isin(text, categories)
        changes.append(
            f"{column}: text, one-hot over the train split's {len(categories)} categories"
            f" ({shown})"
            + (
                f"; missing in {_rows(missing)}: "
                + ("a column of its own" if missing[train_rows].any() else "all zeros")
                if missing.any()
                else ""
            )
            + (f"; a category train lacks in {_rows(unseen)}: all zeros" if unseen.any() else "")
        )
    x = np.stack(columns, axis=1).astype(np.float64)  # float32 after prepare standardises
    return Encoded(x=x, columns=tuple(names), changes=tuple(changes))


def _counts_rows(numbers: np.ndarray) -> bool:
    """A column that steps by one from row to row (an index a DataFrame wrote, a row
    number, a sequential ID): a model can learn the file's order from it."""
    if len(numbers) < 3 or not np.all(np.isfinite(numbers)):
        return False
    return bool(np.all(np.diff(numbers) == 1))


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
