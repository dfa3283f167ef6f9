"""Plugins use only the public harness API, and the core stays light to import.

Design principle 1: the built-ins in ``plugins/`` are written exactly like third-party plugins,
so they may import only what a third party may: the top-level ``harness`` names
(``harness.__all__``), the helper modules ``harness.nn`` and ``harness.data``, and
``harness.report.summary``. Principle 6: ``import harness`` and loading the plugins never
import torch, lightning, ray or mlflow.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness

REPO = Path(__file__).resolve().parents[1]
#: harness modules a plugin may import (besides the names in ``harness.__all__``)
PUBLIC_MODULES = frozenset(
    {"harness", "harness.nn", "harness.data", "harness.heads", "harness.report", "harness.report.summary"}
)
HEAVY = ("torch", "lightning", "pytorch_lightning", "ray", "mlflow")
#: plugin source trees: the built-ins, and the example third-party plugin
PLUGIN_TREES = {"builtins": REPO / "plugins", "example_plugin": REPO / "tests" / "example_plugin" / "src"}


def _is_harness(module: str) -> bool:
    return module == "harness" or module.startswith("harness.")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def private_imports(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: statement`` for each import of a non-public part of ``harness``.

    Imports of other libraries, of the plugin's own package (``harness_builtins...``, which is
    not ``harness``) and relative imports are fine.
    """
    offenders: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        bad: list[str] = []
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if _is_harness(a.name) and a.name not in PUBLIC_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_harness(node.module or ""):
            module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if module == "harness":  # a public name, or a public submodule (`from harness import nn`)
                    allowed = alias.name in harness.__all__ or full in PUBLIC_MODULES
                else:  # a public module from its package, or a name (not a private submodule) of a public one
                    allowed = full in PUBLIC_MODULES or (module in PUBLIC_MODULES and not _is_module(full))
                if not allowed:
                    bad.append(full)
        if bad:
            offenders.append(f"{filename}:{node.lineno}: {ast.unparse(node)}  (private: {', '.join(bad)})")
    return offenders


@pytest.mark.parametrize("tree", sorted(PLUGIN_TREES))
def test_plugins_import_only_the_public_api(tree: str) -> None:
    root = PLUGIN_TREES[tree]
    files = sorted(root.rglob("*.py"))
    assert files, f"no Python files under {root}"

    offenders: list[str] = []
    harness_imports = 0
    for path in files:
        source = path.read_text(encoding="utf-8")
        offenders += private_imports(source, str(path.relative_to(REPO)))
        harness_imports += source.count("from harness")
    assert harness_imports, "the checker found no harness imports at all: is it looking at the right files?"

    assert not offenders, (
        f"{tree} import private harness modules; use only `harness` ({', '.join(harness.__all__)}), "
        f"{', '.join(sorted(PUBLIC_MODULES - {'harness'}))}, or export what they need from "
        "harness/__init__.py:\n" + "\n".join(offenders)
    )


@pytest.mark.parametrize(
    ("statement", "flagged"),
    [
        ("from harness import Architecture, hookimpl", False),
        ("from harness.nn import masked_mean", False),
        ("import harness.nn as hnn", False),
        ("from harness.data import ArrayDataModule", False),
        ("from harness.report import summary", False),
        ("from harness.report.summary import summarize", False),
        ("from harness.report import analyze, render_html", False),
        ("from harness import report", False),
        ("from harness_builtins.tasks.digits import DigitsTask", False),
        ("from ._recurrent import recurrent_encoder", False),
        ("import torch", False),
        ("from harness.registry import Registry", True),
        ("from harness.interfaces import Architecture", True),
        ("import harness.plugins", True),
        ("from harness import plugins", True),
        ("from harness.report import html", True),
        ("def f():\n    from harness.train.trial import run_trial", True),
    ],
)
def test_checker(statement: str, flagged: bool) -> None:
    assert bool(private_imports(statement)) is flagged


