"""The workflow's rungs as functions: rule ``x`` runs ``x_stage``, and each workflow
script calls one of these and nothing else of the package.

A stage's keyword arguments are named as the rule's ``input``/``params`` entries, so
each script in ``workflow/scripts/`` only passes them on. Nothing here knows about
Snakemake: every rung can also be run and tested from plain Python.
"""

from tuneladder.stages.common import Runtime, StageError, logged
from tuneladder.stages.final_rung import final_stage
from tuneladder.stages.mirror import log_mlflow_stage
from tuneladder.stages.prepare import prepare_stage
from tuneladder.stages.sanity import lr_range_test_stage, overfit_check_stage
from tuneladder.stages.select import plan_seeds_stage, select_top_k_stage
from tuneladder.stages.sensitivity import plan_sensitivity_stage
from tuneladder.stages.sweep import (
    WorkerJob,
    collect_rung_stage,
    plan_coarse_stage,
    plan_fine_stage,
    sweep_lane_stage,
    sweep_worker_stage,
)

__all__ = [
    "Runtime",
    "StageError",
    "WorkerJob",
    "collect_rung_stage",
    "final_stage",
    "log_mlflow_stage",
    "logged",
    "lr_range_test_stage",
    "overfit_check_stage",
    "plan_coarse_stage",
    "plan_fine_stage",
    "plan_seeds_stage",
    "plan_sensitivity_stage",
    "prepare_stage",
    "select_top_k_stage",
    "sweep_lane_stage",
    "sweep_worker_stage",
]
