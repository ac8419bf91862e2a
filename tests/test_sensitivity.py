"""The sensitivity rung: which values it plans, its verdicts, its config, and a tiny real run."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from helpers import copy_ladder, results_of, snakemake, tiny_config, write_config
from tuneladder.core.hparams import TrialConfig
from tuneladder.execution.status import ladder_status
from tuneladder.ladder.config import ConfigError, describe_plan, resolve_config
from tuneladder.ladder.rungs import SEEDS, SENSITIVITY
from tuneladder.report import _figures as figs
from tuneladder.report._sensitivity import analyse, sensitivity_summary
from tuneladder.search.sensitivity import CHOSEN, Probes, plan_sensitivity, probe_values
from tuneladder.search.space import space_from_config
from tuneladder.stages import plan_sensitivity_stage
from tuneladder.store.io import read_json
from tuneladder.store.trials import derive_seed, make_trial_config

LOG = FloatDistribution(1e-5, 1e-1, log=True)


def approx(values: Sequence[Any]) -> Any:
    return pytest.approx(list(values), rel=1e-9)


# --- the values tried ------------------------------------------------------------------


def test_a_log_range_is_probed_in_log_steps_around_the_chosen_value() -> None:
    # 4 decades searched, 5 values: steps of half a decade, spanning 2 decades
    assert probe_values(LOG, 1e-3, 5) == approx([1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2])
    # at the low end the window slides inside the range: every neighbour lies above
    assert probe_values(LOG, 1e-5, 5) == approx([1e-5, 10**-4.5, 1e-4, 10**-3.5, 1e-3])
    assert probe_values(LOG, 1e-1, 3) == approx([1e-3, 1e-2, 1e-1])
    # 0.75 of a step below the top: the window slides down, and the top itself is tried
    # in place of the farthest neighbour (so "best at the edge" means the range's edge)
    assert probe_values(LOG, 10**-1.75, 3) == approx([10**-2.75, 10**-1.75, 1e-1])
    assert probe_values(LOG, 10**-4.25, 3) == approx([1e-5, 10**-4.25, 10**-3.25])
    # a quarter of a step short of it: near enough, the window alone
    assert probe_values(LOG, 10**-1.25, 3) == approx([10**-3.25, 10**-2.25, 10**-1.25])


def test_linear_ranges_ints_and_choices() -> None:
    dropout = FloatDistribution(0.0, 0.5)
    assert probe_values(dropout, 0.2, 5) == approx([0.075, 0.1375, 0.2, 0.2625, 0.325])
    assert probe_values(dropout, 0.49, 5) == approx([0.24, 0.3025, 0.365, 0.4275, 0.49])
    assert probe_values(IntDistribution(1, 3), 3, 5) == [1, 2, 3]  # all of a small range
    assert probe_values(IntDistribution(1, 20), 10, 5) == [6, 8, 10, 12, 14]
    assert probe_values(IntDistribution(1, 20), 20, 5) == [12, 14, 16, 18, 20]
    # a log int: half a decade either side of 100 in quarter-decade steps, rounded
    assert probe_values(IntDistribution(10, 1000, log=True), 100, 5) == [32, 56, 100, 178, 316]
    assert probe_values(IntDistribution(1, 4, log=True), 2, 5) == [1, 2, 3]  # duplicates go
    assert probe_values(CategoricalDistribution([32, 64, 128]), 64, 5) == [32, 64, 128]
    assert probe_values(FloatDistribution(0.1, 0.1), 0.1, 5) == [0.1]
    with pytest.raises(ValueError, match="values must be >= 2"):
        probe_values(LOG, 1e-3, 1)


# --- the plan ---------------------------------------------------------------------------

SPACE = {
    "lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-1},
    "dropout": {"dist": "uniform", "low": 0.0, "high": 0.4},
    "num_layers": {"dist": "int", "low": 1, "high": 2},
    "batch_size": {"dist": "choice", "values": [32, 64, 128]},
    "width": {"dist": "choice", "values": [16, 32]},
}
CHOSEN_PARAMS = {
    **TrialConfig().flat(),
    "lr": 3e-3,
    "dropout": 0.1,
    "num_layers": 2,
    "batch_size": 64,
    "width": 32,
}


def seed_trials(group: str, seeds: int, epochs: int) -> list[dict[str, Any]]:
    """The seed rung's trials of the chosen config, as plan_seeds writes them."""
    base = {k: v for k, v in CHOSEN_PARAMS.items() if k not in ("epochs", "seed")}
    return [
        {
            "name": f"{group}-{s}",
            "group": group,
            "seed_index": s,
            "config": make_trial_config(
                base, {}, epochs=epochs, seed=derive_seed(7, "seeds", s)
            ).to_json(),
        }
        for s in range(seeds)
    ]


