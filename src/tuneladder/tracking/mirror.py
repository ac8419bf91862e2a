"""MLflow as a view of the result files: one run per trial, under one parent per ladder.

The files under ``results/`` stay the source of truth; this module mirrors them
into MLflow and can be rerun at any time without creating duplicates: a trial's
run carries a tag made of its rung, name and result key, and a trial whose tag
is already in the experiment is not logged again. The same trial config trained
again (its code or data changed) replaces its files, so its new run replaces the
older one of that config, which is deleted as MLflow deletes runs (the UI can
restore it) and tagged with the run that replaced it. A run of another config
under the same name (another seed, a DVC experiment beside this one) stays. With a
SQLite store, writers take a file lock, so many workers finishing at once lose no
record.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneladder.store.trial_files import CONFIG_FILE, HISTORY_FILE, RESULT_FILE

__all__ = ["Tracker", "ladder_run", "open_ladder", "resolve_uri"]

log = logging.getLogger(__name__)

TRIAL_TAG = "tuneladder.trial"
CONFIG_TAG = "tuneladder.config"  # a halving config's run, over all its levels
LEVEL_TAG = "tuneladder.level"  # .<level>: the trial tag of each level logged
EPOCHS_TAG = "tuneladder.epochs_logged"
ROLE_TAG = "tuneladder.role"
TABLE_TAG = "tuneladder.table"  # a rung table's digest, as logged on the ladder's run
SUPERSEDED_TAG = "tuneladder.superseded_by"  # on a deleted run: the run that replaced it
CONFIG_HASH_TAG = "tuneladder.config_hash"  # a trial's hyperparameters, seed and epochs
HISTORY_METRICS = (
    "train_loss",
    "val_loss",
    "lr",
    "grad_norm",
    "weight_norm",
    "epoch_seconds",
    "peak_memory_mb",
)
# what a final run is keyed by, beside the chosen group and seed trial
FINAL_FIGURES = ("best_config", "val_mean", "val_std", "test_mean", "test_std", "test_metrics")
# MLflow's limits on one log_batch: 1000 metrics, 100 params, 100 tags, 1000 in all
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000


def resolve_uri(configured: str | None, results_dir: str | Path) -> str:
    """The config's URI, else ``MLFLOW_TRACKING_URI``, else SQLite under ``results/``."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def _lock_path(uri: str, fallback_dir: Path) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///") + ".lock")
    if uri.startswith("file:") or "://" not in uri:
        return fallback_dir / ".mlflow.lock"
    return None  # a tracking server serialises its own writes


