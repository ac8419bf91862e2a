"""Successive halving: the levels, who continues, and continuing a config from its state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tuneladder.core.direction import top
from tuneladder.core.hparams import TrialConfig
from tuneladder.search.halving import (
    Halving,
    Levels,
    continuing,
    expected_seconds,
    merge_levels,
    plan_level,
    with_halving,
)
from tuneladder.store.trial_files import STATE_FILE
from tuneladder.training.runner import Checkpoint, Leg, TrainingRun, train

CPU = torch.device("cpu")
MLP = {"arch": "mlp", "width": 32, "num_layers": 1, "channels": 8, "dropout": 0.3}
TIMING = {"epoch_seconds", "peak_memory_mb"}


@pytest.mark.parametrize(
    ("trials", "epochs", "eta", "min_epochs", "levels", "trial_epochs"),
    [
        # the example: 30 configs for 3 epochs, 10 of them to 9, 3 to 15
        (30, 15, 3, 3, [(3, 30), (9, 10), (15, 3)], 30 * 3 + 10 * 6 + 3 * 6),
        (30, 15, 3, 1, [(1, 30), (3, 10), (9, 3), (15, 1)], 30 + 10 * 2 + 3 * 6 + 1 * 6),
        (4, 2, 2, 1, [(1, 4), (2, 2)], 4 + 2),
        # the count never falls below one config: it goes on to the sweep's epochs
        (5, 10, 4, 1, [(1, 5), (4, 1), (10, 1)], 5 + 3 + 6),
    ],
)
def test_levels_follow_from_trials_eta_and_epochs(
    trials: int, epochs: int, eta: int, min_epochs: int, levels: list, trial_epochs: int
) -> None:
    halving = Halving(trials=trials, epochs=epochs, eta=eta, min_epochs=min_epochs)
    assert [(lv.epochs, lv.configs) for lv in halving.levels] == levels
    assert [lv.index for lv in halving.levels] == list(range(len(levels)))
    assert halving.trial_epochs == trial_epochs


def test_halving_is_off_unless_configured_and_checks_its_numbers() -> None:
    assert Halving.from_sweep({"trials": 9, "epochs": 6}) is None
    assert Halving.from_sweep({"trials": 9, "epochs": 6, "halving": None}) is None
    on = Halving.from_sweep({"trials": 9, "epochs": 6, "halving": {"min_epochs": 2}})
    assert on == Halving(trials=9, epochs=6, eta=3, min_epochs=2)
    with pytest.raises(ValueError, match="halving.eta must be >= 2, got 1"):
        Halving(trials=9, epochs=6, eta=1, min_epochs=2)
    with pytest.raises(ValueError, match=r"min_epochs must be >= 1 and < epochs \(6\), got 6"):
        Halving(trials=9, epochs=6, eta=3, min_epochs=6)


def row(name: str, value: float | None, *, status: str = "ok", epochs: int = 3, **extra) -> dict:
    return {
        "name": name,
        "index": int(name),
        "status": status,
        "best_val_metric": value,
        "epochs_run": epochs,
        "stopped_early": False,
        **extra,
    }


def test_the_best_configs_still_training_continue_compared_at_equal_epochs() -> None:
    rows = [
        row("0", 0.70),
        row("1", 0.95, status="diverged"),  # finished: nothing to continue
        row("2", 0.90),
        row("3", 0.99, epochs=2, stopped_early=True),  # patience ended it: finished too
        row("4", 0.80),
        row("5", 0.90),  # ties keep ladder order: 2 before 5
        row("6", None, status="failed"),
    ]
    picked = continuing(rows, epochs=3, configs=3, mode="max")
    assert [r["name"] for r in picked] == ["2", "5", "4"]
    assert [r["name"] for r in continuing(rows, epochs=3, configs=9, mode="min")] == [
        "0",
        "4",
        "2",
        "5",
    ]


def sweep_plan(trials: int = 4) -> dict:
    plan = {
        "rung": "coarse",
        "sampler": "sobol",
        "space": {},
        "trials": [
            {"name": str(i), "index": i, "dir": f"trials/{i}", "config": {"epochs": 2}}
            for i in range(trials)
        ],
    }
    return with_halving(plan, Halving(trials=trials, epochs=2, eta=2, min_epochs=1))


def test_each_level_plans_its_configs_and_the_sweep_table_is_each_ones_furthest_level() -> None:
    plan = sweep_plan()
    assert [e["dir"] for e in plan["trials"]] == [f"trials/{i}/e1" for i in range(4)]
    assert plan["halving"]["levels"] == [
        {"level": 0, "epochs": 1, "configs": 4},
        {"level": 1, "epochs": 2, "configs": 2},
    ]
    first = plan_level(plan, 0, None, "max")
    assert [(e["name"], e["dir"], e["budget"]) for e in first["trials"]] == [
        (str(i), f"../../trials/{i}/e1", 1) for i in range(4)
    ]
    assert all("continues" not in e for e in first["trials"])
    level0 = [row(str(i), v, epochs=1, level=0) for i, v in enumerate([0.5, 0.9, 0.7, 0.8])]
    second = plan_level(plan, 1, level0, "max")
    assert second["ranked"] == ["1", "3"]  # best first; the entries keep ladder order
    assert [(e["name"], e["dir"], e["budget"], e["continues"]) for e in second["trials"]] == [
        ("1", "../../trials/1/e2", 2, {"dir": "../../trials/1/e1", "budget": 1}),
        ("3", "../../trials/3/e2", 2, {"dir": "../../trials/3/e1", "budget": 1}),
    ]
    with pytest.raises(ValueError, match="its table is needed"):
        plan_level(plan, 1, None, "max")
    level1 = [row("1", 0.93, epochs=2, level=1), row("3", 0.95, epochs=2, level=1)]
    merged = merge_levels(plan, [level0, level1])
    assert [(r["name"], r["path"], r["best_val_metric"]) for r in merged] == [
        ("0", "trials/0/e1", 0.5),
        ("1", "trials/1/e2", 0.93),
        ("2", "trials/2/e1", 0.7),
        ("3", "trials/3/e2", 0.95),
    ]
    assert merged[1]["halving"] == {
        "level": 1,
        "last_level": 1,
        "epochs": 2,
        "levels": [
            {"level": 0, "epochs": 1, "status": "ok", "best_val_metric": 0.9},
            {"level": 1, "epochs": 2, "status": "ok", "best_val_metric": 0.93},
        ],
    }
    # a config halving stopped ranks below every config that went further, whatever
    # its value at fewer epochs: 0.96 at one epoch loses to 0.93 at two
    merged[2]["best_val_metric"] = 0.96
    assert [r["name"] for r in top(merged, 3, "max")] == ["3", "1", "2"]


def test_levels_plan_each_level_from_the_table_told_before_it() -> None:
    plan = sweep_plan()
    tables = {
        0: [row(str(i), v, epochs=1, level=0) for i, v in enumerate([0.5, 0.9, 0.7, 0.8])],
        1: [row("1", 0.93, epochs=2, level=1), row("3", 0.95, epochs=2, level=1)],
    }
    levels = Levels(plan, "max")
    assert len(levels) == 2 and levels.previous is None
    planned = []
    for level_plan in levels:
        planned.append(level_plan)
        levels.tell(tables[level_plan["level"]])
    # the same plans as level by level by hand, and the same sweep table
    assert planned == [plan_level(plan, 0, None, "max"), plan_level(plan, 1, tables[0], "max")]
    assert levels.is_last(planned[1]) and not levels.is_last(planned[0])
    assert levels.merged() == merge_levels(plan, [tables[0], tables[1]])
    untold = iter(Levels(plan, "max"))
    next(untold)
    with pytest.raises(RuntimeError, match="level 0's table must be told before level 1"):
        next(untold)
    with pytest.raises(ValueError, match="does not halve"):
        Levels({"rung": "coarse", "trials": []}, "max")


def test_a_continuing_level_is_timed_from_each_configs_pace_at_the_level_before() -> None:
    plan = {
        **sweep_plan(),
        "halving": Halving(trials=4, epochs=9, eta=2, min_epochs=3).to_json(),
    }
    assert expected_seconds(None, plan_level(plan, 0, None, "max")) is None
    level0 = [
        row(str(i), v, epochs=3, level=0, train_seconds=s)
        for i, (v, s) in enumerate([(0.9, 3.0), (0.5, 1.0), (0.8, 6.0), (0.7, 0.3)])
    ]
    second = plan_level(plan, 1, level0, "max")
    # 1 s and 2 s per epoch at level 0, and 6 - 3 epochs to add
    assert expected_seconds(level0, second) == {"0": 3.0, "2": 6.0}


def test_trends_and_importance_compare_every_config_at_level_0s_epochs() -> None:
    from tuneladder.report._summary import equal_epochs

    plan = sweep_plan()
    level0 = [row(str(i), v, epochs=1, level=0) for i, v in enumerate([0.5, 0.9, 0.7, 0.8])]
    level1 = [row("1", 0.93, epochs=2, level=1), row("3", 0.2, status="diverged", level=1)]
    alike = equal_epochs(merge_levels(plan, [level0, level1]))
    # each config as it stood after one epoch: #3 diverged later, but was ok at level 0
    assert [(r["name"], r["status"], r["best_val_metric"]) for r in alike] == [
        ("0", "ok", 0.5),
        ("1", "ok", 0.9),
        ("2", "ok", 0.7),
        ("3", "ok", 0.8),
    ]
    assert all("halving" not in r for r in alike)  # equals: no tier
    plain = [row("0", 0.5)]
    assert equal_epochs(plain) == plain


def continue_chain(run, stops, tmp_path: Path, *, interrupt_at=None):
    """Train ``run`` level by level, each level from the state the one before kept."""
    before, outcome = None, None
    for stop in stops:
        folder = tmp_path / f"e{stop}"
        keep = (
            Checkpoint(folder / STATE_FILE, f"e{stop}", every_s=0)
            if stop < run.config.epochs
            else None
        )
        common = dict(
            leg=Leg(stop_at=stop, continues=before, keep_state=keep),
            checkpoint=Checkpoint(folder / "checkpoint.pt", f"e{stop}", every_s=0),
        )
        if interrupt_at is not None and stops.index(stop) == 1:

            def interrupt(row):
                if row["epoch"] == interrupt_at:
                    raise KeyboardInterrupt  # killed between two epochs of a continued level

            with pytest.raises(KeyboardInterrupt):
                train(run, on_epoch=interrupt, **common)
        outcome = train(run, **common)
        before = keep
    return outcome


def untimed(history):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def test_a_continued_config_has_the_history_and_weights_of_one_trained_straight_through(
    tmp_path: Path, digits, digits_task
) -> None:
    # cosine over 6 epochs with dropout: the schedule's horizon and the RNGs both matter
    cfg = TrialConfig(epochs=6, seed=3, lr=3e-3, batch_size=128, schedule="cosine", model=MLP)
    run = TrainingRun(
        config=cfg, data=digits, task=digits_task, metric="loss", mode="min", device=CPU
    )
    straight = train(run)
    continued = continue_chain(run, [1, 3, 6], tmp_path / "chain")
    assert continued.status == "ok" and continued.resumed_from_epoch == 3
    assert len(continued.history) == 6
    assert untimed(continued.history) == untimed(straight.history)  # exactly, not approx
    assert continued.best_epoch == straight.best_epoch
    assert continued.best_val_metric == straight.best_val_metric
    # a level stops the schedule, it does not shorten it: the lr at epoch 3 is cosine's
    # value 3/6 of the way, not the end of a 3-epoch schedule
    assert continued.history[2]["lr"] == straight.history[2]["lr"] > 0
    # the state a level keeps is the one a straight run has at that epoch: weights,
    # optimizer, schedule and RNGs, bit for bit (a straight run to 5, kept at 5)
    train(
        run, leg=Leg(stop_at=5, keep_state=Checkpoint(tmp_path / "straight" / STATE_FILE, "s", 0))
    )
    continue_chain(run, [2, 5], tmp_path / "levels")
    a = torch.load(tmp_path / "straight" / STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "levels" / "e5" / STATE_FILE, weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for param, moments in a["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, b["optimizer"]["state"][param][name]), (param, name)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] > 0
    assert torch.equal(a["rng"], b["rng"]) and torch.equal(a["shuffle"], b["shuffle"])
    assert untimed(a["history"]) == untimed(b["history"])


def test_a_continued_level_killed_mid_way_resumes_from_its_own_checkpoint(
    tmp_path: Path, digits, digits_task
) -> None:
    cfg = TrialConfig(epochs=5, seed=1, lr=3e-3, batch_size=128, schedule="cosine", model=MLP)
    run = TrainingRun(
        config=cfg, data=digits, task=digits_task, metric="loss", mode="min", device=CPU
    )
    straight = train(run)
    # level 1 goes from epoch 1 to 5; it is killed after epoch 3 and rerun
    resumed = continue_chain(run, [1, 5], tmp_path, interrupt_at=3)
    assert resumed.resumed_from_epoch == 3  # its own checkpoint, not level 0's state
    assert untimed(resumed.history) == untimed(straight.history)


def test_no_state_is_kept_for_a_config_that_cannot_go_on(tmp_path: Path, digits, digits_task):
    cfg = TrialConfig(epochs=5, seed=0, lr=1e6, optimizer="sgd", batch_size=128, model=MLP)
    keep = Checkpoint(tmp_path / STATE_FILE, "k", 0)
    outcome = train(
        TrainingRun(
            config=cfg, data=digits, task=digits_task, metric="accuracy", mode="max", device=CPU
        ),
        leg=Leg(stop_at=2, keep_state=keep),
    )
    assert outcome.status == "diverged" and not keep.path.exists()


# --- a tiny real ladder whose coarse sweep halves ----------------------------------------

HALVING_LADDER = {
    "experiment": "halving",
    "workers": "auto",  # two lanes (2 cores) share each level
    "mlflow": {"enabled": False},
    # 4 configs for 1 epoch, the best 2 of them on to the sweep's 2 epochs
    "coarse": {
        "trials": 4,
        "epochs": 2,
        "sampler": "sobol",
        "halving": {"eta": 2, "min_epochs": 1},
    },
}


def history_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as handle:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def halving_ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers import snakemake, write_config

    workdir = tmp_path_factory.mktemp("halving")
    write_config(workdir, **HALVING_LADDER)
    snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_a_halving_ladder_continues_the_best_configs_from_their_states(
    halving_ladder: Path, tmp_path: Path
) -> None:
    from helpers import copy_ladder, results_of, snakemake, tiny_config
    from tuneladder.data.prepared import load_train_val
    from tuneladder.execution.status import format_status, ladder_status
    from tuneladder.ladder.config import resolve_config
    from tuneladder.store.io import read_json
    from tuneladder.tasks import load_task
    from tuneladder.training.runner import run_trial

    ladder_config = resolve_config(tiny_config(**HALVING_LADDER))

    coarse = results_of(halving_ladder) / "coarse"
    first = read_json(coarse / "levels" / "0" / "plan.json")["trials"]
    assert [(e["name"], e["budget"]) for e in first] == [(str(i), 1) for i in range(4)]
    # level 0: every config for one epoch, each keeping its state for the next level
    at_one = {
        str(i): read_json(coarse / "trials" / str(i) / "e1" / "result.json") for i in range(4)
    }
    assert all(r["epochs_run"] == 1 for r in at_one.values())
    assert all((coarse / "trials" / str(i) / "e1" / STATE_FILE).is_file() for i in range(4))
    # level 1: the two best at one epoch, ranked here by hand from their own results
    best_two = sorted(at_one, key=lambda n: -at_one[n]["best_val_metric"])[:2]
    second = read_json(coarse / "levels" / "1" / "plan.json")
    # one set of worker jobs trained both levels: the 4 configs, then the 2 that went on
    markers = [read_json(p) for p in sorted((coarse / "workers").glob("*.json"))]
    assert len(markers) == 2
    assert sorted(n for m in markers for n in m["ran"]) == sorted([*at_one, *best_two])
    assert sorted(e["name"] for e in second["trials"]) == sorted(best_two)
    assert second["ranked"] == best_two
    assert sorted(p.parent.name for p in coarse.glob("trials/*/e2")) == sorted(best_two)
    data = load_train_val(results_of(halving_ladder) / "data")
    digits_task = load_task("digits")
    for name in best_two:
        result = read_json(coarse / "trials" / name / "e2" / "result.json")
        assert result["resumed_from_epoch"] == 1 and result["epochs_run"] == 2
        assert result["trial"]["level"] == 1 and result["trial"]["budget"] == 2
        assert not (coarse / "trials" / name / "e2" / STATE_FILE).exists()  # nothing left to go
        continued = history_rows(coarse / "trials" / name / "e2" / "history.csv")
        # its first epoch is level 0's, and the whole is a straight-through trial's
        assert continued[:1] == history_rows(coarse / "trials" / name / "e1" / "history.csv")
        config = TrialConfig.from_json(read_json(coarse / "trials" / name / "e2" / "config.json"))
        assert config.epochs == 2
        run_trial(
            TrainingRun(
                config=config,
                data=data,
                task=digits_task,
                metric="accuracy",
                mode="max",
                device=CPU,
            ),
            tmp_path / name,
        )
        assert continued == history_rows(tmp_path / name / "history.csv")
    # the sweep's table: each config at its furthest level; top-k takes those that went on
    table = read_json(coarse / "results.json")["trials"]
    assert {r["name"]: r["epochs_run"] for r in table} == {
        n: 2 if n in best_two else 1 for n in at_one
    }
    at_two = {n: read_json(coarse / "trials" / n / "e2" / "result.json") for n in best_two}
    topk = [t["name"] for t in read_json(coarse / "topk.json")["trials"]]
    assert topk == sorted(best_two, key=lambda n: -at_two[n]["best_val_metric"])
    # the report: each level, who went on and who ended there, and the figure
    report = results_of(halving_ladder) / "report"
    levels = read_json(report / "summary.json")["halving"]["coarse"]["levels"]
    assert [(lv["epochs"], lv["trained"], sorted(lv["continued"])) for lv in levels] == [
        (1, 4, sorted(best_two)),
        (2, 2, []),
    ]
    assert sorted(levels[0]["ended"]) == sorted(set(at_one) - set(best_two))
    summary = read_json(report / "summary.json")["halving"]["coarse"]
    assert (summary["trial_epochs"], summary["full_trial_epochs"]) == (4 * 1 + 2 * 1, 4 * 2)
    assert (report / "figures" / "halving.png").is_file()
    assert '<section id="halving">' in (report / "index.html").read_text()
    status = ladder_status(results_of(halving_ladder), config=ladder_config)
    text = format_status(status)
    # configs, not trainings: 4 configs, of which 2 went on to the second level
    assert "coarse   4/4 done" in text, text
    assert "halving levels: 4/4 to 1, 2/2 to 2 epochs" in text, text
    # the best so far is the best of the sweeps' tables, a halving config at its last level
    tables = {
        rung: read_json(results_of(halving_ladder) / rung / "results.json")["trials"]
        for rung in ("coarse", "fine")
    }
    best = max(r["best_val_metric"] for t in tables.values() for r in t if r["status"] == "ok")
    assert status["best"]["value"] == best
    assert status["best"]["rung"] != "coarse" or status["best"]["name"] in best_two
    # reuse: nothing to do; after a kill in level 1, its lost trial is trained again from
    # level 0's state, and nothing else is
    ladder = copy_ladder(halving_ladder, tmp_path / "copy")
    coarse = results_of(ladder) / "coarse"
    assert "Nothing to be done" in snakemake(ladder, "-n").stdout
    lost = best_two[0]
    before = {p: p.stat().st_mtime_ns for p in coarse.glob("trials/*/*/result.json")}
    killed = [coarse / "trials" / lost / "e2" / "result.json", coarse / "results.json"]
    killed += (coarse / "workers").glob("*.json")
    for path in killed:
        path.unlink()
    snakemake(ladder)
    after = {p: p.stat().st_mtime_ns for p in coarse.glob("trials/*/*/result.json")}
    redone = coarse / "trials" / lost / "e2" / "result.json"
    assert {p for p in after if after[p] != before.get(p)} == {redone}
    assert read_json(redone)["resumed_from_epoch"] == 1
    assert history_rows(redone.parent / "history.csv") == history_rows(
        halving_ladder / redone.parent.relative_to(ladder) / "history.csv"
    )


@pytest.mark.slow
def test_mlflow_holds_one_run_per_config_with_its_levels_as_steps(
    halving_ladder: Path, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from helpers import results_of
    from tuneladder.search.halving import level_trial_dirs
    from tuneladder.store.io import read_json
    from tuneladder.store.trials import read_result
    from tuneladder.tracking.mirror import open_ladder

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = open_ladder(tracking_uri=uri, experiment="halving", results=tmp_path)
    rows = read_json(results_of(halving_ladder) / "coarse" / "results.json")["trials"]
    levels = {r["name"]: [halving_ladder / d for d in level_trial_dirs(r)] for r in rows}
    ids = {}
    for _ in range(2):  # a second pass finds every level logged and adds nothing
        for name, dirs in levels.items():
            for d in dirs:
                ids.setdefault(name, set()).add(tracker.log_trial(read_result(d), d))
    assert all(len(run_ids) == 1 for run_ids in ids.values())  # one run per config
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("halving")
    trials = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`tuneladder.role` = 'trial'"
    )
    assert sorted(r.info.run_name for r in trials) == sorted(f"coarse-{n}" for n in levels)
    for name, dirs in levels.items():
        (run_id,) = ids[name]
        curve = client.get_metric_history(run_id, "val_loss")
        # the epochs of every level once each, in order, each stamped after the one before
        assert [m.step for m in curve] == list(range(len(dirs)))
        assert [m.timestamp for m in curve] == sorted(m.timestamp for m in curve)
        assert [m.step for m in client.get_metric_history(run_id, "best_val_metric")] == list(
            range(len(dirs))
        )
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["tuneladder.epochs_logged"] == str(len(dirs))
        last = read_result(dirs[-1])
        assert run.info.end_time == int(last["started_at"] * 1000) + int(
            last["total_seconds"] * 1000
        )
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert artifacts == {f"level-{i}" for i in range(len(dirs))}
