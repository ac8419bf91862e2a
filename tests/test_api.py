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


def test_a_trial_trains_on_the_experiments_data_only_where_it_is_its_configs(
    tmp_path: Path, monkeypatch
) -> None:
    from helpers import REPO
    from tuneladder.data.prepared import prepare
    from tuneladder.store.io import read_json
    from tuneladder.tasks import load_task

    monkeypatch.chdir(tmp_path)
    config = api.load_config(REPO / "config" / "config.yaml", {"epochs": 1, "arch": "mlp"})
    shared = tmp_path / "results" / config["experiment"] / "data"
    settings = {"materialize": "auto", "max_memory_mb": 1024}
    prepare(load_task("digits"), shared, seed=5, task_options={}, **settings)  # another seed
    assert api.run_trial(config, "one")["status"] == "ok"
    assert read_json(tmp_path / "one" / "data" / "meta.json")["seed"] == config["seed"]
    prepare(load_task("digits"), shared, seed=config["seed"], task_options={}, **settings)
    assert api.run_trial(config, "two")["status"] == "ok"
    assert not (tmp_path / "two" / "data").exists()  # the experiment's own, this time
