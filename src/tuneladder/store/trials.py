"""The trial contract: a trial's config, its key, its files and when it is complete.

A trial folder holds ``config.json``, ``history.csv`` and ``result.json``;
``result.json`` is written last, so a trial is complete when its result carries
the expected key: the hash of the config, the prepared data's fingerprint, the
selection metric and the code that decides the trial's numbers
(:data:`CODE_MODULES`, the task's module and the project modules it imports).
While it runs the folder also holds ``checkpoint.pt``, and a seed trial keeps
its best weights in ``model.pt``. A trial of a halving level that later levels
may continue keeps the state it stopped in as ``state.pt``
(:mod:`tuneladder.search.halving`). The file names are spelled in
:mod:`tuneladder.store.trial_files`; this module is the home of the rest, and it
imports no torch: bookkeeping rules (collect, status) read trials in a process
that never loads it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import os
import sys
import sysconfig
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneladder.core.curves import curve_summary
from tuneladder.core.hparams import TrialConfig, config_hash
from tuneladder.infra.device import PRECISIONS, trained_precision
from tuneladder.infra.env import provenance
from tuneladder.store.io import read_json, write_json, write_torch
from tuneladder.store.trial_files import RESULT_FILE
from tuneladder.tasks._base import plugin_path
from tuneladder.tasks._loader import task_module_name

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tuneladder.tasks import DataInfo

__all__ = [
    "CODE_MODULES",
    "KEEP_TRIALS",
    "BuildModel",
    "Checkpoint",
    "Code",
    "Outcome",
    "TrialInputs",
    "base_params",
    "code_fingerprint",
    "derive_seed",
    "entry_key",
    "is_complete",
    "keep_trials",
    "key_precision",
    "make_result",
    "make_trial_config",
    "prepare_fingerprint",
    "read_result",
    "stale_reason",
    "task_code",
    "task_module",
    "trial_key",
    "write_result",
]


@dataclass
class Outcome:
    """What training produced; the checkpoint carries the fields in ``_RESUMED``."""

    status: str = "ok"  # ok | diverged | failed
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_metric: float | None = None
    best_val_loss: float | None = None
    first_loss: float | None = None  # the trial's first step: what divergence is measured by
    stopped_early: bool = False
    reason: str | None = None  # why it diverged, or the error when it failed
    resumed_from_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    device_lost: str | None = None  # the GPU no longer answers this process: why
    out_of_memory: bool = False  # it failed because the device's memory ran out
    # trained again alone after running out of memory beside other trials: why, when, how
    # long it waited for them
    retried_alone: dict[str, Any] | None = None


# A task's model factory: ``(model hyperparameters, data info) -> nn.Module``.
BuildModel = Callable[[Mapping[str, Any], "DataInfo"], "nn.Module"]

# The code that decides a trial's numbers, besides the task's own module: a change to
# one of these files retrains finished trials. The report and the workflow are not here.
CODE_MODULES = (
    "tuneladder.training.runner",
    "tuneladder.training.step",
    "tuneladder.training.metrics",
    "tuneladder.training.schedules",
    "tuneladder.training.optimizers",
    "tuneladder.infra.device",
    "tuneladder.data.prepared",
    "tuneladder.data.datasets",
    "tuneladder.data.loader",
    "tuneladder.tasks.models",
)

# Set to 1 to reuse finished trials whose code changed, on purpose (config, data and
# metric must still match).
KEEP_TRIALS = "TUNELADDER_KEEP_TRIALS"


def base_params(train: Mapping[str, Any], default_model: Mapping[str, Any]) -> dict[str, Any]:
    """Fixed hyperparameters: the task's default model, then the config's ``train``."""
    params = {**default_model, **train}
    params.pop("epochs", None)
    return params


def make_trial_config(
    base: Mapping[str, Any], sampled: Mapping[str, Any], *, epochs: int, seed: int
) -> TrialConfig:
    """Sampled values win over fixed ones; the result is saved with the trial."""
    return TrialConfig.from_flat({**base, **sampled}, epochs=epochs, seed=seed)


def derive_seed(ladder_seed: int, rung: str, index: int) -> int:
    """A trial's training seed: distinct per trial, a pure function of the ladder's seed."""
    entropy = [ladder_seed, zlib.crc32(rung.encode()), index]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))


@dataclass(frozen=True)
class Code:
    """The source files that decide a trial's numbers, hashed: one digest per module."""

    task_module: str | None
    digests: Mapping[str, str]  # module name -> sha256 of its source file's bytes

    @property
    def fingerprint(self) -> str:
        """The digests' contents without the modules' names: a module that moves keeps
        its trials (:func:`_file_digest`); ``digests`` still names what changed."""
        text = json.dumps(sorted(self.digests.values()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """As ``result.json`` records it: the fingerprint and the modules hashed."""
        return {
            "fingerprint": self.fingerprint,
            "task_module": self.task_module,
            "modules": dict(self.digests),
        }

    @property
    def found(self) -> bool:
        """Whether the task's module was found from here (a plugin is found from the
        folder the ladder runs in): without it, the fingerprint is not the workers'."""
        return self.task_module is None or self.digests.get(self.task_module) != MISSING

    def changed_since(self, recorded: Mapping[str, Any] | None) -> list[str]:
        """The modules whose source differs from a result's recorded ``code``."""
        before = (recorded or {}).get("modules") or {}
        names = set(self.digests) | set(before)
        return sorted(name for name in names if self.digests.get(name) != before.get(name))


def code_fingerprint(task_module: str | None) -> Code:
    """Hash :data:`CODE_MODULES`, the task's module and the user's modules it imports.

    Files are read, never imported: ``collect`` runs without torch, and a user's
    package may import it. A task module of the user's own (not ``tuneladder``'s)
    usually keeps its network, loss or Dataset in modules beside it; a fix there
    must retrain finished trials as much as a fix to the task module itself.
    """
    digests = {name: _source_digest(name) for name in CODE_MODULES}
    if task_module is not None and task_module not in digests:
        digests[task_module] = _source_digest(task_module)
        for name, path in _user_imports(task_module).items():
            digests.setdefault(name, _file_digest(path))
    return Code(task_module, digests)


# the modules of CODE_MODULES that decide the prepared data (the rest decide training)
PREPARE_MODULES = ("tuneladder.data.prepared", "tuneladder.data.datasets")


def prepare_fingerprint(code: Code) -> str:
    """What decides the prepared data, of a task's :class:`Code`: the task's module, the
    user's modules it imports, and :data:`PREPARE_MODULES`. A fix to a plugin's loading
    must re-prepare its data; a fix to the training code alone must not."""
    kept = sorted(
        digest
        for name, digest in code.digests.items()
        if name in PREPARE_MODULES or name not in CODE_MODULES
    )
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16]


def task_code(task_name: str, build_model: BuildModel | None = None) -> Code:
    """The fingerprint of a configured task's code: ``task.name``'s module (a plugin's
    ``make_task`` module) with what it imports.

    The workflow's rerun trigger and the workers' trial keys both come from here,
    so they hash the same files. Without a module in the name, the model factory's.
    """
    module = task_module_name(task_name)
    if module is None and build_model is not None:
        module = task_module(build_model)
    return code_fingerprint(module)


def _user_imports(task_module: str) -> dict[str, Path]:
    """The modules of the user's project that ``task_module`` imports, directly or through
    each other, found by reading their ``import`` statements.

    The project is the folder the task module is imported from (its package's
    parent for a package module); a module counts when its file is there. In an
    installed package (site-packages), only the task's own package counts. Imports
    made by name at run time (``importlib``) are not seen.
    """
    start = _source_file(task_module)
    if start is None or task_module.split(".")[0] == "tuneladder":
        return {}  # the built-in tasks: CODE_MODULES already lists what decides them
    parts = task_module.split(".")
    root = start.parents[len(parts) - (0 if start.name == "__init__.py" else 1)]
    # a folder pip installs into holds other distributions too: torch, say
    installed = bool({"site-packages", "dist-packages"} & set(root.parts))
    installed = installed or root == Path(sysconfig.get_paths()["stdlib"])
    installed = installed or any(root.glob("*.dist-info"))

    def locate(name: str) -> Path | None:
        top = name.split(".")[0]
        if top == "tuneladder" or (installed and top != parts[0]):
            return None
        base = root.joinpath(*name.split("."))
        # a package wins over a module of the same name, as in Python's own search
        for path in (base / "__init__.py", base.with_suffix(".py")):
            if path.is_file():
                return path
        return None

    found: dict[str, Path] = {}
    queue = [(task_module, start)]

    def add(names: Iterable[str]) -> None:
        for name in names:
            # importing a.b.c runs a/__init__.py and a/b/__init__.py as well
            prefixes = [".".join(name.split(".")[: i + 1]) for i in range(name.count(".") + 1)]
            for candidate in prefixes:
                if candidate in found or candidate == task_module:
                    continue
                located = locate(candidate)
                if located is not None:
                    found[candidate] = located
                    queue.append((candidate, located))

    add([task_module])  # the task module's own packages run when it is imported
    while queue:
        module, path = queue.pop()
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        add(_imported_names(path, package))
    return dict(sorted(found.items()))


def _imported_names(path: Path, package: str) -> list[str]:
    """Every module name an ``import`` in the file may load, relative ones resolved."""
    try:
        with warnings.catch_warnings():  # e.g. "invalid escape sequence": not ours to say
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []  # the import itself will report it
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                if node.level - 1 >= len(anchor):
                    continue  # above the top package: that import fails anyway
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(filter(None, [*anchor, base]))
            if base:
                names.append(base)
            # ``from pkg import sub`` may name a submodule
            names += [f"{base}.{a.name}" if base else a.name for a in node.names if a.name != "*"]
    return names


def task_module(build_model: BuildModel) -> str | None:
    """The module a task's model factory is defined in: the task's own code.

    ``digits`` gives ``tuneladder.tasks.digits``, ``csv`` ``tuneladder.tasks.tabular``,
    and a plugin ``package.module:make_task`` the module its factory lives in.
    """
    while isinstance(build_model, functools.partial):
        build_model = build_model.func
    return getattr(build_model, "__module__", None)


# The digest of a module whose source is not found from this process
MISSING = "missing"


def _source_digest(module: str) -> str:
    path = _source_file(module)
    return MISSING if path is None else _file_digest(path)


# digests already made in this process, by file, modification time and size: the run's
# main process asks for them every few seconds (its progress lines, tuneladder status)
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """:func:`_tree_digest` of the file, made once per version of it in a process."""
    try:
        stat = path.stat()
    except OSError:
        return "unreadable"
    version = (str(path), stat.st_mtime_ns, stat.st_size)
    digest = _DIGESTS.get(version)
    if digest is None:
        digest = _DIGESTS[version] = _tree_digest(path)
    return digest


def _tree_digest(path: Path) -> str:
    """A digest of what the file computes, not of how it is written or where it lives.

    The syntax tree is hashed without docstrings (comments and layout are not in
    it), and an import from this package (``tuneladder.*`` or relative) keeps only
    the names it imports: moving a module to another folder changes the import
    lines of the modules that use it, not what they compute. An import from
    another package keeps its module (``from torch import nn`` is not
    ``from other import nn``). A file Python cannot parse is hashed as bytes.
    """
    try:
        source = path.read_bytes()
    except OSError:
        return "unreadable"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()[:16]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] == "tuneladder"
        ):
            node.module, node.level = None, 0
    for node in ast.walk(tree):
        for part in ("body", "orelse", "finalbody"):
            if isinstance(getattr(node, part, None), list):
                setattr(node, part, _merged_imports(getattr(node, part)))
    text = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _merged_imports(body: list[ast.stmt]) -> list[ast.stmt]:
    """Each run of imports from this package as one import of the names, sorted: a move
    reorders them (import sorting follows module paths) or splits one into two."""
    out: list[ast.stmt] = []
    run: list[ast.alias] = []
    for stmt in [*body, None]:
        if isinstance(stmt, ast.ImportFrom) and stmt.module is None and stmt.level == 0:
            run += stmt.names
            continue
        if run:
            names = sorted(run, key=lambda a: (a.name, a.asname or ""))
            out.append(ast.ImportFrom(module=None, names=names, level=0))
            run = []
        if stmt is not None:
            out.append(stmt)
    return out


