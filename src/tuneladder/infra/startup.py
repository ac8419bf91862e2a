"""A job's process: start it and end it without paying Python's garbage collector for torch.

Importing torch, and ``torch._dynamo`` (which every torch optimizer loads on
construction and on its first step, for its graph-break hooks), makes a few
hundred thousand long-lived objects. The cyclic collector walks them again and
again while they are being made (0.5 s of a job's start here), in each full
collection after that, and once more as the interpreter shuts down (0.4-0.6 s
of a job's end). Importing them with the collector paused, then freezing what
they made (``gc.freeze``: kept out of every later collection; they live as
long as the process anyway), and freezing again at exit, spares all three.
Nothing else changes: what the job creates afterwards is collected as usual.

What is frozen at exit is still alive when extension modules unload, and those
built with nanobind (triton 3.9's, which torch 2.15 imports with its compiler)
count their live instances and print "leaked" warnings then: thirty lines per
job, glued to Snakemake's progress. They say nothing about the job, so the
exit handler also points the process's stderr at ``/dev/null`` (unfreezing and
collecting instead costs 0.8 s per job here). By then Python has already
printed an uncaught exception's traceback; only the interpreter's shutdown
output is dropped.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys

__all__ = ["freeze_at_exit", "import_torch"]

_exit_hook: list[bool] = []  # registered once per process
_job_import: list[bool] = []  # import_torch froze this process's first torch import


def import_torch(*, dynamo: bool) -> None:
    """Import torch, and with ``dynamo`` ``torch._dynamo``, with the collector paused.

    ``dynamo`` is for jobs that build an optimizer (or export a model): they
    import ``torch._dynamo`` anyway (1.1 s here), and here it is made with the
    collector paused too. When this is the
    process's first torch import, as at a job's start, everything made so far is
    frozen. Elsewhere (a test process that already has torch) nothing is frozen.
    """
    names = ("torch", "torch._dynamo") if dynamo else ("torch",)
    if all(name in sys.modules for name in names):
        return
    first = "torch" not in sys.modules
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # a torch without it, or a broken triton: nothing to warm up
                if name == "torch":
                    raise
    finally:
        if enabled:
            gc.enable()
    if first:
        gc.freeze()
        _job_import.append(True)


def freeze_at_exit() -> None:
    """Freeze the heap as the interpreter starts shutting down, so it collects nothing.

    Exit handlers run before the interpreter's last collections; what is frozen
    by then is left to the process's end. Objects that a collection would have
    finalised at exit are not: Python does not promise that anyway, and the
    job's results are written before this runs. The process's stderr then goes
    nowhere (see the module's note); what was written to it before is flushed
    first. Both only in a job, whose torch :func:`import_torch` imported: any
    other process (a test run's, a notebook's) ends as Python ends it.
    """
    if not _exit_hook:
        atexit.register(_freeze_and_quiet)
        _exit_hook.append(True)


def _freeze_and_quiet() -> None:
    if not _job_import:
        return  # not a job: its exit stays Python's own, output and collections alike
    gc.freeze()
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):  # closed: nothing of it left to print
                pass
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(null, 2)
    os.close(null)
