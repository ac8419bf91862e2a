from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, snakemake, tiny_config, write_config
from tuneladder.ladder.config import (
    ConfigError,
    apply_overrides,
    command_line_values,
    describe_plan,
    load_config,
    resolve_config,
)
from tuneladder.ladder.reference import config_reference

SPACE = {"lr": "auto"}


def test_default_config_resolves_with_filled_defaults() -> None:
    config = load_config(REPO / "config" / "config.yaml")
    assert config["metric"] == {"name": "accuracy", "mode": "max"}
    assert config["train"]["schedule"] in ("constant", "cosine")
    assert config["train"]["patience"] is None  # filled from the schema
    assert config["overfit"]["loss_ratio"] == 0.05 and config["overfit"]["loss_threshold"] is None
    assert config["workers"] == "auto"


def counts(config: dict) -> tuple[int, int, int, int]:
    return (
        config["coarse"]["trials"],
        config["fine"]["trials"],
        config["seeds"]["finalists"],
        config["seeds"]["seeds"],
    )


@pytest.mark.parametrize(
    ("budget", "expected"),
    # the methodology's budgets: quick 10-20 trials, standard 50-100, thorough a few hundred
    [("quick", (10, 6, 2, 3)), ("standard", (30, 20, 3, 5)), ("thorough", (150, 100, 5, 5))],
)
def test_budget_preset_sets_the_counts(budget: str, expected: tuple) -> None:
    assert (
        counts(resolve_config({"experiment": "x", "budget": budget, "space": SPACE})) == expected
    )


def test_counts_written_in_the_config_win_over_the_budget() -> None:
    raw = {"experiment": "x", "budget": "thorough", "space": SPACE, "coarse": {"trials": 7}}
    assert counts(resolve_config(raw)) == (7, 100, 5, 5)


def test_the_default_config_leaves_the_counts_to_its_budget() -> None:
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert counts(resolve_config({**raw, "budget": "quick"})) == (10, 6, 2, 3)


def plan_of(raw: dict) -> list[str]:
    """The plan's lines for ``raw``, as the workflow prints them at start-up."""
    return describe_plan(
        raw,
        resolve_config(raw),
        results="results/x",
        configfiles=["my.yaml"],
        workers={"coarse": 2, "fine": 2, "seeds": 1},
    )


def test_the_plan_says_which_counts_were_written() -> None:
    raw = {"experiment": "x", "budget": "quick", "space": SPACE, "fine": {"trials": 9}}
    lines = plan_of(raw)
    assert lines[0] == (
        "tuneladder: experiment x from my.yaml, budget quick, results in results/x/"
    )
    by_rung = {line.split()[0]: line for line in lines[1:]}
    assert "10 trials x 30 epochs, random, 2 workers" in by_rung["coarse"]
    assert "9 (written; budget quick: 6) trials" in by_rung["fine"]
    assert by_rung["seeds"].endswith(
        "(2 finalists + untuned default) x 3 seeds x 30 epochs = 9 trials, 1 worker"
    )
    # finalists chosen at one length and rerun at another: the plan says so
    short = {**raw, "coarse": {"epochs": 81}, "seeds": {"epochs": 4}}
    (seeds,) = [line for line in plan_of(short) if line.split()[:1] == ["seeds"]]
    assert seeds.endswith("; note: the sweeps chose them at 81 (coarse) and 30 (fine) epochs")


@pytest.mark.parametrize(
    ("metric", "mode"),
    [
        ("accuracy", "max"),
        ("balanced_accuracy", "max"),
        ("macro_f1", "max"),
        ("roc_auc", "max"),
        ("loss", "min"),
        ("r2", "max"),
        ("rmse", "min"),
        ("mae", "min"),
    ],
)
def test_the_mode_follows_the_metric(metric: str, mode: str) -> None:
    raw = {"experiment": "x", "space": SPACE, "metric": {"name": metric}}
    assert resolve_config(raw, check_task=False)["metric"]["mode"] == mode


