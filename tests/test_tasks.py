from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import REPO
from tuneladder.data.prepared import TrainVal, load_test, load_train_val, prepare, split_indices
from tuneladder.store.io import read_json
from tuneladder.tasks import DataInfo, Task, TaskError, load_task


def test_digits_split_is_60_20_20_stratified_and_seeded(digits_dir: Path) -> None:
    meta = read_json(digits_dir / "meta.json")
    assert meta["sizes"]["train"] + meta["sizes"]["val"] + meta["sizes"]["test"] == 1797
    assert abs(meta["sizes"]["train"] / 1797 - 0.6) < 0.01
    assert abs(meta["sizes"]["test"] / 1797 - 0.2) < 0.01
    data = load_train_val(digits_dir)
    counts = torch.bincount(data.train.y, minlength=10).float() / len(data.train)
    assert counts.min() > 0.09 and counts.max() < 0.11  # stratified
    assert data.info.input_shape == (1, 8, 8) and data.info.n_outputs == 10


def test_digits_are_scikit_learns_read_without_importing_it(tmp_path: Path) -> None:
    """The file is read directly (importing scikit-learn was a third of the prepare rung);
    the samples, and so the prepared data's fingerprint, are what they always were."""
    code = (
        "import sys, numpy as np; from tuneladder.tasks import load_task;"
        " from tuneladder.data.prepared import prepare; task = load_task('digits');"
        " x, y = task.load_arrays(); np.save(sys.argv[1] + '/x.npy', x);"
        " np.save(sys.argv[1] + '/y.npy', y);"
        " print(prepare(task, sys.argv[1] + '/data', seed=0)['fingerprint']);"
        " assert 'sklearn' not in sys.modules, 'scikit-learn was imported'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x, (digits.images / 16.0).astype(np.float32)[:, None])
    assert np.array_equal(y, digits.target)
    assert out.stdout.strip() == "7e40a4af872b071f"  # seed 0, before and after the change


def test_split_is_fixed_for_a_seed_and_disjoint() -> None:
    y = np.repeat(np.arange(3), 50)
    a = split_indices(y, (0.6, 0.2, 0.2), seed=1, stratify=True)
    b = split_indices(y, (0.6, 0.2, 0.2), seed=1, stratify=True)
    c = split_indices(y, (0.6, 0.2, 0.2), seed=2, stratify=True)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    everything = np.concatenate(a)
    assert len(everything) == len(set(everything)) == 150


def test_tuning_code_cannot_reach_the_test_split(digits_dir: Path) -> None:
    data = load_train_val(digits_dir)
    assert isinstance(data, TrainVal)
    assert not hasattr(data, "test")
    test = load_test(digits_dir)
    assert len(test) == read_json(digits_dir / "meta.json")["sizes"]["test"]


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_digits_models_take_width_depth_dropout(digits, arch: str) -> None:
    task = load_task("digits")
    hp = {**task.default_model, "arch": arch, "num_layers": 3, "width": 48, "dropout": 0.3}
    model = task.build_model(hp, digits.info)
    out = model(digits.train.x[:5])
    assert out.shape == (5, 10)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in model.modules())
    if arch == "cnn":
        assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def test_csv_task_standardises_with_train_statistics_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(200, 3))
    path = tmp_path / "table.csv"
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{int(r[0] > 5)}" for r in x]
    path.write_text("\n".join(lines) + "\n")
    task = load_task("csv", {"path": str(path), "target": "label"})
    meta = prepare(task, tmp_path / "data", seed=0)
    data = load_train_val(tmp_path / "data")
    assert torch.allclose(data.train.x.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(data.train.x.std(0, unbiased=False), torch.ones(3), atol=1e-4)
    assert not torch.allclose(data.val.x.mean(0), torch.zeros(3), atol=1e-5)
    assert len(meta["standardize"]["mean"]) == 3


def test_csv_regression_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": np.linspace(0, 1, 50), "y": np.linspace(0, 2, 50)})
    frame.to_parquet(tmp_path / "t.parquet")
    task = load_task(
        "csv", {"path": str(tmp_path / "t.parquet"), "target": "y", "kind": "regression"}
    )
    prepare(task, tmp_path / "data", seed=0)
    data = load_train_val(tmp_path / "data")
    assert data.info.kind == "regression" and data.train.y.shape[1] == 1
    assert "rmse" in task.metrics
    # y runs from 0 to 2: its train mean is near 1 and its std near 0.58 (uniform)
    assert data.info.target_mean[0] == pytest.approx(1.0, abs=0.15)
    assert data.info.target_std[0] == pytest.approx(0.58, abs=0.08)


def test_data_info_round_trips_with_its_target_scale() -> None:
    info = DataInfo("regression", (3,), 2, target_mean=(200.0, -1.0), target_std=(60.0, 0.5))
    saved = info.to_json()
    assert saved["target_scale"] == {"mean": [200.0, -1.0], "std": [60.0, 0.5]}
    assert DataInfo.from_json(saved) == info
    # data prepared before targets were scaled: raw targets, no scale
    old = {"kind": "regression", "input_shape": [3], "n_outputs": 1}
    assert DataInfo.from_json(old).target_std is None
    assert DataInfo("classification", (3,), 2).to_json()["target_scale"] is None
    with pytest.raises(ValueError, match="target_std must be > 0"):
        DataInfo("regression", (3,), 1, target_mean=(0.0,), target_std=(0.0,))


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (None, {}, "data file not found"),
        ("", {}, "cannot read"),
        ("a,b\n1,2\n", {}, "no target column 'label'"),
        ("a,label\nx,1\ny,0\n", {"categorical": "error"}, "feature column 'a' is text"),
        ("a,label\n1,1\n,0\n", {"missing": "error"}, "feature column 'a' has missing values"),
        ("a,label\n1,1\n2,1\n", {}, "single class"),
    ],
)
def test_csv_problems_name_the_file_and_column(
    tmp_path: Path, content, options: dict, message: str
) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    task = load_task("csv", {"path": str(path), "target": "label", **options})
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare(task, tmp_path / "data", seed=0)


