"""The rungs of the ladder, one row each: the workflow, ``status`` and the report read them.

A row says what the rung is called, what it decides, which rules run it, which
files it leaves (relative to ``results/<experiment>/``) and, for a rung of
trials, how many trials the resolved config plans. The workflow's ``rule all``
asks for every rung's outputs, its ``{rung}`` wildcard takes the rungs of
trials, ``tuneladder status`` counts their trials, and the report times each
rung from its jobs' benchmark files and loads each rung of trials. Adding a
rung means a rule file and a row here (tests/test_rungs.py checks they agree).
An optional rung says when the config turns it on; :func:`active` lists the
rungs a config runs.

Example:
    >>> [rung.name for rung in TRIAL_RUNGS]
    ['coarse', 'fine', 'seeds', 'sensitivity']
    >>> by_name("seeds").trials({"seeds": {"finalists": 2, "seeds": 3}})
    9
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from tuneladder.search.halving import Halving

__all__ = [
    "BASELINE",
    "COARSE",
    "FINAL",
    "FINE",
    "GPU_PROBE_FILE",
    "LADDER",
    "MLFLOW_MARKER",
    "PER_RUNG_RULES",
    "PREPARE",
    "REPORT",
    "RUNGS",
    "SEARCH_RUNGS",
    "SEEDS",
    "SENSITIVITY",
    "TRIAL_RUNGS",
    "Rung",
    "active",
    "by_name",
    "finalist_label",
    "trial_order",
]

# The seeds rung's group of the untuned baseline (the config's `train` section).
BASELINE = "default"

# Rules that run once per rung of trials (the `{rung}` wildcard): their jobs' logs and
# benchmarks are named `<rung>/<stem>` (workers add `-<w>-of-<n>`).
PER_RUNG_RULES = {"sweep_worker": "worker", "collect_rung": "collect"}


@dataclass(frozen=True, kw_only=True)
class Rung:
    """One rung of the ladder.

    Attributes:
        name: its key everywhere (``summary.json``, ``status``, the ``{rung}`` wildcard);
            a rung of trials keeps them in its folder, ``results/<experiment>/<name>/``.
        label: how the report's ladder table names it.
        decides: what it decides, in a few words.
        rules: the workflow rules whose jobs make it, in order.
        outputs: what it leaves, by role, relative to ``results/<experiment>/``.
        trials: for a rung of trials, its trial count from the resolved config (a sweep
            that halves counts a config once per level it is planned at).
        searches: its trials search the space (best so far, importance, sweep figures).
        keeps_models: its trials keep their weights (the final rung evaluates them).
        enabled: for an optional rung, whether the resolved config turns it on
            (None: the rung always runs).
        counted_by_plan: its trial count depends on what the rungs before it
            found, so ``trials`` is an upper bound from the config and its
            ``plan.json`` has the count.
    """

    name: str
    label: str
    decides: str
    rules: tuple[str, ...]
    outputs: Mapping[str, str]
    trials: Callable[[Mapping[str, Any]], int] | None = None
    searches: bool = False
    keeps_models: bool = False
    enabled: Callable[[Mapping[str, Any]], bool] | None = None
    counted_by_plan: bool = False

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError(f"a rung needs at least one rule, got {self.name=}, {self.rules=}")
        if self.trials is not None and (
            set(self.outputs) != {"plan", "results"} or self.folder != self.name
        ):
            raise ValueError(
                "a rung of trials leaves its plan and results in its own folder, got"
                f" {self.name=}, {self.outputs=}"
            )

    @property
    def folder(self) -> str | None:
        """The one folder of all its outputs (``data``, ``sanity``, ``coarse`` ...), or None."""
        parents = {str(PurePosixPath(path).parent) for path in self.outputs.values()}
        return parents.pop() if len(parents) == 1 else None

    @property
    def jobs(self) -> tuple[str, ...]:
        """Its jobs' log and benchmark names (workers: the prefix before ``-<w>-of-<n>``)."""
        return tuple(
            f"{self.name}/{PER_RUNG_RULES[rule]}" if rule in PER_RUNG_RULES else rule
            for rule in self.rules
        )


def _sweep_trials(section: str) -> Callable[[Mapping[str, Any]], int]:
    def trials(config: Mapping[str, Any]) -> int:
        halving = Halving.from_sweep(config[section])
        if halving is not None:  # a continued config is a trial again at each level
            return sum(level.configs for level in halving.levels)
        return int(config[section]["trials"])

    return trials


def _seed_trials(config: Mapping[str, Any]) -> int:
    # every finalist and the untuned baseline, once per seed
    seeds = config["seeds"]
    return (int(seeds["finalists"]) + 1) * int(seeds["seeds"])


def _probe_points(spec: Any, values: int) -> int:
    """At most how many values the sensitivity rung tries of one searched hyperparameter.

    The upper bound of ``tuneladder.search.sensitivity.probe_values``, from the config's
    ``space`` entry alone: every choice of a categorical, the integers of a small
    int range, ``values`` otherwise (``lr: auto`` included).
    """
    if not isinstance(spec, Mapping):  # lr: auto, a range from the LR range test
        return values
    if spec.get("dist") == "choice":
        return len(spec["values"])
    if spec.get("dist") == "int":
        return min(values, int(spec["high"]) - int(spec["low"]) + 1)
    return 1 if "low" in spec and spec["low"] == spec.get("high") else values