@contextlib.contextmanager
def _locked(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def ladder_run(
    *,
    uri: str,
    experiment: str,
    lock_dir: str | Path,
    tags: Mapping[str, str] | None = None,
    artifact_location: str | None = None,
) -> dict[str, str]:
    """Find or create the experiment and the ladder's parent run (safe to call concurrently).

    ``artifact_location`` applies to a new experiment only; None leaves it to the store.
    """
    from mlflow.tracking import MlflowClient

    with _locked(_lock_path(uri, Path(lock_dir))):
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found
            else client.create_experiment(experiment, artifact_location=artifact_location)
        )
        parents = client.search_runs(
            [experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'ladder'", max_results=1
        )
        if parents:
            parent_id = parents[0].info.run_id
        else:
            run = client.create_run(
                experiment_id,
                run_name=f"{experiment}-ladder",
                tags={ROLE_TAG: "ladder", **dict(tags or {})},
            )
            parent_id = run.info.run_id
    return {
        "tracking_uri": uri,
        "experiment": experiment,
        "experiment_id": experiment_id,
        "parent_run_id": parent_id,
    }


def open_ladder(*, tracking_uri: str | None, experiment: str, results: str | Path) -> Tracker:
    """The tracker of a ladder whose files are under ``results``; sets the store up if new."""
    from tuneladder.infra.env import git_commit

    uri = resolve_uri(tracking_uri, results)
    # the default store keeps its artifacts beside it, in the experiment's own folder,
    # not in an mlruns/ wherever the ladder happened to run
    local = uri == resolve_uri(None, results) and not os.environ.get("MLFLOW_TRACKING_URI")
    ids = ladder_run(
        uri=uri,
        experiment=experiment,
        lock_dir=results,
        tags=_commit_tag(git_commit()),
        artifact_location=(Path(results).resolve() / "mlartifacts").as_uri() if local else None,
    )
    return Tracker(
        tracking_uri=uri,
        experiment_id=ids["experiment_id"],
        parent_run_id=ids["parent_run_id"],
        lock_dir=results,
    )


class Tracker:
    """Logs trials of one ladder as child runs of its parent run."""

    def __init__(
        self, *, tracking_uri: str, experiment_id: str, parent_run_id: str, lock_dir: str | Path
    ) -> None:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._experiment_id = experiment_id
        self._parent = parent_run_id
        self._lock = _lock_path(tracking_uri, Path(lock_dir))

    @property
    def parent_run_id(self) -> str:
        return self._parent

    def find(self, tag: str) -> str | None:
        runs = self._client.search_runs(
            [self._experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{tag}'", max_results=1
        )
        return runs[0].info.run_id if runs else None

    def log_trial(self, result: Mapping[str, Any], trial_dir: str | Path) -> str:
        """Mirror one finished trial; returns its run id (the existing one when logged before).

        The levels of a config in a sweep that halves are one run: the first level
        creates it, each later one adds the epochs it trained (the steps go on where
        the level before stopped) and moves its end time and status.
        """
        trial_dir = Path(trial_dir)
        info = result["trial"]
        tag = f"{info['rung']}/{info['name']}/{result['key']}"
        with _locked(self._lock):
            if info.get("level") is None:
                existing = self.find(tag)
                return existing or self._replacing(result, trial_dir, {TRIAL_TAG: tag})
            config = f"{info['rung']}/{info['name']}"
            level = f"{LEVEL_TAG}.{info['level']}"
            runs = self._client.search_runs(
                [self._experiment_id],
                filter_string=f"tags.`{CONFIG_TAG}` = '{config}'"
                f" and tags.`{CONFIG_HASH_TAG}` = '{result['config_hash']}'",
                max_results=1,
            )
            if not runs:
                return self._new_run(
                    result, trial_dir, {CONFIG_TAG: config, TRIAL_TAG: config, level: tag}
                )
            run = runs[0]
            logged = run.data.tags.get(level)
            if logged is not None and logged != tag:
                # this level trained again: the run's curve up to here is the old training's,
                # and the level's history holds the new one's from epoch 0
                return self._replacing(
                    result, trial_dir, {CONFIG_TAG: config, TRIAL_TAG: config, level: tag}
                )
            if logged is None:
                self._add_level(run, result, trial_dir, level, tag)
            return run.info.run_id

    def _replacing(
        self, result: Mapping[str, Any], trial_dir: Path, tags: Mapping[str, str]
    ) -> str:
        """A new run of the trial; an older one of the same rung, name and config (trained
        before its code or data changed) is deleted, tagged with what replaced it."""
        run_id = self._new_run(result, trial_dir, tags)
        info = result["trial"]
        same = (
            f"tags.`{ROLE_TAG}` = 'trial'"
            f" and tags.`{CONFIG_HASH_TAG}` = '{result['config_hash']}'"
            f" and attributes.run_name = '{info['rung']}-{info['name']}'"
        )
        started = int(result["started_at"] * 1000)
        for run in self._client.search_runs([self._experiment_id], filter_string=same):
            # only an older training: two writers of one result (no lock on a server) never
            # delete each other's run
            if run.info.run_id != run_id and run.info.start_time < started:
                self._client.set_tag(run.info.run_id, SUPERSEDED_TAG, run_id)
                self._client.delete_run(run.info.run_id)
        return run_id

    def _new_run(self, result: Mapping[str, Any], trial_dir: Path, tags: Mapping[str, str]) -> str:
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        info = result["trial"]
        started = int(result["started_at"] * 1000)
        run = self._client.create_run(
            self._experiment_id,
            run_name=f"{info['rung']}-{info['name']}",
            start_time=started,
            tags={
                MLFLOW_PARENT_RUN_ID: self._parent,
                ROLE_TAG: "trial",
                "tuneladder.rung": info["rung"],
                "tuneladder.index": str(info.get("index")),
                "tuneladder.seed": str(result["seed"]),
                "tuneladder.device": result["device"],
                **_commit_tag(result.get("git_commit")),
                **tags,
            },
        )
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in sorted(result["params"].items())]
        self._log_outcome(run_id, result, trial_dir, first_step=0, started=started, params=params)
        return run_id

    def _add_level(
        self, run: Any, result: Mapping[str, Any], trial_dir: Path, level: str, tag: str
    ) -> None:
        """A later level of a halving config: its new epochs, files and outcome on the run."""
        run_id = run.info.run_id
        logged = int(run.data.tags.get(EPOCHS_TAG, "0"))
        # the level resumed at its start time; its first epoch is the first not yet logged
        started = int(result["started_at"] * 1000)
        self._log_outcome(
            run_id, result, trial_dir, first_step=logged, started=started, tags={level: tag}
        )

    def _log_outcome(
        self,
        run_id: str,
        result: Mapping[str, Any],
        trial_dir: Path,
        *,
        first_step: int,
        started: int,
        params: Sequence[Any] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.entities import RunTag

        metrics, epochs = self._metrics(result, trial_dir, started, first_step=first_step)
        tags = {
            **(tags or {}),
            "tuneladder.status": result["status"],
            "tuneladder.reason": str(result.get("reason") or "")[:4000],
            CONFIG_HASH_TAG: result["config_hash"],
            EPOCHS_TAG: str(max(epochs, first_step)),
        }
        if result.get("retried_alone"):  # ran out of memory beside others on its GPU
            tags["tuneladder.retried_alone"] = str(result["retried_alone"]["reason"])[:4000]
        # each call is a store transaction (about 10 ms on SQLite): a trial's params,
        # curves and tags go together, split only at MLflow's per-call limits
        for batch in _batches(metrics, list(params), [RunTag(k, v) for k, v in tags.items()]):
            self._client.log_batch(run_id, **batch)
        level = result["trial"].get("level")
        folder = None if level is None else f"level-{level}"
        for name in (CONFIG_FILE, HISTORY_FILE, RESULT_FILE):
            if (trial_dir / name).is_file():
                self._client.log_artifact(run_id, str(trial_dir / name), folder)
        end = started + int(result["total_seconds"] * 1000)
        status = "FINISHED" if result["status"] == "ok" else "FAILED"
        self._client.set_terminated(run_id, status=status, end_time=end)

    def _metrics(
        self, result: Mapping[str, Any], trial_dir: Path, started: int, *, first_step: int
    ) -> tuple[list[Any], int]:
        """The trial's epoch curves from ``first_step`` on, and its result's numbers.

        Returns the metrics and how many epochs the history holds. The result's
        numbers are stepped by halving level (0 for a trial that does not halve),
        so a config's levels read as one series each.
        """
        from mlflow.entities import Metric

        name = result["metric"]["name"]
        out = []
        epochs = 0
        history = trial_dir / HISTORY_FILE
        if history.is_file():
            # each epoch stamped when it ended, so MLflow's wall-time axis shows the training
            elapsed_ms = 0.0
            with open(history) as handle:
                for row in csv.DictReader(handle):
                    step = int(row["epoch"])
                    epochs = max(epochs, step + 1)
                    if step < first_step:  # logged with the level before
                        continue
                    elapsed_ms += 1000 * (_number(row.get("epoch_seconds")) or 0.0)
                    stamp = started + int(elapsed_ms)
                    values = {k: row[k] for k in HISTORY_METRICS}
                    values[f"train_{name}"] = row["train_metric"]
                    values[f"val_{name}"] = row["val_metric"]
                    for key, text in values.items():
                        if text not in ("", None):
                            out.append(Metric(key, float(text), stamp, step))
        step = int(result["trial"].get("level") or 0)
        for key in (
            "best_val_metric",
            "best_val_loss",
            "best_epoch",
            "total_seconds",
            "train_seconds",
            "peak_memory_mb",
        ):
            value = result.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                out.append(Metric(key, float(value), started, step))
        return out, epochs

    def log_table(self, table: str | Path, rung: str) -> None:
        """A rung's whole results table on the ladder's run (``rungs/<rung>/``): every
        trial is in MLflow even where only the best are runs of their own. A rerun
        that changed nothing in the table writes nothing (its digest is a tag)."""
        digest = hashlib.sha256(Path(table).read_bytes()).hexdigest()
        tag = f"{TABLE_TAG}.{rung}"
        with _locked(self._lock):
            if self._client.get_run(self._parent).data.tags.get(tag) == digest:
                return
            self._client.log_artifact(self._parent, str(table), f"rungs/{rung}")
            self._client.set_tag(self._parent, tag, digest)

    def log_final(
        self, summary: Mapping[str, Any], out_dir: str | Path, model: Any, example: Any
    ) -> str:
        """The chosen config and its numbers on the parent run; the model as an MLflow model."""
        import mlflow
        import mlflow.pytorch
        from mlflow.entities import Metric

        out_dir = Path(out_dir)
        # what the final rung found, not only whom it chose: a rerun with another seed or
        # more seeds may choose the same finalist and seed trial with other numbers (its
        # model is a run of its own; the earlier one stays, as another experiment's may)
        found = {k: summary.get(k) for k in FINAL_FIGURES}
        written = json.dumps(found, sort_keys=True, default=str).encode()
        chosen = f"{summary['best_group']}/{summary.get('best_seed_trial')}"
        tag = f"final/{chosen}/{hashlib.sha256(written).hexdigest()[:12]}"
        with _locked(self._lock):
            existing = self.find(tag)
            if existing:
                self._end_parent()
                return existing
            numbers = {
                # every metric the task records, on test; the headline names below win
                **{f"test_{k}": v for k, v in (summary.get("test_metrics") or {}).items()},
                "val_mean": summary["val_mean"],
                "val_std": summary["val_std"],
                "test_mean": summary["test_mean"],
                "test_std": summary["test_std"],
                "baseline_val_mean": summary["baseline"]["val"]["mean"],
                "baseline_test_mean": summary["baseline"]["test"]["mean"],
            }
            finite = {
                k: float(v)
                for k, v in numbers.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
            now = int(time.time() * 1000)
            self._client.log_batch(
                self._parent, metrics=[Metric(k, v, now, 0) for k, v in finite.items()]
            )
            for name in ("summary.json", "summary.md", "best_config.json"):
                if (out_dir / name).is_file():
                    self._client.log_artifact(self._parent, str(out_dir / name))
            with (
                _global_uri(self._client.tracking_uri),
                mlflow.start_run(
                    experiment_id=self._experiment_id,
                    run_name="final-model",
                    tags={"mlflow.parentRunId": self._parent, TRIAL_TAG: tag, ROLE_TAG: "final"},
                ) as run,
            ):
                mlflow.log_params({k: str(v) for k, v in summary["best_config"].items()})
                mlflow.log_metrics(finite)
                # torch.export's graph (pt2) needs an example input; it also gives the signature
                mlflow.pytorch.log_model(
                    model.eval(),
                    name="model",
                    input_example=example,
                    pip_requirements=[f"torch=={_torch_version()}"],
                )
                run_id = run.info.run_id
            self._end_parent()
        return run_id

    def _end_parent(self) -> None:
        """The ladder's run ends with its final stage: FINISHED, with an end time.

        A later trial (a rerun with more seeds) logs under it again; ending it once
        more then moves its end time forward.
        """
        self._client.set_terminated(self._parent, status="FINISHED")


@contextlib.contextmanager
def _global_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model) on this store, then the process's setting back.

    ``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` for the whole
    process, where it would take precedence over the next ladder's own store (two
    ladders in one notebook, or one test after another).
    """
    import mlflow

    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def _commit_tag(commit: str | None) -> dict[str, str]:
    """The git commit as a tag, or none outside git (not the text 'None')."""
    return {"tuneladder.git_commit": commit} if commit else {}


def _number(text: str | None) -> float | None:
    """A history cell as a finite float; blank or non-finite cells are None."""
    try:
        value = float(text) if text not in ("", None) else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


def _batches(
    metrics: list[Any], params: list[Any], tags: list[Any]
) -> Iterator[dict[str, list[Any]]]:
    """Keyword arguments for as few log_batch calls as MLflow's limits allow."""
    while metrics or params or tags:
        batch = {"params": params[:MAX_PARAMS], "tags": tags[:MAX_TAGS]}
        room = MAX_ENTITIES - len(batch["params"]) - len(batch["tags"])
        batch["metrics"] = metrics[: min(MAX_METRICS, room)]
        params, tags = params[MAX_PARAMS:], tags[MAX_TAGS:]
        metrics = metrics[len(batch["metrics"]) :]
        yield batch
