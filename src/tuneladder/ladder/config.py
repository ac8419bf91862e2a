"""Load, validate and complete an experiment config.

The schema in ``schemas/config.schema.yaml`` is the single description of the
config: the workflow validates against the same file. Every error is one line
that names the key path, the bad value and what is allowed, raised before any
training starts.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tuneladder.core.errors import ConfigError
from tuneladder.core.metric_table import Metric, built_in
from tuneladder.search.halving import Halving

__all__ = [
    "BUDGETS",
    "ConfigError",
    "SCHEMA_PATH",
    "load_schema",
    "apply_overrides",
    "command_line_values",
    "describe_plan",
    "load_config",
    "read_config_file",
    "resolve_config",
]

SCHEMA_PATH = Path(str(resources.files("tuneladder") / "schemas" / "config.schema.yaml"))

# Trial counts per preset, after the methodology's time budgets: a quick project
# runs 10-20 trials, a standard one 50-100, a thorough one a few hundred.
BUDGETS: dict[str, dict[str, dict[str, int]]] = {
    "quick": {
        "coarse": {"trials": 10},
        "fine": {"trials": 6},
        "seeds": {"finalists": 2, "seeds": 3},
    },
    "standard": {
        "coarse": {"trials": 30},
        "fine": {"trials": 20},
        "seeds": {"finalists": 3, "seeds": 5},
    },
    "thorough": {
        "coarse": {"trials": 150},
        "fine": {"trials": 100},
        "seeds": {"finalists": 5, "seeds": 5},
    },
}


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a YAML config, apply ``key=value`` overrides and resolve it."""
    return resolve_config(apply_overrides(read_config_file(path), overrides))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's keys as written, or a :class:`ConfigError` naming the file, and the
    line and column where its YAML breaks (Snakemake's own reading says neither)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        raise ConfigError(
            f"{path}: not valid YAML{where}: {what}" + (f" ({context})" if context else "")
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` style overrides.

    A dotted key is a config path (``coarse.trials=5``); a bare key is one of the
    config's own keys where it names one (``precision=bf16``, ``seed=3``), else a
    fixed hyperparameter (``lr=1e-3`` sets ``train.lr``). Values are parsed as
    YAML, so numbers and booleans keep their types.
    """
    top_level = load_schema()["properties"].keys()
    config = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override must look like key=value, got {item!r}")
        try:
            value = _numbers_from_exponents(yaml.safe_load(text))
        except yaml.YAMLError:
            raise ConfigError(f"override {key}: value {text!r} is not valid YAML") from None
        if "." in key:
            parts = key.split(".")
        else:
            parts = [key] if key in top_level else ["train", key]
        node = config
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {part} is not a mapping")
        node[parts[-1]] = value
    return config


def command_line_values(entries: Iterable[str] | None) -> dict[str, Any]:
    """Snakemake's ``--config`` arguments, read as a config file's values are.

    Snakemake reads a nested value with YAML's base loader, which keeps every
    scalar a string: ``--config 'coarse={trials: 5}'`` gives ``{"trials": "5"}``,
    which the schema would refuse. Its top-level reading knows numbers and
    ``True`` but not YAML's ``true``, so ``deterministic=true`` stayed the string
    ``'true'``. Read again from the argument as written, ``5`` is a number,
    ``true`` a boolean and a quoted ``'5'`` stays a string. Other top-level values
    keep Snakemake's reading: YAML would make ``experiment=2024-12-07`` a date.
    """
    values = {}
    for entry in entries or ():
        key, sep, text = entry.partition("=")
        nested = text.lstrip()[:1] in ("{", "[")
        if not sep or not (nested or text.strip().lower() in ("true", "false", "null", "~")):
            continue
        try:
            values[key] = _numbers_from_exponents(yaml.safe_load(text))
        except yaml.YAMLError:
            continue  # Snakemake's reading stands; the schema names the key if it matters
    return values


# the selection metric of a config that names none, by the task's kind
DEFAULT_METRICS = {"classification": "accuracy", "multilabel": "macro_f1", "regression": "rmse"}


def _built_in_kind(task: Mapping[str, Any]) -> str | None:
    """A built-in task's kind, read from the config without importing the task (cluster
    jobs resolve the config without it); None for a plugin."""
    if task["name"] in ("digits", "image_folder"):
        return "classification"
    if task["name"] == "csv":
        return str((task.get("options") or {}).get("kind") or "classification")
    return None


def resolve_config(raw: Mapping[str, Any], *, check_task: bool = True) -> dict[str, Any]:
    """Validate ``raw``, apply the budget preset and fill defaults.

    Returns a new dict; ``raw`` is not changed. With ``check_task`` the task is
    loaded (not its data) so that unknown hyperparameter and metric names are
    caught here. A metric that is not built in is the task's own, and only the
    task knows its direction: the task is then loaded in any case.
    """
    config = _numbers_from_exponents(copy.deepcopy(dict(raw)))
    _validate(config, fill_defaults=False)
    _apply_budget(config)
    _validate(config, fill_defaults=True)
    metric = config["metric"]
    # a misspelt csv kind is left to the task, whose error names it
    if "name" not in metric and (kind := _built_in_kind(config["task"])) in DEFAULT_METRICS:
        metric["name"] = DEFAULT_METRICS[kind]
    needs_task = check_task or "name" not in metric or built_in(metric["name"]) is None
    task = _load_task(config) if needs_task else None
    if "name" not in metric:  # a plugin's: only the task knows its kind
        metric["name"] = DEFAULT_METRICS[task.kind]
    _check_cross_fields(config, task)
    if check_task:
        _check_against_task(config, task)
    return config


# YAML 1.1 (PyYAML, and Snakemake's loader) reads 3e-4 as a string: it wants 3.0e-4.
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _numbers_from_exponents(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _numbers_from_exponents(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_numbers_from_exponents(value) for value in node]
    if isinstance(node, str) and _EXPONENT.match(node):
        return float(node)
    return node


def _apply_budget(config: dict[str, Any]) -> None:
    preset = BUDGETS[config.get("budget", "standard")]
    for section, counts in preset.items():
        node = config.setdefault(section, {})
        for key, value in counts.items():
            node.setdefault(key, value)


@cache
def load_schema() -> dict[str, Any]:
    """The config's JSON Schema, read once (shared: do not change it)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


@cache
def _validator_classes() -> tuple[type, type]:
    from jsonschema import Draft202012Validator, validators

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](
            validator, properties, instance, schema
        )

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return Draft202012Validator, filling


def _validate(config: dict[str, Any], *, fill_defaults: bool) -> None:
    from jsonschema.exceptions import best_match

    plain, filling = _validator_classes()
    validator = (filling if fill_defaults else plain)(load_schema())
    error = best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_describe(error))


def _describe(error: Any) -> str:
    """Turn a jsonschema error into one line a user can act on."""
    path = ".".join(str(p) for p in error.absolute_path) or "config"
    value = error.instance
    kind, expected = error.validator, error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        key = unknown[0] if unknown else "?"
        where = f"{path}.{key}" if path != "config" else key
        return f"unknown key {where}{_did_you_mean(key, allowed)}"
    if kind == "required":
        return f"{path}: missing required key {error.message.split()[0]}"
    if kind == "type":
        return f"{path} must be of type {expected}, got {value!r}"
    if kind == "enum":
        return f"{path} must be one of {', '.join(map(str, expected))}, got {value!r}"
    if kind == "const":
        return f"{path} must be {expected!r}, got {value!r}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return f"{path} must be {sign[kind]} {expected}, got {value!r}"
    if kind == "pattern":
        return f"{path} must match {expected} (letters, digits, _ . -), got {value!r}"
    if kind == "oneOf" and path.startswith("space.") and len(error.absolute_path) == 2:
        return (
            f"{path} must be a distribution to sample, got {value!r}: e.g. {{dist: choice,"
            " values: [32, 64]}, {dist: loguniform, low: 1.0e-4, high: 1.0e-1}, {dist:"
            " uniform, low: 0.0, high: 0.5} or {dist: int, low: 1, high: 4}; lr also takes"
            " auto (the LR range test's range); a value that stays fixed goes under train"
        )
    return f"{path}: {error.message}"


def _did_you_mean(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (allowed: {', '.join(allowed)})"


def _check_cross_fields(config: dict[str, Any], task: Any) -> None:
    name = config["experiment"]
    if ".." in name:
        raise ConfigError(f"experiment must not contain '..', got {name!r}")
    metric = config["metric"]
    natural = _selected(metric["name"], task).mode.value
    mode = metric.setdefault("mode", natural)
    if mode != natural:
        raise ConfigError(
            f"metric.mode {mode!r} contradicts metric.name {metric['name']!r}, which is"
            f" better when {'larger' if natural == 'max' else 'smaller'}: leave mode out"
            f" or set it to {natural!r}"
        )
    if not config["space"]:
        raise ConfigError(
            "space is empty, so every trial would be the same: add the hyperparameters to"
            " tune, e.g. space: {lr: auto, weight_decay: {dist: loguniform, low: 1.0e-6,"
            " high: 1.0e-2}}"
        )
    for section in ("coarse", "fine"):
        config[section].setdefault("epochs", config["train"]["epochs"])
        try:  # the levels check their own numbers: one rule, here and where they are planned
            Halving.from_sweep(config[section])
        except ValueError as err:
            raise ConfigError(f"{section}.{err}") from None
    config["seeds"].setdefault("epochs", config["train"]["epochs"])
    _sensitivity_defaults(config)
    for key, spec in config["space"].items():
        _check_distribution(f"space.{key}", spec)
    _check_conditions(config["space"], config["train"])
    _check_sweeps(config["coarse"], config["fine"])
    top_k, coarse = config["select"]["top_k"], config["coarse"]["trials"]
    if top_k > coarse:
        raise ConfigError(f"select.top_k must be <= coarse.trials ({coarse}), got {top_k}")
    lr_range = config["lr_range"]
    if lr_range["start"] >= lr_range["end"]:
        raise ConfigError(
            f"lr_range.start must be < lr_range.end, got {lr_range['start']} >= {lr_range['end']}"
        )


def _sensitivity_defaults(config: dict[str, Any]) -> None:
    """The sensitivity rung reruns the seed rung's seeds and epochs unless told otherwise.

    So the chosen value's point is the seed rung's own trials. Seeds: as many as
    the seed rung ran, but at least two (a spread needs two) and at most three
    (each extra seed costs a trial per value of every hyperparameter).
    """
    seeds = config["seeds"]
    sensitivity = config["sensitivity"]
    sensitivity.setdefault("epochs", seeds["epochs"])
    sensitivity.setdefault("seeds", min(3, max(2, seeds["seeds"])))


def _check_distribution(path: str, spec: Any) -> None:
    if spec == "auto":
        if path != "space.lr":
            raise ConfigError(f"{path}: 'auto' is only available for space.lr")
        return
    dist = spec["dist"]
    if dist == "choice":
        extra = sorted(set(spec) - {"dist", "values", "when"})
        if extra:
            raise ConfigError(f"{path}.{extra[0]} is not used by dist choice (use values)")
        values = spec.get("values")
        if not values:
            raise ConfigError(f"{path}.values must list at least one value, got {values!r}")
        return
    extra = sorted(set(spec) - {"dist", "low", "high", "log", "when"})
    if extra or ("log" in spec and dist != "int"):
        bad = extra[0] if extra else "log"
        raise ConfigError(f"{path}.{bad} is not used by dist {dist}")
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{path}.{bound} is required for dist {dist}")
        if not math.isfinite(spec[bound]):
            raise ConfigError(f"{path}.{bound} must be finite, got {spec[bound]}")
    low, high = spec["low"], spec["high"]
    if dist == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{path}: int bounds must be whole numbers, got {low=}, {high=}")
    if low > high:
        raise ConfigError(f"{path}.low must be <= {path}.high, got {low=}, {high=}")
    if (dist == "loguniform" or spec.get("log")) and low <= 0:
        raise ConfigError(f"{path}.low must be > 0, got {low} (the scale is logarithmic)")


# Trials asked per round of a TPE fine sweep, unless the config says.
TPE_BATCH = 4


def _check_sweeps(coarse: dict[str, Any], fine: dict[str, Any]) -> None:
    if coarse["sampler"] == "tpe":
        raise ConfigError(
            "coarse.sampler tpe is for the fine sweep only: TPE learns from finished trials,"
            " and the coarse sweep is where they come from (use random or sobol)"
        )
    if "batch" in coarse:
        raise ConfigError("coarse.batch is not used: only a tpe fine sweep runs in rounds")
    if fine["sampler"] == "tpe" and fine.get("halving"):
        raise ConfigError(
            "fine.halving does not combine with fine.sampler tpe: a TPE round learns from"
            " finished trials, and halving stops most of them early (use one or the other)"
        )
    fine.setdefault("batch", TPE_BATCH)


def _fixed_value(name: str, train: Mapping[str, Any]) -> Any:
    """The value a hyperparameter has when the space does not sample it (None: the task's)."""
    if name in train:
        return train[name]
    default = load_schema()["properties"]["train"]["properties"].get(name, {})
    return default.get("default")


def _check_conditions(space: Mapping[str, Any], train: Mapping[str, Any]) -> None:
    """Each `when` names another hyperparameter and values it can take; none is never true.

    A model hyperparameter the space does not sample takes the task's default,
    which only the task knows: :func:`_check_against_task` checks those.
    """
    from tuneladder.core.hparams import ONLY_WITH

    for name, spec in space.items():
        for other, values in _when(spec).items():
            path = f"space.{name}.when.{other}"
            if other == name:
                raise ConfigError(f"{path}: a parameter cannot depend on itself")
            if name in _when(space.get(other)):
                raise ConfigError(f"space.{name}.when and space.{other}.when name each other")
            other_spec = space.get(other)
            if other_spec is None:
                fixed = _fixed_value(other, train)
                if fixed is not None and fixed not in values:
                    raise ConfigError(
                        f"{path}: {other} is fixed to {fixed!r} (train.{other}), so"
                        f" space.{name} would never be sampled"
                    )
                continue
            dist = other_spec.get("dist") if isinstance(other_spec, Mapping) else None
            if dist == "choice":
                possible = other_spec["values"]
                bad = [v for v in values if v not in possible]
            elif dist == "int":
                bad = [
                    v
                    for v in values
                    if not (isinstance(v, int) and other_spec["low"] <= v <= other_spec["high"])
                ]
                possible = f"the whole numbers in [{other_spec['low']}, {other_spec['high']}]"
            else:
                raise ConfigError(
                    f"{path}: space.{other} is a range of floats, which would hardly ever equal"
                    " a listed value; condition on a choice, an int or a fixed value"
                )
            if bad:
                raise ConfigError(f"{path}: {bad[0]!r} is not one of {possible}")
    for name, (setting, values) in ONLY_WITH.items():
        if name in space and setting not in space:
            fixed = _fixed_value(setting, train)
            if fixed not in values:
                raise ConfigError(
                    f"space.{name} would never be sampled: it applies only when {setting} is"
                    f" {' or '.join(sorted(values))}, and {setting} is fixed to {fixed!r}"
                    f" (train.{setting}); add {setting} to the space or drop {name}"
                )


def _when(spec: Any) -> dict[str, list[Any]]:
    """A space entry's `when`, each value as a list (nothing for `auto` or none)."""
    when = spec.get("when", {}) if isinstance(spec, Mapping) else {}
    return {k: v if isinstance(v, list) else [v] for k, v in when.items()}


def _load_task(config: Mapping[str, Any]) -> Any:
    from tuneladder.tasks import TaskError, load_task

    try:
        return load_task(config["task"]["name"], config["task"]["options"])
    except TaskError as err:
        raise ConfigError(str(err)) from None


def _selected(name: str, task: Any) -> Metric:
    """The selection metric: one the task records (when it is loaded), else a built-in one."""
    if task is None:
        metric = built_in(name)
        assert metric is not None  # resolve_config loads the task for any other name
        return metric
    recorded = task.metrics
    if name not in recorded:
        close = difflib.get_close_matches(name, list(recorded), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"metric.name must be one of {', '.join(recorded)} (the metrics the"
            f" {task.kind} task {task.name!r} records), got {name!r}{hint}"
        )
    return recorded[name]


def _check_against_task(config: dict[str, Any], task: Any) -> None:
    from tuneladder.core.hparams import TRAIN_FIELDS

    if config["task"]["name"] == "csv":
        from tuneladder.tasks.tabular import TableOptions, check_data_path, check_header

        options = config["task"]["options"]
        try:
            check_data_path(options["path"])
            # the header line only: the contents would cost every parse (docs/decisions/)
            check_header(
                options["path"],
                str(options["target"]),
                options.get("drop"),
                TableOptions.from_options(options),
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
    allowed = sorted(TRAIN_FIELDS | task.model_params)
    for section in ("train", "space"):
        for key in config[section]:
            if key not in allowed:
                hint = _did_you_mean(key, allowed)
                # a bare override (--set budjet=quick) lands in train: a near top-level key
                # is the likelier meaning when no hyperparameter is near
                close = difflib.get_close_matches(key, list(load_schema()["properties"]), n=1)
                if close and "did you mean" not in hint:
                    hint = f" (did you mean {close[0]}, a key of the config itself?)"
                raise ConfigError(f"unknown hyperparameter {section}.{key}{hint}")
    for key, spec in config["space"].items():
        for other, values in _when(spec).items():
            path = f"space.{key}.when.{other}"
            if other not in allowed:
                raise ConfigError(f"{path}: unknown hyperparameter{_did_you_mean(other, allowed)}")
            fixed = task.defaults.get(other)
            unsampled = other not in config["space"] and other not in config["train"]
            if unsampled and other in task.model_params and fixed not in values:
                raise ConfigError(
                    f"{path}: {other} is fixed to the task's default {fixed!r}, so"
                    f" space.{key} would never be sampled"
                )


def describe_plan(
    written: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    results: str,
    configfiles: Iterable[str],
    workers: Mapping[str, int],
    device: str | None = None,
) -> list[str]:
    """What the ladder will do, one line per rung, as resolved from the config.

    ``written`` is the config as the user wrote it: a count it sets is marked as
    written, so a user sees at once whether the budget preset or their file won.
    ``device`` is a line on how the run uses GPUs, when it does.
    """
    budget = config["budget"]

    def count(section: str, key: str) -> str:
        value = config[section][key]
        if key in (written.get(section) or {}):
            preset = BUDGETS[budget][section].get(key)
            return f"{value} (written; budget {budget}: {preset})" if preset else str(value)
        return str(value)

    def halving(section: str) -> str:
        from tuneladder.search.halving import Halving

        plan = Halving.from_sweep(config[section])
        if plan is None:
            return ""
        steps = ", ".join(f"{lv.configs} to {lv.epochs}" for lv in plan.levels)
        share = plan.trial_epochs / (plan.trials * plan.epochs)
        if plan.mode == "async":  # the counts are what sync would train: ASHA's follow the order
            return f"; halving by {plan.eta}, asynchronous: about {steps} epochs"
        return (
            f"; halving by {plan.eta}: {steps} epochs ({plan.trial_epochs} trial-epochs,"
            f" {share:.0%} of {plan.trials * plan.epochs})"
        )

    files = ", ".join(configfiles) or "config/config.yaml"
    coarse, fine, seeds = config["coarse"], config["fine"], config["seeds"]
    lr = "from the LR range test" if config["space"].get("lr") == "auto" else "as the space says"
    groups = seeds["finalists"] + 1
    return [
        f"tuneladder: experiment {config['experiment']} from {files}, budget {budget},"
        f" results in {results}/",
        *([device] if device else []),
        f"  sanity  overfit check on {config['overfit']['subset']} samples"
        f" (<= {config['overfit']['max_steps']} steps); LR range test,"
        f" {config['lr_range']['steps']} steps (lr {lr})",
        f"  coarse  {count('coarse', 'trials')} trials x {coarse['epochs']} epochs,"
        f" {coarse['sampler']}, {_workers(workers['coarse'])}{halving('coarse')}",
        f"  select  top {config['select']['top_k']}, narrowed space for the fine sweep",
        f"  fine    {count('fine', 'trials')} trials x {fine['epochs']} epochs,"
        f" {fine['sampler']}"
        + (f" in rounds of {fine['batch']}" if fine["sampler"] == "tpe" else "")
        + f", {_workers(workers['fine'])}{halving('fine')}",
        f"  seeds   ({count('seeds', 'finalists')} finalists + untuned default) x"
        f" {count('seeds', 'seeds')} seeds x {seeds['epochs']} epochs ="
        f" {groups * seeds['seeds']} trials, {_workers(workers['seeds'])}"
        + _other_length(seeds["epochs"], coarse["epochs"], fine["epochs"]),
        f"  final   best mean {config['metric']['name']} ({config['metric']['mode']}) over"
        " seeds; the test split is read once",
        *_sensitivity_line(config, workers),
    ]


def _other_length(seeds: int, coarse: int, fine: int) -> str:
    """Said on the plan: finalists chosen at one length and rerun at another may rank
    otherwise, and the untuned default may beat them."""
    if seeds == coarse == fine:
        return ""
    chosen = f"{coarse}" if coarse == fine else f"{coarse} (coarse) and {fine} (fine)"
    return f"; note: the sweeps chose them at {chosen} epochs"


def _workers(count: int) -> str:
    return f"{count} worker" + ("" if count == 1 else "s")


def _sensitivity_line(config: Mapping[str, Any], workers: Mapping[str, int]) -> list[str]:
    sensitivity = config["sensitivity"]
    if not sensitivity["enabled"]:
        return []
    from tuneladder.ladder.rungs import SENSITIVITY

    return [
        f"  sensitivity  each searched hyperparameter over {sensitivity['values']} values"
        f" around the chosen one x {sensitivity['seeds']} seeds x {sensitivity['epochs']}"
        f" epochs: up to {SENSITIVITY.trials(config)} trials,"
        f" {_workers(workers['sensitivity'])}; val only"
    ]
