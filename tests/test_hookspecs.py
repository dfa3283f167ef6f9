"""Meta tests of the hook API (harness/hookspecs.py): every hook is documented, tested
through a plugin, and described in docs/hooks.md (generated; regenerate it with
``harness list hooks --format markdown > docs/hooks.md``)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from packaging.version import Version

import harness
from harness import hookspecs
from harness.introspect import hook_docs, hooks_markdown

if TYPE_CHECKING:
    from click.testing import Result

TESTS = Path(__file__).resolve().parent
HOOKS_MD = TESTS.parent / "docs" / "hooks.md"


def _hooks() -> dict[str, Callable[..., Any]]:
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if inspect.isfunction(function) and hasattr(function, f"{hookspecs.PROJECT}_spec")
    }


HOOKS = sorted(_hooks())


def test_there_are_hooks() -> None:
    assert {"register_architectures", "register_tasks", "register_metrics", "register_reporters"} <= set(
        HOOKS
    )


def test_hook_api_version() -> None:
    version = Version(hookspecs.HOOK_API_VERSION)
    assert len(version.release) == 2, "HOOK_API_VERSION is major.minor"
    assert harness.HOOK_API_VERSION == hookspecs.HOOK_API_VERSION


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    function = _hooks()[name]
    doc = inspect.getdoc(function) or ""
    assert doc, f"hook {name} has no docstring: document it in harness/hookspecs.py"
    parameters = inspect.signature(function).parameters
    for parameter in parameters.values():
        assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name}) lacks a type"
    if name.startswith("register_"):
        assert list(parameters) == ["register"], f"{name} must take exactly `register`"
        assert re.search(r"``register\(\w+\)``", doc), (
            f"{name}'s docstring must say what register(...) accepts"
        )
    else:
        for parameter in parameters:
            assert f"``{parameter}``" in doc, f"{name}'s docstring must describe its argument `{parameter}`"
    assert re.search(r"^Runs in: (driver|workers|driver and workers)\b", doc, re.MULTILINE), (
        f"{name}'s docstring needs a line 'Runs in: driver|workers|driver and workers'"
    )
    since = re.search(r"^Since: hook API (\d+\.\d+)\.$", doc, re.MULTILINE)
    assert since, f"{name}'s docstring needs a line 'Since: hook API X.Y.'"
    assert Version(since.group(1)) <= Version(hookspecs.HOOK_API_VERSION)


@pytest.mark.parametrize("name", [h for h in HOOKS if h.startswith("register_")])
def test_register_is_typed(name: str) -> None:
    """``register`` says what it accepts (a component class or a MetricSpec), not ``Any``."""
    import typing

    from harness import interfaces

    hints = typing.get_type_hints(_hooks()[name], vars(interfaces))
    (accepted,), returned = typing.get_args(hints["register"])
    assert returned in (None, type(None))
    assert accepted is not Any
    assert accepted is interfaces.MetricSpec or typing.get_origin(accepted) is type, accepted


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_tested_through_a_plugin(name: str) -> None:
    """Some test module (or a test plugin package under tests/) implements the hook."""
    pattern = re.compile(rf"@hookimpl\s*\n\s*def {name}\(register\b")
    users = [
        path.relative_to(TESTS)
        for path in TESTS.rglob("*.py")
        if path.name != Path(__file__).name and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert users, f"no test implements the hook {name} through a plugin (@hookimpl def {name}(register))"


def test_hook_docs_cover_every_hook() -> None:
    docs = {hook["name"]: hook for hook in hook_docs()}
    assert sorted(docs) == HOOKS
    for hook in docs.values():
        assert hook["runs_in"] and hook["since"] and hook["doc"]
        assert hook["signature"].startswith(f"{hook['name']}(register: Callable")


def test_docs_hooks_md_is_current() -> None:
    assert HOOKS_MD.exists(), "docs/hooks.md is missing: harness list hooks --format markdown > docs/hooks.md"
    assert HOOKS_MD.read_text(encoding="utf-8") == hooks_markdown(), (
        "docs/hooks.md is stale: regenerate it with `harness list hooks --format markdown > docs/hooks.md`"
    )


def test_list_hooks_cli(cli: Callable[..., Result]) -> None:
    result = cli("list", "hooks", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert result.output == hooks_markdown()

    table = cli("list", "hooks")
    assert table.exit_code == 0, table.output
    for name in HOOKS:
        assert name in table.output
    assert "driver and workers" in table.output
