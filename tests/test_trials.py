"""The trial contract: key, completeness, result files and checkpoints, without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tuneladder.hparams import TrialConfig
from tuneladder.io import write_json
from tuneladder.trials import (
    RESULT_FILE,
    Checkpoint,
    is_complete,
    read_result,
    stale_reason,
    trial_key,
    write_result,
)


@pytest.mark.parametrize("module", ["tuneladder.trials", "tuneladder.collect"])
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
    assert stale_reason(read_result(tmp_path), other) == "stale: config, data or metric changed"
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
