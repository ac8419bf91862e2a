"""The trial contract: key, completeness, result files and checkpoints, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuneladder.core.hparams import TrialConfig
from tuneladder.store.io import write_json
from tuneladder.store.trial_files import RESULT_FILE
from tuneladder.store.trials import (
    CODE_MODULES,
    KEEP_TRIALS,
    Checkpoint,
    Code,
    _file_digest,
    code_fingerprint,
    is_complete,
    key_precision,
    read_result,
    stale_reason,
    task_module,
    trial_key,
    write_result,
)


@pytest.mark.parametrize("module", ["tuneladder.store.trials", "tuneladder.execution.collect"])
def test_bookkeeping_imports_no_torch(module: str) -> None:
    # collect is a local bookkeeping rule: it reads JSON and must not pay for torch
    code = f"import {module}, sys; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_trial_is_complete_when_its_result_carries_the_key(tmp_path: Path) -> None:
    key = trial_key(TrialConfig(epochs=2), "data", "accuracy")
    assert read_result(tmp_path) is None and stale_reason(None, key) == "not run"
    assert not is_complete(tmp_path, key)
    write_result(tmp_path, {"key": key, "status": "failed"})  # a failed trial is finished too
    assert is_complete(tmp_path, key) and read_result(tmp_path)["status"] == "failed"
    other = trial_key(TrialConfig(epochs=3), "data", "accuracy")
    reason = "stale: config, data, metric or precision changed"
    assert stale_reason(read_result(tmp_path), other) == reason
    (tmp_path / RESULT_FILE).write_text('{"key": "')  # a torn file is as good as none
    assert read_result(tmp_path) is None and not is_complete(tmp_path, key)


def test_checkpoint_is_only_loaded_for_its_own_key(tmp_path: Path) -> None:
    Checkpoint(tmp_path / "c.pt", "mine", every_s=0).save({"history": [{"epoch": 0.0}]})
    assert Checkpoint(tmp_path / "c.pt", "mine", 0).load()["history"] == [{"epoch": 0.0}]
    assert Checkpoint(tmp_path / "c.pt", "other", 0).load() is None
    write_json(tmp_path / "c.pt", {"not": "a checkpoint"})
    assert Checkpoint(tmp_path / "c.pt", "mine", 0).load() is None
    Checkpoint(tmp_path / "c.pt", "mine", 0).clear()
    assert not (tmp_path / "c.pt").exists()


PLUGIN = """
from tuneladder.tasks.digits import build_model as digits_model


def build_model(hp, info):
    return digits_model(hp, info)
