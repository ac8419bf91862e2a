from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.core.metric_table import BUILT_IN, KINDS, Metric, check_name

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import Dataset

__all__ = ["METRICS", "SPLIT_NAMES", "DataInfo", "Encoded", "Metric", "Task", "plugin_path"]

# The parts of a task's own fixed split, as keys of what ``load_datasets`` returns.
SPLIT_NAMES = ("train", "val", "test")

# The built-in metrics each kind of task can select on (tuneladder.core.metric_table).
METRICS: dict[str, tuple[str, ...]] = {kind: tuple(names) for kind, names in BUILT_IN.items()}


@dataclass(frozen=True)
class DataInfo:
    """What a model factory needs to know about the data, saved in ``data/meta.json``.

    ``target_mean`` and ``target_std`` (one value per output) are set when the
    prepared regression targets are standardised, ``(y - target_mean) /
    target_std`` with train-split statistics: the model learns that target, and
    metrics are turned back into the target's own units with ``target_std``.
    Both are None when targets are stored as they are (classification, or a
    task with ``standardize_target=False``).
    """

    kind: str  # classification | multilabel | regression
    input_shape: tuple[int, ...]
    n_outputs: int  # classes, labels, or regression targets
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    # classification: what each class index stands for, when the data named them (text labels)
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (self.target_mean is None) != (self.target_std is None):
            raise ValueError(
                "target_mean and target_std are set together, got"
                f" {self.target_mean=}, {self.target_std=}"
            )
        if self.target_std is not None and min(self.target_std, default=0.0) <= 0:
            raise ValueError(f"target_std must be > 0, got {self.target_std=}")

    def to_json(self) -> dict[str, Any]:
        scale = None
        if self.target_mean is not None and self.target_std is not None:
            scale = {"mean": list(self.target_mean), "std": list(self.target_std)}
        return {
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
            "target_scale": scale,
            "class_names": list(self.class_names) if self.class_names is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataInfo:
        # data prepared before target scaling existed has no target_scale: raw targets
        scale = data.get("target_scale")
        return cls(
            data["kind"],
            tuple(data["input_shape"]),
            int(data["n_outputs"]),
            target_mean=tuple(float(v) for v in scale["mean"]) if scale else None,
            target_std=tuple(float(v) for v in scale["std"]) if scale else None,
            class_names=tuple(names) if (names := data.get("class_names")) else None,
        )

    def class_name(self, index: int) -> str:
        """A class as a reader knows it: its name where the data had one, else its index."""
        return repr(self.class_names[index]) if self.class_names else str(index)


@dataclass(frozen=True)
class Encoded:
    """A task's features after :attr:`Task.encode`: the array, and what was done to get it."""

    x: np.ndarray  # float features, a row per sample
    columns: tuple[str, ...]  # the name of each feature column
    changes: tuple[str, ...] = ()  # one line per column the encoding changed, for the log


@dataclass(frozen=True, kw_only=True)
class Task:
    """A dataset and a model family.

    A task gives its data in one of two forms: ``load_arrays`` (numpy arrays
    that fit in memory) or ``load_datasets`` (map-style torch Datasets).

    Args:
        name: Shown in reports and paths of MLflow runs.
        kind: ``classification`` (one class index per sample; cross-entropy),
            ``multilabel`` (0 or 1 per label, ``y`` of shape ``(n, labels)``;
            binary cross-entropy on the logits) or ``regression`` (mean squared
            error). The built-in metrics of each are in
            :mod:`tuneladder.core.metric_table`.
        load_arrays: Returns all samples as ``(x, y)`` numpy arrays; the
            library splits them, so a task never decides what is test data.
            Called once, by the prepare rung, never on the trial path.
        load_datasets: Returns either one map-style ``Dataset`` of ``(x, y)``
            samples, which the library splits by seeded index like arrays, or
            a mapping of the task's own fixed splits, ``{"train": ..., "test":
            ...}`` with an optional ``"val"`` (left out, it is cut from train,
            ``split[1] / (split[0] + split[1])`` of it). ``x`` is a tensor (or
            array) of one shape for every sample; ``y`` a class index, or a
            number or vector for regression. Called by every rung that trains,
            to reopen the samples prepare chose: the test part's samples are
            read by the final rung only (prepare takes its length). A Dataset
            with ``targets`` (as torchvision's have) gives its labels without
            reading samples. Small ones are materialised as tensors
            (``data.materialize``); see docs/decisions/.
        train_transform: ``x -> x`` applied to training samples only, each
            time one is read (augmentation); val and test never see it. It
            draws from torch's (and Python's) random generator, seeded per
            sample from the trial's seed, the epoch and the sample, so a trial
            is reproducible whatever ``data.num_workers``. A task with one
            trains through a DataLoader.
        stratify: Classification splits the library cuts keep each class's
            share in every part.
        build_model: ``(model_hyperparameters, data_info) -> nn.Module``.
        default_model: The model hyperparameters used where the config sets
            none; also "the task's default model" of the untuned baseline.
        standardize: Scale features to zero mean and unit variance with
            statistics of the train split only.
        standardize_target: Regression only: the model learns the target
            scaled to zero mean and unit variance per output (train-split
            statistics), so that learning rates, the overfit check and the
            loss mean the same whatever the target's units. rmse, mae and r2
            are still reported in the target's own units; the recorded
            ``loss`` is the training objective, the mean squared error on the
            scaled target. Set False when the model's output must be the raw
            target (its last layer already denormalises, say): the loss is then
            the mean squared error in the target's units. Ignored for
            classification.
        applies: ``(model_hyperparameters) -> names`` of those the model
            built from them reads (``channels`` means nothing to an MLP, say);
            the summary and the report show only these. None: all of them.
        loss: ``(data_info) -> loss``, where the loss is called as
            ``loss(output, target)`` with the model's float32 output and the
            batch's targets and returns the batch mean: usually an
            ``nn.Module`` such as ``nn.CrossEntropyLoss(weight=class_weights,
            label_smoothing=0.1)``, moved to the trial's device. Built once per
            trial; trials, both sanity rungs and evaluation all use it, and the
            recorded ``loss`` is its value. None: the kind's built-in loss.
        encode: ``(x, train_rows) -> Encoded``: turns what ``load_arrays``
            returned as ``x`` (a table, say) into float features, with every
            statistic it needs (categories, fill values) taken from the rows
            ``train_rows`` only; called by prepare after the split. The csv task
            encodes text columns and fills missing values this way.
        extra_metrics: The task's own metrics by name, each a
            :class:`~tuneladder.core.metric_table.Metric` with its function and
            direction; the config's ``metric.name`` can select any of them, as
            any built-in one. A name must not be a built-in one.
        data_params: Data hyperparameters and their defaults, such as a
            window length, an image size or an augmentation strength: names
            the config's ``train`` and ``space`` take as they take model
            hyperparameters. With any, ``load_arrays`` and ``load_datasets``
            (and ``train_transform``, when it takes two arguments) are called
            with the trial's values as a dict. Prepare makes the data of the
            config's fixed values; a trial with other values gets its own
            prepared copy, made once per distinct values and shared by every
            trial that has them (see :func:`tuneladder.data.prepared.data_for`). The
            test split of each copy is read by the final rung only. The model
            factory sees them too, among its hyperparameters.

    Example::

        def make_task(options):
            return Task(name="sine", kind="regression", load_arrays=load,
                        build_model=build, default_model={"width": 64})
    """

    name: str
    kind: str
    build_model: Callable[[Mapping[str, Any], DataInfo], nn.Module]
    load_arrays: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
    load_datasets: Callable[[], Dataset | Mapping[str, Dataset]] | None = None
    train_transform: Callable[[Any], Any] | None = None
    default_model: Mapping[str, Any] = field(default_factory=dict)
    standardize: bool = False
    standardize_target: bool = True
    stratify: bool = True
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    applies: Callable[[Mapping[str, Any]], Collection[str]] | None = None
    loss: Callable[[DataInfo], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None
    extra_metrics: Mapping[str, Metric] = field(default_factory=dict)
    encode: Callable[[Any, np.ndarray], Encoded] | None = None
    data_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if both := sorted(set(self.data_params) & set(self.default_model)):
            raise ValueError(
                f"{both[0]!r} is in both data_params and default_model: a hyperparameter"
                " changes the data or the model, give it in one of them"
            )
        if self.data_params and self.applies is not None:
            # ``applies`` speaks for the model; the data hyperparameters always apply
            object.__setattr__(
                self, "applies", _AppliesWithData(self.applies, frozenset(self.data_params))
            )
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.load_arrays is None) == (self.load_datasets is None):
            raise ValueError("give exactly one of load_arrays and load_datasets")
        if self.standardize and self.load_datasets is not None:
            raise ValueError(
                "standardize applies to load_arrays; normalise a Dataset's samples in the"
                " Dataset itself"
            )
        if self.loss is not None and not callable(self.loss):
            raise ValueError(f"loss must be callable (data_info -> loss), got {self.loss!r}")
        for name, metric in self.extra_metrics.items():
            check_name(name)
            if not isinstance(metric, Metric) or metric.fn is None:
                raise ValueError(
                    f"extra_metrics[{name!r}] must be a Metric with its fn, got {metric!r}"
                )
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(
                f"split must be three positive fractions summing to 1, got {self.split}"
            )

    @property
    def model_params(self) -> frozenset[str]:
        """The task's hyperparameter names, the model's and the data's: a config's others
        are typos."""
        return frozenset(self.default_model) | frozenset(self.data_params)

    @property
    def defaults(self) -> dict[str, Any]:
        """Every task hyperparameter's default: the model's, then the data's."""
        return {**self.default_model, **self.data_params}

    def data_values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The data hyperparameters of a trial's (or a config's) ``params``, defaults filled."""
        return {name: params.get(name, default) for name, default in self.data_params.items()}

    def with_data(self, values: Mapping[str, Any]) -> Task:
        """This task with its loaders (and two-argument train transform) bound to ``values``:
        what prepare and the trials of those data hyperparameters load through."""
        if not self.data_params:
            return self
        import dataclasses
        import functools
        import inspect

        values = dict(values)
        bound: dict[str, Any] = {"data_params": {}}
        for name in ("load_arrays", "load_datasets"):
            if (func := getattr(self, name)) is not None:
                bound[name] = functools.partial(func, values)
        transform = self.train_transform
        if transform is not None and len(inspect.signature(transform).parameters) >= 2:
            bound["train_transform"] = functools.partial(_with_values, transform, values)
        return dataclasses.replace(self, **bound)

    @property
    def metrics(self) -> dict[str, Metric]:
        """Every metric the task records, by name: its kind's built-ins, then its own."""
        built_in = dict(BUILT_IN[self.kind])
        if self.loss is not None:
            # the task's own loss may take any value: nothing to clip an interval to
            built_in["loss"] = Metric(mode="min")
        return {**built_in, **self.extra_metrics}


def _with_values(transform: Callable[[Any, Mapping[str, Any]], Any], values: Any, x: Any) -> Any:
    """A two-argument train transform, given the trial's data hyperparameters."""
    return transform(x, values)


@dataclass(frozen=True)
class _AppliesWithData:
    """A task's ``applies``, with its data hyperparameters, which apply to every model."""

    model: Callable[[Mapping[str, Any]], Collection[str]]
    data: frozenset[str]

    def __call__(self, params: Mapping[str, Any]) -> set[str]:
        return set(self.model(params)) | (self.data & set(params))


def plugin_path() -> None:
    """Put the working directory first on ``sys.path``, where plugin modules are found.

    Plugin modules live in the user's project, like ``python -m`` would find them.
    """
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
