"""Mistakes in a task's data or code stop the prepare rung in one line: library level.

``bad_task.py`` is a plugin whose loader or model factory goes wrong on demand;
the workflow's view of the same mistakes is in ``test_bad_input.py``.
"""

from __future__ import annotations

from pathlib import Path

import bad_task
import numpy as np
import pytest
import torch

from helpers import tiny_config
from tuneladder.core.errors import DataError, UserCodeError
from tuneladder.data.prepared import load_train_val, prepare
from tuneladder.ladder.config import ConfigError, resolve_config
from tuneladder.stages import logged, prepare_stage
from tuneladder.store.io import read_json
from tuneladder.tasks import Task, TaskError, load_task
from tuneladder.tasks.tabular import TableOptions, check_header, encode_table, load_table
from tuneladder.training.preflight import check_model

line_of = bad_task.line_of
BUILD_MODEL = line_of("def build_model(hp: Mapping[str, Any], info: DataInfo) -> Any:")


def bad_data(tmp_path: Path, mistake: str = "none", kind: str = "classification"):
    task = bad_task.make_task({"mistake": mistake, "kind": kind})
    prepare(task, tmp_path / "data", seed=0)
    return task, load_train_val(tmp_path / "data")


def run_check(tmp_path: Path, mistake: str, kind: str = "classification") -> UserCodeError:
    task, data = bad_data(tmp_path, mistake, kind)
    with pytest.raises(UserCodeError) as caught:
        check_model(task.build_model, task.default_model, data.info, data.train.x, data.train.y)
    return caught.value


def test_a_good_model_passes_and_leaves_the_random_stream_alone(digits) -> None:
    task = load_task("digits")
    before = torch.get_rng_state()
    shape = check_model(
        task.build_model, task.default_model, digits.info, digits.train.x, digits.train.y
    )
    assert shape == (8, 10)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    ("mistake", "kind", "parts"),
    [
        (
            "factory-raises",
            "classification",
            [
                "bad_task:build_model raised ValueError at ",
                f"bad_task.py:{line_of('# mistake: factory-raises')}: unknown activation 'gelu'",
            ],
        ),
        (
            "not-a-module",
            "classification",
            ["bad_task:build_model (", f"bad_task.py:{BUILD_MODEL}) returned dict, expected a"],
        ),
        (
            "wrong-shape",
            "classification",
            [
                "the model from bad_task:build_model (",
                "outputs shape (8, 3) for a batch of 8, expected shape (8, 2): (batch, classes)",
            ],
        ),
        (
            "flat-output",
            "regression",
            ["outputs shape (8,) for a batch of 8, expected shape (8, 1): (batch, regression"],
        ),
        (
            "forward-raises",
            "classification",
            [
                "(a training step on 8 train samples) raised NotImplementedError at ",
                f"bad_task.py:{line_of('# mistake: forward-raises')}: forward is not written yet",
            ],
        ),
        (
            "torch-raises",
            "classification",
            [
                "raised RuntimeError inside torch (the function is at ",
                f"bad_task.py:{BUILD_MODEL}): ",
                # torch 2.15 names the operator first ("addmm: mat1 and mat2 ...")
                "mat1 and mat2 shapes cannot be multiplied",
            ],
        ),
        ("nan-loss", "regression", ["gives a loss of nan in a training step on 8 train samples"]),
        ("frozen", "classification", ["has no trainable parameters"]),
    ],
)
def test_model_mistakes_name_the_function_and_line(
    mistake: str, kind: str, parts: list[str], tmp_path: Path
) -> None:
    message = str(run_check(tmp_path, mistake, kind))
    assert "\n" not in message
    for part in parts:
        assert part in message, message


