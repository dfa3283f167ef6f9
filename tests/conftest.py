"""Shared pytest fixtures for the harness test suite.

Keep fixtures here generic (useful to more than one test module) and give each a docstring
saying what it sets up and what it undoes. Nothing here may import torch, lightning, ray or
mlflow at module level: collecting the tests must stay fast.

Plugin fixtures at a glance:

- ``clean_plugins``: no ``HARNESS_PLUGINS`` / ``HARNESS_DISABLE_PLUGINS`` from the caller's
  shell, and a fresh plugin registry before and after the test.
- ``builtins_only``: like ``clean_plugins``, plus every installed third-party plugin disabled
  (``HARNESS_DISABLE_PLUGINS=*``), for tests that assert exact lists of registered names.
- ``make_plugin``: write a throw-away plugin module and load it through ``HARNESS_PLUGINS``.
- ``cli``: run the ``harness`` command in-process through click's ``CliRunner``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import MlflowServer

if TYPE_CHECKING:
    from click.testing import Result

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ENV = ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the directory holding ``pyproject.toml``)."""
    return REPO_ROOT


def _clear_registry() -> None:
    from harness.plugins import clear_cache

    clear_cache()


@pytest.fixture
def clean_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove the plugin env switches for this test and clear the registry cache around it.

    ``harness.plugins.get_registry()`` is cached per value of the env switches; clearing it
    before and after means the test sees the plugins installed *now*, and leaves no registry
    built from its temporary modules behind for the next test.
    """
    for name in PLUGIN_ENV:
        monkeypatch.delenv(name, raising=False)
    _clear_registry()
    yield
    _clear_registry()


@pytest.fixture
def fault_workdir(clean_plugins: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``tmp_path`` as the working directory, with the ``fault`` test plugin (tests/fault_plugin.py)
    loaded, a private data cache and MLflow in ``./mlflow.db``."""
    monkeypatch.setenv("HARNESS_PLUGINS", "tests.fault_plugin")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    _clear_registry()
    return tmp_path


@pytest.fixture
def builtins_only(clean_plugins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the built-in plugins: installed third-party plugins are disabled (``*``).

    Use it where a test asserts exact lists of names, so that a plugin someone installed in
    the environment (or that another test run installs meanwhile) does not change them.
    Modules named in ``HARNESS_PLUGINS`` (see ``make_plugin``) still load.
    """
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "*")
    _clear_registry()


@pytest.fixture
def make_plugin(
    clean_plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., str]]:
    """Factory: ``make_plugin(module_name, source, enable=True) -> module_name``.

    Writes ``source`` (dedented) as ``<tmp_path>/plugin_modules/<module_name>.py``, puts that
    folder on ``sys.path`` and, with ``enable=True``, appends the module to ``HARNESS_PLUGINS``
    so the next ``get_registry()`` loads it as a plugin. At teardown the module is removed from
    ``sys.modules`` (``monkeypatch`` restores the env and ``sys.path``).
    """
    folder = tmp_path / "plugin_modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    created: list[str] = []

    def factory(module_name: str, source: str, enable: bool = True) -> str:
        (folder / f"{module_name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        created.append(module_name)
        sys.modules.pop(module_name, None)
        importlib.invalidate_caches()
        if enable:
            current = [m for m in os.environ.get("HARNESS_PLUGINS", "").split(",") if m.strip()]
            monkeypatch.setenv("HARNESS_PLUGINS", ",".join([*current, module_name]))
        _clear_registry()
        return module_name

    yield factory
    for module_name in created:
        sys.modules.pop(module_name, None)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``harness ARGS...`` in-process with click's ``CliRunner``; returns the ``Result``.

    The terminal is made wide (``COLUMNS=250``) so that rich tables do not wrap the names a
    test looks for. ``result.output`` holds stdout and stderr together. Exceptions are caught
    by the runner (see ``result.exception``), as they would be by the shell.
    """
    from click.testing import CliRunner

    from harness.cli import main

    monkeypatch.setenv("COLUMNS", "250")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=True)

    return invoke


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (sqlite backend, local artifacts) for one test; its URL."""
    server = MlflowServer(tmp_path)
    try:
        server.start()
    except RuntimeError:
        server.kill()
        pytest.fail("mlflow server did not start")
    try:
        yield server.url
    finally:
        server.kill(signal.SIGTERM)