def test_csv_fixes_suggested_work_as_written(tmp_path: Path) -> None:
    """A suggested `drop` quotes a padded header, a near miss of one is named, a text
    column's missing values are not said to become a median, and a regression target
    lists its missing and its text values at once."""
    import yaml

    from tuneladder.tasks.tabular import TableOptions, load_table

    path = tmp_path / "messy.csv"
    path.write_text("age, city ,y\n1,Oslo,0.5\n2,,x\n3,Rome,\n4,Oslo,1.5\n")
    with pytest.raises(ValueError) as caught:
        load_table(path, "y", "regression", TableOptions(categorical="error", missing="error"))
    text = str(caught.value)
    suggested = text.split("task.options.drop: ")[1].split("\n")[0]
    assert yaml.safe_load(suggested) == [" city "]  # as YAML reads it back
    assert (
        "feature column ' city ' has missing values (1 row, first: data row 2): set"
        " task.options.missing: fill (a missing text value is a category of its own)"
    ) in text
    assert "target column 'y' has missing values (1 row, first: data row 3)" in text
    assert "target column 'y' is not numeric (1 row, first: data row 2, e.g. 'x')" in text
    with pytest.raises(ValueError, match="did you mean ' city '"):
        load_table(path, "age", "regression", TableOptions(drop=("city",)))
    # and before any job, from the header line
    from tuneladder.tasks.tabular import check_header

    with pytest.raises(ValueError, match="drop names 'city', which is not a column of"):
        check_header(path, "y", ["city"])
    check_header(path, "y", [" city "])
    # as pandas names them: an index to_csv wrote, a repeated header
    import pandas as pd

    indexed = tmp_path / "indexed.csv"
    indexed.write_text(",a,a,y\n0,1,2,0.5\n1,3,4,1.5\n")
    check_header(indexed, "y", ["Unnamed: 0", "a.1"])
    assert {"Unnamed: 0", "a.1"} <= set(pd.read_csv(indexed).columns)


