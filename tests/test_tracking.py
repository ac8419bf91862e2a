"""MLflow mirrors the result files: real MLflow, real SQLite."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tuneladder.core.hparams import TrialConfig
from tuneladder.store.io import write_json
from tuneladder.tracking.mirror import ladder_run, open_ladder, resolve_uri
from tuneladder.training.runner import TrainingRun, run_trial

LOG_ONE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tuneladder.tracking.mirror import open_ladder
    trial_dir = Path(sys.argv[2])
    result = json.loads((trial_dir / "result.json").read_text())
    tracker = open_ladder(tracking_uri=sys.argv[1], experiment="race", results=sys.argv[3])
    tracker.log_trial(result, trial_dir)
    """
)


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory, digits_dir: Path) -> list[Path]:
    """Eight finished trials (one real one, copied under eight names)."""
    from tuneladder.data.prepared import load_train_val
    from tuneladder.tasks import load_task

    root = tmp_path_factory.mktemp("trials")
    task = load_task("digits")
    config = TrialConfig(epochs=2, model={**task.default_model, "width": 16})
    first = root / "0"
    run_trial(
        TrainingRun(
            config=config,
            data=load_train_val(digits_dir),
            task=task,
            metric="accuracy",
            mode="max",
            device=torch.device("cpu"),
        ),
        first,
        trial={"rung": "coarse", "index": 0, "name": "0"},
    )
    dirs = [first]
    for i in range(1, 8):
        copy = root / str(i)
        shutil.copytree(first, copy)
        result = json.loads((copy / "result.json").read_text())
        result["trial"] = {"rung": "coarse", "index": i, "name": str(i)}
        write_json(copy / "result.json", result)
        dirs.append(copy)
    return dirs


def run_count(uri: str, experiment: str) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return len(client.search_runs([found.experiment_id], max_results=1000))


@pytest.mark.slow
def test_eight_trials_finishing_at_once_lose_no_record(tmp_path: Path, trials) -> None:
    # a fresh store: the eight processes also race to create it and the parent run
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", LOG_ONE, uri, str(d), str(tmp_path)])
        for d in trials
    ]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    assert run_count(uri, "race") == 1 + 8  # the parent and every trial

    tracker = open_ladder(tracking_uri=uri, experiment="race", results=tmp_path)
    for d in trials:  # a rerun of the ladder logs nothing new
        tracker.log_trial(json.loads((d / "result.json").read_text()), d)
    assert run_count(uri, "race") == 9


def test_a_trial_run_holds_params_curves_tags_and_files(tmp_path: Path, trials) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = ladder_run(uri=uri, experiment="one", lock_dir=tmp_path)
    result = json.loads((trials[0] / "result.json").read_text())
    tracker = open_ladder(tracking_uri=uri, experiment="one", results=tmp_path)
    assert tracker.parent_run_id == ids["parent_run_id"]
    run_id = tracker.log_trial(result, trials[0])
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == ids["parent_run_id"]
    assert run.data.tags["tuneladder.rung"] == "coarse"
    assert run.data.tags["tuneladder.seed"] == str(result["seed"])
    assert run.data.tags["tuneladder.status"] == "ok"
    assert run.data.params["lr"] == str(result["params"]["lr"])
    assert run.data.params["width"] == "16"
    curve = client.get_metric_history(run_id, "val_accuracy")
    assert [m.step for m in curve] == [0, 1]
    # each epoch at the time it ended: start plus the epochs' seconds so far
    rows = csv.DictReader((trials[0] / "history.csv").read_text().splitlines())
    seconds = [float(r["epoch_seconds"]) for r in rows]
    started = int(result["started_at"] * 1000)
    assert [m.timestamp for m in curve] == [
        started + int(1000 * sum(seconds[: i + 1])) for i in range(len(seconds))
    ]
    assert curve[1].timestamp > curve[0].timestamp
    assert run.data.metrics["best_val_metric"] == pytest.approx(result["best_val_metric"])
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.json", "history.csv", "result.json"} <= artifacts


