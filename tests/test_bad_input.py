"""Malformed inputs, table-driven: each stops before any training with one line naming the
key or file, and no traceback, through ``tuneladder trial`` and through Snakemake."""

from __future__ import annotations

from pathlib import Path

import bad_task
import pytest
import yaml

from helpers import REPO, results_of, snakemake, tiny_config
from tuneladder.cli import main

WRONG_TYPE = """
from tuneladder.tasks import Task

def make_task(options):
    return {"name": "not a task"}
"""


SPACE = {"lr": {"dist": "loguniform", "low": 1e-3, "high": 1e-1}}  # valid for any task


def csv(text: str, **table_options):
    """A config using a CSV file with ``text`` as its contents (None: no file at all)."""

    def setup(workdir: Path) -> dict:
        if text is not None:
            (workdir / "table.csv").write_text(text)
        options = {"path": "table.csv", "target": "label", **table_options}
        return {
            "task": {"name": "csv", "options": options},
            "train": {"epochs": 1},
            "space": SPACE,
        }

    return setup


def change(**keys):
    return lambda workdir: keys


def plugin(source: str, name: str):
    def setup(workdir: Path) -> dict:
        (workdir / f"{name.partition(':')[0]}.py").write_text(source)
        return {"task": {"name": name, "options": {}}, "space": SPACE}

    return setup


def bad_plugin(mistake: str):
    """A config on the test-only ``bad_task`` plugin, whose code makes ``mistake``."""

    def setup(workdir: Path) -> dict:
        (workdir / "bad_task.py").write_text((REPO / "tests" / "bad_task.py").read_text())
        task = {"name": "bad_task:make_task", "options": {"mistake": mistake}}
        return {"task": task, "train": {"epochs": 1}, "space": SPACE}

    return setup


def space(**spec):
    return change(space=spec)


# (case id, how to make the config, text the one-line message must contain)
CASES = [
    ("lr-text", change(train={"lr": "fast"}), "train.lr must be of type number, got 'fast'"),
    ("trials-text", change(coarse={"trials": "ten"}), "coarse.trials must be of type integer"),
    ("epochs-float", change(train={"epochs": 2.5}), "train.epochs must be of type integer"),
    ("space-not-map", change(space=[1, 2]), "space must be of type object"),
    ("unknown-top", change(trian={}), "unknown key trian (did you mean train?)"),
    ("unknown-nested", change(coarse={"trails": 3}), "coarse.trails (did you mean trials?)"),
    ("unknown-hparam", change(train={"widht": 3}), "train.widht (did you mean width?)"),
    ("unknown-dist", space(dropout={"dist": "gauss", "low": 0, "high": 1}), "space.dropout"),
    (
        "low-gt-high",
        space(dropout={"dist": "uniform", "low": 0.5, "high": 0.1}),
        "space.dropout.low must be <= space.dropout.high",
    ),
    (
        "log-zero",
        space(lr={"dist": "loguniform", "low": 0, "high": 1}),
        "space.lr.low must be > 0",
    ),
    (
        "log-int-neg",
        space(num_layers={"dist": "int", "low": -1, "high": 2, "log": True}),
        "space.num_layers.low must be > 0",
    ),
    (
        "empty-choice",
        space(batch_size={"dist": "choice", "values": []}),
        "space.batch_size.values",
    ),
    ("negative-trials", change(coarse={"trials": -3}), "coarse.trials must be >= 1, got -3"),
    ("zero-seeds", change(seeds={"seeds": 0}), "seeds.seeds must be >= 1, got 0"),
    ("topk-too-big", change(select={"top_k": 50}), "select.top_k must be <= coarse.trials (4)"),
    ("lr-range-order", change(lr_range={"start": 1.0, "end": 1e-3}), "lr_range.start must be <"),
    ("metric", change(metric={"name": "f1"}), "metric.name must be one of"),
    ("unknown-task", change(task={"name": "nope"}), "task.name must be digits, csv"),
    ("no-module", change(task={"name": "nosuchmod:make_task"}), "cannot import 'nosuchmod'"),
    ("no-function", plugin("x = 1\n", "badplugin:make_task"), "has no function 'make_task'"),
    (
        "wrong-return",
        plugin(WRONG_TYPE, "wrongplugin:make_task"),
        "expected a tuneladder.tasks.Task",
    ),
    ("slash-name", change(experiment="a/b"), "experiment must match"),
    ("dotdot-name", change(experiment="../up"), "experiment must match"),
    ("dots-inside", change(experiment="a..b"), "experiment must not contain '..'"),
    ("csv-missing", csv(None), "task.options.path: data file not found:"),
    ("csv-empty", csv(""), "table.csv: cannot read"),
    ("csv-no-rows", csv("a,b,label\n"), "table.csv: has no rows"),
    ("csv-no-target", csv("a,b,y\n1,2,0\n3,4,1\n"), "table.csv: no target column 'label'"),
    (
        "csv-nan",
        csv("a,b,label\n" + "1,,0\n2,3,1\n" * 10, missing="error"),
        "feature column 'b' has missing values (10 rows, first: data row 1): set"
        " task.options.missing: fill",
    ),
    (
        "csv-text",
        csv("a,b,label\n" + "1,x,0\n2,3,1\n" * 10, categorical="error"),
        "feature column 'b' is text (e.g. 'x'): set task.options.categorical: onehot",
    ),
    (
        "csv-many-categories",
        csv("a,b,label\n" + "".join(f"1,t{i},{i % 2}\n" for i in range(25))),
        "feature column 'b' has 25 distinct text values, more than task.options.max_categories",
    ),
    (
        "csv-bad-option",
        csv("a,label\n1,0\n2,1\n", missing="zero"),
        "task.options.missing must be fill or error, got 'zero'",
    ),
    ("csv-one-class", csv("a,b,label\n" + "1,2,0\n" * 20), "target 'label' has a single class"),
    (
        "csv-nan-target",
        csv("a,b,label\n" + "1,2,0\n3,4,1\n" * 10 + "5,6,\n"),
        "target column 'label' has missing values (1 row, first: data row 21)",
    ),
    (
        "plugin-load-raises",
        bad_plugin("load-raises"),
        # the full line (function included) is checked through the workflow below
        f"bad_task.py:{bad_task.line_of('# mistake: load-raises')}: 'columns'",
    ),
]