def test_the_users_exception_is_kept_for_the_log(tmp_path: Path) -> None:
    err = run_check(tmp_path, "factory-raises")
    assert isinstance(err.__cause__, ValueError)
    assert err.__cause__.__traceback__ is not None


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (
            "load-raises",
            "bad_task:make_task.<locals>.load_arrays raised KeyError at ",
        ),
        ("load-not-a-pair", "load_arrays ("),
    ],
)
def test_load_arrays_mistakes_name_the_function_and_line(
    mistake: str, message: str, tmp_path: Path
) -> None:
    task = bad_task.make_task({"mistake": mistake})
    with pytest.raises(UserCodeError, match=r"bad_task\.py:\d+") as caught:
        prepare(task, tmp_path / "data", seed=0)
    assert message in str(caught.value)
    if mistake == "load-raises":
        assert f"bad_task.py:{line_of('# mistake: load-raises')}: 'columns'" in str(caught.value)
    else:
        assert "returned ndarray, expected a pair (x, y) of arrays" in str(caught.value)
    assert not (tmp_path / "data" / "meta.json").exists()


def arrays(kind: str, x, y):
    """A task named 'inline' whose load_arrays returns these arrays."""
    return Task(
        name="inline",
        kind=kind,
        load_arrays=lambda: (x, y),
        build_model=lambda hp, info: torch.nn.Linear(2, info.n_outputs),
    )


def x20() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(20, 3))


def labels20() -> np.ndarray:
    return np.arange(20) % 2


def with_value(values: np.ndarray, index: tuple[int, int], value):
    values = values.astype(object) if isinstance(value, str) else values.copy()
    values[index] = value
    return values


@pytest.mark.parametrize(
    ("kind", "x", "y", "message"),
    [
        ("classification", x20(), labels20()[:19], "x has 20 rows but y has 19"),
        ("classification", np.ones(20), labels20(), "x must hold a row of features per sample"),
        (
            "classification",
            with_value(x20(), (3, 2), np.nan),
            labels20(),
            "feature column 2 is NaN or inf in 1 of 20 samples (first: sample 3)",
        ),
        (
            "classification",
            with_value(x20(), (4, 1), "abc"),
            labels20(),
            "feature column 1 is not numeric (could not convert string to float: 'abc')",
        ),
        (
            "regression",
            x20(),
            with_value(np.ones((20, 1)), (7, 0), np.inf),
            "target column 0 is NaN or inf in 1 of 20 samples (first: sample 7)",
        ),
        ("classification", x20(), labels20() + 0.5, "must be class indices 0, 1, ..., got 0.5"),
        ("classification", x20(), labels20() - 1, "must be class indices 0, 1, ..., got -1"),
        ("classification", x20(), np.zeros(20, dtype=int), "the target has a single class (0)"),
        ("regression", x20()[:3], np.ones(3), "split is empty: too few samples (3)"),
    ],
)
def test_data_mistakes_name_the_task_and_column(
    kind: str, x, y, message: str, tmp_path: Path
) -> None:
    with pytest.raises(DataError) as caught:
        prepare(arrays(kind, x, y), tmp_path / "data", seed=0)
    assert str(caught.value).startswith("task 'inline': "), caught.value
    assert message in str(caught.value)


