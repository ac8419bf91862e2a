"""Errors in a user's data or code, each said in one line that names where it is.

A problem with the data is a :class:`DataError`, whose message names the file or
task and the column. A problem in the task's own code is a
:class:`UserCodeError`, whose message names the function (``module:qualname``),
the file and line in it, and the error; the original exception is chained as its
``__cause__``, so that its full traceback can be kept for the rule's log. This
module imports nothing of the package: tasks, data and training all raise these.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "DataError",
    "StopRequested",
    "UserCodeError",
    "call_task_function",
    "defined_at",
    "function_name",
    "raised",
    "user_error",
    "wrong_return",
]


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the key.

    Here, not beside the config's checks (:mod:`tuneladder.ladder.config`, which
    re-exports it): a job that finds one (a searched hyperparameter the model never
    reads) says it as those do, without importing what the checks import.
    """


class DataError(ValueError):
    """Data a task cannot train on; the message names the file or task and the column."""


class UserCodeError(ValueError):
    """A task's function raised, or returned something unusable.

    The message names the function, and the file and line where it went wrong;
    the exception it raised, if any, is the ``__cause__``.
    """


class StopRequested(KeyboardInterrupt):  # noqa: N818 - a request, as KeyboardInterrupt is
    """A stop asked of a running ladder (:mod:`tuneladder.store.stop_request`), raised in a
    worker at its trial's epoch end, the state saved. A KeyboardInterrupt: whatever keeps
    Ctrl-C from being taken for a failed trial lets this through the same way."""


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
    return UserCodeError(f"{function_name(func)} {raised(err, func)}")


def wrong_return(func: Callable[..., Any], value: Any, expected: str) -> UserCodeError:
    """A function returned ``value`` instead of ``expected``: the error points at its def."""
    return UserCodeError(
        f"{function_name(func)} ({defined_at(func)}) returned {type(value).__name__},"
        f" expected {expected}"
    )


def raised(err: BaseException, func: Callable[..., Any]) -> str:
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
    return f"inside {module.partition('.')[0]} (the function is at {defined_at(func)})"


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


def defined_at(func: Callable[..., Any]) -> str:
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
