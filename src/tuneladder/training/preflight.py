"""Run a task's own code once before anything trains, and say in one line what is wrong.

The prepare rung loads the task's arrays and builds its model with the default
hyperparameters, then runs one forward and backward pass on a few training
samples. What goes wrong is one :class:`~tuneladder.core.errors.UserCodeError` line
naming the function, its file and line (:mod:`tuneladder.core.errors`).

Example::

    model_hp = {**task.default_model}
    check_model(task.build_model, model_hp, data.info, data.train.x, data.train.y)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tuneladder.core.errors import (
    UserCodeError,
    call_task_function,
    defined_at,
    function_name,
    raised,
    user_error,
    wrong_return,
)

if TYPE_CHECKING:
    import torch

    from tuneladder.tasks import DataInfo
    from tuneladder.training.metrics import Scoring

__all__ = ["CHECK_BATCH", "check_model", "unread_hyperparameters"]

CHECK_BATCH = 8  # train samples the model check runs on: enough for batch norm, cheap


class _Reads(dict):
    """The hyperparameters, noting which of them the factory looks up."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def keys(self) -> Any:  # dict(hp), {**hp}: every value is read
        self.read.update(super().keys())
        return super().keys()

    def items(self) -> Any:
        self.read.update(super().keys())
        return super().items()

    def values(self) -> Any:
        self.read.update(super().keys())
        return super().values()

    def __iter__(self) -> Any:
        self.read.update(super().keys())
        return super().__iter__()


def unread_hyperparameters(
    build_model: Callable[..., Any],
    configs: Sequence[tuple[Mapping[str, Any], Collection[str]]],
    info: DataInfo,
) -> list[str]:
    """Names sampled for some configs that ``build_model`` read for none of them.

    ``configs`` are pairs of a config's model hyperparameters and the names its
    trial samples. Each is built on the meta device (no memory, no weights); a
    config the factory cannot build there is left out, as the prepare rung has
    already built the base config for real. A name the factory reads only in
    some configs (``channels`` of a CNN) counts as read when one of them samples
    it, so conditional reads are not taken for unread ones.
    """
    import torch

    sampled: set[str] = set()
    read: set[str] = set()
    built = 0
    for hyperparameters, names in configs:
        values = _Reads(hyperparameters)
        try:
            with torch.device("meta"), torch.random.fork_rng(devices=[]):
                build_model(values, info)
        except Exception:  # noqa: S112 - a factory that needs real tensors is checked at prepare
            continue
        built += 1
        sampled |= set(names) & set(hyperparameters)
        read |= values.read & set(names)
    return sorted(sampled - read) if built else []


def check_model(
    build_model: Callable[..., Any],
    hyperparameters: Mapping[str, Any],
    info: DataInfo,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch: int = CHECK_BATCH,
    scoring: Scoring | None = None,
) -> tuple[int, ...]:
    """Build the model and run one training step on the first ``batch`` samples.

    Pass samples of the train split only. Raises :class:`UserCodeError` when the
    factory raises or returns something other than a ``torch.nn.Module``, when
    the forward or backward pass raises, when the output is not a tensor of
    shape ``(batch, info.n_outputs)`` (classes, labels, or regression targets),
    when the task's own loss (``scoring``) cannot be built, raises or gives
    more than one number, when the loss is not finite, or when one of the
    task's own metrics raises or gives more than one number. Returns the output
    shape.
    """
    import torch
    from torch import nn

    from tuneladder.training.metrics import Scoring, make_loss

    name = function_name(build_model)
    defined = defined_at(build_model)
    xb, yb = x[:batch], y[:batch]
    expected = (len(xb), info.n_outputs)
    # the check must not move the caller's random stream (fork_rng restores it)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = call_task_function(build_model, dict(hyperparameters), info)
        if not isinstance(model, nn.Module):
            raise wrong_return(build_model, model, "a torch.nn.Module")
        subject = f"the model from {name}"
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise UserCodeError(f"{subject} ({defined}) has no trainable parameters")
        # the rungs move the model to their device; one that placed itself is met there
        xb, yb = xb.to(trainable[0].device), yb.to(trainable[0].device)
        step = f"a training step on {len(xb)} train samples"
        scoring = scoring or Scoring()
        try:
            loss_fn = make_loss(info, xb.device, scoring.loss)
        except Exception as err:  # the task's loss factory: the built-in ones do not raise
            raise user_error(scoring.loss, err) from err
        try:
            model.train()
            output = model(xb)
            if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
                got = (
                    f"shape {tuple(output.shape)}"
                    if isinstance(output, torch.Tensor)
                    else type(output).__name__
                )
                what = {"classification": "classes", "multilabel": "labels"}.get(
                    info.kind, "regression targets"
                )
                raise UserCodeError(
                    f"{subject} ({defined}) outputs {got} for a batch of {len(xb)},"
                    f" expected shape {expected}: (batch, {what})"
                )
            loss = _task_loss(loss_fn, scoring.loss, output, yb, step)
            if not torch.isfinite(loss):
                raise UserCodeError(
                    f"{subject} ({defined}) gives a loss of {loss.item()} in {step}"
                )
            loss.backward()
        except UserCodeError:
            raise
        except Exception as err:  # forward or backward of the user's model
            raise UserCodeError(f"{subject} ({step}) {raised(err, build_model)}") from err
        for name, metric in scoring.extra.items():
            _check_metric(name, metric.fn, output.detach().float(), yb, step)
    return tuple(output.shape)


def _task_loss(
    loss_fn: Callable[..., Any], factory: Any, output: Any, target: Any, step: str
) -> Any:
    """The loss of one batch; a task's own loss that fails or is not one number is named."""
    import torch

    if factory is None:
        return loss_fn(output, target)
    subject = f"the loss from {function_name(factory)}"
    try:
        loss = loss_fn(output, target)
    except Exception as err:  # the user's loss may fail in any way
        raise UserCodeError(f"{subject} ({step}) {raised(err, factory)}") from err
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss)
        raise UserCodeError(
            f"{subject} ({defined_at(factory)}) gives {got} in {step}, expected the batch's"
            " mean loss, one number (reduction='mean')"
        )
    return loss


def _check_metric(name: str, fn: Any, output: Any, target: Any, step: str) -> None:
    """A task's own metric runs on the step's outputs and gives one number."""
    import torch

    subject = f"metric {name!r} ({function_name(fn)})"
    try:
        with torch.no_grad():
            value = torch.as_tensor(fn(output, target))
    except Exception as err:  # the user's metric may fail in any way
        raise UserCodeError(f"{subject} ({step}) {raised(err, fn)}") from err
    if value.numel() != 1:
        raise UserCodeError(
            f"{subject} ({defined_at(fn)}) gives shape {tuple(value.shape)} in {step},"
            " expected one number"
        )
