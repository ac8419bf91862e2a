from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import REPO, tiny_config
from tuneladder.config import BUDGETS, ConfigError, apply_overrides, load_config, resolve_config


def test_default_config_resolves_with_filled_defaults() -> None:
    config = load_config(REPO / "config" / "config.yaml")
    assert config["metric"] == {"name": "accuracy", "mode": "max"}
    assert config["train"]["schedule"] in ("constant", "cosine")
    assert config["train"]["patience"] is None  # filled from the schema
    assert config["overfit"]["loss_threshold"] == 0.05
    assert config["workers"] == "auto"


def test_budget_preset_sets_counts_and_explicit_counts_win() -> None:
    quick = resolve_config({"experiment": "x", "budget": "quick"})
    assert quick["coarse"]["trials"] == BUDGETS["quick"]["coarse"]["trials"]
    assert quick["seeds"]["seeds"] == BUDGETS["quick"]["seeds"]["seeds"]
    mixed = resolve_config({"experiment": "x", "budget": "thorough", "coarse": {"trials": 7}})
    assert mixed["coarse"]["trials"] == 7
    assert mixed["fine"]["trials"] == BUDGETS["thorough"]["fine"]["trials"]


def test_total_trials_follow_the_methodology_budgets() -> None:
    totals = {
        name: preset["coarse"]["trials"] + preset["fine"]["trials"]
        for name, preset in BUDGETS.items()
    }
    assert 10 <= totals["quick"] <= 20
    assert 50 <= totals["standard"] <= 100
    assert totals["thorough"] >= 200


def test_sweep_epochs_default_to_train_epochs() -> None:
    config = resolve_config({"experiment": "x", "train": {"epochs": 7}})
    assert config["coarse"]["epochs"] == config["fine"]["epochs"] == config["seeds"]["epochs"] == 7


def test_exponent_without_dot_is_a_number() -> None:
    # YAML 1.1 reads 3e-4 as a string; users write it all the time
    config = resolve_config(yaml.safe_load("experiment: x\ntrain: {lr: 3e-4}\n"))
    assert config["train"]["lr"] == pytest.approx(3e-4)


def test_overrides_set_hyperparameters_and_paths() -> None:
    raw = apply_overrides({"experiment": "x"}, ["lr=1e-3", "coarse.trials=5", "arch=cnn"])
    assert raw["train"]["lr"] == 1e-3 and raw["train"]["arch"] == "cnn"
    assert raw["coarse"]["trials"] == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"space": {"lr": {"dist": "loguniform", "low": -1, "high": 1}}},
            "space.lr.low must be > 0, got -1",
        ),
        (
            {"space": {"lr": {"dist": "uniform", "low": 2, "high": 1}}},
            "space.lr.low must be <= space.lr.high",
        ),
        ({"space": {"dropout": {"dist": "choice", "values": []}}}, "space.dropout.values"),
        ({"space": {"dropout": "auto"}}, "only available for space.lr"),
        ({"coarse": {"trials": -3}}, "coarse.trials must be >= 1, got -3"),
        ({"select": {"top_k": 50}}, "select.top_k must be <= coarse.trials"),
        ({"metric": {"name": "f1"}}, "metric.name must be one of"),
        ({"train": {"lr": "fast"}}, "train.lr must be of type number, got 'fast'"),
        ({"trian": {}}, "unknown key trian (did you mean train?)"),
        ({"coarse": {"trails": 3}}, "unknown key coarse.trails (did you mean trials?)"),
        ({"train": {"widht": 3}}, "unknown hyperparameter train.widht (did you mean width?)"),
        ({"experiment": "../escape"}, "experiment must match"),
        ({"task": {"name": "nope"}}, "task.name must be digits, csv"),
        ({"metric": {"name": "rmse"}}, "metric.name must be one of accuracy, loss"),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config({**tiny_config(), **change})
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_python_tags_in_yaml_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("experiment: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