@pytest.mark.parametrize(
    ("kind", "metric"), [("classification", "accuracy"), ("regression", "rmse")]
)
@pytest.mark.parametrize("check_task", [True, False])
def test_a_config_naming_no_metric_selects_on_its_tasks_kind(kind, metric, check_task) -> None:
    task = {"name": "csv", "options": {"path": str(REPO / "examples" / "wine.csv")}}
    task["options"].update(target="target", kind=kind)
    raw = {"experiment": "x", "space": SPACE, "task": task}
    resolved = resolve_config(raw, check_task=check_task)["metric"]
    assert resolved == {"name": metric, "mode": "max" if metric == "accuracy" else "min"}


IMBALANCED = {"name": "imbalanced_task:make_task", "options": {}}  # tests/imbalanced_task.py


@pytest.mark.parametrize("check_task", [True, False])
def test_a_tasks_own_metric_is_selected_with_its_direction(check_task: bool) -> None:
    # without check_task (cluster jobs) the task is loaded all the same: only it knows the mode
    raw = {"experiment": "x", "space": SPACE, "task": IMBALANCED}
    own = {**raw, "metric": {"name": "positive_recall"}}
    assert resolve_config(own, check_task=check_task)["metric"]["mode"] == "max"
    with pytest.raises(ConfigError) as caught:
        resolve_config({**raw, "metric": {"name": "recall"}}, check_task=check_task)
    assert str(caught.value) == (
        "metric.name must be one of accuracy, balanced_accuracy, macro_f1, roc_auc, loss,"
        " positive_recall (the metrics the classification task 'imbalanced' records), got"
        " 'recall'"
    )
    contradicting = {**raw, "metric": {"name": "positive_recall", "mode": "min"}}
    with pytest.raises(ConfigError, match="metric.mode 'min' contradicts metric.name"):
        resolve_config(contradicting, check_task=check_task)


def test_sweep_epochs_default_to_train_epochs() -> None:
    config = resolve_config({"experiment": "x", "space": SPACE, "train": {"epochs": 7}})
    assert config["coarse"]["epochs"] == config["fine"]["epochs"] == config["seeds"]["epochs"] == 7


def test_exponent_without_dot_is_a_number() -> None:
    # YAML 1.1 reads 3e-4 as a string; users write it all the time
    config = resolve_config(
        yaml.safe_load("experiment: x\nspace: {lr: auto}\ntrain: {lr: 3e-4}\n")
    )
    assert config["train"]["lr"] == pytest.approx(3e-4)


def test_overrides_set_hyperparameters_and_paths() -> None:
    raw = apply_overrides({"experiment": "x"}, ["lr=1e-3", "coarse.trials=5", "arch=cnn"])
    assert raw["train"]["lr"] == 1e-3 and raw["train"]["arch"] == "cnn"
    assert raw["coarse"]["trials"] == 5
    # a bare key that names one of the config's own keys sets that key, not train's
    raw = apply_overrides({"experiment": "x"}, ["precision=bf16", "seed=3", "dropout=0.1"])
    assert raw["precision"] == "bf16" and raw["seed"] == 3
    assert raw["train"] == {"dropout": 0.1}
    # a misspelt one of them lands in train: the error points at the key it was near
    for typo, meant in (
        ("budjet=quick", "budget, a key of the config itself?"),
        ("widht=3", "width?"),
    ):
        raw = apply_overrides({"experiment": "x", "space": SPACE}, [typo])
        with pytest.raises(
            ConfigError, match=f"train.{typo.split('=')[0]} \\(did you mean {meant}"
        ):
            resolve_config(raw)