def test_a_trial_trained_again_replaces_its_run(tmp_path: Path, trials) -> None:
    from mlflow.tracking import MlflowClient

    from tuneladder.tracking.mirror import SUPERSEDED_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    tracker = open_ladder(tracking_uri=uri, experiment="again", results=tmp_path)
    result = json.loads((trials[0] / "result.json").read_text())
    first = tracker.log_trial(result, trials[0])
    # its code changed: the same config trained again, later, into the same files
    retrained = {**result, "key": result["key"] + "-new", "started_at": result["started_at"] + 60}
    again = tracker.log_trial(retrained, trials[0])
    assert again != first and run_count(uri, "again") == 1 + 1  # the parent and the new run
    old = client.get_run(first)
    assert old.info.lifecycle_stage == "deleted" and old.data.tags[SUPERSEDED_TAG] == again
    # another config under the same name (another seed; a DVC experiment beside it) stays
    other = {**retrained, "key": "seed 2", "config_hash": "other", "started_at": 1e10}
    assert tracker.log_trial(other, trials[0]) != again
    assert run_count(uri, "again") == 1 + 2
    # a halving config's run: a level trained again starts a run of its own, whole curve
    level = {**result, "trial": {**result["trial"], "name": "h", "level": 0}}
    before = tracker.log_trial(level, trials[0])
    later = {**level, "key": "retrained", "started_at": level["started_at"] + 60}
    after = tracker.log_trial(later, trials[0])
    assert after != before and client.get_run(before).info.lifecycle_stage == "deleted"
    assert [m.step for m in client.get_metric_history(after, "val_accuracy")] == [0, 1]
    assert tracker.log_trial(later, trials[0]) == after  # once
    assert run_count(uri, "again") == 1 + 3


