"""A job's process imports torch with the collector paused, freezes it, and freezes at exit."""

from __future__ import annotations

import json
import subprocess
import sys


def _process(code: str, *, check: bool = True) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, its output kept: what it prints at exit included."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=check
    )


def _run(code: str) -> dict:
    """``code`` in a fresh interpreter, as a job starts; it prints one JSON line."""
    return json.loads(_process(code).stdout.splitlines()[-1])


def _job_start(*, dynamo: bool) -> str:
    """A job's first lines: torch imported its way, the exit handler registered."""
    return (
        "from tuneladder.infra.startup import freeze_at_exit, import_torch\n"
        f"import_torch(dynamo={dynamo})\n"
        "freeze_at_exit()\n"
    )


IMPORT = "from tuneladder.infra.startup import import_torch;"
STATE = (
    "import gc, json, sys; print(json.dumps({'enabled': gc.isenabled(),"
    " 'frozen': gc.get_freeze_count(), 'torch': 'torch' in sys.modules,"
    " 'dynamo': 'torch._dynamo' in sys.modules}))"
)


def test_a_jobs_first_torch_import_leaves_it_frozen_and_the_collector_on() -> None:
    state = _run(f"{IMPORT} import_torch(dynamo=True); {STATE}")
    assert state["torch"] and state["dynamo"]
    assert state["enabled"]
    assert state["frozen"] > 100_000  # torch's objects, out of every later collection


def test_without_dynamo_only_torch_is_imported() -> None:
    state = _run(f"{IMPORT} import_torch(dynamo=False); {STATE}")
    assert state["torch"] and not state["dynamo"]


def test_a_process_that_already_has_torch_is_not_frozen() -> None:
    # a test session, or a job whose code imported torch first: its objects stay collectable
    state = _run(f"import torch; {IMPORT} import_torch(dynamo=True); {STATE}")
    assert state["dynamo"] and state["enabled"] and state["frozen"] == 0


def test_a_collector_switched_off_stays_off() -> None:
    state = _run(f"import gc; gc.disable(); {IMPORT} import_torch(dynamo=False); {STATE}")
    assert not state["enabled"]


def test_a_failed_import_switches_the_collector_back_on() -> None:
    code = (
        "import importlib.abc, sys\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'torch._dynamo':\n"
        "            raise ImportError('no dynamo here')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from tuneladder.infra.startup import import_torch\n"
        "try:\n"
        "    import_torch(dynamo=True)\n"
        "except ImportError:\n"
        "    pass\n"
        f"{STATE}"
    )
    state = _run(code)
    assert state["torch"] and not state["dynamo"]
    assert state["enabled"]


def test_the_heap_is_frozen_once_the_interpreter_starts_shutting_down() -> None:
    # exit handlers run last registered first: the one registered before sees the freeze
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print(gc.get_freeze_count() > 0))\n"
        "from tuneladder.infra.startup import freeze_at_exit, import_torch\n"
        "import_torch(dynamo=False); gc.unfreeze()  # a job, its imports' freeze undone\n"
        "freeze_at_exit(); freeze_at_exit()\n"
        "print(gc.get_freeze_count() > 0)\n"
    )
    out = _process(code)
    assert out.stdout.split() == ["False", "True"]


def test_what_a_job_printed_survives_its_exit_and_shutdown_chatter_does_not() -> None:
    # the handler registered first runs last: it stands for an extension module's
    # output as the interpreter unloads it (nanobind's leak warnings in triton 3.9)
    code = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: os.write(2, b'shutdown chatter\\n'))\n"
        + _job_start(dynamo=False)
        + "sys.stderr.write('written before the exit\\n')\n"
        "raise SystemExit('the reason the job stopped')\n"
    )
    out = _process(code, check=False)
    assert out.returncode == 1
    assert out.stderr == "written before the exit\nthe reason the job stopped\n"


def test_a_job_that_imports_torch_ends_without_a_word_on_stderr() -> None:
    # torch 2.15 with triton 3.9 printed thirty nanobind leak warnings here at exit
    code = (
        _job_start(dynamo=True) + "import torch\n"
        "torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1).step()\n"
    )
    out = _process(code)
    assert out.stderr == ""


def test_a_process_whose_torch_was_imported_before_ends_as_python_ends_it() -> None:
    # a test run or a notebook: what it prints at exit is its own, and its heap is not
    # frozen (on torch 2.15 a frozen heap makes nanobind print its leak warnings)
    code = (
        "import atexit, gc, os, torch\n"
        "atexit.register(lambda: os.write(2, b'frozen: %d\\n' % gc.get_freeze_count()))\n"
        + _job_start(dynamo=False)
    )
    out = _process(code)
    assert out.stderr == "frozen: 0\n"