PROBES = Probes(values=5, seeds=2, epochs=4)


def plan(**overrides: Any) -> dict[str, Any]:
    args = {
        "applies": set(SPACE) | {"optimizer"},
        "reference": seed_trials("1", 3, epochs=4),
        "probes": PROBES,
        "ladder_seed": 7,
        "rung": SENSITIVITY.name,
        "seeds_rung": SEEDS.name,
    }
    args.update(overrides)
    return plan_sensitivity(CHOSEN_PARAMS, space_from_config(SPACE), **args)


def test_each_trial_changes_one_hyperparameter_with_the_seed_rungs_seeds() -> None:
    made = plan()
    assert made == plan()  # a pure function of its inputs
    chosen = {k: v for k, v in CHOSEN_PARAMS.items() if k not in ("epochs", "seed")}
    seeds = {derive_seed(7, "seeds", s) for s in range(2)}
    for entry in made["trials"]:
        config = TrialConfig.from_json(entry["config"])
        flat = {k: v for k, v in config.flat().items() if k not in ("epochs", "seed")}
        changed = {k for k in flat if flat[k] != chosen[k]}
        assert changed == {entry["param"]} and flat[entry["param"]] == entry["value"]
        assert config.epochs == 4 and config.seed in seeds
        assert entry["dir"] == f"trials/{entry['name']}"
    # the chosen point is the seed rung's trials: same config, seeds and epochs
    assert made["centre"] == [
        {"rung": "seeds", "name": "1-0", "seed_index": 0},
        {"rung": "seeds", "name": "1-1", "seed_index": 1},
    ]
    tried = {name: p.get("values") for name, p in made["parameters"].items()}
    # lr: 3 decades searched, steps of 3/8 of a decade; dropout: steps of 0.4 / 8
    assert tried["lr"] == approx([3e-3 * 10 ** (0.375 * k) for k in range(-2, 3)])
    assert tried["dropout"] == approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert tried["num_layers"] == [1, 2] and tried["batch_size"] == [32, 64, 128]
    # 4 other values of lr and dropout, 1 of num_layers, 2 of batch_size and 1 of width, x 2
    assert len(made["trials"]) == (4 + 4 + 1 + 2 + 1) * 2
    names = [e["name"] for e in made["trials"]]
    assert len(set(names)) == len(names) and "num_layers-0-1" in names


def test_the_rungs_count_from_the_config_is_exact_when_everything_applies() -> None:
    config = resolve_config(
        {
            "experiment": "x",
            "space": SPACE,
            "seeds": {"seeds": 3, "epochs": 4},
            "sensitivity": {"enabled": True, "seeds": 2},
        }
    )
    assert SENSITIVITY.trials(config) == len(plan()["trials"]) == 24
    # at an end of a range the values slide inside it: as many trials
    edge = {**CHOSEN_PARAMS, "lr": 1e-4, "dropout": 0.4, "num_layers": 1}
    at_edge = plan_sensitivity(
        edge,
        space_from_config(SPACE),
        applies=set(SPACE),
        reference=[],
        probes=PROBES,
        ladder_seed=7,
        rung=SENSITIVITY.name,
        seeds_rung=SEEDS.name,
    )
    assert len([e for e in at_edge["trials"] if e["group"] != CHOSEN]) == 24


def test_a_hyperparameter_that_does_not_apply_is_skipped() -> None:
    made = plan(applies=set(SPACE) - {"width"})
    assert made["parameters"]["width"]["skipped"] == "does not apply to the chosen config"
    assert "width" not in {e["group"] for e in made["trials"]}


