"""Loss and metrics, computed on the device so that training never waits on the host.

A :class:`Scorer` is built once per trial (or evaluation) for the metrics it
must record. Each pass over a split fills a :class:`Tally`: a batch adds a few
device tensors; at the end, :meth:`Tally.parts` are the sums the host needs, read
back in the epoch's one transfer, and :meth:`Tally.finish` makes the metrics of
them on the host.

What a batch adds depends on the metrics asked for:

* classification: the confusion matrix (classes x classes), which gives
  accuracy, balanced accuracy and macro-F1;
* multilabel: true positives, false positives and false negatives per label
  (macro-F1);
* regression: squared and absolute errors, and the target's sum and sum of
  squares (rmse, mae, r2), in the target's own units: the errors are multiplied
  by the train split's target std (:func:`target_units`);
* ROC-AUC and a task's own metrics need every score of the split: the batch's
  outputs are kept on the device (detached) and ranked or handed to the
  metric at the end. Only a pass that records such a metric keeps them.

Regression models learn a standardised target (see :mod:`tuneladder.data.prepared`), so
the built-in ``loss`` is the mean squared error on that scale: the training
objective. A task may train on its own loss (:attr:`tuneladder.tasks.Task.loss`);
``loss`` is then that.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuneladder.core.metric_table import BUILT_IN, Metric

if TYPE_CHECKING:
    from tuneladder.tasks import DataInfo, Task

__all__ = [
    "LossFactory",
    "LossFn",
    "Scorer",
    "Scoring",
    "Tally",
    "loss_fn",
    "make_loss",
    "roc_auc_per_column",
    "target_units",
]

# ``(output, target) -> the batch's mean loss``, a scalar tensor
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# a task's own loss: ``(data_info) -> LossFn``, usually an nn.Module such as nn.CrossEntropyLoss
LossFactory = Callable[["DataInfo"], LossFn]

# the metrics each kind counts per batch; the others need the whole split's outputs
_COUNTED = {
    "classification": frozenset({"accuracy", "balanced_accuracy", "macro_f1"}),
    "multilabel": frozenset({"macro_f1"}),
    "regression": frozenset({"rmse", "mae", "r2"}),
}


def loss_fn(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The built-in loss of a kind of task, as the batch mean.

    Cross-entropy for classification, binary cross-entropy on logits for
    multilabel (targets 0/1 per label), mean squared error for regression.
    """
    if kind == "classification":
        return F.cross_entropy(output.float(), target)
    if kind == "multilabel":
        return F.binary_cross_entropy_with_logits(output.float(), target)
    return F.mse_loss(output.float(), target)


def make_loss(info: DataInfo, device: torch.device | str, factory: LossFactory | None) -> LossFn:
    """The loss a trial trains on: the task's own, built by ``factory(info)``, or its kind's.

    A loss that is an ``nn.Module`` (``nn.CrossEntropyLoss(weight=...)``) is
    moved to ``device`` with its buffers; it is called with the output in
    float32, as the built-in losses are.
    """
    if factory is None:
        return functools.partial(loss_fn, info.kind)
    criterion = factory(info)
    if isinstance(criterion, nn.Module):
        criterion = criterion.to(device)

    def task_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return criterion(output.float(), target)

    return task_loss


def target_units(info: DataInfo, device: torch.device | str) -> torch.Tensor | None:
    """The per-output std that turns a standardised target's errors into the target's units.

    None when the targets are stored as they are (classification, or a task
    that opted out of target scaling): the errors are in its units already.
    """
    if info.target_std is None:
        return None
    return torch.tensor(info.target_std, dtype=torch.float32, device=device)


@dataclass(frozen=True)
class Scoring:
    """A task's own loss and metrics, beside the built-ins of its kind.

    ``Scoring.of(task)`` takes them from a :class:`~tuneladder.tasks.Task`;
    ``Scoring()`` is the built-ins alone. It is what the trial path is handed;
    a :class:`Scorer` binds it to the data and the device.
    """

    loss: LossFactory | None = None
    extra: Mapping[str, Metric] = field(default_factory=dict)

    @classmethod
    def of(cls, task: Task) -> Scoring:
        return cls(loss=task.loss, extra=dict(task.extra_metrics))