def with_channels(when: dict, arch: list | None = None, arch_when: dict | None = None) -> dict:
    """The tiny config's space, plus ``channels`` under ``when`` (and ``arch`` if given)."""
    space = {**tiny_config()["space"], "channels": {"dist": "choice", "values": [16, 32]}}
    space["channels"]["when"] = when
    if arch:
        space["arch"] = {"dist": "choice", "values": arch}
        if arch_when:
            space["arch"]["when"] = arch_when
    return space


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
        (
            {"metric": {"name": "rmse"}},
            "metric.name must be one of accuracy, balanced_accuracy, macro_f1, roc_auc, loss"
            " (the metrics the classification task 'digits' records), got 'rmse'",
        ),
        ({"metric": {"name": "roc_aux"}}, "got 'roc_aux' (did you mean roc_auc?)"),
        (
            {"metric": {"name": "accuracy", "mode": "min"}},
            "metric.mode 'min' contradicts metric.name 'accuracy', which is better when larger",
        ),
        ({"space": {}}, "space is empty, so every trial would be the same: add the"),
        ({"data": {"materialize": "yes"}}, "data.materialize must be one of auto, always, never"),
        ({"data": {"num_workers": -1}}, "data.num_workers must be >= 0, got -1"),
        ({"data": {"max_memory_mb": 0}}, "data.max_memory_mb must be > 0, got 0"),
        ({"data": {"workers": 2}}, "unknown key data.workers"),
        ({"task": {"name": "image_folder"}}, "task.options.path is required"),
        (
            {"space": with_channels({"arhc": "cnn"})},
            "space.channels.when.arhc: unknown hyperparameter (did you mean arch?)",
        ),
        (
            {"space": with_channels({"arch": "rnn"}, arch=["mlp", "cnn"])},
            "space.channels.when.arch: 'rnn' is not one of ['mlp', 'cnn']",
        ),
        (
            {"space": with_channels({"num_layers": 5})},
            "space.channels.when.num_layers: 5 is not one of the whole numbers in [1, 2]",
        ),
        (
            {"space": with_channels({"dropout": 0.1})},
            "space.channels.when.dropout: space.dropout is a range of floats",
        ),
        (
            {"space": with_channels({"optimizer": "momentum"})},
            "space.channels.when.optimizer: optimizer is fixed to 'adamw' (train.optimizer),"
            " so space.channels would never be sampled",
        ),
        (
            {"space": with_channels({"arch": "cnn"})},
            "space.channels.when.arch: arch is fixed to the task's default 'mlp', so"
            " space.channels would never be sampled",
        ),
        ({"space": with_channels({"channels": 16})}, "a parameter cannot depend on itself"),
        (
            {
                "space": with_channels(
                    {"arch": "cnn"}, arch=["mlp", "cnn"], arch_when={"channels": 16}
                )
            },
            "space.channels.when and space.arch.when name each other",
        ),
        (
            {"space": {"lr": "auto", "warmup_epochs": {"dist": "uniform", "low": 0.5, "high": 2}}},
            "space.warmup_epochs would never be sampled: it applies only when schedule is"
            " warmup_cosine, and schedule is fixed to 'constant' (train.schedule)",
        ),
        (
            {"space": {"lr": "auto", "width": [32, 64]}},
            "space.width must be a distribution to sample, got [32, 64]: e.g. {dist: choice,"
            " values: [32, 64]}",
        ),
        ({"space": {"width": 64}}, "a value that stays fixed goes under train"),
        ({"coarse": {"trials": 4, "sampler": "tpe"}}, "coarse.sampler tpe is for the fine sweep"),
        ({"coarse": {"trials": 4, "batch": 2}}, "coarse.batch is not used"),
        (
            {"fine": {"trials": 4, "sampler": "tpe", "halving": {"min_epochs": 1}}},
            "fine.halving does not combine with fine.sampler tpe",
        ),
        ({"fine": {"trials": 4, "sampler": "tpe", "batch": 0}}, "fine.batch must be >= 1, got 0"),
        (
            {"coarse": {"trials": 4, "epochs": 3, "halving": {"min_epochs": 3}}},
            "coarse.halving.min_epochs must be >= 1 and < epochs (3), got 3",
        ),
        (
            {"fine": {"trials": 4, "halving": {"min_epochs": 1, "grow": 1}}},
            "fine.halving.grow needs halving.mode: async",
        ),
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


