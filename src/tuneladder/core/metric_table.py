"""The metrics a trial can be selected on: their names, which way is better, and their range.

The one home of these facts: the config takes a metric's direction from here
(or from the task, for a metric the task defines), the seed statistics its
range, and the task its list of names. No torch here, so a config resolves and
a report renders without it; :mod:`tuneladder.training.metrics` computes the values.

Built in, per kind of task:

* classification: ``accuracy``, ``balanced_accuracy`` (the mean recall over the
  classes present in the split), ``macro_f1`` (the mean F1 over the classes
  present in the split or predicted), ``roc_auc`` (binary: the area under the
  ROC curve of the class-1 score; more classes: the mean one-vs-rest area over
  the classes present), ``loss``;
* multilabel: ``macro_f1`` (each label predicted when its logit is > 0),
  ``roc_auc`` (the mean area over labels), ``loss``;
* regression: ``rmse``, ``mae``, ``r2`` (in the target's own units), ``loss``.

Each is what scikit-learn's function of the same name computes with its
defaults (``roc_auc_score`` with ``multi_class="ovr"``), which the tests check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuneladder.core.direction import Direction

__all__ = ["BUILT_IN", "KINDS", "Bounds", "Metric", "built_in", "check_name"]

# (low, high) of a metric's values; None: open on that side
Bounds = tuple[float | None, float | None]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A metric: which way is better, where its values lie, and (a task's own) how to compute it.

    Args:
        mode: ``"max"`` when larger is better, ``"min"`` when smaller is; the
            config's ``metric.mode`` follows it.
        bounds: ``(low, high)``, None for an open side. Intervals over seeds are
            clipped to it, so give it when the metric has a range (``(0.0, 1.0)``).
        fn: For a task's own metric: ``(outputs, targets) -> scalar tensor``
            over a whole split, called once per epoch on the device with the
            model's outputs (float32, ``(n, outputs)``) and the split's targets
            (class indices; 0/1 per label; for regression, outputs and targets
            in the target's own units). Return a tensor rather than a float:
            the epoch's numbers then reach the host in its one transfer. None
            for a built-in metric.

    Example::

        def top2_accuracy(outputs, targets):
            top2 = outputs.topk(2, dim=1).indices
            return (top2 == targets[:, None]).any(dim=1).float().mean()

        Task(..., extra_metrics={"top2_accuracy": Metric(fn=top2_accuracy, mode="max",
                                                         bounds=(0.0, 1.0))})
    """

    mode: Direction | str
    bounds: Bounds = (None, None)
    fn: Callable[[Any, Any], Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Direction(self.mode))
        low, high = self.bounds
        for bound in (low, high):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"bounds must be finite or None, got bounds={self.bounds}")
        if low is not None and high is not None and low >= high:
            raise ValueError(f"bounds must have low < high, got bounds={self.bounds}")
        if self.fn is not None and not callable(self.fn):
            raise ValueError(f"fn must be callable, got fn={self.fn!r}")


_UNIT = (0.0, 1.0)
_LOSS = Metric(mode="min", bounds=(0.0, None))

# The built-in metrics of each kind of task, in the order they are listed to users.
BUILT_IN: dict[str, dict[str, Metric]] = {
    "classification": {
        "accuracy": Metric(mode="max", bounds=_UNIT),
        "balanced_accuracy": Metric(mode="max", bounds=_UNIT),
        "macro_f1": Metric(mode="max", bounds=_UNIT),
        "roc_auc": Metric(mode="max", bounds=_UNIT),
        "loss": _LOSS,
    },
    "multilabel": {
        "macro_f1": Metric(mode="max", bounds=_UNIT),
        "roc_auc": Metric(mode="max", bounds=_UNIT),
        "loss": _LOSS,
    },
    "regression": {
        "rmse": Metric(mode="min", bounds=(0.0, None)),
        "mae": Metric(mode="min", bounds=(0.0, None)),
        "r2": Metric(mode="max", bounds=(None, 1.0)),
        "loss": _LOSS,
    },
}

KINDS = tuple(BUILT_IN)


def built_in(name: str) -> Metric | None:
    """The built-in metric of that name, whatever the kind; None for any other name."""
    for metrics in BUILT_IN.values():
        if name in metrics:
            return metrics[name]
    return None


def check_name(name: str) -> None:
    """A task's own metric needs a name of its own: a word, and not a built-in one."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"a metric name must be letters, digits and _, not starting with a digit, got {name!r}"
        )
    if built_in(name) is not None:
        raise ValueError(f"metric {name!r} is built in; give the task's own metric another name")