@dataclass(frozen=True)
class Scorer:
    """The loss and the metrics one trial (or evaluation) records, on its device."""

    kind: str
    n_outputs: int
    names: tuple[str, ...]  # the metrics recorded besides the loss, in order
    loss: LossFn
    device: torch.device
    target_std: torch.Tensor | None = None
    target_mean: torch.Tensor | None = None
    extra: Mapping[str, Callable[[torch.Tensor, torch.Tensor], Any]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        info: DataInfo,
        device: torch.device | str,
        names: Sequence[str] | None = None,
        scoring: Scoring | None = None,
    ) -> Scorer:
        """A scorer for ``names`` (every metric the task records when None).

        Raises ValueError naming a metric the task does not record.
        """
        scoring = scoring or Scoring()
        device = torch.device(device)
        available = {**BUILT_IN[info.kind], **scoring.extra}
        names = tuple(available) if names is None else tuple(dict.fromkeys(names))
        for name in names:
            if name not in available:
                raise ValueError(
                    f"metric {name!r} is not recorded by this {info.kind} task;"
                    f" it records {', '.join(available)}"
                )
        mean = None
        if info.target_mean is not None:
            mean = torch.tensor(info.target_mean, dtype=torch.float32, device=device)
        return cls(
            kind=info.kind,
            n_outputs=info.n_outputs,
            names=tuple(n for n in names if n != "loss"),
            loss=make_loss(info, device, scoring.loss),
            device=device,
            target_std=target_units(info, device),
            target_mean=mean,
            extra={n: scoring.extra[n].fn for n in names if n in scoring.extra},  # type: ignore[misc]
        )

    @property
    def counts(self) -> bool:
        """Whether a batch adds to the per-kind counts (confusion matrix, errors)."""
        return any(name in _COUNTED[self.kind] for name in self.names)

    @property
    def keeps_outputs(self) -> bool:
        """Whether a pass keeps its outputs: ROC-AUC ranks them, a task's own metric reads them."""
        return any(name not in _COUNTED[self.kind] for name in self.names)

    def tally(self) -> Tally:
        return Tally(self)


