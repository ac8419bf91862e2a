"""Materialise a task's data once, split, and hand trials the train/val part only.

The prepare rung writes ``train.pt``, ``val.pt``, ``test.pt`` and ``meta.json``.
Tuning code calls :func:`load_train_val`, which cannot return test data; only
:func:`load_test`, called by the final rung, reads ``test.pt``.

A task's arrays are stored as tensors. A task's Datasets are stored as tensors
too when they are small (``data.materialize``, :func:`materialise`), except the
test part; otherwise, and always for test, a split's file holds which samples
of which Dataset it is (``part`` and ``indices``), and loading reopens the
Datasets from the task and reads them through a DataLoader
(:class:`~tuneladder.data.loader.DatasetSplit`). Prepare reads no test sample:
only the final rung does.

Regression targets are saved standardised with train-split statistics (unless
the task opts out); their mean and std per output are in ``meta.json`` under
``info.target_scale``, and :mod:`tuneladder.training.metrics` reports errors in the
target's own units with them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tuneladder.core.errors import DataError, call_task_function, wrong_return
from tuneladder.data.loader import DatasetSplit, Split, TensorPairs
from tuneladder.store.io import read_json, write_json, write_torch
from tuneladder.tasks import DataInfo, Task

if TYPE_CHECKING:
    from tuneladder.infra.device import Loading

__all__ = [
    "MATERIALIZE",
    "Split",
    "TrainVal",
    "clear_variants",
    "data_for",
    "load_info",
    "load_test",
    "load_train_val",
    "materialise",
    "prepare",
    "prepared_from",
    "split_indices",
]

VARIANTS = "data-variants"  # beside data/: a copy per other value of a data hyperparameter
MATERIALIZE = ("auto", "always", "never")


@dataclass(frozen=True)
class TrainVal:
    """What tuning may see: no test split in here by construction."""

    train: Split | DatasetSplit
    val: Split | DatasetSplit
    info: DataInfo
    fingerprint: str  # changes whenever the prepared data changes

    def to(self, device: torch.device | str) -> TrainVal:
        return TrainVal(self.train.to(device), self.val.to(device), self.info, self.fingerprint)


def split_indices(
    y: np.ndarray, fractions: tuple[float, ...], *, seed: int, stratify: bool
) -> tuple[np.ndarray, ...]:
    """Seeded indices of one part per fraction (the last takes the rest); stratified
    by class for classification. Three fractions: train, val, test.

    A part holds ``round(fraction * len(y))`` samples, stratified or not. Stratified,
    each class gives it its own share rounded, and where those roundings do not add
    up to the part's size, the classes furthest from their share of the parts so far
    give or take one sample each: 50 classes of 7 samples split 210/70/70, not the
    200/50/100 that rounding each class alone gave.
    """
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    groups = [rng.permutation(group) for group in groups]
    sizes = np.array([len(group) for group in groups])
    counts = []  # per part, the samples each class gives it
    left, so_far = sizes.copy(), 0.0
    for part, fraction in enumerate(fractions[:-1]):
        target, so_far = int(round(fraction * len(y))), so_far + fraction
        take = np.minimum(np.round(fraction * sizes).astype(int), left)
        while take.sum() != target:
            short = take.sum() < target
            # how far each class is below its share of the parts up to this one
            below = so_far * sizes - (sizes - left + take)
            room = take < left if short else take > 0
            if not short and part == 0 and (take > 1).any():
                room = take > 1  # a class keeps its last train sample: the model sees it
            if not room.any():
                break
            pick = np.where(room, below if short else -below, -np.inf)
            take[int(np.argmax(pick))] += 1 if short else -1
        counts.append(take)
        left = left - take
    counts.append(left)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c, group in enumerate(groups):
        start = 0
        for i, part_counts in enumerate(counts):
            parts[i].append(group[start : start + part_counts[c]])
            start += part_counts[c]
    cut = tuple(np.sort(np.concatenate(p)) for p in parts)
    names = ("train", "val", "test") if len(fractions) == 3 else ("train", "val")
    for name, idx in zip(names, cut, strict=False):
        if len(idx) == 0:
            raise ValueError(
                f"the {name} split is empty: too few samples ({len(y)}) for {fractions}"
            )
    return cut


def _checked_arrays(task: Task) -> tuple[Any, np.ndarray, tuple[str, ...] | None]:
    """The task's samples: float features, int64 labels or (n, outputs) float targets
    (see :func:`_as_float`), and the class names where the labels were text.

    A task that encodes its features (:attr:`Task.encode`) gets its ``x`` back as
    it gave it, to encode after the split. What a model cannot train on is a
    DataError naming the task and the column; an exception inside
    ``load_arrays`` is a UserCodeError pointing at its line.
    """
    source = f"task {task.name!r}"
    arrays = call_task_function(task.load_arrays)
    if not (isinstance(arrays, tuple | list) and len(arrays) == 2):
        raise wrong_return(task.load_arrays, arrays, "a pair (x, y) of arrays")
    try:
        x = arrays[0] if task.encode is not None else np.asarray(arrays[0])
        y = np.asarray(arrays[1])
    except (TypeError, ValueError) as err:  # ragged lists, say
        raise DataError(f"{source}: x and y must be arrays ({err})") from None
    if task.encode is None:
        x = _features(x, source)
    if len(x) != len(y):
        raise DataError(f"{source}: x has {len(x)} rows but y has {len(y)}")
    class_names = None
    if task.kind == "classification" and y.ndim == 1 and y.dtype.kind in "OUS":
        # text labels: the classes in sorted order, each sample's index among them
        names, y = np.unique(y.astype(str), return_inverse=True)
        if all(_is_integer(name) for name in names):  # "-1", "1", ..., "10": in number order
            order = np.argsort([int(name) for name in names], kind="stable")
            names, y = names[order], np.argsort(order)[y]
        class_names = tuple(str(name) for name in names)
    return x, _checked_targets(y, task.kind, source), class_names


def _is_integer(text: str) -> bool:
    return re.fullmatch(r"[-+]?[0-9]+", text) is not None


def _features(x: Any, source: str) -> np.ndarray:
    """Features as a float array (:func:`_as_float`) of a row per sample, every value finite."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{source}: x must hold a row of features per sample, got shape {x.shape}")
    x = _as_float(x, f"{source}: feature")
    _refuse_non_finite(x, f"{source}: feature")
    return x