@pytest.mark.parametrize("config", ["config/config.yaml", "config/examples/csv.yaml"])
def test_resolving_a_built_in_task_imports_no_torch(config: str) -> None:
    """The Snakefile resolves the config on every parse (-n, cluster jobs): keep it light."""
    code = (
        "import sys; from tuneladder.ladder.config import load_config; "
        f"load_config({config!r}); "
        "heavy = [m for m in ('torch', 'pandas', 'optuna', 'sklearn', 'mlflow')"
        " if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_resolving_the_image_folder_task_imports_no_torch(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    config = {
        "experiment": "folder",
        "task": {"name": "image_folder", "options": {"path": str(tmp_path / "images")}},
        "space": {"lr": "auto", "channels": {"dist": "choice", "values": [8, 16]}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code = (
        "import sys; from tuneladder.ladder.config import load_config; "
        f"load_config({str(tmp_path / 'c.yaml')!r}); "
        "heavy = [m for m in ('torch', 'torchvision', 'PIL') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_conditions_and_tpe_settings_resolve() -> None:
    space = with_channels({"arch": ["cnn"]}, arch=["mlp", "cnn"])
    space["warmup_epochs"] = {"dist": "uniform", "low": 0.5, "high": 2.0}
    space["schedule"] = {"dist": "choice", "values": ["cosine", "warmup_cosine"]}
    config = resolve_config({**tiny_config(), "space": space, "fine": {"sampler": "tpe"}})
    assert config["fine"]["batch"] == 4  # the default, for the fine sweep only
    assert "batch" not in config["coarse"]
    lines = describe_plan(
        config, config, results="r", configfiles=[], workers={"coarse": 2, "fine": 2, "seeds": 2}
    )
    assert any(x.endswith("epochs, tpe in rounds of 4, 2 workers") for x in lines), lines
    # a momentum optimizer makes momentum worth sampling: no error
    resolve_config(
        {
            **tiny_config(),
            "train": {**tiny_config()["train"], "optimizer": "momentum"},
            "space": {"lr": "auto", "momentum": {"dist": "uniform", "low": 0.8, "high": 0.99}},
        }
    )


def test_nested_command_line_values_are_read_as_a_config_files_are(tmp_path: Path) -> None:
    given = ["coarse={trials: 5, sampler: random, halving: {eta: 3}}", "seed=3", "train={x: '7'}"]
    dated = ["deterministic=true", "experiment=2024-12-07"]
    assert command_line_values([*given, *dated]) == {
        "coarse": {"trials": 5, "sampler": "random", "halving": {"eta": 3}},
        "train": {"x": "7"},  # quoted: a string, as in a config file
        "deterministic": True,  # Snakemake's own reading left it the string 'true'
    }  # seed=3 and the experiment's name: as Snakemake read them (YAML: a date)
    assert command_line_values(["coarse={trials: [}"]) == {} and command_line_values(None) == {}
    write_config(tmp_path)
    proc = snakemake(
        tmp_path, "-n", "--config", "coarse={trials: 5, epochs: 2}", "seed=3", "deterministic=true"
    )
    assert "coarse  5 (written; budget quick: 10) trials x 2 epochs" in proc.stdout + proc.stderr


def test_trials_per_gpu_is_auto_by_default_and_a_bad_value_names_the_key() -> None:
    config = resolve_config({"experiment": "x", "space": SPACE})
    assert config["gpu"] == {
        "trials_per_gpu": "auto",
        "max_trials_per_gpu": 16,
        "probe_seconds": 2,
    }
    four = resolve_config({"experiment": "x", "space": SPACE, "gpu": {"trials_per_gpu": 4}})
    assert four["gpu"]["trials_per_gpu"] == 4
    for bad in (0, "four", 2.5):
        with pytest.raises(ConfigError, match="gpu.trials_per_gpu"):
            resolve_config({"experiment": "x", "space": SPACE, "gpu": {"trials_per_gpu": bad}})


def test_the_config_reference_is_the_schemas() -> None:
    """config/README.md is written from the schema: regenerated, it is unchanged, and
    it names every key, nested ones too."""
    reference = (REPO / "config" / "README.md").read_text()
    assert reference == config_reference(), (
        "config/README.md is out of date: tuneladder config --reference > config/README.md"
    )
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "tuneladder"), "config", "--reference"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert proc.stdout == reference
    for key in ("experiment", "coarse.halving.eta", "mlflow.live", "gpu.trials_per_gpu"):
        assert f"`{key}`" in reference, key
    resolved = resolve_config(tiny_config())
    missing = [name for name in resolved if f"## `{name}`" not in reference]
    assert not missing, missing


def test_the_schema_allows_the_devices_and_precisions_the_runtime_knows() -> None:
    from tuneladder.infra.device import DEVICES, PRECISIONS
    from tuneladder.ladder.config import load_schema

    properties = load_schema()["properties"]
    assert tuple(properties["precision"]["enum"]) == PRECISIONS
    assert tuple(properties["device"]["enum"]) == DEVICES
