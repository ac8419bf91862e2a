"""The rung table agrees with the workflow, and the workflow, `status` and the report read it."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, SNAKEMAKE, results_of, tiny_config, write_config
from tuneladder.execution import status
from tuneladder.ladder import rungs
from tuneladder.ladder.config import resolve_config
from tuneladder.ladder.rungs import LADDER, RUNGS, SENSITIVITY, TRIAL_RUNGS, Rung, active
from tuneladder.report import FIGURES, SECTIONS, SWEEP_READS, figures_for, report_inputs
from tuneladder.store.io import read_json

RULES = REPO / "workflow" / "rules"
SCRIPTS = REPO / "workflow" / "scripts"


def rule_scripts() -> dict[str, str]:
    """Rule name -> the script it runs, read from workflow/rules/*.smk."""
    found = {}
    rule = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.M)  # the rule's indented body
    for path in sorted(RULES.glob("*.smk")):
        for name, body in rule.findall(path.read_text()):
            script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+)\.py"', body)
            found[name] = script[1] if script else None
    return found


def test_every_rule_belongs_to_one_rung_and_every_rung_has_its_rules() -> None:
    rules = rule_scripts()
    assert rules, "no rules found"
    in_table = {rule for rung in RUNGS for rule in rung.rules}
    assert in_table == set(rules), (
        f"rules without a rung: {set(rules) - in_table}; rungs without a rule file:"
        f" {in_table - set(rules)}"
    )
    names = [rung.name for rung in RUNGS]
    assert len(names) == len(set(names))


def test_rule_x_runs_script_x_which_calls_x_stage_with_names_alike() -> None:
    for rule, script in rule_scripts().items():
        assert script == rule, f"rule {rule} runs scripts/{script}.py"
        tree = ast.parse((SCRIPTS / f"{script}.py").read_text())
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.endswith("_stage")
        ]
        assert [c.func.id for c in calls] == [f"{rule}_stage"], f"scripts/{script}.py"
        for keyword in calls[0].keywords:
            value = keyword.value
            while isinstance(value, ast.Call) and value.args:  # list(snakemake.input.sweeps)
                value = value.args[0]
            if (
                isinstance(value, ast.Attribute)
                and isinstance(value.value, ast.Attribute)
                and value.value.attr in ("params", "input")
            ):
                assert keyword.arg == value.attr, (
                    f"scripts/{script}.py passes {value.value.attr}.{value.attr} as {keyword.arg}"
                )


def test_a_rung_of_trials_needs_its_plan_and_results_in_its_folder() -> None:
    with pytest.raises(ValueError, match="in its own folder"):
        Rung(
            name="extra",
            label="extra",
            decides="x",
            rules=("plan_extra",),
            outputs={"plan": "other/plan.json", "results": "other/results.json"},
            trials=lambda config: 1,
        )
    assert rungs.by_name("seeds") is rungs.SEEDS
    with pytest.raises(ValueError, match="no rung called 'nope'"):
        rungs.by_name("nope")


def planned(workdir: Path) -> list[dict[str, str]]:
    """The jobs of a dry run, each as its printed fields (rule, output, log, benchmark ...)."""
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--configfile",
            "config.yaml",
            "--workflow-profile",
            str(REPO / "profiles" / "default"),
            "--cores",
            "2",
            "-n",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    jobs = []
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", proc.stdout, re.M):
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
        jobs.append({"rule": rule, **fields})
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize("sensitivity", [True, False])
def test_the_workflow_makes_every_output_of_the_table_with_the_rungs_rules(
    tmp_path: Path, sensitivity: bool
) -> None:
    # both sweeps halve: their levels run inside the sweep's workers, with no jobs of their own
    halving = {"eta": 2, "min_epochs": 1}
    write_config(
        tmp_path,
        workers="auto",  # a worker a core: 2 slots
        coarse={"trials": 4, "epochs": 2, "halving": halving},
        fine={"trials": 3, "epochs": 2, "halving": halving},
        sensitivity={"enabled": sensitivity},
    )
    jobs = planned(tmp_path)
    results = "results/tiny/"
    producer = {out: job for job in jobs for out in job.get("output", "").split(", ") if out}
    ran = active(resolve_config(tiny_config(sensitivity={"enabled": sensitivity})))
    assert (SENSITIVITY.name in [r.name for r in ran]) is sensitivity
    for rung in ran:  # rule all asks for every output, and the rung's own rules make it
        for path in rung.outputs.values():
            assert producer[results + path]["rule"] in rung.rules, (rung.name, path)
    for figure in figures_for(
        resolve_config(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    ):
        rule = "report_sweeps" if figure.from_sweeps else "report"
        assert producer[f"{results}report/{figure.path}"]["rule"] == rule
    assert f"{results}report/figures/halving.png" in producer
    assert not [out for out in producer if "/levels/" in out]
    # one set of workers per sweep, as many as level 0 has configs at most (2 slots here)
    for rung in ("coarse", "fine"):
        workers = [out for out in producer if out.startswith(f"{results}{rung}/workers/")]
        assert sorted(workers) == [f"{results}{rung}/workers/{w}-of-2.json" for w in (0, 1)]
    # an optional rung that is off has no job, and the report does not read it
    assert ("plan_sensitivity" in {job["rule"] for job in jobs}) is sensitivity
    assert (results + "sensitivity/results.json" in producer) is sensitivity
    # every job's log and benchmark are named as the table names the rung's jobs
    # (but gpu_probe, which runs only on GPUs with trials_per_gpu auto: test_cluster plans it)
    table = {rule for rung in ran for rule in rung.rules} - {"gpu_probe"}
    assert {job["rule"] for job in jobs} == table | {"all"}
    for job in jobs:
        if job["rule"] == "all":
            continue
        if job["rule"] in rungs.PER_RUNG_RULES:
            rung = rungs.by_name(re.search(r"rung=(\w+)", job["wildcards"])[1])
        else:
            rung = next(r for r in RUNGS if job["rule"] in r.rules)
        log = job["log"].removeprefix(results + "logs/").removesuffix(".log")
        bench = job["benchmark"].removeprefix(results + "benchmarks/").removesuffix(".tsv")
        assert log == bench, job
        assert any(log == name or log.startswith(name + "-") for name in rung.jobs), (log, rung)


def test_status_reads_the_table(monkeypatch, tmp_path: Path) -> None:
    config = resolve_config(tiny_config())
    fresh = status.ladder_status(tmp_path / "results" / "tiny", config=config)
    assert fresh["state"] == "not started"
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    found = status.ladder_status(tmp_path / "results" / "tiny", config=config)
    assert [(r["rung"], r["total"]) for r in found["rungs"]] == [
        (rung.name, rung.trials(config)) for rung in active(config, TRIAL_RUNGS)
    ]
    assert found["rungs"][-1]["total"] == (2 + 1) * 2  # finalists and the default, x seeds
    assert "sensitivity" not in status.format_status(found)  # off unless the config says
    on = resolve_config(tiny_config(sensitivity={"enabled": True}))
    found = status.ladder_status(tmp_path / "results" / "tiny", config=on)
    # 4 values besides the chosen one for lr, weight_decay and dropout, 1 for num_layers
    # (1-2) and batch_size (64, 128), x 2 seeds; the chosen point is the seed rung's
    assert found["rungs"][-1]["rung"] == "sensitivity" and found["rungs"][-1]["total"] == 28
    assert "sensitivity not started (up to 28 trials)" in status.format_status(found)
    # a new rung of trials is a row: status counts it with no change of its own
    extra = Rung(
        name="extra",
        label="extra sweep",
        decides="more",
        rules=("plan_extra", "sweep_worker", "collect_rung"),
        outputs={"plan": "extra/plan.json", "results": "extra/results.json"},
        trials=lambda config: 7,
    )
    monkeypatch.setattr(status, "TRIAL_RUNGS", (*TRIAL_RUNGS, extra))
    found = status.ladder_status(tmp_path / "results" / "tiny", config=config)
    assert found["rungs"][-1]["rung"] == "extra" and found["rungs"][-1]["total"] == 7
    assert "extra    not started (7 trials)" in status.format_status(found)


def test_report_inputs_and_figures_come_from_the_tables() -> None:
    inputs = report_inputs("results/x")
    for rung in active(None, TRIAL_RUNGS):
        assert inputs[f"{rung.name}_plan"] == f"results/x/{rung.name}/plan.json"
        assert inputs[f"{rung.name}_results"] == f"results/x/{rung.name}/results.json"
    assert inputs["final_summary"] == "results/x/final/summary.json"
    # the sweep part reads the sanity checks, the sweeps and the selection, nothing later
    early = report_inputs("results/x", None, SWEEP_READS)
    assert set(early) == {
        "prepare_meta",
        "overfit_json",
        "lr_range_json",
        "coarse_plan",
        "coarse_results",
        "fine_plan",
        "fine_results",
        "select_topk",
        "select_space",
    }
    assert all(early[name] == inputs[name] for name in early)
    # an optional rung's files are inputs when the config runs it
    assert "sensitivity_plan" not in inputs
    on = report_inputs("results/x", resolve_config(tiny_config(sensitivity={"enabled": True})))
    assert on["sensitivity_results"] == "results/x/sensitivity/results.json"
    for figure in FIGURES:
        assert figure.section in SECTIONS
        assert (REPO / "workflow" / "report" / figure.caption_file).is_file()
    assert sorted(p.stem for p in (REPO / "workflow" / "report").glob("*.rst")) == sorted(
        [f.name for f in FIGURES] + ["index"]
    )


@pytest.mark.slow
def test_the_reports_ladder_is_the_table(tiny_ladder: Path) -> None:
    summary = read_json(results_of(tiny_ladder) / "report" / "summary.json")
    ladder = summary["ladder"]["rungs"]
    # every benchmark file is a job of a rung in the table: no "other jobs" row
    ran = active(resolve_config(tiny_config()))
    assert [(r["key"], r["label"]) for r in ladder] == [
        (r.name, r.label) for r in LADDER if r in ran
    ]
    assert all(r["jobs"] >= 1 for r in ladder)
    assert set(summary["trials"]) == {r.name for r in TRIAL_RUNGS if r in ran}