def test_text_labels_are_classes_named_by_them(tmp_path: Path) -> None:
    labels = np.where(labels20() == 1, "cat", "dog")
    meta = prepare(arrays("classification", x20(), labels), tmp_path / "data", seed=0)
    assert meta["info"]["class_names"] == ["cat", "dog"]  # sorted: cat is 0, dog is 1
    data = load_train_val(tmp_path / "data")
    assert data.info.class_names == ("cat", "dog") and set(data.train.y.tolist()) == {0, 1}


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "kind", "options", "message"),
    [
        (
            "a,b,label\n1,2,0\n3,4,1\n4,5,\n",
            "classification",
            {},
            "target column 'label' has missing values (1 row, first: data row 3):"
            " remove those rows from the file, or set task.options.missing_target: drop",
        ),
        (
            "a,label\n1,0.5\n2,big\n",
            "regression",
            {},
            "target column 'label' is not numeric (1 row, first: data row 2, e.g. 'big')",
        ),
        ("a,label\n1,0\n2,0\n", "classification", {}, "target 'label' has a single class (0)"),
        (
            "a,b,label\n1,2,0\n3,x,1\n4,5,0\n",
            "classification",
            {"categorical": "error"},
            "feature column 'b' is text (e.g. '2'): set task.options.categorical: onehot,"
            ' or leave it out with task.options.drop: ["b"]',
        ),
        (
            "a,label\n1,0.5\ninf,2\n",
            "regression",
            {"missing": "error"},
            "feature column 'a' has infinite values (1 row, first: data row 2):"
            " set task.options.missing: fill (they are filled as missing values are)",
        ),
        (
            "a,b,label\n1,p,0\n2,q,1\n3,r,0\n",
            "classification",
            {"max_categories": 2},
            "feature column 'b' has 3 distinct text values, more than"
            " task.options.max_categories (2): raise it, or leave the column out with"
            ' task.options.drop: ["b"]',
        ),
    ],
)
def test_csv_contents_name_the_file_column_row_and_fix(
    text: str, kind: str, options: dict, message: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "table.csv", text)
    with pytest.raises(DataError) as caught:
        load_table(path, "label", kind, TableOptions.from_options(options))
    assert str(caught.value) == f"{path}: {message}"


def test_a_csv_lists_every_problem_at_once(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "a,b,c,label\n1,x,,0\n2,y,3,1\n,z,4,\n")
    strict = {"missing": "error", "categorical": "error", "drop": ["d"]}
    options = TableOptions.from_options(strict)
    with pytest.raises(DataError) as caught:
        load_table(path, "label", "classification", options)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: "
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - task.options.drop names 'd', which is not a column",
        "  - feature column 'a' has missing values (1 row, first",
        "  - feature column 'b' is text (e.g. 'x')",
        "  - feature column 'c' has missing values (1 row, first",
        "  - target column 'label' has missing values (1 row, first",
    ]


def test_a_csv_table_is_encoded_from_its_train_rows_only(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        "size,colour,label\n1,red,a\n3,blue,b\n,red,a\n100,green,b\n5,,a\n",
    )
    table, y = load_table(path, "label", "classification")
    assert y.tolist() == ["a", "b", "a", "b", "a"]  # text labels stay text: prepare names them
    train = np.array([0, 1, 2, 4])  # row 3 (size 100, the only green) is val or test
    encoded = encode_table(table, train, TableOptions())
    assert encoded.columns == (
        "size", "size (missing)", "colour=blue", "colour=red", "colour (missing)"
    )  # fmt: skip
    size, size_missing, blue, red, colour_missing = encoded.x.T
    assert size.tolist() == [1, 3, 3, 100, 5]  # the train median of 1, 3, 5; never 100
    assert size_missing.tolist() == [0, 0, 1, 0, 0]
    assert blue.tolist() == [0, 1, 0, 0, 0] and red.tolist() == [1, 0, 1, 0, 0]
    assert colour_missing.tolist() == [0, 0, 0, 0, 1]  # green, unseen in train: all zeros
    assert any("a category train lacks in 1 row" in line for line in encoded.changes)


def test_a_value_missing_only_outside_train_gets_no_column_of_its_own(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv", "size,colour,label\n1,red,a\n3,blue,b\n2,red,a\n,,b\n5,red,a\n"
    )
    table, _ = load_table(path, "label", "classification")
    encoded = encode_table(table, np.array([0, 1, 2, 4]), TableOptions())  # row 3 is not train
    assert encoded.columns == ("size", "colour=blue", "colour=red")
    assert encoded.x[3].tolist() == [2.5, 0.0, 0.0]  # the train median; no category
    assert any("no train row misses it: no indicator" in line for line in encoded.changes)