RAW_CASES = [  # config files that are not even a config
    ("python-tag", "experiment: !!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    ("not-a-mapping", "- just\n- a list\n", "must hold a mapping of keys, got list"),
    (
        "unclosed-brace",
        "experiment: x\ntrain: {epochs: 2\nseed: 0\n",
        "not valid YAML at line 3, column 5: expected ',' or '}', but got ':'",
    ),
]


def write_case(workdir: Path, setup) -> None:
    config = {**tiny_config(), "mlflow": {"enabled": False}, **setup(workdir)}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def run_cli(workdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["trial", "--config", str(workdir / "config.yaml"), "--out", str(workdir / "t")])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_one_line(code: int, output: str, message: str, workdir: Path) -> None:
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert message in lines[0], lines[0]
    assert "Traceback" not in output
    assert not (workdir / "t" / "result.json").exists()  # nothing was trained


@pytest.mark.parametrize(("setup", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_stops_with_one_line(
    setup, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # plugins and relative data paths resolve from here
    monkeypatch.syspath_prepend(str(tmp_path))
    write_case(tmp_path, setup)
    code, output = run_cli(tmp_path, capsys)
    assert_one_line(code, output, message, tmp_path)


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_bad_config_file_stops_with_one_line(
    text: str, message: str, tmp_path: Path, capsys
) -> None:
    (tmp_path / "config.yaml").write_text(text)
    code, output = run_cli(tmp_path, capsys)
    assert_one_line(code, output, message, tmp_path)


def test_there_are_enough_cases() -> None:
    assert len(CASES) + len(RAW_CASES) >= 25


SNAKEMAKE_CASES = [
    "unknown-nested",
    "low-gt-high",
    "slash-name",
    "python-tag",
    "csv-missing",
    "csv-no-target",
    "csv-text",
    "csv-nan-target",
]
# Contents are checked by the prepare rule, which reads the whole file; everything
# else (the CSV's header included) while the Snakefile is parsed, so a dry run stops.
PREPARE_CASES = ("csv-text", "csv-nan-target")


@pytest.mark.slow
@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_workflow_shows_the_same_line_without_traceback(case: str, tmp_path: Path) -> None:
    raw = dict((c[0], c[1:]) for c in RAW_CASES)
    if case in raw:
        text, message = raw[case]
        (tmp_path / "config.yaml").write_text(text)
    else:
        setup, message = dict((c[0], c[1:]) for c in CASES)[case]
        write_case(tmp_path, setup)
    if case in PREPARE_CASES:
        args = [str((results_of(tmp_path) / "data" / "meta.json").relative_to(tmp_path))]
    else:
        args = ["-n"]
    if case == "python-tag":  # Snakemake reads --configfile itself first, also safely
        message = "Config file is not valid JSON or YAML"
    proc = snakemake(tmp_path, *args, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not list(tmp_path.glob("results/*/sanity"))


@pytest.mark.slow
def test_a_yaml_mistake_in_the_default_config_names_its_line(tmp_path: Path) -> None:
    """Snakemake reads a config file itself and names neither the file nor the line of a
    YAML mistake; the default config/config.yaml is read first by the workflow."""
    import subprocess

    from helpers import SNAKEMAKE

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("experiment: x\ntrain: {epochs: 2\n")
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--snakefile", str(REPO / "workflow" / "Snakefile"), "--cores", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode != 0
    assert (
        "tuneladder: config error: config/config.yaml: not valid YAML at line 3, column 1:"
    ) in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


BUILD_MODEL = bad_task.line_of("def build_model(hp: Mapping[str, Any], info: DataInfo) -> Any:")

# (the mistake bad_task.py makes, the one line the workflow prints for it)
PLUGIN_MISTAKES = [
    (
        "factory-raises",
        "bad_task:build_model raised ValueError at"
        f" bad_task.py:{bad_task.line_of('# mistake: factory-raises')}: unknown activation 'gelu'",
    ),
    (
        "not-a-module",
        f"bad_task:build_model (bad_task.py:{BUILD_MODEL}) returned dict,"
        " expected a torch.nn.Module",
    ),
    (
        "wrong-shape",
        f"the model from bad_task:build_model (bad_task.py:{BUILD_MODEL}) outputs shape (8, 3)"
        " for a batch of 8, expected shape (8, 2): (batch, classes)",
    ),
    (
        "load-raises",
        "bad_task:make_task.<locals>.load_arrays raised KeyError at"
        f" bad_task.py:{bad_task.line_of('# mistake: load-raises')}: 'columns'",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mistake", "message"), PLUGIN_MISTAKES, ids=[m[0] for m in PLUGIN_MISTAKES]
)
def test_a_mistake_in_plugin_code_stops_prepare_in_one_line(
    mistake: str, message: str, tmp_path: Path
) -> None:
    write_case(tmp_path, bad_plugin(mistake))
    proc = snakemake(tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # other tuneladder: lines (what the run will do) come before any job starts
    ours = [
        line for line in output.splitlines() if line.startswith("tuneladder:") and "bad_" in line
    ]
    assert ours == [f"tuneladder: prepare: {message}"], output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    logs = results_of(tmp_path) / "logs"
    # a rerun fails the same way until the mistake is fixed: the stop line says so
    (stop,) = [line for line in output.splitlines() if line.startswith("tuneladder: stopped")]
    assert stop.startswith("tuneladder: stopped: prepare failed (its reason above, and in"), stop
    # run with --directory: the log is named whole, for a shell that may be elsewhere
    assert f"and in {(logs / 'prepare.log').resolve()})" in stop, stop
    assert "no trial had finished. Once that is fixed, `snakemake" in stop, stop
    traceback_file = logs / "prepare.traceback"
    assert (
        f"traceback in {traceback_file.relative_to(tmp_path)}"
        in (logs / "prepare.log").read_text()
    )
    assert traceback_file.read_text().startswith("Traceback")
    assert not (results_of(tmp_path) / "sanity").exists()  # nothing was trained