def _source_file(module: str) -> Path | None:
    origin = getattr(sys.modules.get(module), "__file__", None)
    if origin is None:
        plugin_path()  # a plugin is found where the task loader finds it
        origin = _find_origin(module)
    return Path(origin) if origin and Path(origin).is_file() else None


def _find_origin(module: str) -> str | None:
    """The file the import system would load for ``module``, running none of its packages.

    ``importlib.util.find_spec("pkg.task")`` imports ``pkg`` first, and with it
    whatever ``pkg/__init__.py`` imports (torch, in ``collect``, which must not
    load it) or raises; a worker, which has the plugin loaded, and ``collect``
    would then hash different files. Each level is looked up with the finders
    instead, inside the folders of the level above.
    """
    parts = module.split(".")
    search: list[str] | None = None
    spec = None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        if spec is None:
            spec = _find_with_finders(name, search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
        if search is None and depth < len(parts):
            return None  # a module, not a package, above the one asked for
    return spec.origin


def _find_with_finders(name: str, search: list[str] | None) -> Any:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        try:
            spec = find(name, search) if find is not None else None
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            return spec
    return None


def trial_key(
    config: TrialConfig,
    data_fingerprint: str,
    metric: str,
    code: str | None = None,
    *,
    budget: int | None = None,
    precision: str = "fp32",
) -> str:
    """What must match for a finished trial to be reused: config, data, metric, precision
    and code.

    ``code`` is a :attr:`Code.fingerprint`. It follows a colon, so that the part
    before it, the key of the inputs alone, can be compared by itself
    (:data:`KEEP_TRIALS`); without ``code`` the key is that part. ``budget``, the
    epoch a halving level stops the config's schedule at, is part of the inputs;
    without it (no halving) the key is what it always was. So is ``precision``, the
    run's (``bf16`` numbers are not ``fp32`` ones), named where it is not ``fp32``:
    an fp32 trial's key is what it always was.
    """
    inputs = f"{config_hash(config)}-{data_fingerprint}-{metric}"
    if budget is not None:
        inputs += f"-e{budget}"
    if precision != "fp32":
        inputs += f"-{precision}"
    return inputs if code is None else f"{inputs}:{code}"


def key_precision(key: str) -> str:
    """The precision a trial's key names (:func:`trial_key`)."""
    inputs = key.partition(":")[0]
    return next((p for p in KEYED_PRECISIONS if inputs.endswith(f"-{p}")), "fp32")


# the precisions a key names: all but fp32, the first, which it leaves out
KEYED_PRECISIONS = PRECISIONS[1:]


def entry_key(
    entry: Mapping[str, Any],
    data_fingerprint: str,
    metric: str,
    code: str | None,
    precision: str = "fp32",
) -> str:
    """The key a plan entry's finished trial carries: its config, and its halving
    level's stopping epoch where it has one (the one way workers and collect read it)."""
    config = TrialConfig.from_json(entry["config"])
    return trial_key(
        config, data_fingerprint, metric, code, budget=entry.get("budget"), precision=precision
    )


def keep_trials() -> bool:
    """Whether finished trials are reused although their code changed (:data:`KEEP_TRIALS`)."""
    return os.environ.get(KEEP_TRIALS, "").strip() not in ("", "0")


def read_result(trial_dir: str | Path) -> dict[str, Any] | None:
    """The trial's ``result.json``, or None when there is none (or it cannot be read)."""
    try:
        return read_json(Path(trial_dir) / RESULT_FILE)
    except (OSError, ValueError):
        return None


def write_result(trial_dir: str | Path, result: Mapping[str, Any]) -> None:
    """Written atomically, and last: from now on the trial is complete."""
    write_json(Path(trial_dir) / RESULT_FILE, result)


def stale_reason(
    result: Mapping[str, Any] | None, key: str, code: Code | None = None
) -> str | None:
    """Why a recorded result cannot be reused for ``key``; None when it can.

    A result of the same config, data and metric whose code differs is stale,
    unless :data:`KEEP_TRIALS` is set; ``code``, the code now, lets the reason
    name the modules that changed.
    """
    if result is None:
        return "not run"
    recorded = str(result.get("key"))
    if recorded == key:
        return None
    if recorded.partition(":")[0] != key.partition(":")[0]:
        return "stale: config, data, metric or precision changed"
    if keep_trials():
        return None
    if "code" not in result:
        return "stale: code changed (the result records no code)"
    changed = code.changed_since(result["code"]) if code is not None else []
    shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
    return "stale: code changed" + (f" ({shown})" if changed else "")


def is_complete(trial_dir: str | Path, key: str) -> bool:
    """A trial is complete when its result.json carries this key (see :func:`stale_reason`)."""
    return stale_reason(read_result(trial_dir), key) is None


@dataclass(frozen=True, kw_only=True)
class TrialInputs:
    """What a trial's numbers are a function of, and so what its key hashes.

    Attributes:
        config: every hyperparameter, and the seed.
        data_fingerprint: the prepared data's.
        metric: the metric the trial selects its best epoch on.
        code: the code that decides the numbers (:func:`code_fingerprint`).
        budget: the epoch a halving level stops the config's schedule at; None without one.
        precision: the run's, ``fp32``, ``tf32``, ``bf16`` or ``fp16``.
    """

    config: TrialConfig
    data_fingerprint: str
    metric: str
    code: Code
    budget: int | None = None
    precision: str = "fp32"

    @property
    def key(self) -> str:
        """The key its ``result.json`` carries (:func:`trial_key`)."""
        return trial_key(
            self.config,
            self.data_fingerprint,
            self.metric,
            self.code.fingerprint,
            budget=self.budget,
            precision=self.precision,
        )


def _losses(history: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """Train and val loss per epoch, a missing one NaN (as ``history.csv`` reads it back)."""
    nan = math.nan
    return (
        [nan if r.get("train_loss") is None else float(r["train_loss"]) for r in history],
        [nan if r.get("val_loss") is None else float(r["val_loss"]) for r in history],
    )


def make_result(
    outcome: Outcome,
    inputs: TrialInputs,
    *,
    trial: Mapping[str, Any] | None,
    mode: str,
    device: torch.device,
    precision: str,
    threads: int,
    started: float,
) -> dict[str, Any]:
    """What ``result.json`` records: the outcome, what produced it, and where."""
    last = outcome.history[-1] if outcome.history else {}
    config = inputs.config
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "trial": dict(trial or {}),
        "metric": {"name": inputs.metric, "mode": mode},
        "best_val_metric": outcome.best_val_metric,
        "best_val_loss": outcome.best_val_loss,
        "best_epoch": outcome.best_epoch,
        "epochs_run": len(outcome.history),
        "stopped_early": outcome.stopped_early,
        "resumed_from_epoch": outcome.resumed_from_epoch,
        "retried_alone": outcome.retried_alone,
        "final_train_loss": last.get("train_loss"),
        "final_val_loss": last.get("val_loss"),
        "first_loss": outcome.first_loss,
        "curve": curve_summary(*_losses(outcome.history)),
        "train_seconds": sum(r["epoch_seconds"] for r in outcome.history),
        "total_seconds": time.time() - started,
        "peak_memory_mb": max((r["peak_memory_mb"] for r in outcome.history), default=None),
        "seed": config.seed,
        "config": config.to_json(),
        "params": config.flat(),
        "config_hash": config_hash(config),
        "key": inputs.key,
        "code": inputs.code.to_json(),
        "data_fingerprint": inputs.data_fingerprint,
        "device": str(device),
        # what it trained in, and what the config asked (its key's): fp32 and tf32 on the
        # CPU, say, or tf32 on a GPU without TF32 units
        "precision": trained_precision(device, precision),
        "precision_asked": precision,
        "threads": threads,
        "started_at": started,
        **provenance(device),
    }


class Checkpoint:
    """A resumable snapshot of a running trial, valid only for the same key.

    What it holds is the training state's ``state_dict()``
    (:class:`tuneladder.training.runner.TrainState`) plus the key; torch is imported
    only when one is saved or loaded.
    """

    def __init__(self, path: str | Path, key: str, every_s: float) -> None:
        self.path, self.key, self.every_s = Path(path), key, every_s
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: Mapping[str, Any]) -> None:
        write_torch(self.path, {"key": self.key, **state})
        self._last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        import torch

        try:
            state = torch.load(self.path, weights_only=True, map_location="cpu")
        except Exception:  # a torn or foreign file is as good as none
            return None
        return state if state.get("key") == self.key else None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
