"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "read_json", "write_csv", "write_json", "write_text", "write_torch"]


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # not tempfile.mkstemp: its files are 0600, and results are shared; this honours umask
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


# Above this size a JSON file is written without indentation: indenting makes json use
# its pure-Python encoder (about 1.5 s for a 10,000-trial plan, against 0.1 s).
INDENT_UP_TO = 1_000_000


def write_json(path: str | Path, data: Any) -> None:
    text = json.dumps(data, default=_jsonable)
    if len(text) <= INDENT_UP_TO:
        text = json.dumps(data, indent=2, default=_jsonable)
    write_text(path, text + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A small CSV writer: the trial path must not import pandas."""
    with atomic_open(path) as handle:
        _write_rows(handle, columns, rows)


def _write_rows(
    handle: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> None:
    import csv

    writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)


def write_torch(path: str | Path, obj: Any) -> None:
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def _jsonable(value: Any) -> Any:
    # numpy scalars and paths show up in results; write them as plain JSON values
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