def test_prepare_names_text_classes_and_reports_what_it_changed(tmp_path: Path, capfd) -> None:
    rows = [f"{i % 7},{'red' if i % 2 else ''},{'cat' if i % 2 else 'dog'}" for i in range(40)]
    path = write_csv(tmp_path / "t.csv", "size,colour,label\n" + "\n".join(rows) + "\n")
    task = {"name": "csv", "options": {"path": str(path), "target": "label"}}
    with logged(tmp_path / "logs" / "prepare.log"):
        prepare_stage(task=task, seed=0, data_dir=tmp_path / "data", train={"width": 4})
    meta = read_json(tmp_path / "data" / "meta.json")
    assert meta["info"]["class_names"] == ["cat", "dog"]
    assert meta["encoding"]["columns"] == ["size", "colour=red", "colour (missing)"]
    said = capfd.readouterr().err.splitlines()
    assert said[0].startswith("tuneladder: prepare: csv:t.csv: 2 change(s) to the data as given")
    assert said[1].startswith("tuneladder:   colour: text, one-hot over the train split's 1 ")
    assert said[2] == "tuneladder:   target: 2 classes by name (cat, dog), as 0-1"
    # numbered classes: how many the numbers made (a quantity taken as classes shows here)
    numbered = write_csv(
        tmp_path / "n.csv", "size,label\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    )
    task = {"name": "csv", "options": {"path": str(numbered), "target": "label"}}
    with logged(tmp_path / "logs" / "prepare-n.log"):
        prepare_stage(task=task, seed=0, data_dir=tmp_path / "n-data", train={"width": 4})
    said = capfd.readouterr().err.splitlines()
    assert "tuneladder:   target: 3 classes, numbered as in the file" in said


def test_csv_header_is_checked_from_its_first_line_only(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "table.csv", "a,b,Label\n1,2,0\nnot,even,numbers\n")
    with pytest.raises(
        DataError, match=r"table\.csv: no target column 'label' \(columns: 'a', 'b',"
    ):
        check_header(path, "label")
    with pytest.raises(DataError, match="did you mean 'Label'"):
        check_header(path, "label")
    check_header(path, "Label")  # the text further down is prepare's business
    wide = write_csv(tmp_path / "wide.csv", ",".join(f"c{i}" for i in range(30)) + "\n")
    with pytest.raises(DataError, match=r"'c9' and 20 more, the last 'c29'\)"):
        check_header(wide, "label")
    with pytest.raises(DataError, match="cannot read"):
        check_header(write_csv(tmp_path / "empty.csv", ""), "label")
    # Parquet is left to prepare: not even opened here
    check_header(write_csv(tmp_path / "t.parquet", "not parquet"), "label")


def csv_config(path: Path) -> dict:
    config = tiny_config(task={"name": "csv", "options": {"path": str(path), "target": "label"}})
    return {**config, "mlflow": {"enabled": False}}


def test_a_missing_target_column_is_a_config_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "table.csv", "a,b,y\n1,2,0\n3,4,1\n")
    with pytest.raises(ConfigError, match=r"table\.csv: no target column 'label'"):
        resolve_config(csv_config(path))
    # contents are not read at config time: text in a column passes here
    write_csv(path, "a,b,label\n1,x,0\n3,4,1\n")
    assert resolve_config(csv_config(path))["task"]["name"] == "csv"


