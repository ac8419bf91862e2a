"""Run a task's own code once before anything trains, and say in one line what is wrong.

The prepare rung loads the task's arrays and builds its model with the default
hyperparameters, then runs one forward and backward pass on a few training
samples. A problem with the data is a :class:`DataError`, whose message names the
file or task and the column. A problem in the task's own code is a
:class:`UserCodeError`, whose message names the function (``module:qualname``),
the file and line in it, and the error; the original exception is chained as its
``__cause__``, so that its full traceback can be kept for the rule's log.

Example::

    model_hp = {**task.default_model}
    check_model(task.build_model, model_hp, data.info, data.train.x, data.train.y)
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from tuneladder.metrics import Scoring
    from tuneladder.tasks import DataInfo

__all__ = [
    "CHECK_BATCH",
    "DataError",
    "UserCodeError",
    "call_task_function",
    "check_model",
    "function_name",
    "unread_hyperparameters",
    "user_error",
    "wrong_return",
]

CHECK_BATCH = 8  # train samples the model check runs on: enough for batch norm, cheap


class DataError(ValueError):
    """Data a task cannot train on; the message names the file or task and the column."""


class UserCodeError(ValueError):
    """A task's function raised, or returned something unusable.

    The message names the function, and the file and line where it went wrong;
    the exception it raised, if any, is the ``__cause__``.
    """


def function_name(func: Callable[..., Any]) -> str:
    """``module:qualname`` of a function, as a plugin's ``task.name`` spells it."""
    func = _unwrapped(func)
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{qualname}"


def call_task_function(func: Callable[..., Any], *args: Any) -> Any:
    """Call a task's function; what it raises becomes one :class:`UserCodeError` line.

    A :class:`DataError` passes unchanged: it already names the file and column.
    """
    try:
        return func(*args)
    except DataError:
        raise
    except Exception as err:  # the user's code may fail in any way
        raise user_error(func, err) from err


def user_error(func: Callable[..., Any], err: BaseException) -> UserCodeError:
    """``plugin:load raised KeyError at plugin.py:12: 'x'``, at the innermost line in its file."""
    return UserCodeError(f"{function_name(func)} {_raised(err, func)}")


def wrong_return(func: Callable[..., Any], value: Any, expected: str) -> UserCodeError:
    """A function returned ``value`` instead of ``expected``: the error points at its def."""
    return UserCodeError(
        f"{function_name(func)} ({_definition(func)}) returned {type(value).__name__},"
        f" expected {expected}"
    )


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

    from tuneladder.metrics import Scoring, make_loss

    name = function_name(build_model)
    defined = _definition(build_model)
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
            raise UserCodeError(f"{subject} ({step}) {_raised(err, build_model)}") from err
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
        raise UserCodeError(f"{subject} ({step}) {_raised(err, factory)}") from err
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss)
        raise UserCodeError(
            f"{subject} ({_definition(factory)}) gives {got} in {step}, expected the batch's"
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
        raise UserCodeError(f"{subject} ({step}) {_raised(err, fn)}") from err
    if value.numel() != 1:
        raise UserCodeError(
            f"{subject} ({_definition(fn)}) gives shape {tuple(value.shape)} in {step},"
            " expected one number"
        )


def _raised(err: BaseException, func: Callable[..., Any]) -> str:
    """``raised KeyError at plugin.py:12: 'x'``: the innermost line in the function's file."""
    message = next((line for line in str(err).splitlines() if line.strip()), "")
    text = f"raised {type(err).__name__} {_raised_where(err, func)}"
    return f"{text}: {message}" if message else text


def _raised_where(err: BaseException, func: Callable[..., Any]) -> str:
    path = _source_file(func)
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == path:
            return f"at {_shown(frame.filename)}:{frame.lineno}"
    # no line of the function's file was running (an nn.Sequential's layers, say)
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "?") if tb is not None else "?"
    return f"inside {module.partition('.')[0]} (the function is at {_definition(func)})"


def _unwrapped(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.unwrap(func) if callable(func) else func


def _code(func: Callable[..., Any]) -> Any:
    func = _unwrapped(func)
    code = getattr(func, "__code__", None)
    if code is None and callable(func):  # a callable object: its __call__ method
        code = getattr(type(func).__call__, "__code__", None)
    return code


def _source_file(func: Callable[..., Any]) -> str | None:
    code = _code(func)
    return code.co_filename if code is not None else None


def _definition(func: Callable[..., Any]) -> str:
    """``file.py:LINE`` where the function is defined."""
    code = _code(func)
    if code is None:
        return "unknown file"
    return f"{_shown(code.co_filename)}:{code.co_firstlineno}"


def _shown(filename: str) -> str:
    """A path relative to the working directory when it is inside it."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return filename