@pytest.mark.filterwarnings("ignore:.*Any type hint:UserWarning")  # MLflow on nn.Linear
def test_a_final_rung_that_found_other_numbers_logs_a_final_run_of_its_own(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    tracker = open_ladder(tracking_uri=uri, experiment="final", results=tmp_path)
    summary = {
        "best_group": "0",
        "best_seed_trial": "0-0",  # the same choice, after a rerun with another seed
        "best_config": {"lr": 0.01},
        "val_mean": 0.9, "val_std": 0.01, "test_mean": 0.88, "test_std": 0.02,
        "baseline": {"val": {"mean": 0.5}, "test": {"mean": 0.5}},
    }  # fmt: skip
    model, example = torch.nn.Linear(3, 2), torch.zeros(2, 3).numpy()
    first = tracker.log_final(summary, tmp_path, model, example)
    assert tracker.log_final(summary, tmp_path, model, example) == first  # nothing new
    second = tracker.log_final({**summary, "test_mean": 0.52}, tmp_path, model, example)
    assert second != first  # a run of its own; the first stays (another experiment's, maybe)
    assert client.get_run(first).info.lifecycle_stage == "active"
    parent = client.get_run(tracker.parent_run_id)
    assert parent.data.metrics["test_mean"] == 0.52


def test_tracking_uri_precedence(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_uri(None, tmp_path) == "http://tracking.example:5000"
    assert resolve_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def _store(results: Path) -> dict[str, list]:
    """The ladder's MLflow runs by role, read back with MLflow's own client."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(results.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_role: dict[str, list] = {}
    for run in runs:
        by_role.setdefault(run.data.tags.get("tuneladder.role"), []).append(run)
    return by_role


def _trials_on_disk(results: Path) -> set[str]:
    return {
        f"{rung}/{p.parent.name}"
        for rung in ("coarse", "fine", "seeds")
        for p in (results / rung).glob("**/result.json")
    }


@pytest.mark.slow
def test_the_ladders_store_after_a_run_and_a_rerun(tiny_ladder: Path, tmp_path: Path) -> None:
    from helpers import results_of, snakemake

    runs = _store(results_of(tiny_ladder))
    (parent,) = runs["ladder"]
    # the ladder's run ends with its final stage, not left RUNNING
    assert parent.info.status == "FINISHED" and parent.info.end_time is not None
    trials = runs["trial"]
    # one run per trial on disk (4 coarse + 3 fine + 3 groups x 2 seeds), each a child
    assert len(trials) == len(_trials_on_disk(results_of(tiny_ladder))) == 13
    assert len({r.data.tags["tuneladder.trial"] for r in trials}) == 13
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    (final,) = runs["final"]
    assert final.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # the trials and the model are logged by one job of its own, beside the report
    marker = json.loads((results_of(tiny_ladder) / "mlflow.json").read_text())
    rungs = {
        rung: {"trials": n, "runs": n} for rung, n in (("coarse", 4), ("fine", 3), ("seeds", 6))
    }
    assert marker == {"run_id": final.info.run_id, "trials": 13, "error": None, "rungs": rungs}
    from mlflow import MlflowClient

    store = results_of(tiny_ladder) / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    (model,) = client.search_logged_models(experiment_ids=[final.info.experiment_id])
    assert (model.name, model.source_run_id) == ("model", final.info.run_id)
    # the artifacts live in the experiment's own folder, not in an mlruns/ of the cwd
    assert model.artifact_location.startswith((store.parent / "mlartifacts").as_uri())

    # a rerun of every worker and of what follows: the workers pass over their
    # finished trials (and offer them to the store again), the final rung logs again
    workdir = tmp_path / "ladder"
    shutil.copytree(tiny_ladder, workdir, ignore=shutil.ignore_patterns(".snakemake"))
    proc = snakemake(workdir, "--forcerun", "sweep_worker")
    (log,) = (workdir / ".snakemake" / "log").glob("*.snakemake.log")  # the jobs it ran
    assert "rule log_mlflow:" in log.read_text(), proc.stderr
    again = _store(results_of(workdir))
    assert [r.info.run_id for r in again["ladder"]] == [parent.info.run_id]
    assert sorted(r.info.run_id for r in again["trial"]) == sorted(r.info.run_id for r in trials)
    assert [r.info.run_id for r in again["final"]] == [final.info.run_id]


@pytest.mark.slow
def test_a_capped_mirror_logs_each_rungs_best_trials_and_every_table(
    tiny_ladder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import results_of, tiny_config
    from tuneladder.stages import log_mlflow_stage

    monkeypatch.chdir(tiny_ladder)  # the tables name trial folders from there
    source = results_of(tiny_ladder)
    results = tmp_path / "results" / "capped"
    results.mkdir(parents=True)
    tables = [source / rung / "results.json" for rung in ("coarse", "fine", "seeds")]
    log_mlflow_stage(
        tables=tables,
        final_dir=source / "final",
        data_dir=source / "data",
        task=tiny_config()["task"],
        tracking={"tracking_uri": None, "experiment": "capped", "results": str(results)},
        marker=results / "mlflow.json",
        trial_runs=2,
    )
    marker = json.loads((results / "mlflow.json").read_text())
    assert marker["rungs"] == {
        "coarse": {"trials": 4, "runs": 2},
        "fine": {"trials": 3, "runs": 2},
        "seeds": {"trials": 6, "runs": 2},
    }
    runs = _store(results)
    logged = {r.data.tags["tuneladder.trial"].rsplit("/", 1)[0] for r in runs["trial"]}
    for table in tables:
        rows = json.loads(table.read_text())["trials"]
        ranked = sorted(rows, key=lambda r: -r["best_val_metric"])
        best = {f"{r['rung']}/{r['name']}" for r in ranked[:2]}
        assert best <= logged, table  # the best two of each rung are runs
    assert len(runs["trial"]) == 6
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    (parent,) = runs["ladder"]
    folders = {a.path for a in client.list_artifacts(parent.info.run_id, "rungs")}
    assert folders == {"rungs/coarse", "rungs/fine", "rungs/seeds"}  # every trial, as tables


@pytest.mark.slow
def test_live_workers_mirror_each_trial_before_the_ladder_ends(tmp_path: Path) -> None:
    from helpers import results_of, snakemake, write_config

    write_config(tmp_path, mlflow={"enabled": True, "live": True})
    snakemake(tmp_path, "results/tiny/coarse/results.json")  # the coarse sweep only
    results = results_of(tmp_path)
    assert not (results / "mlflow.json").exists()  # no mirroring job has run
    runs = _store(results)
    assert sorted(r.data.tags["tuneladder.trial"].split("/")[1] for r in runs["trial"]) == [
        str(i) for i in range(4)
    ]


def test_batches_keep_every_entry_within_mlflows_limits() -> None:
    from tuneladder.tracking.mirror import (
        MAX_ENTITIES,
        MAX_METRICS,
        MAX_PARAMS,
        MAX_TAGS,
        _batches,
    )

    metrics, params, tags = list(range(2500)), list(range(230)), list(range(7))
    batches = list(_batches(metrics, params, tags))
    for batch in batches:
        assert len(batch["metrics"]) <= MAX_METRICS
        assert len(batch["params"]) <= MAX_PARAMS
        assert len(batch["tags"]) <= MAX_TAGS
        assert sum(len(v) for v in batch.values()) <= MAX_ENTITIES
    for key, sent in (("metrics", metrics), ("params", params), ("tags", tags)):
        assert [x for b in batches for x in b[key]] == sent
    assert len(batches) == 3  # params set the count: 100 + 100 + 30
    only_tags = [{"params": [], "tags": ["status"], "metrics": []}]
    assert list(_batches([], [], ["status"])) == only_tags