def test_a_plugin_that_fails_to_make_its_task_is_named(tmp_path: Path, monkeypatch) -> None:
    source = "def make_task(options):\n    return options.samples\n"
    (tmp_path / "attr_plugin.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskError) as caught:
        load_task("attr_plugin:make_task", {})
    message = str(caught.value)
    assert message.startswith("task 'attr_plugin:make_task': attr_plugin:make_task raised")
    assert "AttributeError at attr_plugin.py:2: 'dict' object has no attribute" in message


def run_prepare_stage(tmp_path: Path, mistake: str, capfd) -> tuple[list[str], str, Path]:
    """The prepare rung as its script runs it: (terminal lines, the log, the traceback file)."""
    log_path = tmp_path / "logs" / "prepare.log"
    task = {"name": "bad_task:make_task", "options": {"mistake": mistake}}
    with pytest.raises(SystemExit) as stopped, logged(log_path):
        prepare_stage(task=task, seed=0, data_dir=tmp_path / "data", train={"width": 4})
    assert stopped.value.code == 1
    terminal = capfd.readouterr()
    lines = (terminal.out + terminal.err).splitlines()
    return lines, log_path.read_text(), tmp_path / "logs" / "prepare.traceback"


def test_prepare_stage_prints_one_line_and_keeps_the_traceback(tmp_path: Path, capfd) -> None:
    lines, log, traceback_file = run_prepare_stage(tmp_path, "factory-raises", capfd)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("tuneladder: prepare: bad_task:build_model raised ValueError at ")
    assert f"bad_task.py:{line_of('# mistake: factory-raises')}: unknown activation" in line
    # Snakemake shows a failed rule's log on the terminal: the traceback is beside it
    assert line.removeprefix("tuneladder: ") in log
    assert f"traceback in {traceback_file}" in log
    assert "Traceback" not in log
    trace = traceback_file.read_text()
    assert trace.startswith("Traceback")
    assert "raise ValueError(\"unknown activation 'gelu'\")" in trace


def test_data_errors_need_no_traceback(tmp_path: Path, capfd) -> None:
    log_path = tmp_path / "logs" / "prepare.log"
    log_path.parent.mkdir()
    log_path.with_suffix(".traceback").write_text("from an earlier run")
    task = {"name": "csv", "options": {"path": str(tmp_path / "t.csv"), "target": "label"}}
    write_csv(tmp_path / "t.csv", "a,label\n1,0\n2,0\n")
    with pytest.raises(SystemExit), logged(log_path):
        prepare_stage(task=task, seed=0, data_dir=tmp_path / "data")
    lines = capfd.readouterr().err.splitlines()
    assert lines == [
        f"tuneladder: prepare: {tmp_path / 't.csv'}: target 'label' has a single class (0)"
    ]
    assert not log_path.with_suffix(".traceback").exists()


def test_prepare_stage_builds_the_sanity_rungs_model(tmp_path: Path, caplog) -> None:
    task = {"name": "bad_task:make_task", "options": {}}
    with caplog.at_level("INFO", logger="tuneladder"):
        prepare_stage(task=task, seed=0, data_dir=tmp_path / "data", train={"width": 4})
    # train's width wins over the task's default, as in the sanity rungs
    assert "model check: bad_task:build_model with {'mistake': 'none', 'width': 4}" in caplog.text
    assert (tmp_path / "data" / "meta.json").is_file()


def test_an_unexpected_error_is_one_line_on_the_terminal_and_whole_in_the_log(
    tmp_path: Path, capfd
) -> None:
    log_path = tmp_path / "logs" / "stage.log"
    with pytest.raises(SystemExit) as stopped, logged(log_path):
        {}["missing"]  # noqa: B018 - any bug in a stage
    assert stopped.value.code == 1
    assert capfd.readouterr().err.splitlines() == [
        f"tuneladder: KeyError: 'missing' (traceback in {log_path})"
    ]
    log = log_path.read_text()
    assert "ERROR KeyError: 'missing'" in log and "Traceback" in log and '{}["missing"]' in log


def test_ctrl_c_in_a_stage_leaves_one_line_in_its_log(tmp_path: Path, capfd) -> None:
    log_path = tmp_path / "logs" / "stage.log"
    with pytest.raises(SystemExit) as stopped, logged(log_path):
        raise KeyboardInterrupt
    assert stopped.value.code == 130  # 128 + SIGINT, as a shell reports it
    assert capfd.readouterr().err == ""  # the run's own last line says what was kept
    assert "interrupted: stopped here" in log_path.read_text()
