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
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness

REPO = Path(__file__).resolve().parents[1]
#: harness modules a plugin may import (besides the names in ``harness.__all__``)
PUBLIC_MODULES = frozenset({"harness", "harness.nn", "harness.data", "harness.heads", "harness.report", "harness.report.summary"})
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