class Tally:
    """One pass over a split: what its batches add up to on the device, and its metrics.

    A batch is only held (its outputs, targets and loss, detached): every
    :data:`FOLD_BATCHES` batches, or :data:`FOLD_ELEMENTS` held output values,
    they are folded into the sums together, in a handful of kernels. On a GPU a
    small model's step is a few dozen kernel launches; folding per batch would
    add a fifth more, where folding 32 at once adds well under one.

    The end of a pass is split in two so that a trial's epoch reads everything
    in one transfer: :meth:`parts` are the device tensors the host needs (each
    batch's loss, the counts, any metric computed from the outputs) and
    :meth:`finish` turns their values, read back, into the metrics. Dividing,
    weighting and averaging happen there, on the host, in float64: on a GPU each
    of those would be a kernel launch of its own. :meth:`result` does both.
    """

    FOLD_BATCHES = 32
    FOLD_ELEMENTS = 1 << 22  # 16 MiB of float32 outputs held at most
    # a confusion matrix up to this many cells is read back whole; above it, its
    # diagonal and marginals are reduced on the device first
    WHOLE_MATRIX = 4096

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.rows = 0  # samples, known on the host
        self._elements = 0  # target values (regression: samples x outputs)
        self._batch_rows: list[int] = []  # each batch's samples: the weights of its mean loss
        self._losses: list[torch.Tensor] = []  # each fold's batch losses, as one vector
        self._counts: torch.Tensor | None = None  # made by the first fold
        self._outputs: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._held: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._held_elements = 0
        self._layout: list[tuple[str, int]] = []  # what parts() returned: (what, length)

    def add(self, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a batch: its outputs, targets and mean loss. Nothing leaves the device."""
        rows = len(target)
        self.rows += rows
        self._elements += target.numel()
        self._batch_rows.append(rows)
        self._held.append((output.detach(), target, loss.detach()))
        self._held_elements += output.numel()
        if len(self._held) >= self.FOLD_BATCHES or self._held_elements >= self.FOLD_ELEMENTS:
            self.fold()

    def fold(self) -> None:
        """The held batches into the sums: one concatenation, then one batch's kernels.

        A pass run under ``torch.inference_mode`` folds before it leaves it: its sums
        are inference tensors, which cannot be updated in place outside it.
        """
        held, self._held, self._held_elements = self._held, [], 0
        if not held:
            return
        if len(held) == 1:
            output, target, loss = held[0]
            self._losses.append(loss.reshape(1))
        else:
            output = torch.cat([h[0] for h in held])
            target = torch.cat([h[1] for h in held])
            self._losses.append(torch.stack([h[2] for h in held]).reshape(-1))
        if self.scorer.counts:
            self._count(output, target)
        if self.scorer.keeps_outputs:
            self._outputs.append(output.float())
            self._targets.append(target)

    def _count(self, output: torch.Tensor, target: torch.Tensor) -> None:
        kind, n = self.scorer.kind, self.scorer.n_outputs
        if kind == "classification":
            if self._counts is None:
                self._counts = torch.zeros(n * n, dtype=torch.float64, device=output.device)
            # index_add_, not bincount: bincount reads the largest index on the host
            cell = torch.add(output.argmax(dim=1), target, alpha=n)  # target * n + prediction
            ones = torch.ones(len(cell), dtype=torch.float64, device=output.device)
            self._counts.index_add_(0, cell, ones)
            return
        if kind == "multilabel":
            predicted, actual = output > 0, target > 0.5
            found = torch.cat(
                [
                    (predicted & actual).sum(dim=0),
                    (predicted & ~actual).sum(dim=0),
                    (~predicted & actual).sum(dim=0),
                ]
            ).double()
        else:
            # float64: r2 takes the target's variance from its sums of squares, which in
            # float32 lose it under a mean far from 0 (an unstandardised target)
            error, t = output.double() - target.double(), target.double()
            std = self.scorer.target_std
            if std is not None:
                # scaled back per output; the target's mean is not added back: r2 needs only
                # its variance, and a shift leaves that unchanged
                error, t = error * std, t * std
            found = torch.stack([error.pow(2).sum(), error.abs().sum(), t.sum(), t.pow(2).sum()])
        self._counts = found if self._counts is None else self._counts.add_(found)

    def parts(self) -> list[torch.Tensor]:
        """The pass's device tensors, each 1-d, that :meth:`finish` reads back."""
        self.fold()
        scorer, parts = self.scorer, []
        self._layout = []

        def put(what: str, tensor: torch.Tensor) -> None:
            parts.append(tensor.reshape(-1))
            self._layout.append((what, tensor.numel()))

        for losses in self._losses:
            put("losses", losses)
        if self._counts is not None:
            n = scorer.n_outputs
            if scorer.kind == "classification" and n * n > self.WHOLE_MATRIX:
                matrix = self._counts.view(n, n)
                put("hits", matrix.diagonal())
                put("targets", matrix.sum(dim=1))
                put("predictions", matrix.sum(dim=0))
            else:
                put("counts", self._counts)
        if scorer.keeps_outputs:
            for name, value in self._from_outputs().items():
                put(name, value)
        return parts

    def finish(self, values: Sequence[float]) -> dict[str, float]:
        """The metrics, ``loss`` first, from the host values of :meth:`parts` in order."""
        read: dict[str, list[float]] = {}
        start = 0
        for what, length in self._layout:
            read.setdefault(what, []).extend(values[start : start + length])
            start += length
        if start != len(values):
            raise ValueError(f"expected {start} values from this tally's parts, got {len(values)}")
        batches = zip(read.get("losses", []), self._batch_rows, strict=True)
        weighted = math.fsum(loss * rows for loss, rows in batches)
        out = {"loss": weighted / self.rows if self.rows else math.nan}
        counted = set(self.scorer.names) & _COUNTED[self.scorer.kind]
        if counted:
            counts = _counts_on_host(self.scorer.kind, self.scorer.n_outputs, read)
            out.update(_from_counts(self.scorer.kind, counts, self.rows, self._elements, counted))
        out.update({name: read[name][0] for name in self.scorer.names if name in read})
        return {"loss": out["loss"], **{name: out[name] for name in self.scorer.names}}

    def result(self) -> dict[str, float]:
        """:meth:`parts` read back in one transfer, then :meth:`finish`."""
        parts = self.parts()
        values = torch.cat(parts).tolist() if parts else []
        return self.finish(values)

    def _from_outputs(self) -> dict[str, torch.Tensor]:
        scorer = self.scorer
        outputs, targets = torch.cat(self._outputs), torch.cat(self._targets)
        out: dict[str, torch.Tensor] = {}
        if "roc_auc" in scorer.names:
            out["roc_auc"] = _roc_auc(scorer.kind, outputs, targets)
        if scorer.extra and scorer.target_std is not None and scorer.target_mean is not None:
            # a task's own regression metric sees predictions and targets in the target's units
            outputs = outputs * scorer.target_std + scorer.target_mean
            targets = targets * scorer.target_std + scorer.target_mean
        for name, fn in scorer.extra.items():
            value = fn(outputs, targets)
            value = torch.as_tensor(value, dtype=torch.float64, device=scorer.device)
            if value.numel() != 1:
                raise ValueError(
                    f"metric {name!r} must return one number, got shape {tuple(value.shape)}"
                )
            out[name] = value.reshape(())
        return out


def _counts_on_host(kind: str, n: int, read: Mapping[str, list[float]]) -> dict[str, np.ndarray]:
    """The counts read back, by what they are (a classification's diagonal and marginals)."""
    if kind != "classification":
        return {"counts": np.asarray(read["counts"], dtype=np.float64)}
    if "counts" in read:
        matrix = np.asarray(read["counts"], dtype=np.float64).reshape(n, n)
        # rows: the target, columns: the prediction
        return {"hits": matrix.diagonal(), "targets": matrix.sum(1), "predictions": matrix.sum(0)}
    return {what: np.asarray(read[what], dtype=np.float64) for what in _MARGINALS}


_MARGINALS = ("hits", "targets", "predictions")


def _from_counts(
    kind: str, counts: Mapping[str, np.ndarray], rows: int, elements: int, wanted: set[str]
) -> dict[str, float]:
    """The counted metrics in ``wanted``, on the host, in float64."""
    if kind == "classification":
        hits, targets, predictions = (counts[what] for what in _MARGINALS)
        found: dict[str, Callable[[], float]] = {
            "accuracy": lambda: float(hits.sum()) / rows if rows else math.nan,
            # 0/0 is NaN for a class absent from the split (and never predicted), and left out
            "balanced_accuracy": lambda: _nanmean(hits, targets),
            "macro_f1": lambda: _nanmean(2 * hits, targets + predictions),
        }
        return {name: found[name]() for name in wanted}
    if kind == "multilabel":
        tp, fp, fn = counts["counts"].reshape(3, -1)
        denominator = 2 * tp + fp + fn
        # a label never present nor predicted scores 0, as scikit-learn's default has it
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        return {"macro_f1": float(f1.mean())}
    sse, sae, s1, s2 = (float(v) for v in counts["counts"])
    found = {
        "rmse": lambda: math.sqrt(sse / elements) if elements else math.nan,
        "mae": lambda: sae / elements if elements else math.nan,
        "r2": lambda: _r2(sse, s1, s2, elements),
    }
    return {name: found[name]() for name in wanted}


def _nanmean(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """The mean of ``numerator / denominator`` over the entries whose denominator is not 0."""
    present = denominator > 0
    if not present.any():
        return math.nan
    return float((numerator[present] / denominator[present]).mean())


def _r2(sse: float, s1: float, s2: float, elements: int) -> float:
    if not elements:
        return math.nan
    variance = s2 / elements - (s1 / elements) ** 2
    return 1.0 - (sse / elements) / variance if variance > 0 else math.nan


def _roc_auc(kind: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ROC-AUC from a whole split's outputs: binary, one-vs-rest macro, or per label macro."""
    if kind == "multilabel":
        # a logit ranks samples as its sigmoid does
        scores, positive = outputs, targets > 0.5
    elif outputs.shape[1] == 2:
        # the logit difference ranks samples as the class-1 probability does, without
        # the ties a saturated float32 softmax would make
        scores = (outputs[:, 1].double() - outputs[:, 0].double()).unsqueeze(1)
        positive = (targets == 1).unsqueeze(1)
    else:
        scores = outputs.double().softmax(dim=1)
        positive = targets.unsqueeze(1) == torch.arange(outputs.shape[1], device=outputs.device)
    return torch.nanmean(roc_auc_per_column(scores, positive))


def roc_auc_per_column(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """The area under the ROC curve of each column of ``scores`` against ``positive``.

    The Mann-Whitney form: the rank sum of the positives, ties given their mean
    rank, so tied scores count a half. ``scores`` is ``(n, k)``, ``positive`` a
    boolean ``(n, k)``; the result is ``(k,)`` float64, NaN for a column
    without both positives and negatives. Sorting and cumulative extrema only:
    nothing is read on the host. Ranks are summed as integers (twice the mean
    rank is always one), so the sums are exact.
    """
    n, k = scores.shape
    values, order = scores.sort(dim=0)
    hit = positive.gather(0, order).long()
    position = torch.arange(1, n + 1, device=scores.device).unsqueeze(1).expand(n, k)
    change = values[1:] != values[:-1]
    edge = torch.ones((1, k), dtype=torch.bool, device=scores.device)
    starts, ends = torch.cat([edge, change]), torch.cat([change, edge])
    # each sample's run of equal scores: its first and last position
    first = torch.where(starts, position, 0).cummax(dim=0).values
    last = torch.where(ends, position, n + 1).flip(0).cummin(dim=0).values.flip(0)
    positives = hit.sum(dim=0)
    negatives = n - positives
    twice_u = ((first + last) * hit).sum(dim=0) - positives * (positives + 1)
    return twice_u.double() / (2 * positives * negatives).double()
