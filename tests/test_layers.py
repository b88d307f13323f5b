"""The import graph: layers that point one way, no cycles, nothing hidden in a function.

Every import of a project module (``harness``, ``training``, ``fixtures``, ``benchmarks``,
``tests``), at module level or inside a function, is an arrow of the graph. ``LAYERS`` names a
layer for each package of ``harness/`` (every module inside takes its package's layer, unless
it is named on its own) and for the few small modules at its top; a module may import its own
layer or any below, never above. The README's layout table is this table (a test checks it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "training", "fixtures", "benchmarks", "tests")

LAYERS: dict[str, int] = {
    # 0: small pure building blocks, records and data, no model, no pytest
    "harness.files": 0,
    "harness.formatting": 0,
    "harness.progress": 0,
    "harness.configfile": 0,
    "harness.deepeval_env": 0,
    "harness.numbers": 0,
    "harness.records": 0,
    "harness.data": 0,
    "harness.sql": 0,
    # 1: models and adapters, their loading and the pool that keeps them
    "harness.models": 1,
    # 2: the engine: batches, the cache, shards, generation and log-likelihoods
    "harness.engine": 2,
    # 3: the tasks and their registry
    "harness.tasks": 3,
    # 4: the experiment and training config files
    "harness.config": 4,
    # 5: from rows to conclusions; the training package sits beside it
    "harness.report": 5,
    "training": 5,
    # 6: the pytest plugins; 7: the CLI
    "harness.plugins": 6,
    "harness.cli": 7,
    # the pytest layer over all of it
    "fixtures": 8,
    "benchmarks": 9,
    "tests": 10,
}
# Function-local imports of project modules, each deferred for a reason that is not hiding an
# arrow (the arrow is in the graph all the same): a command's --help must not wait seconds for
# deepeval, torch or transformers, which these modules import.
DEFERRED_OK = {
    "harness.cli.bench": {
        "harness.models.loading",
        "harness.plugins.bench_preflight",
        "harness.plugins.task_options",
        "harness.data.sources",
    },
    "harness.cli.data": {"harness.data.check", "harness.data.fetch", "harness.data.sources"},
    "harness.cli.schema": {"harness.config.experiment"},
    "harness.cli.score_spider": {"harness.tasks.score_spider"},
    "training._setup": {"training._data", "training._guard", "training._progress"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            out[_module_name(path)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported project module, inside a function?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] in PACKAGES and resolve(alias.name):
                        found.append((resolve(alias.name), nested))
            elif (
                isinstance(child, ast.ImportFrom)
                and child.module
                and child.level == 0
                and child.module.split(".")[0] in PACKAGES
            ):
                for alias in child.names:  # `from harness.tasks import mmlu` imports a module
                    target = resolve(f"{child.module}.{alias.name}") or resolve(child.module)
                    if target:
                        found.append((target, nested))
            visit(child, inner)

    visit(tree, False)
    return found


def _layer(module: str) -> int:
    """The layer of ``module``: its own entry, else its nearest package's."""
    if module == "harness":  # the package's __init__: a docstring and the bitsandbytes filter
        return LAYERS["harness.models"]
    name = module
    while name:
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    raise AssertionError(f"{module}: no layer declared in tests/test_layers.py LAYERS")


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool]]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_library_module_has_a_layer(graph):
    for module in graph:
        if module.startswith(("harness", "training")):
            _layer(module)


def test_no_arrow_points_up(graph):
    upward = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in graph.items()
        for t, _ in targets
        if _layer(t) > _layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_the_library_imports_no_pytest_layer_and_harness_no_training(graph):
    bad = [
        f"{m} imports {t}"
        for m, targets in graph.items()
        if m.startswith(("harness", "training"))
        for t, _ in targets
        if t.split(".")[0] in ("fixtures", "benchmarks", "tests")
    ]
    bad += [
        f"{m} imports {t}"
        for m, targets in graph.items()
        if m.startswith("harness")
        for t, _ in targets
        if t.split(".")[0] == "training"
    ]
    assert not bad, "\n".join(bad)


def test_no_cycles(graph):
    library = {
        m: {t for t, _ in ts if t.startswith(("harness", "training")) and t != m}
        for m, ts in graph.items()
        if m.startswith(("harness", "training"))
    }
    # A package's __init__ may import its own submodules (a registry); a submodule importing a
    # sibling imports the package first, which is not an arrow back to the registry.
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(library.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
                return
            if state.get(nxt) is None:
                visit(nxt, path + [nxt])
                if cycle:
                    return
        state[node] = 2

    for m in sorted(library):
        if state.get(m) is None and not cycle:
            visit(m, [m])
    assert not cycle, " -> ".join(cycle)


def test_no_hidden_function_local_imports(graph):
    hidden = [
        f"{m} imports {t} inside a function"
        for m, targets in graph.items()
        if m.startswith(("harness", "training", "fixtures", "benchmarks"))
        for t, nested in targets
        if nested and t not in DEFERRED_OK.get(m, set())
    ]
    assert not hidden, "\n".join(hidden)


def test_a_registered_task_needs_no_entry_of_its_own():
    """A new task module takes the tasks package's layer: only the package has an entry."""
    from harness.tasks import TASKS

    assert not [m for m in LAYERS if m.startswith("harness.tasks.")]
    for name, task in TASKS.items():
        module = type(task).__module__
        assert module.startswith("harness.tasks."), (name, module)
        assert _layer(module) == LAYERS["harness.tasks"]
    assert _layer("harness.tasks.a_new_task") == LAYERS["harness.tasks"]


LAYOUT_HEADER = "| package | layer | what it holds |"


def _layout_table(path: Path) -> dict[str, int]:
    """The layout table of a markdown file, as LAYERS writes it: ``{module: layer}``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert LAYOUT_HEADER in lines, f"{path.name}: no layout table (a line {LAYOUT_HEADER!r})"
    rows: dict[str, int] = {}
    for line in lines[lines.index(LAYOUT_HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        package, layer = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:2])
        module = package.removesuffix("/").removesuffix(".py").replace("/", ".")
        assert module not in rows, f"{path.name}: {package} listed twice"
        rows[module] = int(layer)
    return rows


def test_the_readmes_layout_table_is_the_layer_table():
    """The README's layout table lists exactly the entries of LAYERS, each with its layer."""
    assert _layout_table(ROOT / "README.md") == LAYERS
