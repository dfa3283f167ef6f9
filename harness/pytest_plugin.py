"""The pytest fixtures of the conformance kit: ``harness_registry``, ``register_plugin``,
``suite_file`` and ``harness_cli``.

Enabled with ``pytest_plugins = ["harness.testing"]`` in a plugin's ``conftest.py`` (the kit
names this module in its own ``pytest_plugins``), or ``pytest_plugins = ["harness.pytest_plugin"]``.
It sits above the command line (``harness_cli`` runs it in-process), while the checks in
:mod:`harness.testing` sit below it (``harness plugins check`` runs them): one direction each.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from click.testing import Result

    from harness.registry import Registry


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed to use the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def _forget_registries() -> None:
        from harness.plugins import clear_cache

        clear_cache()

    @pytest.fixture
    def harness_registry() -> Iterator[Registry]:
        """A freshly built registry of the installed plugins (the cache is cleared around the test)."""
        from harness.plugins import get_registry

        _forget_registries()
        yield get_registry(strict=False)
        _forget_registries()

    @pytest.fixture
    def register_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Registry]]:
        """Factory: ``register_plugin(plugin) -> Registry``: load ``plugin`` (a module, or any object
        with ``@harness.hookimpl`` functions) as an extra plugin for this test only."""
        from harness.plugins import get_registry

        added: list[str] = []

        def register(plugin: Any, name: str | None = None) -> Registry:
            if name is None:
                is_module = isinstance(plugin, types.ModuleType)
                name = plugin.__name__ if is_module else f"_harness_test_plugin_{len(added)}_{id(plugin):x}"
            if sys.modules.get(name) is not plugin:  # loaded by name, like a module in HARNESS_PLUGINS
                monkeypatch.setitem(sys.modules, name, plugin)
            added.append(name)
            current = [m for m in os.environ.get("HARNESS_PLUGINS", "").split(",") if m.strip()]
            monkeypatch.setenv("HARNESS_PLUGINS", ",".join([*current, name]))
            _forget_registries()
            return get_registry(strict=False)

        yield register
        _forget_registries()

    @pytest.fixture
    def suite_file(tmp_path: Path) -> Callable[..., Path]:
        """Factory: ``suite_file(data, name="suite.yaml") -> Path``: write a suite (a dict, or YAML
        text) into the test's temporary folder."""
        import textwrap

        import yaml

        def write(data: Mapping[str, Any] | str, name: str = "suite.yaml") -> Path:
            path = tmp_path / name
            text = (
                textwrap.dedent(data)
                if isinstance(data, str)
                else yaml.safe_dump(dict(data), sort_keys=False)
            )
            path.write_text(text, encoding="utf-8")
            return path

        return write

    @pytest.fixture
    def harness_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
        """Factory: ``harness_cli(*args) -> click Result``: run ``harness ARGS`` in-process, in the
        test's temporary folder, against a temporary MLflow sqlite store and data cache."""
        from click.testing import CliRunner

        from harness.cli import main

        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("COLUMNS", "250")

        def invoke(*args: str) -> Result:
            _forget_registries()
            return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)

        return invoke