def test_the_rung_trains_the_chosen_point_where_the_seed_rungs_trials_differ() -> None:
    # other epochs: the seed rung's trials are another config, so it trains its own
    made = plan(probes=replace(PROBES, epochs=3))
    assert [c["rung"] for c in made["centre"]] == ["sensitivity", "sensitivity"]
    own = [e for e in made["trials"] if e["group"] == CHOSEN]
    assert [e["name"] for e in own] == ["chosen-0", "chosen-1"]
    assert TrialConfig.from_json(own[1]["config"]).seed == derive_seed(7, "seeds", 1)
    # more seeds than the seed rung ran: the first three are reused, the fourth trained
    made = plan(probes=replace(PROBES, seeds=4))
    assert [c["rung"] for c in made["centre"]] == ["seeds"] * 3 + ["sensitivity"]


# --- the verdicts -----------------------------------------------------------------------


def make_run(
    points: Mapping[str, Mapping[Any, Sequence[float | None]]],
    kinds: Mapping[str, str],
    chosen: Mapping[str, Any],
    centre: Sequence[float],
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A plan, its rows and the chosen point's rows from val metrics written by hand
    (None: a seed that diverged)."""
    entries, rows, parameters = [], [], {}
    for name, by_value in points.items():
        values = sorted({*by_value, chosen[name]})
        kind = kinds[name]
        parameters[name] = {"kind": kind, "chosen": chosen[name], "values": values}
        if kind == "choice":  # as tuneladder.search.sensitivity.describe_parameter writes them
            parameters[name].update(type="choice", choices=values, log=False)
        else:
            number = "int" if kind == "int" else "float"
            parameters[name].update(type=number, low=values[0], high=values[-1], log=kind == "log")
        for value, metrics in by_value.items():
            for s, metric in enumerate(metrics):
                entry = {"name": f"{name}-{value}-{s}", "param": name, "value": value}
                entries.append(entry)
                status = "ok" if metric is not None else "diverged"
                rows.append({"name": entry["name"], "status": status, "best_val_metric": metric})
    plan = {
        "rung": "sensitivity",
        "values": 5,
        "seeds": [11, 12],
        "epochs": 2,
        "parameters": parameters,
        "centre": [{"rung": "seeds", "name": f"0-{s}"} for s in range(len(centre))],
        "trials": entries,
    }
    centre_rows = [
        {"name": f"0-{s}", "status": "ok", "best_val_metric": v} for s, v in enumerate(centre)
    ]
    return plan, rows, centre_rows


# Every point's two seeds differ by 0.02: each std is 0.02 / sqrt(2) = 0.014142, so the
# pooled spread is too and a change counts beyond 2 x 0.014142 = 0.028284. The chosen
# point scores 0.90 and 0.92 (mean 0.91).
POINTS: dict[str, dict[Any, list[float | None]]] = {
    "peak": {1: [0.80, 0.82], 2: [0.89, 0.91], 4: [0.88, 0.90], 5: [0.70, 0.72]},
    "plateau": {1: [0.89, 0.91], 2: [0.90, 0.92], 4: [0.91, 0.93], 5: [0.89, 0.91]},
    "edge": {2: [0.85, 0.87], 3: [0.80, 0.82]},
    "plateau_edge": {1: [0.80, 0.82], 3: [0.90, 0.92]},
    "beaten": {1: [0.89, 0.91], 3: [0.95, 0.97]},
    "choice": {"a": [0.80, 0.82], "c": [0.90, 0.92]},
    "diverges": {1: [0.90, 0.92], 3: [None, None]},
}
KINDS = {name: "linear" for name in POINTS} | {"choice": "choice"}
CHOSEN_VALUES = {name: 2 for name in POINTS} | {"peak": 3, "plateau": 3, "edge": 1}
CHOSEN_VALUES["choice"] = "b"


def test_verdicts_compare_each_change_with_the_seed_spread() -> None:
    plan, rows, centre = make_run(POINTS, KINDS, CHOSEN_VALUES, [0.90, 0.92])
    found = analyse(plan, rows, centre, mode="max", metric="accuracy")
    spread = 0.02 / math.sqrt(2)
    for name in POINTS:
        assert found[name]["spread"] == pytest.approx(spread), name
        assert found[name]["noise"] == pytest.approx(2 * spread), name
    shapes = {name: (p["shape"], p["sensitive"], p["range_edge"]) for name, p in found.items()}
    assert shapes == {
        "peak": ("peak", True, None),
        "plateau": ("plateau", False, None),
        "edge": ("edge", True, "low"),  # falls away from the low end: widen the range
        "plateau_edge": ("plateau edge", True, None),
        "beaten": ("beaten", True, None),
        "choice": ("best", True, None),
        "diverges": ("plateau edge", True, None),  # all seeds diverged at 3: a fall
    }
    peak = found["peak"]
    assert [p["mean"] for p in peak["points"]] == pytest.approx([0.81, 0.90, 0.91, 0.89, 0.71])
    assert peak["effect"] == pytest.approx(0.20)
    assert peak["effect_over_spread"] == pytest.approx(0.20 / spread)
    assert [p["chosen"] for p in peak["points"]] == [False, False, True, False, False]
    assert found["beaten"]["better_values"] == [{"value": 3, "delta": pytest.approx(0.05)}]
    assert "3 beats the chosen 2 by 0.05 on val: the choice stands" in found["beaten"]["verdict"]
    assert found["plateau_edge"]["falls"] == "lower" and found["diverges"]["falls"] == "higher"
    assert (
        "falls toward lower values and stays flat toward higher"
        in (found["plateau_edge"]["verdict"])
    )
    assert "the best may lie below the range" in found["edge"]["verdict"]
    assert found["diverges"]["failed_values"] == [3]
    assert found["diverges"]["points"][-1]["failed"] == 2
    assert found["plateau"]["verdict"].startswith("plateau: flat: no value tried (1, 2, 3, 4, 5)")


def test_a_smaller_is_better_metric_turns_the_verdicts_around() -> None:
    points = {"peak": POINTS["peak"]}
    plan, rows, centre = make_run(points, KINDS, CHOSEN_VALUES, [0.90, 0.92])
    found = analyse(plan, rows, centre, mode="min", metric="loss")["peak"]
    assert found["shape"] == "beaten" and found["better_values"][0]["value"] == 5
    assert found["better_values"][0]["delta"] == pytest.approx(0.20)


def test_the_summary_names_the_sensitive_and_the_flat() -> None:
    plan, rows, centre = make_run(POINTS, KINDS, CHOSEN_VALUES, [0.90, 0.92])
    plan["parameters"]["width"] = {"kind": "choice", "chosen": 32, "skipped": "does not apply"}
    summary = sensitivity_summary(plan, rows, centre, mode="max", metric="accuracy")
    assert summary["flat"] == ["plateau"] and "plateau" not in summary["sensitive"]
    assert summary["skipped"] == {"width": "does not apply"}
    assert summary["centre_reused"] and summary["centre"] == ["seeds/0-0", "seeds/0-1"]
    assert summary["beaten"] == ["beaten"] and summary["at_range_edge"] == ["edge"]
    assert summary["counts"] == {"ok": 34, "diverged": 2}  # 18 values x 2 seeds
    assert sensitivity_summary(None, [], [], mode="max", metric="accuracy") == {"enabled": False}


def test_the_figure_and_the_section_draw_every_kind() -> None:
    points = {
        "lr": {1e-4: [0.5, 0.6], 1e-2: [None, None]},
        "layers": {1: [0.8, 0.82], 3: [0.8, 0.81]},
        "batch": {32: [0.8, 0.81], 128: [0.7, 0.72]},
    }
    kinds = {"lr": "log", "layers": "int", "batch": "choice"}
    chosen = {"lr": 1e-3, "layers": 2, "batch": 64}
    plan, rows, centre = make_run(points, kinds, chosen, [0.81, 0.83])
    section = sensitivity_summary(plan, rows, centre, mode="max", metric="accuracy")
    png = figs.png_bytes(figs.sensitivity_figure(section, metric="accuracy"))
    off = figs.png_bytes(figs.sensitivity_figure({"enabled": False}, metric="accuracy"))
    assert png.startswith(b"\x89PNG") and off.startswith(b"\x89PNG") and png != off
    from tuneladder.report._html import _sensitivity

    html = _sensitivity({"sensitivity": section, "metric": {"name": "accuracy"}}, {})
    assert html.count("<tr><td>") == 3 and "all seeds failed" in html
    assert "<strong>0.001: 0.82 ± 0.014 (n=2)</strong>" in html
    assert "sensitive to lr, batch" in html
    off_html = _sensitivity({"sensitivity": {"enabled": False}, "metric": {"name": "x"}}, {})
    assert "did not run" in off_html and "<table>" not in off_html


# --- the config -------------------------------------------------------------------------


def test_sensitivity_is_off_by_default_and_reuses_the_seed_rungs_seeds_and_epochs() -> None:
    config = resolve_config(tiny_config())
    assert config["sensitivity"] == {"enabled": False, "values": 5, "seeds": 2, "epochs": 2}
    five = resolve_config(tiny_config(seeds={"finalists": 2, "seeds": 5, "epochs": 9}))
    assert five["sensitivity"] == {"enabled": False, "values": 5, "seeds": 3, "epochs": 9}
    one = resolve_config(tiny_config(seeds={"finalists": 2, "seeds": 1, "epochs": 2}))
    assert one["sensitivity"]["seeds"] == 2  # a spread needs two
    written = resolve_config(tiny_config(sensitivity={"seeds": 4, "epochs": 1, "values": 3}))
    assert written["sensitivity"] == {"enabled": False, "values": 3, "seeds": 4, "epochs": 1}


@pytest.mark.parametrize(
    ("sensitivity", "message"),
    [
        ({"values": 2}, "sensitivity.values must be >= 3, got 2"),
        ({"seeds": 1}, "sensitivity.seeds must be >= 2, got 1"),
        ({"epochs": 0}, "sensitivity.epochs must be >= 1, got 0"),
        ({"enabled": "yes"}, "sensitivity.enabled must be of type boolean, got 'yes'"),
        ({"value": 3}, "unknown key sensitivity.value (did you mean values?)"),
    ],
)
def test_a_bad_sensitivity_key_is_named(sensitivity: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config(tiny_config(sensitivity=sensitivity))


def test_the_plan_line_shows_the_rung_only_when_on() -> None:
    def lines(**sensitivity: Any) -> list[str]:
        config = resolve_config(tiny_config(sensitivity=sensitivity))
        workers = {"coarse": 2, "fine": 2, "seeds": 2, "sensitivity": 2}
        return describe_plan({}, config, results="r", configfiles=[], workers=workers)

    assert not any("sensitivity" in line for line in lines())
    assert lines(enabled=True)[-1] == (
        "  sensitivity  each searched hyperparameter over 5 values around the chosen one"
        " x 2 seeds x 2 epochs: up to 28 trials, 2 workers; val only"
    )


# --- a tiny real run --------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _files(workdir: Path) -> dict[str, int]:
    return {
        str(p.relative_to(workdir)): p.stat().st_mtime_ns
        for p in workdir.rglob("*")
        if p.is_file() and ".snakemake" not in p.parts
    }


@pytest.mark.slow
def test_the_default_ladder_runs_no_sensitivity_rung(tiny_ladder: Path) -> None:
    results = results_of(tiny_ladder)
    assert not (results / "sensitivity").exists()
    assert read_json(results / "report" / "summary.json")["sensitivity"] == {"enabled": False}
    page = (results / "report" / "index.html").read_text()
    assert "The sensitivity rung did not run" in page


@pytest.mark.slow
def test_a_tiny_sensitivity_rung_after_a_finished_ladder(
    tiny_ladder: Path, tmp_path: Path
) -> None:
    workdir = copy_ladder(tiny_ladder, tmp_path / "ladder")
    write_config(workdir, sensitivity={"enabled": True, "values": 3})
    before = _files(workdir)
    snakemake(workdir)
    results = results_of(workdir)
    changed = {name for name, mtime in _files(workdir).items() if before.get(name) != mtime}
    # only the new rung, the report, their logs and benchmarks, and the MLflow store ran:
    # no trial before it retrained, and the final rung did not read the test split again
    ran = {name.split("/")[2] for name in changed if name.startswith("results/")}
    ran = {"mlflow" if name.startswith(("mlflow", "mlartifacts")) else name for name in ran}
    allowed = {"sensitivity", "report", "logs", "benchmarks", "mlflow"}
    allowed |= {"run_config.json", "run_slots.json"}  # what the run started with
    assert ran <= allowed, sorted(changed)
    assert any("/sensitivity/trials/" in n for n in changed)

    plan = read_json(results / "sensitivity" / "plan.json")
    final = read_json(results / "final" / "summary.json")
    chosen = TrialConfig.from_json(read_json(results / "final" / "best_config.json")).flat()
    chosen = {k: v for k, v in chosen.items() if k not in ("epochs", "seed")}
    seed_plan = read_json(results / "seeds" / "plan.json")
    seed_trials = [e for e in seed_plan["trials"] if e["group"] == final["best_group"]]
    seeds = [e["config"]["seed"] for e in seed_trials]
    # the chosen value's point is the seed rung's trials of the chosen config
    assert [f"{c['rung']}/{c['name']}" for c in plan["centre"]] == [
        f"seeds/{final['best_group']}-0",
        f"seeds/{final['best_group']}-1",
    ]
    # tiny: lr, weight_decay and dropout take 2 values besides the chosen one, num_layers
    # (1-2) and batch_size (64, 128) one each: 8 values x 2 seeds
    assert len(plan["trials"]) == 16
    for entry in plan["trials"]:
        on_disk = read_json(results / "sensitivity" / entry["dir"] / "config.json")
        assert on_disk == entry["config"]  # each trial reproducible from its own config.json
        flat = TrialConfig.from_json(on_disk).flat()
        assert {k for k in chosen if flat[k] != chosen[k]} == {entry["param"]}
        assert flat["seed"] in seeds and flat["epochs"] == 2
    # the plan is a pure function of its inputs: planned again, it is the same
    again = tmp_path / "plan.json"
    plan_sensitivity_stage(
        summary=results / "final" / "summary.json",
        seeds=results / "seeds" / "plan.json",
        space=results / "fine" / "space.json",
        sensitivity=resolve_config(read_yaml(workdir / "config.yaml"))["sensitivity"],
        seed=0,
        out=again,
    )
    assert again.read_bytes() == (results / "sensitivity" / "plan.json").read_bytes()

    summary = read_json(results / "report" / "summary.json")
    section = summary["sensitivity"]
    assert section["enabled"] and section["trials"] == 16 and section["centre_reused"]
    assert sorted(section["parameters"]) == sorted(
        ["lr", "weight_decay", "dropout", "num_layers", "batch_size"]
    )
    metric = {
        r["name"]: r["best_val_metric"]
        for r in read_json(results / "sensitivity" / "results.json")["trials"]
    }
    seed_rows = read_json(results / "seeds" / "results.json")["trials"]
    centre = [r["best_val_metric"] for r in seed_rows if r["group"] == final["best_group"]]
    for name, p in section["parameters"].items():
        for point in p["points"]:
            if point["chosen"]:
                assert point["value"] == chosen[name] and point["values"] == centre
                continue
            mine = [
                e["name"]
                for e in plan["trials"]
                if (e["param"], e["value"]) == (name, point["value"])
            ]
            assert point["values"] == [metric[n] for n in mine if metric[n] is not None]
        # the documented rule: sensitive when a value's mean is more than 2 seed std away
        # from the chosen value's, or every seed of a value failed
        means = [q["mean"] for q in p["points"]]
        base = next(q["mean"] for q in p["points"] if q["chosen"])
        moved = any(m is None or abs(m - base) > 2 * p["spread"] for m in means)
        assert p["sensitive"] is moved, name
    assert section["verdict"].startswith("sensitive to ")
    pitfall = next(i for i in summary["pitfalls"] if i["question"].startswith("Changing"))
    assert pitfall["answer"] is True and "one at a time" in pitfall["evidence"]
    ladder = {r["key"]: r for r in summary["ladder"]["rungs"]}
    assert ladder["sensitivity"]["jobs"] >= 3  # its plan, worker(s) and collect
    page = (results / "report" / "index.html").read_text()
    body = re.search(r'<section id="sensitivity">(.*?)</section>', page, re.S)[1]
    assert body.count("<tr><td>") == 5 and 'id="fig-sensitivity"' in body

    config = resolve_config(read_yaml(workdir / "config.yaml"))
    state = ladder_status(results, config=config)
    rows = {r["rung"]: r for r in state["rungs"]}
    assert state["state"] == "finished"
    assert (rows["sensitivity"]["done"], rows["sensitivity"]["total"]) == (16, 16)
    # the DAG is static: a second run has nothing to do
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout


def test_a_change_of_the_bar_itself_is_no_change() -> None:
    # a value 2 seed std below the chosen one, off by float32 rounding (1e-7 of it):
    # "beyond 2 x the spread" it is not
    noise = 2 * 0.02 / math.sqrt(2)
    below = [v - noise * (1 + 1e-7) for v in (0.90, 0.92)]
    plan, rows, centre = make_run({"w": {1: below}}, {"w": "linear"}, {"w": 2}, [0.90, 0.92])
    found = analyse(plan, rows, centre, mode="max", metric="accuracy")["w"]
    assert found["noise"] == pytest.approx(noise) and not found["sensitive"]