def _checked_targets(
    y: np.ndarray, kind: str, source: str, *, one_class_ok: bool = False
) -> np.ndarray:
    """Targets as int64 class indices, or ``(n, outputs)`` float values (:func:`_as_float`).

    ``one_class_ok``: a task's own small val part may hold a single class; what
    the model trains on may not.
    """
    if kind == "regression":
        y = _as_float(y.reshape(len(y), -1), f"{source}: target")
        _refuse_non_finite(y, f"{source}: target")
        return y
    if kind == "multilabel":
        return _multilabel_targets(y, source)
    if y.ndim != 1:
        raise DataError(f"{source}: y must hold one class index per sample, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{source}: classification targets must be class indices 0, 1, ...,"
            f" got {y[:1].tolist()[0]!r}"
        )
    labels = y.astype(np.float64)
    _refuse_non_finite(labels.reshape(len(y), 1), f"{source}: target")
    bad = (labels < 0) | (labels != np.round(labels))
    if bad.any():
        value = y[np.flatnonzero(bad)[0]]
        raise DataError(
            f"{source}: classification targets must be class indices 0, 1, ..., got {value}"
        )
    y = y.astype(np.int64)
    if len(np.unique(y)) < 2 and not one_class_ok:
        raise DataError(f"{source}: the target has a single class ({y[0]})")
    return y


