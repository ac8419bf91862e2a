"""Tasks: where the data comes from and which model a set of hyperparameters builds.

A task is what a user plugs in. Built in: ``digits``, ``csv`` and
``image_folder``; anything else is ``"package.module:function"``, a function
that takes the config's ``task.options`` and returns a :class:`Task`.
"""

from __future__ import annotations

from tuneladder.tasks._base import METRICS, SPLIT_NAMES, DataInfo, Encoded, Metric, Task
from tuneladder.tasks._loader import TaskError, load_task, task_module_name

__all__ = [
    "METRICS",
    "SPLIT_NAMES",
    "DataInfo",
    "Encoded",
    "Metric",
    "Task",
    "TaskError",
    "load_task",
    "task_module_name",
]