def test_plugin_example_task_loads_and_trains(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    task = load_task("examples.sine_task:make_task", {"samples": 200})
    assert task.kind == "regression" and "activation" in task.model_params
    prepare(task, tmp_path / "data", seed=0)
    data = load_train_val(tmp_path / "data")
    model = task.build_model(task.default_model, data.info)
    assert model(data.train.x[:4]).shape == (4, 1)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_module_xyz:make", "cannot import 'no_such_module_xyz'"),
        ("json:make_task", "json has no function 'make_task'"),
        ("json:dumps", "task 'json:dumps'"),
        ("os.path:basename", "task 'os.path:basename'"),
    ],
)
def test_bad_plugin_tasks_are_named(name: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        load_task(name, {})


def test_plugin_returning_the_wrong_thing(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "wrong_plugin.py").write_text("def make(options):\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TaskError, match="returned int, expected a tuneladder.tasks.Task"):
        load_task("wrong_plugin:make", {})


def test_task_checks_its_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        Task(
            name="x",
            kind="ranking",
            load_arrays=lambda: (None, None),
            build_model=lambda hp, info: None,
        )


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("digits", {}),
        ("csv", {"path": "examples/wine.csv", "target": "target"}),
        ("examples.sine_task:make_task", {"samples": 200}),
    ],
)
def test_shipped_tasks_pass_the_model_check(name: str, options, tmp_path: Path, monkeypatch):
    from tuneladder.training.preflight import check_model

    monkeypatch.chdir(REPO)
    task = load_task(name, options)
    prepare(task, tmp_path / "data", seed=0)
    data = load_train_val(tmp_path / "data")
    shape = check_model(
        task.build_model, task.default_model, data.info, data.train.x, data.train.y
    )
    assert shape == (8, data.info.n_outputs)


def test_a_csv_target_that_reads_as_a_quantity_needs_its_kind_said(tmp_path: Path) -> None:
    """Left unset, the kind is classification: a price column was split into a class per
    value (194 classes from 300 rows) and the ladder tuned accuracy on it. Such a target
    is refused, naming the option; said outright, either kind is taken as asked."""
    from tuneladder.tasks.tabular import load_table

    rng = np.random.default_rng(0)
    prices = tmp_path / "prices.csv"
    size = rng.normal(size=200)
    price = np.round(50 + 10 * size + rng.normal(size=200), 2)
    pd.DataFrame({"size": size, "row": np.arange(200), "price": price}).to_csv(prices, index=False)
    counts = tmp_path / "counts.csv"
    pd.DataFrame({"size": size, "visits": rng.integers(0, 120, size=200)}).to_csv(
        counts, index=False
    )
    for path, target, message in (
        (prices, "price", "target column 'price' holds fractional numbers"),
        (counts, "visits", r"target column 'visits' has \d+ distinct values in 200 rows"),
    ):
        task = load_task("csv", {"path": str(path), "target": target})
        with pytest.raises(ValueError, match=message) as caught:
            prepare(task, tmp_path / "data", seed=0)
        assert "set task.options.kind: regression" in str(caught.value)
        regression = load_task("csv", {"path": str(path), "target": target, "kind": "regression"})
        assert prepare(regression, tmp_path / f"{target}-data", seed=0)["info"]["kind"] == (
            "regression"
        )
    # a missing target value is said with the rest, not after it is fixed
    gaps = tmp_path / "gaps.csv"
    pd.DataFrame({"size": size, "price": np.where(size > 1.5, np.nan, price)}).to_csv(
        gaps, index=False
    )
    with pytest.raises(ValueError) as caught:
        prepare(load_task("csv", {"path": str(gaps), "target": "price"}), tmp_path / "g", seed=0)
    assert "has missing values" in str(caught.value) and "fractional" in str(caught.value)
    # text labels name classes, however many: nothing to refuse
    names = tmp_path / "names.csv"
    labels = [f"class {i % 30}" for i in range(100)]
    pd.DataFrame({"size": size[:100], "species": labels}).to_csv(names, index=False)
    _, classes = load_table(names, "species", "classification", kind_set=False)
    assert len(set(classes)) == 30
    # said outright, many classes are classes; few classes need nothing said
    _, labels = load_table(counts, "visits", "classification")
    visits = pd.read_csv(counts)["visits"]
    # not 0, 1, ..., so names: a class for each value seen, none left empty between them
    assert labels.tolist() == visits.astype(str).tolist()
    few = tmp_path / "few.csv"
    grades = pd.DataFrame({"size": size, "row": np.arange(200), "grade": rng.integers(0, 3, 200)})
    grades.to_csv(few, index=False)
    task = load_task("csv", {"path": str(few), "target": "grade", "drop": "row"})
    meta = prepare(task, tmp_path / "few-data", seed=0)
    assert meta["info"]["kind"] == "classification" and meta["info"]["n_outputs"] == 3
    assert meta["encoding"]["columns"] == ["size"]  # drop: one name alone, not its letters
    # a column that counts the rows is said, with the line that drops it
    task = load_task("csv", {"path": str(few), "target": "grade"})
    changes = prepare(task, tmp_path / "row-data", seed=0)["encoding"]["changes"]
    assert "row: counts the rows (0, 1, 2 ...), like an index or an ID" in changes[0]
    assert changes[0].endswith('task.options.drop: ["row"] leaves it out')