def _multilabel_targets(y: np.ndarray, source: str) -> np.ndarray:
    """A multilabel task's targets: one row of 0/1 per sample, as float32 (BCE's targets)."""
    if y.ndim != 2:
        raise DataError(
            f"{source}: y must hold a row of 0/1 labels per sample, got shape {y.shape}"
        )
    y = _as_float(y, f"{source}: label").astype(np.float32, copy=False)
    bad = (y != 0) & (y != 1)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(
            f"{source}: label {_column(y, column)} must be 0 or 1, got {y[row, column]}"
            f" (sample {row})"
        )
    return y


def _as_float(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as float32 where it holds them exactly (float32 and narrower, bytes,
    16-bit integers), else as float64 until they are standardised: a column far from
    zero (a timestamp, a price) keeps only a few distinct values in float32.
    ``what`` names the samples' part (task and feature/target)."""
    kind, size = values.dtype.kind, values.dtype.itemsize
    exact = kind == "b" or (kind == "f" and size <= 4) or (kind in "iu" and size <= 2)
    try:
        return values.astype(np.float32 if exact else np.float64, copy=False)
    except (TypeError, ValueError) as err:
        flat = values.reshape(len(values), -1)
        for j in range(flat.shape[1]):  # find the column, only to name it
            try:
                flat[:, j].astype(np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{what} {_column(values, j)} is not numeric ({err})") from None
        raise DataError(f"{what} values are not numeric ({err})") from None


def _for_the_model(values: np.ndarray) -> np.ndarray:
    """Floats as float32, what the model takes (:func:`_as_float` kept some float64 until
    they were standardised); class indices as they are."""
    return values.astype(np.float32, copy=False) if values.dtype.kind == "f" else values


def _refuse_non_finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values.reshape(len(values), -1))
    if bad.any():
        rows, columns = np.nonzero(bad)
        raise DataError(
            f"{what} {_column(values, columns[0])} is NaN or inf in"
            f" {len(np.unique(rows))} of {len(values)} samples (first: sample {rows[0]})"
        )


def _column(values: np.ndarray, flat_index: int) -> str:
    """A feature's name by position: ``column 3``, or ``(0, 4, 5)`` for images."""
    shape = values.shape[1:]
    if len(shape) <= 1:
        return f"column {flat_index}"
    return str(tuple(int(i) for i in np.unravel_index(flat_index, shape)))


def prepare(
    task: Task,
    out_dir: str | Path,
    *,
    seed: int,
    materialize: str = "auto",
    max_memory_mb: float = 1024,
    data_values: Mapping[str, Any] | None = None,
    task_options: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Load the task's data, split, standardise and write it. Returns the meta.

    ``materialize`` and ``max_memory_mb`` decide whether a task's Datasets are
    stored as tensors (:func:`materialise`); arrays always are. ``data_values``
    are the task's data hyperparameters to load with (its defaults fill the
    rest); the meta records them, and the settings, for :func:`data_for`.
    ``task_options`` (the config's ``task.options``) and ``sources`` (what the data
    is read from: :func:`tuneladder.stages.prepare.data_sources`) are recorded, so
    that one trial run outside the ladder can tell whether this data is its config's
    and still its files'.
    """
    if materialize not in MATERIALIZE:
        raise ValueError(f"materialize must be one of {MATERIALIZE}, got {materialize!r}")
    values = task.data_values(data_values or {})
    task = task.with_data(values)
    out_dir = Path(out_dir)
    if task.load_datasets is not None:
        meta = _prepare_datasets(
            task, out_dir, seed=seed, materialize=materialize, max_memory_mb=max_memory_mb
        )
    else:
        meta = _prepare_arrays(task, out_dir, seed=seed)
    meta["data_params"] = values
    meta["settings"] = {"materialize": materialize, "max_memory_mb": max_memory_mb}
    meta["task_options"] = _as_recorded(task_options)
    meta["sources"] = _as_recorded(sources)
    write_json(out_dir / "meta.json", meta)
    return meta


def prepared_from(
    data_dir: str | Path,
    task: str,
    *,
    task_options: Mapping[str, Any] | None,
    seed: int,
    settings: Mapping[str, Any],
    sources: Mapping[str, Any] | None = None,
) -> bool:
    """Whether ``data_dir`` holds data :func:`prepare` made of task ``task`` with these
    options, seed and settings (``materialize``, ``max_memory_mb``), from these
    ``sources`` (the code and files it was read from; data prepared before they were
    recorded is not theirs)."""
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        return False
    meta = read_json(path)
    return (
        meta.get("task") == task
        and meta.get("task_options") == _as_recorded(task_options)
        and meta.get("seed") == seed
        and meta.get("settings") == dict(settings)
        and meta.get("sources") == _as_recorded(sources)
    )


def _as_recorded(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options as ``meta.json`` holds them: through JSON, a tuple a list, a path text."""
    return json.loads(json.dumps(dict(options or {}), default=str))


def data_for(data_dir: str | Path, task: Task, params: Mapping[str, Any]) -> Path:
    """The folder of prepared data a trial of hyperparameters ``params`` trains on.

    Data hyperparameters (:attr:`Task.data_params`) at the values prepare used
    are the experiment's own ``data_dir``. Other values get a copy of their own
    under ``data-variants/`` beside it, prepared once (the first process to need
    it prepares while others wait on its lock) with the same seed and settings,
    and named by the values, so every trial with them shares it. Like prepare's,
    the copy's test split is read by the final rung only.
    """
    data_dir = Path(data_dir)
    if not task.data_params:
        return data_dir
    values = task.data_values(params)
    meta = read_json(data_dir / "meta.json")
    if _canonical(values) == _canonical(meta.get("data_params") or {}):
        return data_dir
    # named by what it is made from too: data prepared again with another seed or
    # settings, or other data, never finds a copy of the old
    made_from = {
        "seed": meta["seed"],
        "settings": meta.get("settings"),
        "data": meta["fingerprint"],
    }
    digest = hashlib.sha256(_canonical({**made_from, "values": values}).encode()).hexdigest()[:12]
    out = data_dir.parent / VARIANTS / digest
    if not (out / "meta.json").is_file():
        import fcntl
        import os
        import shutil

        out.parent.mkdir(parents=True, exist_ok=True)
        lock_path = out.with_suffix(".lock")
        with open(lock_path, "a") as lock:
            fcntl.lockf(lock, fcntl.LOCK_EX)
            if not (out / "meta.json").is_file():  # not made while this one waited
                partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
                shutil.rmtree(partial, ignore_errors=True)
                settings = meta.get("settings") or {}
                prepare(
                    task,
                    partial,
                    seed=meta["seed"],
                    data_values=values,
                    task_options=meta.get("task_options"),
                    sources=meta.get("sources"),
                    **settings,
                )
                shutil.rmtree(out, ignore_errors=True)
                os.replace(partial, out)
            # done: whoever waits on it, or opens it anew, finds meta.json and goes on
            lock_path.unlink(missing_ok=True)
    return out


def clear_variants(data_dir: str | Path) -> None:
    """Remove the copies :func:`data_for` made beside ``data_dir``: prepare runs again when
    the task's code changes, and a copy made by the old code would outlive it."""
    import shutil

    shutil.rmtree(Path(data_dir).parent / VARIANTS, ignore_errors=True)


def _canonical(values: Mapping[str, Any]) -> str:
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"))


def _prepare_arrays(task: Task, out_dir: Path, *, seed: int) -> dict[str, Any]:
    x, y, class_names = _checked_arrays(task)
    classification = task.kind == "classification"
    n_outputs = int(y.max()) + 1 if classification else y.shape[1]
    try:
        train, val, test = split_indices(
            y if classification else np.zeros(len(y)),
            task.split,
            seed=seed,
            stratify=classification and task.stratify,
        )
    except ValueError as err:
        raise DataError(f"task {task.name!r}: {err}") from None
    encoding = None
    if task.encode is not None:
        # fitted on the train rows only: categories and fill values never see val or test
        encoded = call_task_function(task.encode, x, np.sort(train))
        x = _features(encoded.x, f"task {task.name!r} (encoded)")
        encoding = {"columns": list(encoded.columns), "changes": list(encoded.changes)}
    # statistics of the train split only: nothing of val or test leaks into training
    stats = None
    if task.standardize:
        mean, std = _train_stats(x[train])
        x = (x - mean) / std
        stats = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    target_mean = target_std = None
    if task.kind == "regression" and task.standardize_target:
        # the model learns a unit-variance target, so the loss, the LR range and the
        # overfit check mean the same whatever the target's units (metrics convert back)
        y_mean, y_std = _train_stats(y[train])
        y = (y - y_mean) / y_std
        target_mean, target_std = tuple(y_mean.tolist()), tuple(y_std.tolist())
    x, y = _for_the_model(x), _for_the_model(y)  # standardised: a column lost nothing
    info = DataInfo(
        task.kind,
        tuple(x.shape[1:]),
        n_outputs,
        target_mean=target_mean,
        target_std=target_std,
        class_names=class_names,
    )
    digest = hashlib.sha256()
    for name, idx in (("train", train), ("val", val), ("test", test)):
        xs, ys = torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy())
        write_torch(out_dir / f"{name}.pt", {"x": xs, "y": ys})
        digest.update(xs.numpy().tobytes())
        digest.update(ys.numpy().tobytes())
    meta = {
        "task": task.name,
        "info": info.to_json(),
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "split": list(task.split),
        "seed": seed,
        "standardize": stats,
        "encoding": encoding,
        "fingerprint": digest.hexdigest()[:16],
    }
    return meta


