"""The package's layers, read from its imports: no cycle, and none up a layer.

Every import counts, at module level, inside a function or for a type hint: each
one is a dependency a maintainer has to keep in their head. A new module or
subpackage must be given a layer here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

SRC = REPO / "src"
# lowest first: a module imports from its own layer or the ones before it
LAYERS = (
    ("tuneladder", "tuneladder.core"),  # the package's root holds its version only
    ("tuneladder.infra",),
    ("tuneladder.tasks",),
    ("tuneladder.store",),
    ("tuneladder.search",),
    ("tuneladder.ladder",),
    ("tuneladder.data",),
    ("tuneladder.training",),
    ("tuneladder.sanity",),
    ("tuneladder.execution",),
    ("tuneladder.tracking",),
    ("tuneladder.report",),
    ("tuneladder.stages",),
    ("tuneladder.api", "tuneladder.cli"),
)
# what bookkeeping jobs, which never train, import: no torch when they load
NO_TORCH = ("tuneladder.core", "tuneladder.store", "tuneladder.search", "tuneladder.report")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "tuneladder").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    for index, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members if m != "tuneladder"):
            return index
    if module == "tuneladder":
        return 0
    raise AssertionError(f"{module} is in no layer: give it one in {__file__}")


def _imports(module: str) -> set[str]:
    """The package's modules ``module`` imports, wherever the import statement is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            for alias in node.names:
                found.add(f"{name}.{alias.name}" if f"{name}.{alias.name}" in MODULES else name)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} (layer {_layer(module)}) imports {other} (layer {_layer(other)})"
        for module, imported in graph.items()
        for other in sorted(imported)
        if _layer(other) > _layer(module)
    ]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Modules that import each other, directly or around a loop (Tarjan's components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    upward = _upward(GRAPH)
    assert not upward, "imports up a layer:\n" + "\n".join(upward)


def test_the_package_has_no_import_cycle() -> None:
    assert not _cycles(GRAPH), f"import cycles: {_cycles(GRAPH)}"


def test_the_checks_find_what_the_package_had_before_its_layers() -> None:
    # the loop runner -> step -> trials -> runner (trials took Outcome from runner)
    before = {
        "tuneladder.training.runner": {"tuneladder.training.step"},
        "tuneladder.training.step": {"tuneladder.store.trials"},
        "tuneladder.store.trials": {"tuneladder.training.runner"},
    }
    assert _cycles(before) == [sorted(before)]
    assert _upward(before) == [
        "tuneladder.store.trials (layer 3) imports tuneladder.training.runner (layer 7)"
    ]


def test_core_imports_nothing_else_of_the_package() -> None:
    for module, imported in GRAPH.items():
        if module.startswith("tuneladder.core"):
            assert all(m.startswith("tuneladder.core") or m == "tuneladder" for m in imported), (
                module,
                imported,
            )


@pytest.mark.parametrize("package", NO_TORCH)
def test_bookkeeping_layers_load_no_torch(package: str) -> None:
    modules = sorted(m for m in MODULES if m == package or m.startswith(package + "."))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'torch' not in sys.modules, 'torch loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=REPO)
