"""Loss and metrics, computed on the device so that training never waits on the host.

A :class:`Scorer` is built once per trial (or evaluation) for the metrics it
must record. Each pass over a split fills a :class:`Tally`: a batch adds a few
device tensors, and :meth:`Tally.values` computes the metrics on the device at
the end, as one vector that reaches the host in the epoch's one transfer.

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

Regression models learn a standardised target (see :mod:`tuneladder.data`), so
the built-in ``loss`` is the mean squared error on that scale: the training
objective. A task may train on its own loss (:attr:`tuneladder.tasks.Task.loss`);
``loss`` is then that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from tuneladder.metric_table import BUILT_IN, Metric

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

    def named(self, values: Sequence[float]) -> dict[str, float]:
        """:meth:`Tally.values`, on the host, by name: ``loss`` first, then :attr:`names`."""
        return {"loss": values[0], **dict(zip(self.names, values[1:], strict=True))}


class Tally:
    """One pass over a split: device sums that a batch adds to, and the metrics at the end.

    A batch is only held (its outputs, targets and loss, detached): every
    :data:`FOLD_BATCHES` batches, or :data:`FOLD_ELEMENTS` held output values,
    they are folded into the sums together, in a handful of kernels. On a GPU a
    small model's step is a few dozen kernel launches; folding per batch would
    add a fifth more, where folding 32 at once adds well under one.
    """

    FOLD_BATCHES = 32
    FOLD_ELEMENTS = 1 << 22  # 16 MiB of float32 outputs held at most

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.rows = 0  # samples, known on the host
        self._elements = 0  # target values (regression: samples x outputs)
        self._loss = torch.zeros((), dtype=torch.float64, device=scorer.device)
        self._counts = None
        if scorer.counts:
            size = {
                "classification": scorer.n_outputs**2,
                "multilabel": 3 * scorer.n_outputs,
                "regression": 4,
            }[scorer.kind]
            dtype = torch.float32 if scorer.kind == "regression" else torch.float64
            self._counts = torch.zeros(size, dtype=dtype, device=scorer.device)
        self._outputs: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._held: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = []
        self._held_elements = 0

    def add(self, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a batch: its outputs, targets and mean loss. Nothing leaves the device."""
        output, rows = output.detach(), len(target)
        self.rows += rows
        self._elements += target.numel()
        self._held.append((output, target, loss.detach(), rows))
        self._held_elements += output.numel()
        if len(self._held) >= self.FOLD_BATCHES or self._held_elements >= self.FOLD_ELEMENTS:
            self._fold()

    def _fold(self) -> None:
        """The held batches into the sums: one concatenation, then one batch's kernels."""
        held, self._held, self._held_elements = self._held, [], 0
        if not held:
            return
        # the loss sum weights each batch's mean by its rows: batches of one size at once
        by_rows: dict[int, list[torch.Tensor]] = {}
        for _, _, loss, rows in held:
            by_rows.setdefault(rows, []).append(loss)
        for rows, losses in by_rows.items():
            self._loss.add_(torch.stack(losses).sum(dtype=torch.float64), alpha=rows)
        if len(held) == 1:
            output, target = held[0][0], held[0][1]
        else:
            output = torch.cat([h[0] for h in held])
            target = torch.cat([h[1] for h in held])
        if self._counts is not None:
            self._count(output, target)
        if self.scorer.keeps_outputs:
            self._outputs.append(output.float())
            self._targets.append(target)

    def _count(self, output: torch.Tensor, target: torch.Tensor) -> None:
        counts, kind = self._counts, self.scorer.kind
        assert counts is not None
        if kind == "classification":
            # index_add_, not bincount: bincount reads the largest index on the host
            cell = target * self.scorer.n_outputs + output.argmax(dim=1)
            ones = torch.ones(len(cell), dtype=counts.dtype, device=counts.device)
            counts.index_add_(0, cell, ones)
        elif kind == "multilabel":
            predicted, actual = output > 0, target > 0.5
            counts.add_(
                torch.cat(
                    [
                        (predicted & actual).sum(dim=0),
                        (predicted & ~actual).sum(dim=0),
                        (~predicted & actual).sum(dim=0),
                    ]
                )
            )
        else:
            error, t = output.float() - target, target.float()
            std = self.scorer.target_std
            if std is not None:
                # scaled back per output; the target's mean is not added back: r2 needs only
                # its variance, and a shift leaves that unchanged
                error, t = error * std, t * std
            sums = [error.pow(2).sum(), error.abs().sum(), t.sum(), t.pow(2).sum()]
            counts.add_(torch.stack(sums))

    def values(self) -> torch.Tensor:
        """The mean loss, then each of the scorer's metrics, as one float64 device vector."""
        self._fold()
        scorer = self.scorer
        metrics: dict[str, torch.Tensor] = {}
        if self._counts is not None:
            metrics.update(
                _from_counts(
                    scorer.kind, self._counts, self._elements, scorer.n_outputs, scorer.names
                )
            )
        if scorer.keeps_outputs:
            metrics.update(self._from_outputs())
        loss = self._loss / self.rows
        return torch.stack([loss, *(metrics[name] for name in scorer.names)])

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


def _from_counts(
    kind: str, counts: torch.Tensor, elements: int, outputs: int, names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The counted metrics among ``names``, on the device: a few scalar operations each."""
    wanted = set(names) & _COUNTED[kind]
    if kind == "classification":
        matrix = counts.view(outputs, outputs)  # rows: the target, columns: the prediction
        hits = matrix.diagonal()
        found: dict[str, Callable[[], torch.Tensor]] = {
            "accuracy": lambda: hits.sum() / matrix.sum(),
            # 0/0 is NaN for a class absent from the split (and never predicted), and left out
            "balanced_accuracy": lambda: torch.nanmean(hits / matrix.sum(dim=1)),
            "macro_f1": lambda: torch.nanmean(2 * hits / (matrix.sum(dim=1) + matrix.sum(dim=0))),
        }
        return {name: found[name]() for name in wanted}
    if kind == "multilabel":
        tp, fp, fn = counts.view(3, -1)
        denominator = 2 * tp + fp + fn
        # a label never present nor predicted scores 0, as scikit-learn's default has it
        f1 = torch.where(denominator > 0, 2 * tp / denominator, torch.zeros_like(denominator))
        return {"macro_f1": f1.mean()} if wanted else {}
    sse, sae, s1, s2 = counts.double()
    found = {
        "rmse": lambda: torch.sqrt(sse / elements),
        "mae": lambda: sae / elements,
        "r2": lambda: _r2(sse, s1, s2, elements),
    }
    return {name: found[name]() for name in wanted}


def _r2(sse: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, elements: int) -> torch.Tensor:
    variance = s2 / elements - (s1 / elements) ** 2
    return torch.where(
        variance > 0, 1.0 - (sse / elements) / variance, torch.full_like(variance, torch.nan)
    )


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
