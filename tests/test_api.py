"""The Python API as a notebook calls it: what the commands do, in-process."""

from __future__ import annotations

from pathlib import Path

from tuneladder import api


def test_a_dry_run_plans_the_overridden_ladder_and_trains_nothing(tmp_path: Path, capfd) -> None:
    # load_config's keys (dotted, bare) and a YAML boolean, which --config once kept a string
    config = {"experiment": "dry", "coarse.trials": 3, "select.top_k": 2, "lr": 1e-3}
    config["deterministic"] = True
    assert api.run_ladder(config=config, cores=1, workdir=tmp_path, dry_run=True)
    out = capfd.readouterr()
    assert "coarse  3 (written" in out.out + out.err
    assert "This was a dry-run" in out.out + out.err
    assert not (tmp_path / "results").exists()