def _train_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per column, a std of 0 (a constant column) replaced by 1."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std[std == 0] = 1.0
    return mean, std


def materialise(mode: str, *, samples: int, sample_bytes: int, max_memory_mb: float) -> bool:
    """Whether prepare stores a Dataset's train and val samples as tensors.

    ``always`` and ``never`` decide alone. ``auto``: when they take at most
    ``max_memory_mb`` as float32 (``samples`` x one sample's ``sample_bytes``).
    Materialised, a split is read once by prepare and then lives on the device
    as arrays do; the test part is never materialised by prepare.
    """
    if mode != "auto":
        return mode == "always"
    return samples * sample_bytes <= max_memory_mb * 2**20


def _prepare_datasets(
    task: Task, out_dir: Path, *, seed: int, materialize: str, max_memory_mb: float
) -> dict[str, Any]:
    """Split a task's Datasets by index, and store train and val, without reading test."""
    from tuneladder.data.datasets import ALL, input_of, open_sources

    source = f"task {task.name!r}"
    sources = open_sources(task)
    parts, y = _dataset_parts(task, sources, seed=seed)
    first = input_of(sources[parts["train"][0]], int(parts["train"][1][0]), source)
    n_outputs = _outputs(task, sources, y)
    target_mean = target_std = None
    if task.kind == "regression" and task.standardize_target:  # a multilabel's are 0/1
        y_mean, y_std = _train_stats(y["train"])
        y = {name: (values - y_mean) / y_std for name, values in y.items()}
        target_mean, target_std = tuple(y_mean.tolist()), tuple(y_std.tolist())
    y = {name: _for_the_model(values) for name, values in y.items()}  # once standardised
    info = DataInfo(
        task.kind,
        tuple(first.shape),
        n_outputs,
        target_mean=target_mean,
        target_std=target_std,
        class_names=_listed_classes(task, sources, n_outputs),
    )
    held = materialise(
        materialize,
        samples=len(y["train"]) + len(y["val"]),
        sample_bytes=first.numel() * 4,
        max_memory_mb=max_memory_mb,
    )
    fingerprint = _write_parts(task, sources, parts, y, out_dir, held=held)
    meta = {
        "task": task.name,
        "info": info.to_json(),
        "sizes": {name: len(idx) for name, (_, idx) in parts.items()},
        "split": list(task.split) if ALL in sources else None,
        "seed": seed,
        "standardize": None,
        "source": "dataset" if ALL in sources else "fixed splits",
        "parts": {name: part for name, (part, _) in parts.items()},
        "materialized": held,
        "fingerprint": fingerprint,
    }
    return meta


