"""Which hyperparameters apply to a config: what the summary and the report list."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from helpers import REPO
from tuneladder.core.hparams import TrialConfig, applicable
from tuneladder.tasks import load_task


def flat(**changes) -> dict:
    model = {"arch": "mlp", "width": 64, "num_layers": 2, "channels": 16, "dropout": 0.1}
    model.update({k: changes.pop(k) for k in list(changes) if k in model})
    return TrialConfig(**changes, model=model).flat()


def test_a_guard_is_never_a_hyperparameter() -> None:
    params = applicable(flat())
    assert "diverge_factor" not in params
    assert {"epochs", "seed", "lr", "weight_decay", "batch_size", "grad_clip", "patience"} <= set(
        params
    )


@pytest.mark.parametrize(
    ("optimizer", "uses_momentum"),
    [("momentum", True), ("sgd", False), ("adam", False), ("adamw", False), ("radam", False)],
)
def test_momentum_and_nesterov_only_with_the_momentum_optimizer(optimizer, uses_momentum) -> None:
    params = applicable(flat(optimizer=optimizer))
    assert ("momentum" in params) is uses_momentum
    assert ("nesterov" in params) is uses_momentum


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", set()),
        ("cosine", set()),
        ("onecycle", set()),  # its warm-up is a fixed 30% of the steps
        ("step", {"gamma", "step_epochs"}),
        ("exponential", {"gamma"}),
        ("warmup_cosine", {"warmup_epochs"}),
    ],
)
def test_schedule_settings_only_with_their_schedule(schedule, expected) -> None:
    params = applicable(flat(schedule=schedule))
    assert {"gamma", "step_epochs", "warmup_epochs"} & set(params) == expected
    assert params["schedule"] == schedule


def test_model_settings_follow_the_task_hook() -> None:
    digits = load_task("digits")
    mlp = applicable(flat(arch="mlp"), model_applies=digits.applies)
    assert "channels" not in mlp and {"arch", "width", "num_layers", "dropout"} <= set(mlp)
    cnn = applicable(flat(arch="cnn"), model_applies=digits.applies)
    assert {"arch", "width", "num_layers", "channels", "dropout"} <= set(cnn)
    linear = applicable(flat(arch="mlp", num_layers=0), model_applies=digits.applies)
    assert {"width", "dropout", "channels"}.isdisjoint(linear) and linear["num_layers"] == 0
    # without a hook (a task that says nothing), every model setting applies
    assert "channels" in applicable(flat(arch="mlp"))


def test_the_digits_hook_matches_what_its_models_read() -> None:
    from tuneladder.tasks import DataInfo

    digits = load_task("digits")
    info = DataInfo("classification", (1, 8, 8), 10)
    for hp in (
        {"arch": "mlp", "width": 32, "num_layers": 1, "channels": 16, "dropout": 0.1},
        {"arch": "cnn", "width": 32, "num_layers": 2, "channels": 4, "dropout": 0.1},
        {"arch": "mlp", "width": 32, "num_layers": 0, "channels": 16, "dropout": 0.1},
    ):
        used = set(digits.applies(hp))
        reference = repr(digits.build_model(hp, info))  # layers, sizes and dropout rates
        for name in set(hp) - {"arch"}:
            other = {**hp, name: hp[name] + 1 if isinstance(hp[name], int) else hp[name] * 2}
            changed = repr(digits.build_model(other, info)) != reference
            assert changed is (name in used), name


def test_order_is_kept_and_names_of_other_tasks_pass_through() -> None:
    params = {"lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "hidden": 8}
    assert list(applicable(params)) == ["lr", "optimizer", "hidden"]


def test_the_schemas_training_defaults_are_trial_configs() -> None:
    """A trial built from a config that writes no ``train`` key trains with the schema's
    defaults; they and TrialConfig's are one set, or a key would mean two things."""
    schema = yaml.safe_load(
        (REPO / "src" / "tuneladder" / "schemas" / "config.schema.yaml").read_text()
    )
    train = schema["properties"]["train"]["properties"]
    defaults = {f.name: f.default for f in dataclasses.fields(TrialConfig) if f.name != "model"}
    assert set(defaults) - {"seed"} <= set(train)  # the seed comes from the ladder's
    for name, value in defaults.items():
        if name in train:
            assert train[name]["default"] == value, name
