"""The tree tells the pipeline: no import circles, and no module imports from a layer above its own.

Imports are read with ``ast`` (top-level and function-level alike, ``TYPE_CHECKING`` blocks excluded)
together with registry target strings (``"retrodistill.x.y:Name"``), which are imports too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "retrodistill"

# Bottom to top. A module may import its own layer's folders and anything below.
LAYERS = [
    {"__init__", "errors", "atomic", "registry", "specs", "revision", "precision", "executors", "cache", "memory"},
    {"data"},
    {"inference"},
    {"students", "losses"},
    {"index"},
    {"retrieval", "serve"},
    {"teachers", "generation"},
    {"eval"},
    {"training"},
    {"pipeline"},
    {"cli"},
]
TARGET = re.compile(r"""["'](retrodistill(?:\.\w+)+):\w+["']""")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, known: set[str]) -> set[str]:
    text = path.read_text()
    tree = ast.parse(text)
    skip = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("retrodistill"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("retrodistill")]
        for name in names:
            if name in known:
                found.add(name)
    found.update(m for m in TARGET.findall(text) if m in known)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: _imports(path, known) - {name} for name, path in files.items()}


def test_every_folder_has_a_layer() -> None:
    tops = {_top(m) for m in _graph()}
    assert tops <= set().union(*LAYERS), tops - set().union(*LAYERS)


def test_no_module_imports_from_a_layer_above() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(source)
    ]
    assert upward == []


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_check_sees_registry_strings_and_function_level_imports() -> None:
    graph = _graph()
    assert "retrodistill.retrieval.bm25s_bm25" in graph["retrodistill.retrieval"]  # a registry target
    assert "retrodistill.training.student" in graph["retrodistill.training"]
    assert "retrodistill.eval.harness" in graph["retrodistill.training.common"]  # imported inside a function