"""


def test_a_code_change_retrains_unless_trials_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, digits
) -> None:
    import dataclasses
    import importlib

    import torch

    from tuneladder.execution.collect import IncompleteRung, collect_rung
    from tuneladder.execution.worker import TrialSetup, Worker, WorkerRuntime
    from tuneladder.tasks import load_task

    name = f"plugin_{tmp_path.name}"  # a task module of its own, as a user's plugin is
    source = tmp_path / f"{name}.py"
    source.write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)  # as the task loader does; restored afterwards
    monkeypatch.delenv(KEEP_TRIALS, raising=False)
    plugin = importlib.import_module(name)
    model = {"arch": "mlp", "width": 8, "num_layers": 1, "channels": 8, "dropout": 0.0}
    config = TrialConfig(epochs=1, batch_size=256, model=model)
    plan = {"rung": "coarse", "trials": [{"name": "0", "index": 0, "dir": "trials/0",
                                          "config": config.to_json()}]}  # fmt: skip

    task = dataclasses.replace(load_task("digits"), build_model=plugin.build_model)
    setup = TrialSetup(task=task, data=digits, metric="accuracy", mode="max")

    def work() -> dict:
        runtime = WorkerRuntime(device=torch.device("cpu"))
        return Worker(plan, tmp_path, setup=setup, runtime=runtime).run()

    def collect() -> list[dict]:
        return collect_rung(plan, tmp_path, data_fingerprint=digits.fingerprint, metric="accuracy")

    assert work()["ran"] == ["0"]
    recorded = read_result(tmp_path / "trials" / "0")["code"]
    assert recorded["task_module"] == name
    assert set(recorded["modules"]) == {*CODE_MODULES, name}
    assert work()["reused"] == ["0"] and len(collect()) == 1

    source.write_text(PLUGIN + "# a comment\n")  # what it computes is the same
    assert work()["reused"] == ["0"] and len(collect()) == 1
    source.write_text(PLUGIN + "SCALE = 2\n")  # what decides the numbers changed
    with pytest.raises(IncompleteRung, match=rf"0: stale: code changed \({name}\)"):
        collect()
    monkeypatch.setenv(KEEP_TRIALS, "1")  # keep them on purpose
    assert work()["reused"] == ["0"] and len(collect()) == 1
    monkeypatch.delenv(KEEP_TRIALS)
    with caplog.at_level("INFO", logger="tuneladder.execution.worker"):
        report = work()
    assert report["ran"] == ["0"] and report["stale"] == {"0": f"stale: code changed ({name})"}
    assert f"0 stale: code changed ({name}): training it again" in caplog.text
    assert read_result(tmp_path / "trials" / "0")["code"]["fingerprint"] != recorded["fingerprint"]
    assert len(collect()) == 1


def test_a_precision_change_retrains_and_keeps_fp32_keys_as_they_were(
    tmp_path: Path, digits
) -> None:
    import torch

    from tuneladder.execution.collect import IncompleteRung, collect_rung
    from tuneladder.execution.status import _CurrentRun
    from tuneladder.execution.worker import TrialSetup, Worker, WorkerRuntime
    from tuneladder.infra.device import PRECISIONS
    from tuneladder.store.trials import KEYED_PRECISIONS
    from tuneladder.tasks import load_task

    model = {"arch": "mlp", "width": 8, "num_layers": 1, "channels": 8, "dropout": 0.0}
    config = TrialConfig(epochs=1, batch_size=256, model=model)
    fp32 = trial_key(config, "data", "accuracy", "code")
    assert fp32 == trial_key(config, "data", "accuracy", "code", precision="fp32")
    bf16 = trial_key(config, "data", "accuracy", "code", precision="bf16")
    assert bf16 != fp32 and key_precision(bf16) == "bf16" and key_precision(fp32) == "fp32"
    assert (PRECISIONS[0], *KEYED_PRECISIONS) == PRECISIONS  # every other precision is keyed

    entry = {"name": "0", "index": 0, "dir": "trials/0", "config": config.to_json()}
    plan = {"rung": "coarse", "trials": [entry]}
    setup = TrialSetup(task=load_task("digits"), data=digits, metric="accuracy", mode="max")

    def work(precision: str) -> dict:
        runtime = WorkerRuntime(device=torch.device("cpu"), precision=precision)
        return Worker(plan, tmp_path, setup=setup, runtime=runtime).run()

    def collect(precision: str) -> list[dict]:
        fingerprint = digits.fingerprint
        return collect_rung(
            plan, tmp_path, data_fingerprint=fingerprint, metric="accuracy", precision=precision
        )

    assert work("fp32")["ran"] == ["0"] and work("fp32")["reused"] == ["0"]
    result = read_result(tmp_path / "trials" / "0")
    entry = plan["trials"][0]
    assert _CurrentRun("bf16").changed(result, entry) == "precision"
    assert not _CurrentRun().changed(result, entry)
    with pytest.raises(IncompleteRung, match="metric or precision changed"):
        collect("bf16")
    report = work("bf16")  # bf16 asked on a CPU: trained in fp32, keyed as the run asked
    assert report["ran"] == ["0"] and "precision" in report["stale"]["0"]
    assert (
        len(collect("bf16")) == 1
        and key_precision(read_result(tmp_path / "trials" / "0")["key"]) == "bf16"
    )


def test_the_data_is_prepared_again_for_the_code_that_reads_it_only() -> None:
    from tuneladder.store.trials import PREPARE_MODULES, prepare_fingerprint

    digests = {name: "a" for name in CODE_MODULES} | {"plugin": "p", "plugin_data": "d"}

    def prepared(**changed: str) -> str:
        return prepare_fingerprint(Code("plugin", digests | changed))

    before = prepared()
    assert prepared(**{"tuneladder.training.runner": "b"}) == before  # training only
    assert prepared(**{"tuneladder.tasks.models": "b"}) == before
    assert prepared(plugin="q") != before  # the task's module, which may read the data
    assert prepared(plugin_data="e") != before  # a module of the user's it imports
    assert all(prepared(**{name: "b"}) != before for name in PREPARE_MODULES)


def test_the_code_fingerprint_follows_the_users_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a plugin whose network, loss and a helper of the network live in modules of
    # their own: a fix to any of them changes what its trials compute
    tag = tmp_path.name.replace("-", "_")
    files = {
        f"task_{tag}.py": f"import numpy, torch\nfrom net_{tag} import Net\n"
        f"from pkg_{tag} import losses\n",
        f"net_{tag}.py": f"import helper_{tag} as h\n",
        f"helper_{tag}.py": "ACT = 'relu'\n",
        f"pkg_{tag}/__init__.py": "",
        f"pkg_{tag}/losses.py": "from .base import Loss\nfrom . import *\n",
        f"pkg_{tag}/base.py": "from tuneladder.tasks.models import digits_model\n",
        f"unused_{tag}.py": "X = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)
    code = code_fingerprint(f"task_{tag}")
    user = set(code.digests) - set(CODE_MODULES)
    assert user == {f"task_{tag}", f"net_{tag}", f"helper_{tag}", f"pkg_{tag}",
                    f"pkg_{tag}.losses", f"pkg_{tag}.base"}  # fmt: skip
    (tmp_path / f"unused_{tag}.py").write_text("X = 2\n")  # not imported: no change
    assert code_fingerprint(f"task_{tag}") == code
    (tmp_path / f"helper_{tag}.py").write_text("ACT = 'gelu'\n")
    changed = code_fingerprint(f"task_{tag}")
    assert changed.fingerprint != code.fingerprint
    assert changed.changed_since(code.to_json()) == [f"helper_{tag}"]
    # an installed package: its own modules count, the packages it imports do not
    installed = set(code_fingerprint("yaml").digests) - set(CODE_MODULES)
    assert "yaml.constructor" in installed and all(n.split(".")[0] == "yaml" for n in installed)
    target = tmp_path / "target"  # pip install --target: other distributions beside it
    (target / "other-1.0.dist-info").mkdir(parents=True)
    (target / f"plug_{tag}.py").write_text(f"import other_{tag}\n")
    (target / f"other_{tag}.py").write_text("")
    monkeypatch.syspath_prepend(target)
    assert set(code_fingerprint(f"plug_{tag}").digests) - set(CODE_MODULES) == {f"plug_{tag}"}
    # the built-in tasks: CODE_MODULES lists the tuneladder code that decides them
    assert set(code_fingerprint("tuneladder.tasks.digits").digests) == {
        *CODE_MODULES,
        "tuneladder.tasks.digits",
    }


def test_the_code_fingerprint_runs_no_user_code_and_agrees_with_a_loaded_task(
    tmp_path: Path,
) -> None:
    # a task module in a package whose __init__ imports torch and a module of its own:
    # collect (no torch) must hash the same files as a worker that imported the task
    tag = tmp_path.name.replace("-", "_")
    package = tmp_path / f"pkg_{tag}"
    package.mkdir()
    (package / "__init__.py").write_text("import torch\nfrom . import cfg\n")
    (package / "cfg.py").write_text("WIDTH = 8\n")
    (package / "task.py").write_text("import numpy\n")
    script = (
        "import json, sys\n"
        "from tuneladder.store.trials import code_fingerprint\n"
        f"code = code_fingerprint('pkg_{tag}.task')\n"
        "print(json.dumps({'digests': dict(code.digests), 'torch': 'torch' in sys.modules,"
        f" 'package': 'pkg_{tag}' in sys.modules}}))\n"
    )

    def run(first: str) -> dict:
        code = f"import sys\n{first}\n{script}"
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                              capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
        return json.loads(proc.stdout)

    collect = run("pass")
    assert not collect["torch"] and not collect["package"]
    assert set(collect["digests"]) - set(CODE_MODULES) == {
        f"pkg_{tag}",
        f"pkg_{tag}.cfg",
        f"pkg_{tag}.task",
    }
    worker = run(f"sys.path.insert(0, ''); import pkg_{tag}.task")
    assert worker["torch"] and worker["digests"] == collect["digests"]


def test_the_code_fingerprint_keys_by_content_not_by_place(tmp_path: Path) -> None:
    """Moving a module into a subpackage keeps every finished trial; a change to what
    the code computes does not."""
    old = tmp_path / "old.py"
    old.write_text(
        '"""The old home."""\nfrom tuneladder.step import train_step  # one place\n\n'
        'def f(x):\n    """Why it adds one."""\n    return train_step(x) + 1\n'
    )
    moved = tmp_path / "moved.py"
    for header in (
        "from tuneladder.training.step import train_step",
        "from ..training.step import train_step",
    ):
        moved.write_text(f"{header}\n\n\ndef f(x):\n    return train_step(x) + 1  # same\n")
        assert _file_digest(moved) == _file_digest(old)
    # import sorting follows module paths: a move reorders imports, or merges two
    two = "from tuneladder.b import y\nfrom tuneladder.a import x\nz = x + y\n"
    old.write_text(two)
    moved.write_text("from tuneladder.core.a import x, y\nz = x + y\n")
    assert _file_digest(moved) == _file_digest(old)
    old.write_text(
        '"""The old home."""\nfrom tuneladder.step import train_step  # one place\n\n'
        'def f(x):\n    """Why it adds one."""\n    return train_step(x) + 1\n'
    )
    moved.write_text("from tuneladder.training.step import train_step\ndef f(x):\n    return 2\n")
    assert _file_digest(moved) != _file_digest(old)
    elsewhere = old.read_text().replace("from tuneladder.step", "from other.step")
    moved.write_text(elsewhere)  # another package's function of the same name
    assert _file_digest(moved) != _file_digest(old)
    # every module under a new name, the same digests: the same fingerprint, so the
    # same trial keys; the record still names modules by where they were
    code = code_fingerprint("tuneladder.tasks.digits")
    renamed = {f"tuneladder.training.{n.rsplit('.', 1)[1]}": d for n, d in code.digests.items()}
    assert Code(code.task_module, renamed).fingerprint == code.fingerprint
    changed = {**code.digests, "tuneladder.training.step": "0" * 16}
    assert Code(code.task_module, changed).fingerprint != code.fingerprint


def test_the_code_fingerprint_reads_files_and_names_what_changed(monkeypatch) -> None:
    from tuneladder.tasks.digits import build_model

    monkeypatch.setattr(sys, "path", list(sys.path))  # looking for a plugin adds the cwd
    assert task_module(build_model) == "tuneladder.tasks.digits"
    code = code_fingerprint("tuneladder.tasks.digits")
    assert code == code_fingerprint("tuneladder.tasks.digits")  # same files, same digests
    assert len(code.fingerprint) == 16 and "missing" not in code.digests.values()
    older = {**code.digests, "tuneladder.training.runner": "0" * 16}
    assert code.changed_since({"modules": older}) == ["tuneladder.training.runner"]
    assert code_fingerprint("no_such_module_here").digests["no_such_module_here"] == "missing"
    config = TrialConfig(epochs=1)
    key = trial_key(config, "data", "accuracy", code.fingerprint)
    old = {"key": trial_key(config, "data", "accuracy", "f" * 16), "code": {"modules": older}}
    assert stale_reason(old, key, code) == "stale: code changed (tuneladder.training.runner)"
    before_fingerprints = {"key": trial_key(config, "data", "accuracy")}  # older results
    assert stale_reason(before_fingerprints, key, code) == (
        "stale: code changed (the result records no code)"
    )
    monkeypatch.setenv(KEEP_TRIALS, "1")
    assert stale_reason(old, key, code) is None
    assert stale_reason(before_fingerprints, key, code) is None
    other = trial_key(TrialConfig(epochs=2), "data", "accuracy", code.fingerprint)
    assert stale_reason(old, other, code) == "stale: config, data, metric or precision changed"
