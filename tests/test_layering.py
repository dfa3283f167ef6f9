"""Imports inside ``harness/`` run one way: the run records at the bottom, the CLI at the top.

The graph is read from the source (no import is executed): every ``import`` / ``from … import``
of a ``harness`` module counts, at module level *and* inside functions — a lazy import hides a
cycle from Python, not from this test. Imports under ``if TYPE_CHECKING:`` are annotations only
and do not count. A *unit* is a sub-package (``harness.report``) or a top-level module
(``harness.matrix``); the graph of units must have no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "harness"
#: the bottom of the graph: what each may import from harness (nothing else)
BOTTOM = {
    "harness.errors": set(),
    "harness.settings": set(),
    "harness.records": {"harness.settings"},
    "harness.provenance": set(),
    "harness.train.failures": {"harness.records", "harness.settings"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[str]:
    """Every harness module imported anywhere in ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for inner in node.orelse:
                yield from _imports(inner)
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "harness":  # from harness import x: x may be a submodule
                yield from (
                    f"harness.{a.name}"
                    if (ROOT / a.name).exists() or (ROOT / f"{a.name}.py").exists()
                    else "harness"
                    for a in node.names
                )
            elif node.module.startswith("harness."):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("harness."))
        yield from _imports(node)


def _graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        out[name] = {m for m in _imports(ast.parse(path.read_text(encoding="utf-8"))) if m != name}
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_unit_graph_has_no_cycle() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        if module == "harness":  # the package's lazy public names (importlib by name) are not edges
            continue
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    assert _cycle(units) is None, f"import cycle between harness units: {' → '.join(_cycle(units) or [])}"


@pytest.mark.parametrize("module", sorted(BOTTOM))
def test_the_bottom_modules_import_nothing_above_them(module: str) -> None:
    extra = _graph()[module] - BOTTOM[module]
    assert not extra, f"{module} must stay at the bottom of the import graph, but imports {sorted(extra)}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a planted two-unit cycle (and a longer one) are found."""
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_lazy_and_type_checking_imports_are_told_apart() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from harness.report import analysis\n"
        "def f():\n    from harness.runner import run_plan\n"
        "from harness.records import RunRecord\n"
    )
    assert set(_imports(tree)) == {"harness.runner", "harness.records"}