def _imported_heavy(code: str, tmp_path: Path) -> list[str]:
    """Run ``code`` in a fresh interpreter (built-in plugins only) and list the heavy modules loaded."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}
    env["HARNESS_DISABLE_PLUGINS"] = "*"  # third-party plugins someone installed are not harness's doing
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_harness_is_light(tmp_path: Path) -> None:
    assert _imported_heavy("import harness", tmp_path) == []


def test_loading_the_plugins_is_light(tmp_path: Path) -> None:
    code = """
        import harness
        import harness.plugins
        registry = harness.plugins.get_registry()
        assert not registry.warnings, registry.warnings
        assert "lstm" in registry.architectures and "digits" in registry.tasks
        for kind in ("architectures", "tasks", "reporters"):  # instantiating validates params only
            for entry in registry.namespace(kind):
                entry.obj()
        registry.tasks.get("digits").obj().info()
    """
    assert _imported_heavy(code, tmp_path) == []


def test_public_names_are_light(tmp_path: Path) -> None:
    code = """
        import harness
        for name in harness.__all__:
            getattr(harness, name)
    """
    assert _imported_heavy(code, tmp_path) == []


def test_public_names_resolve() -> None:
    for name in harness.__all__:
        assert getattr(harness, name) is not None
    with pytest.raises(AttributeError):
        harness.no_such_name  # noqa: B018


# --- the typed API (issue 12): generic components, py.typed, names visible to type checkers -------


class _Sizes(harness.Params):
    hidden_size: int = 8


class _MoreSizes(_Sizes):
    num_layers: int = 1


def test_type_argument_sets_params() -> None:
    class Sized(harness.Architecture[_Sizes]):
        name = "sized"

    assert Sized.Params is _Sizes
    assert isinstance(Sized().params, _Sizes)
    assert Sized({"hidden_size": 3}).params.hidden_size == 3
    assert Sized(_Sizes(hidden_size=5)).params.hidden_size == 5

    class Narrower(Sized):  # an explicit Params that is the declared model or a subclass of it
        Params = _MoreSizes

    class Inherits(Narrower):  # keeps its parent's Params
        pass

    assert Narrower.Params is Inherits.Params is _MoreSizes
    assert Inherits().params.num_layers == 1


def test_generic_intermediate_base() -> None:
    from typing import TypeVar

    P = TypeVar("P", bound=_Sizes)

    class Base(harness.Task[P]):
        Params = _Sizes

    class Concrete(Base[_MoreSizes]):
        name = "concrete"

    assert Base.Params is _Sizes
    assert Concrete.Params is _MoreSizes


def test_unparametrised_components_keep_working() -> None:
    """Plugins written before the generic base (``class X(Architecture)`` + ``Params = ...``)."""

    class Old(harness.Architecture):
        name = "old"
        Params = _Sizes

    class NoParams(harness.Reporter):
        name = "none"

    assert Old.Params is _Sizes and Old().params.hidden_size == 8
    assert NoParams.Params is harness.Params


def test_params_that_contradict_the_type_argument_are_refused() -> None:
    with pytest.raises(TypeError, match=r"sets `Params = _Other` but its base declares _Sizes"):

        class _Other(harness.Params):
            pass

        class Contradicts(harness.Architecture[_Sizes]):
            name = "contradicts"
            Params = _Other


def test_public_names_are_visible_to_type_checkers() -> None:
    """``harness/__init__.py`` imports every exported name under ``TYPE_CHECKING`` (so
    ``from harness import Architecture`` is typed) and ``__all__`` is a literal list."""
    tree = ast.parse((REPO / "harness" / "__init__.py").read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                typed.update({alias.asname or alias.name: stmt.module for alias in stmt.names})
    literal = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
    )
    assert literal == harness.__all__
    assert typed == harness._EXPORTS
    assert set(typed) == set(harness.__all__) - {"__version__"}


def test_py_typed_is_shipped() -> None:
    import tomllib

    assert (REPO / "harness" / "py.typed").is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["harness"]


#: type-checked by mypy below: the errors it must report are marked ``# error: CODE``
TYPED_PLUGIN = """
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Architecture, InputSpec, MetricSpec, Params, Task, TaskInfo, hookimpl
from harness.registry import Registry


class SizeParams(Params):
    hidden_size: int = 8


class Sized(Architecture[SizeParams]):
    name = "sized"

    def width(self) -> int:
        return self.params.hidden_size

    def typo(self) -> int:
        return int(self.params.hiden_size)  # error: attr-defined


def lookups(registry: Registry) -> tuple[type[Task[Any]], MetricSpec, type[Architecture[Any]]]:
    task = registry.tasks.get("digits").obj
    info: TaskInfo = task().info()
    assert isinstance(info.input, InputSpec)
    return task, registry.metrics.get("accuracy").obj, registry.namespace("architectures").get("lstm").obj


def wrong_lookup(registry: Registry) -> MetricSpec:
    return registry.tasks.get("digits").obj  # error: return-value


@hookimpl
def register_architectures(register: Callable[[type[Architecture[Any]]], None]) -> None:
    register(Sized)
    register(SizeParams)  # error: arg-type
"""


def _mypy(tmp_path: Path, *args: str) -> set[tuple[str, int, str]]:
    """``(file, line, code)`` of every error mypy reports, run in ``tmp_path`` (with this checkout's
    harness on MYPYPATH: an editable install is an import hook mypy does not follow)."""
    # mypy comes with the dev extra (the README's test install): a missing one is a failure, not a skip
    env = {**os.environ, "MYPYPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            os.devnull,
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports=silent",
            "--no-error-summary",
            "--show-error-codes",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    errors = set()
    for line in done.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: .*\[([\w-]+)\]$", line)
        if match:
            errors.add((Path(match.group(1)).as_posix(), int(match.group(2)), match.group(3)))
    return errors


@pytest.mark.slow
def test_plugin_code_type_checks(tmp_path: Path) -> None:
    """mypy sees the typed API: ``self.params`` fields, registry lookups, ``register``."""
    (tmp_path / "typed_plugin.py").write_text(TYPED_PLUGIN, encoding="utf-8")
    expected = {
        ("typed_plugin.py", number, line.split("# error: ")[1].strip())
        for number, line in enumerate(TYPED_PLUGIN.splitlines(), start=1)
        if "# error: " in line
    }
    assert _mypy(tmp_path, "--strict", "typed_plugin.py") == expected
