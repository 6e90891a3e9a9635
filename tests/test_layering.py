"""The import graph goes one way: layers from the bottom up, no cycles, no private names across modules.

Every ``import`` statement of the package counts, module-level or inside a function (a function-level
import hides a cycle from Python, not from this walk). Layers, lowest first (a module may import its
own layer and those below; the README's rule is engine <- tasks/judges/stats <- organisms <- suite <-
pytest plugin), as ``LAYERS`` lists them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mechinterp"

LAYERS: list[tuple[str, ...]] = [
    ("mechinterp.io", "mechinterp.resources", "mechinterp.lazy"),
    ("mechinterp", "mechinterp.engine"),  # the package root re-exports the engine
    ("mechinterp.experiments",),
    ("mechinterp.vocabulary",),  # the experiment table names the experiments' functions
    ("mechinterp.tasks", "mechinterp.judges", "mechinterp.stats"),
    ("mechinterp.claims",),
    ("mechinterp.organisms",),
    ("mechinterp.report", "mechinterp.suite", "mechinterp.bench"),
    ("mechinterp.pytest_plugin", "mechinterp.cli", "mechinterp.bench.__main__", "*.cli"),
    ("mechinterp.testing",),  # test helpers import the library; nothing imports them
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import of a mechinterp module."""
    out = []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "mechinterp"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "mechinterp":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (base, a.name, node.lineno))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    """The index of the most specific layer entry naming ``module`` (or a package above it)."""
    best, depth = None, -1
    for i, entries in enumerate(LAYERS):
        for entry in entries:
            if entry.startswith("*."):
                hit = module.endswith(entry[1:])
                d = 99 if hit else -1
            else:
                hit = module == entry or module.startswith(entry + ".")
                d = entry.count(".") if hit else -1
            if hit and d > depth:
                best, depth = i, d
    if best is None:
        raise AssertionError(f"module {module} is in no layer of tests/test_layering.py")
    return best


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_imports_go_down_the_layers():
    bad = [f"{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)}) at line {line}"
           for src, edges in GRAPH.items() for dst, _, line in edges
           if dst in MODULES and layer_of(dst) > layer_of(src)]
    assert not bad, "\n".join(bad)


def _private(name: str) -> bool:
    """``_name`` is private; a dunder such as ``__version__`` is public by convention."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{src}:{line} imports {what} from {dst}" for src, edges in GRAPH.items()
           for dst, what, line in edges if what and _private(what) and dst != src]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = {src: {dst for dst, _, _ in out if dst in MODULES and dst != src} for src, out in GRAPH.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_function_level_imports_and_private_names(tmp_path):
    """The walk itself: a function-level import and a private name are both found."""
    src = tmp_path / "mechinterp" / "engine" / "x.py"
    src.parent.mkdir(parents=True)
    src.write_text("def f():\n    from mechinterp.engine.model import _hidden\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert _imports("mechinterp.engine.x", src) == [("mechinterp.engine.model", "_hidden", 2)]
    finally:
        ROOT = old


@pytest.mark.parametrize("module,layer", [("mechinterp.engine.model", 1), ("mechinterp.organisms.cli", 8),
                                          ("mechinterp.bench.suite_cost", 7), ("mechinterp.testing.tiny", 9)])
def test_layer_lookup(module, layer):
    assert layer_of(module) == layer


def test_readme_layout_table_matches_the_tree():
    """Every row of README's layout table names a path that exists, and every top-level entry of the
    package (module or subpackage) has a row."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [row.split("|") for row in section.splitlines() if row.startswith("| `")]
    paths = [(p, "git-ignored" in row[2]) for row in rows for p in re.findall(r"`([^`]+)`", row[1])]
    missing = [p for p, ignored in paths if not ignored and not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"README layout rows for paths that do not exist: {missing}"
    listed = {p.rstrip("/") for p, _ in paths}
    entries = {f"mechinterp/{p.name}" for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    covered = {e for e in entries if e in listed or any(x.startswith(e + "/") for x in listed)}
    assert covered == entries, f"package entries without a README layout row: {sorted(entries - covered)}"


def test_only_the_plugin_and_the_fixtures_import_pytest_at_module_level():
    """The library and the test helpers run without pytest (a script can drive the fake server)."""
    allowed = {"mechinterp.pytest_plugin", "mechinterp.testing.fixtures"}
    bad = []
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(m.split(".")[0] in ("pytest", "_pytest") for m in mods) and name not in allowed:
                bad.append(f"{name}:{node.lineno}")
    assert not bad, bad