def test_rows_without_a_target_are_refused_or_dropped_as_asked(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grade = rng.integers(0, 3, 200).astype(float)
    grade[[5, 17, 40]] = np.nan
    path = tmp_path / "grades.csv"
    pd.DataFrame({"size": rng.normal(size=200), "grade": grade}).to_csv(path, index=False)
    options = {"path": str(path), "target": "grade"}
    with pytest.raises(ValueError, match="or set task.options.missing_target: drop"):
        prepare(load_task("csv", options), tmp_path / "refused", seed=0)
    dropping = load_task("csv", {**options, "missing_target": "drop"})
    meta = prepare(dropping, tmp_path / "dropped", seed=0)
    assert sum(meta["sizes"].values()) == 197 and meta["info"]["n_outputs"] == 3
    assert meta["encoding"]["changes"][0] == (
        "target 'grade': missing in 3 rows, first: data row 6; those rows dropped"
        " (task.options.missing_target: drop)"
    )
    with pytest.raises(ValueError, match="missing_target must be error or drop"):
        load_task("csv", {**options, "missing_target": "fill"})


def test_csv_files_as_spreadsheets_save_them_are_read_or_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    """A file saved where the comma is the decimal mark (';' between columns), one not in
    UTF-8, a spreadsheet itself: read as asked, or refused naming the option that reads it."""
    from tuneladder.tasks.tabular import TableOptions, check_header, load_table

    rows = "".join(
        f"{i};{10 + i},{i % 10}5;{'Nord' if i % 2 else 'Süd'};{i % 2}\n" for i in range(40)
    )
    euro = tmp_path / "euro.csv"
    euro.write_text("id;Price (EUR);Region;Sold\n" + rows, encoding="utf-8")
    check_header(euro, "Sold")  # the header's own separator: no option needed for it
    with pytest.raises(ValueError) as caught:
        load_table(euro, "Sold", "classification")
    assert (
        "feature column 'Price (EUR)' holds numbers written with a decimal comma"
        " (e.g. '10,05'): set task.options.decimal: ','"
    ) in str(caught.value)
    features, labels = load_table(euro, "Sold", "classification", TableOptions(decimal=","))
    assert features["Price (EUR)"].tolist()[:2] == [10.05, 11.15]
    assert list(features.columns) == ["id", "Price (EUR)", "Region"] and labels.sum() == 20
    # a regression target in decimal commas says the same
    with pytest.raises(ValueError, match=r"'Price \(EUR\)' is not numeric .*decimal: ','"):
        load_table(euro, "Price (EUR)", "regression")
    # the same file saved in Latin-1: refused from its header on, before any job
    latin = tmp_path / "latin.csv"
    latin.write_bytes(euro.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(ValueError, match=r"is not utf-8 text \(byte 0xfc .*task.options.encoding"):
        check_header(latin, "Sold")
    with pytest.raises(ValueError, match="is not utf-8 text"):
        load_table(latin, "Sold", "classification", TableOptions(decimal=","))
    options = TableOptions(decimal=",", encoding="latin-1")
    check_header(latin, "Sold", options=options)
    assert load_table(latin, "Sold", "classification", options)[0]["Region"].iloc[0] == "Süd"
    # a spreadsheet is named as one, with the export that reads it
    sheet = tmp_path / "data.xlsx"
    sheet.write_bytes(b"PK\x03\x04 not read")
    for read in (
        lambda: check_header(sheet, "Sold"),
        lambda: load_table(sheet, "Sold", "classification"),
    ):
        with pytest.raises(ValueError, match="a spreadsheet, which the csv task does not read"):
            read()
    with pytest.raises(ValueError, match="task.options.encoding: unknown encoding 'utf9'"):
        load_task("csv", {"path": str(euro), "target": "Sold", "encoding": "utf9"})
    with pytest.raises(ValueError, match="task.options.sep must be auto or one character"):
        load_task("csv", {"path": str(euro), "target": "Sold", "sep": ";;"})


def test_an_id_column_is_said_even_when_a_row_without_a_target_left_a_gap(tmp_path: Path):
    rng = np.random.default_rng(0)
    grade = rng.integers(0, 3, 200).astype(float)
    grade[17] = np.nan
    path = tmp_path / "ids.csv"
    frame = pd.DataFrame({"id": np.arange(200), "size": rng.normal(size=200), "grade": grade})
    frame.to_csv(path, index=False)
    task = load_task("csv", {"path": str(path), "target": "grade", "missing_target": "drop"})
    changes = prepare(task, tmp_path / "data", seed=0)["encoding"]["changes"]
    assert any(c.startswith("id: counts the rows (0, 1, 2 ...)") for c in changes), changes


def test_a_csv_files_notation_is_read_from_its_header_quotes_and_width_aside(tmp_path):
    """The separator is the header's most frequent outside quotes (a comma on a tie), read
    to the end of a header of any width; a US file's quoted thousands are not taken for
    decimal commas, and a decimal-comma target is not made a class per value."""
    from tuneladder.tasks.tabular import TableOptions, check_header, load_table, separator

    assert separator('"Price, EUR";Region;Sold\n') == ";"
    assert separator("name\tPrice (EUR, net)\tSold\n") == "\t"
    assert separator("a,b;c\n") == ","  # a tie: the comma
    assert TableOptions.from_options({"sep": "\\t"}).sep == "\t"  # YAML's '\t', quoted
    assert TableOptions.from_options({"sep": "tab"}).sep == "\t"
    wide = tmp_path / "wide.csv"
    columns = [f"feature_{i:05d}" for i in range(6000)]
    wide.write_text(",".join([*columns, "label"]) + "\n" + ",".join(["1"] * 6000 + ["0"]) + "\n")
    check_header(wide, "label", [columns[-1]])
    # a comma-separated file's quoted thousands: text as before, never 'decimal: ,'
    us = tmp_path / "us.csv"
    us.write_text("price,sold\n" + "".join(f'"{i},{i:03d}",{i % 2}\n' for i in range(1, 30)))
    with pytest.raises(ValueError) as caught:
        load_table(us, "sold", "classification")
    assert "decimal" not in str(caught.value) and "max_categories" in str(caught.value)
    # '.' between thousands and a decimal comma: both options named, and both read it
    grouped = tmp_path / "grouped.csv"
    rows = "".join(f"{i}.{i:03d},5;{i % 2}\n" for i in range(1, 30))
    grouped.write_text("price;sold\n" + rows)
    with pytest.raises(ValueError, match=r"set task.options.decimal: ',' and thousands: '.'"):
        load_table(grouped, "sold", "classification")
    options = TableOptions(decimal=",", thousands=".")
    assert load_table(grouped, "sold", "classification", options)[0]["price"][0] == 1001.5
    # a target in decimal commas, its kind not said: refused, not 29 classes
    with pytest.raises(ValueError, match=r"target column 'price' holds numbers written with"):
        load_table(grouped, "price", "classification", kind_set=False)
    # a header split at the wrong character says which option splits it
    with pytest.raises(ValueError, match="the header came out as one column: task.options.sep"):
        load_table(grouped, "sold", "classification", TableOptions(sep="|"))


@pytest.mark.parametrize(
    ("classes", "each", "sizes"),
    [
        (50, 7, (210, 70, 70)),
        (20, 4, (48, 16, 16)),
        (10, 3, (18, 6, 6)),
        (10, 180, (1080, 360, 360)),
    ],
)
def test_a_stratified_split_has_the_sizes_its_fractions_ask(classes, each, sizes) -> None:
    y = np.repeat(np.arange(classes), each)
    parts = split_indices(y, (0.6, 0.2, 0.2), seed=0, stratify=True)
    assert tuple(len(p) for p in parts) == sizes
    assert len(np.unique(np.concatenate(parts))) == len(y)
    # each class gives each part its share, within one sample
    for part, fraction in zip(parts, (0.6, 0.2, 0.2), strict=True):
        per_class = np.bincount(y[part], minlength=classes)
        assert np.all(np.abs(per_class - fraction * each) < 1 + 1e-9)


def test_a_task_that_asks_for_no_stratification_gets_none(tmp_path: Path) -> None:
    # 10 classes of 3: unstratified, every split has samples; stratified too, now
    y = np.repeat(np.arange(10), 3)
    x = np.arange(30, dtype=np.float32)[:, None]
    task = Task(name="few", kind="classification", load_arrays=lambda: (x, y),
                build_model=lambda hp, info: torch.nn.Linear(1, 10), default_model={},
                stratify=False)  # fmt: skip
    meta = prepare(task, tmp_path / "plain", seed=0)
    plain = split_indices(np.zeros(30), task.split, seed=0, stratify=False)
    train = load_train_val(tmp_path / "plain").train
    assert meta["sizes"]["train"] == 18 and torch.equal(
        train.x[:, 0], torch.from_numpy(x[plain[0], 0])
    )


def test_csv_ratings_and_signs_are_classes_named_in_number_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    size = rng.normal(size=120)
    for column, values, names in (
        ("stars", rng.integers(1, 11, 120), [str(i) for i in range(1, 11)]),
        ("sign", np.where(size > 0, 1, -1), ["-1", "1"]),
    ):
        path = tmp_path / f"{column}.csv"
        pd.DataFrame({"size": size, column: values}).to_csv(path, index=False)
        task = load_task("csv", {"path": str(path), "target": column, "kind": "classification"})
        meta = prepare(task, tmp_path / column, seed=0)
        assert meta["info"]["class_names"] == names  # no empty class 0; 10 after 9
        data = load_train_val(tmp_path / column)
        assert data.info.n_outputs == len(names)
        # each class as many times as its value: the names follow the samples
        counts = torch.bincount(
            torch.cat([data.train.y, data.val.y, load_test(tmp_path / column).y])
        )
        assert {names[k]: int(n) for k, n in enumerate(counts)} == {
            str(v): int((values == v).sum()) for v in np.unique(values)
        }


def test_a_class_of_one_sample_keeps_it_in_train() -> None:
    y = np.array([0] * 100 + [1, 2, 3, 4, 5])
    train, val, test = split_indices(y, (0.6, 0.2, 0.2), seed=0, stratify=True)
    assert set(y[train]) == set(y) and (len(train), len(val), len(test)) == (63, 21, 21)