def _sensitivity_trials(config: Mapping[str, Any]) -> int:
    # every value but the chosen one, once per seed; the chosen config's own point is the
    # seed rung's trials when it trained the same seeds for as many epochs, else trained here
    sens, seeds = config["sensitivity"], config["seeds"]
    off_centre = sum(_probe_points(spec, sens["values"]) - 1 for spec in config["space"].values())
    reused = min(sens["seeds"], seeds["seeds"]) if sens["epochs"] == seeds["epochs"] else 0
    return off_centre * sens["seeds"] + sens["seeds"] - reused


def _trial_outputs(name: str) -> dict[str, str]:
    return {"plan": f"{name}/plan.json", "results": f"{name}/results.json"}


PREPARE = Rung(
    name="prepare",
    label="prepare data",
    decides="the train/val/test split and the data's fingerprint",
    rules=("prepare",),
    outputs={
        "train": "data/train.pt",
        "val": "data/val.pt",
        "test": "data/test.pt",
        "meta": "data/meta.json",
    },
)
OVERFIT = Rung(
    name="overfit",
    label="overfit check",
    decides="whether the model can learn at all",
    rules=("overfit_check",),
    outputs={"json": "sanity/overfit.json"},
)
LR_RANGE = Rung(
    name="lr_range",
    label="LR range test",
    decides="the coarse sweep's lr range",
    rules=("lr_range_test",),
    outputs={"json": "sanity/lr_range.json", "csv": "sanity/lr_range.csv"},
)
COARSE = Rung(
    name="coarse",
    label="coarse sweep",
    decides="the best region of the search space",
    # gpu_probe: with trials_per_gpu auto on GPUs, before the first workers
    rules=("plan_coarse", "gpu_probe", "sweep_worker", "collect_rung"),
    outputs=_trial_outputs("coarse"),
    trials=_sweep_trials("coarse"),
    searches=True,
)
SELECT = Rung(
    name="select",
    label="top-k and narrowing",
    decides="the top-k trials and the fine space around them",
    rules=("select_top_k",),
    outputs={"topk": "coarse/topk.json", "space": "fine/space.json"},
)
FINE = Rung(
    name="fine",
    label="fine sweep",
    decides="the best configs inside the narrowed space",
    rules=("plan_fine", "sweep_worker", "collect_rung"),
    outputs=_trial_outputs("fine"),
    trials=_sweep_trials("fine"),
    searches=True,
)
SEEDS = Rung(
    name="seeds",
    label="seed reruns",
    decides="each finalist's and the baseline's spread over seeds",
    rules=("plan_seeds", "sweep_worker", "collect_rung"),
    outputs=_trial_outputs("seeds"),
    trials=_seed_trials,
    keeps_models=True,
)
FINAL = Rung(
    name="final",
    label="final choice and test",
    decides="the chosen config, and its test score",
    rules=("final", "log_mlflow"),
    outputs={
        "summary": "final/summary.json",
        "markdown": "final/summary.md",
        "config": "final/best_config.json",
        "model": "final/model.pt",
        "metrics": "final/metrics.json",
        "best_so_far": "final/best_so_far.csv",
        "history": "final/history.csv",
    },
)
SENSITIVITY = Rung(
    name="sensitivity",
    label="sensitivity (one at a time)",
    decides="how the val metric moves with each hyperparameter around the chosen config",
    rules=("plan_sensitivity", "sweep_worker", "collect_rung"),
    outputs=_trial_outputs("sensitivity"),
    trials=_sensitivity_trials,
    enabled=lambda config: bool(config["sensitivity"]["enabled"]),
    counted_by_plan=True,
)
REPORT = Rung(
    name="report",
    label="report",
    decides="nothing: it shows what the rungs before it decided",
    rules=("report_sweeps", "report"),
    outputs={"html": "report/index.html", "summary": "report/summary.json"},
)

# The MLflow mirror's record (trials mirrored, the final model's run): an output only
# while tracking is on.
MLFLOW_MARKER = "mlflow.json"  # beside the default store, mlflow.db

# The GPU probe's choice of trials per GPU and its figures (stages.gpu_probe): an output
# only on a run that uses GPUs with trials_per_gpu auto.
GPU_PROBE_FILE = "sanity/gpu_probe.json"

# The rungs the report's ladder table times, in order; the report itself comes last.
LADDER = (PREPARE, OVERFIT, LR_RANGE, COARSE, SELECT, FINE, SEEDS, FINAL, SENSITIVITY)
RUNGS = (*LADDER, REPORT)
TRIAL_RUNGS = tuple(r for r in RUNGS if r.trials is not None)
SEARCH_RUNGS = tuple(r for r in TRIAL_RUNGS if r.searches)


def by_name(name: str) -> Rung:
    """The rung called ``name``."""
    for row in RUNGS:
        if row.name == name:
            return row
    raise ValueError(f"no rung called {name!r}; the rungs are {[r.name for r in RUNGS]}")


def active(config: Mapping[str, Any] | None, among: Sequence[Rung] = RUNGS) -> tuple[Rung, ...]:
    """The rungs of ``among`` that a resolved config runs; without a config, those always on."""
    return tuple(
        r for r in among if r.enabled is None or (config is not None and r.enabled(config))
    )


def trial_order(row: Mapping[str, Any]) -> tuple[int, int]:
    """Sort key of a trial row in ladder order: its rung's place, then its index."""
    names = [r.name for r in TRIAL_RUNGS]
    return names.index(row["rung"]), int(row["index"])


def finalist_label(origin: Mapping[str, Any] | None, group: str) -> str:
    """A finalist by the sweep trial it came from: ``coarse #8 (finalist 0)``."""
    return f"{origin['label']} (finalist {group})" if origin else f"finalist {group}"
