from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from tuneladder.core.errors import user_error
from tuneladder.tasks._base import Task, plugin_path

__all__ = ["TaskError", "load_task", "task_module_name"]

_PLUGIN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class TaskError(ValueError):
    """A task that cannot be loaded; the message names task.name or the file."""


def load_task(name: str, options: Mapping[str, Any] | None = None) -> Task:
    """Resolve ``task.name`` to a Task. Loads no data: that is the prepare rung's job."""
    options = dict(options or {})
    if name == "digits":
        from tuneladder.tasks.digits import make_task
    elif name == "csv":
        from tuneladder.tasks.tabular import make_task
    elif name == "image_folder":
        from tuneladder.tasks.image_folder import make_task
    elif _PLUGIN.match(name):
        make_task = _import_factory(name)
    else:
        raise TaskError(
            "task.name must be digits, csv, image_folder or 'package.module:function', got"
            f" {name!r}"
        )
    try:
        task = make_task(options)
    except (TypeError, ValueError, KeyError) as err:  # what a task says of its options
        raise TaskError(f"task {name!r}: {err}") from None
    except Exception as err:  # anything else: point at the line in the plugin
        raise TaskError(f"task {name!r}: {user_error(make_task, err)}") from None
    if not isinstance(task, Task):
        raise TaskError(
            f"task {name!r}: the function returned {type(task).__name__}, expected a"
            " tuneladder.tasks.Task"
        )
    return task


def task_module_name(name: str) -> str | None:
    """The module of ``task.name``'s code, found without importing it.

    For a plugin, the module of its ``make_task``: its model factory usually lives
    beside it, and the trial's own record names the factory's module exactly.
    """
    if name == "digits":
        return "tuneladder.tasks.digits"
    if name == "csv":
        return "tuneladder.tasks.tabular"
    if name == "image_folder":
        return "tuneladder.tasks.image_folder"
    if _PLUGIN.match(name):
        return name.partition(":")[0]
    return None


def _import_factory(name: str) -> Any:
    module_name, _, func_name = name.partition(":")
    plugin_path()
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a plugin may fail in any way while importing
        raise TaskError(
            f"task.name {name!r}: cannot import {module_name!r} ({type(err).__name__}: {err})"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TaskError(f"task.name {name!r}: {module_name} has no function {func_name!r}")
    return func