def _dataset_parts(
    task: Task, sources: Mapping[str, Any], *, seed: int
) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Which samples of which Dataset each split holds (``(part, indices)`` by split
    name), and the checked targets of train and val.

    One Dataset (``ALL``) is split three ways with the seed. Otherwise the task
    gives its own train and test parts, and its own val part or val's share of
    its train part; of its test part only the length is read.
    """
    from tuneladder.data.datasets import ALL, labels_of

    source = f"task {task.name!r}"
    stratify = task.kind == "classification" and task.stratify

    def targets(name: str) -> np.ndarray:
        labels = labels_of(sources[name], f"{source}, {name}")
        return _checked_targets(labels, task.kind, f"{source}, {name}", one_class_ok=name == "val")

    parts: dict[str, tuple[str, np.ndarray]] = {}
    try:
        if ALL in sources:
            y_all = targets(ALL)
            cut = split_indices(
                y_all if stratify else np.zeros(len(y_all)),
                task.split,
                seed=seed,
                stratify=stratify,
            )
            parts = {
                name: (ALL, idx) for name, idx in zip(("train", "val", "test"), cut, strict=True)
            }
            y = {"train": y_all[cut[0]], "val": y_all[cut[1]]}
        else:
            y_train = targets("train")
            if "val" in sources:
                parts["train"] = ("train", np.arange(len(y_train)))
                parts["val"] = ("val", np.arange(len(sources["val"])))
                y = {"train": y_train, "val": targets("val")}
            else:
                share = task.split[1] / (task.split[0] + task.split[1])
                train, val = split_indices(
                    y_train if stratify else np.zeros(len(y_train)),
                    (1 - share, share),
                    seed=seed,
                    stratify=stratify,
                )
                parts["train"], parts["val"] = ("train", train), ("train", val)
                y = {"train": y_train[train], "val": y_train[val]}
            parts["test"] = ("test", np.arange(len(sources["test"])))  # its length, no sample
    except ValueError as err:
        raise DataError(f"{source}: {err}") from None
    return parts, y


def _write_parts(
    task: Task,
    sources: Mapping[str, Any],
    parts: Mapping[str, tuple[str, np.ndarray]],
    y: Mapping[str, np.ndarray],
    out_dir: Path,
    *,
    held: bool,
) -> str:
    """Write each split's file (its indices; train's and val's targets, and their
    samples when ``held``) and return the data's fingerprint. Test's samples are
    never read."""
    from tuneladder.data.datasets import read_inputs

    source = f"task {task.name!r}"
    digest = hashlib.sha256(task.name.encode())
    for name, (part, idx) in parts.items():
        blob: dict[str, Any] = {"part": part, "indices": torch.from_numpy(idx.astype(np.int64))}
        if name != "test":
            blob["y"] = torch.from_numpy(y[name].copy())
            if held:
                x = read_inputs(sources[part], idx, f"{source}, {name}")
                _refuse_non_finite(x.numpy(), f"{source}: feature")
                blob["x"] = x
        write_torch(out_dir / f"{name}.pt", blob)
        digest.update(part.encode())
        for key in ("indices", "y", "x"):
            if key in blob:
                digest.update(blob[key].numpy().tobytes())
    return digest.hexdigest()[:16]


def _outputs(task: Task, sources: Mapping[str, Any], y: Mapping[str, np.ndarray]) -> int:
    """Classes (the Datasets' ``classes`` when they list them), or the columns of a
    regression's targets or a multilabel's labels."""
    if task.kind != "classification":
        return int(y["train"].shape[1])
    seen = max(int(values.max()) for values in y.values()) + 1
    listed = [len(getattr(ds, "classes", None) or ()) for ds in sources.values()]
    return max(seen, *listed)


def _listed_classes(
    task: Task, sources: Mapping[str, Any], n_outputs: int
) -> tuple[str, ...] | None:
    """The class names a classification Dataset lists (``classes``, as torchvision's and
    ImageFolder's do), one per output: train's when the parts list their own."""
    from tuneladder.data.datasets import ALL

    if task.kind != "classification":
        return None
    for name in ("train", ALL, *sources):
        classes = getattr(sources.get(name), "classes", None)
        if classes is not None and len(classes) == n_outputs:
            return tuple(str(c) for c in classes)
    return None


def load_info(data_dir: str | Path) -> DataInfo:
    return DataInfo.from_json(read_json(Path(data_dir) / "meta.json")["info"])


def _read(path: Path) -> dict[str, torch.Tensor | str]:
    if not path.is_file():
        raise FileNotFoundError(f"prepared data not found: {path} (run the prepare rung first)")
    return torch.load(path, weights_only=True)


def load_train_val(
    data_dir: str | Path, task: Task | None = None, *, loading: Loading | None = None
) -> TrainVal:
    """Train and val as prepared; ``task`` reopens its Datasets where they were not stored.

    With a task's ``train_transform``, train is read through a DataLoader
    (:class:`~tuneladder.data.loader.DatasetSplit`) even when it is held as tensors:
    each sample is augmented as it is read. ``loading`` sets that loader's
    workers and pinned memory.
    """
    data_dir = Path(data_dir)
    meta = read_json(data_dir / "meta.json")
    info = DataInfo.from_json(meta["info"])
    task = _bound(task, meta)
    blobs = {name: _read(data_dir / f"{name}.pt") for name in ("train", "val")}
    sources = _sources_for(blobs.values(), task, data_dir)
    transform = task.train_transform if task is not None else None
    return TrainVal(
        train=_split(blobs["train"], sources, info, transform=transform, loading=loading),
        val=_split(blobs["val"], sources, info, transform=None, loading=loading),
        info=info,
        fingerprint=meta["fingerprint"],
    )


def load_test(
    data_dir: str | Path, task: Task | None = None, *, loading: Loading | None = None
) -> Split | DatasetSplit:
    """The held-out split. Only the final rung calls this, once per chosen model."""
    data_dir = Path(data_dir)
    blob = _read(data_dir / "test.pt")
    task = _bound(task, read_json(data_dir / "meta.json"))
    sources = _sources_for([blob], task, data_dir)
    return _split(blob, sources, load_info(data_dir), transform=None, loading=loading)


def _bound(task: Task | None, meta: Mapping[str, Any]) -> Task | None:
    """The task loading as the data was prepared: at the data hyperparameters in its meta."""
    if task is None or not task.data_params:
        return task
    return task.with_data(task.data_values(meta.get("data_params") or {}))


def _sources_for(
    blobs: Iterable[Mapping[str, Any]], task: Task | None, data_dir: Path
) -> Mapping[str, Any]:
    """The task's Datasets, opened only when a split is stored by index."""
    if all("x" in blob for blob in blobs):
        return {}
    if task is None or task.load_datasets is None:
        raise ValueError(
            f"{data_dir} holds samples of a task's Datasets by index: pass the task to reopen them"
        )
    from tuneladder.data.datasets import open_sources

    return open_sources(task)


def _split(
    blob: Mapping[str, Any],
    sources: Mapping[str, Any],
    info: DataInfo,
    *,
    transform: Any,
    loading: Loading | None,
) -> Split | DatasetSplit:

    if "x" in blob:
        if transform is None:
            return Split(blob["x"], blob["y"])
        dataset, indices, scale = TensorPairs(blob["x"], blob["y"]), None, None
    else:
        dataset, indices = sources[blob["part"]], blob["indices"]
        scale = None
        if info.target_mean is not None and info.target_std is not None:
            scale = (torch.tensor(info.target_mean), torch.tensor(info.target_std))
    return DatasetSplit(
        dataset,
        indices=indices,
        kind=info.kind,
        y=blob.get("y"),
        transform=transform,
        target_scale=scale,
        loading=loading,
    )
