"""The conformance kit: checks that a plugin's components keep the harness contracts.

Use it from a plugin's own tests::

    from harness.testing import assert_conforms, check_architecture
    from harness_myplugin import MyArchitecture

    def test_conforms():
        assert_conforms(check_architecture(MyArchitecture))

or from the command line: ``harness plugins check DIST_OR_MODULE``. Every ``check_*``
function returns a list of :class:`CheckResult` (one per check, never raising for a broken
component); :func:`assert_conforms` turns the failures into one ``AssertionError``.

It is also an opt-in pytest plugin (``pytest_plugins = ["harness.testing"]`` in a
``conftest.py``) with the fixtures ``harness_registry``, ``register_plugin``, ``suite_file``
and ``harness_cli``: they live in :mod:`harness.pytest_plugin`, which pytest loads through this
module's ``pytest_plugins``. Importing this module is cheap: torch loads inside the checks.
"""

from __future__ import annotations

from harness.testing._common import CheckResult, assert_conforms
from harness.testing.architecture import check_architecture
from harness.testing.components import check_metric, check_reporter
from harness.testing.plugin import check_plugin
from harness.testing.task import check_task

#: pytest loads the kit's fixtures from here when a conftest names this package in its pytest_plugins
pytest_plugins = ["harness.pytest_plugin"]

__all__ = [
    "CheckResult",
    "assert_conforms",
    "check_architecture",
    "check_metric",
    "check_plugin",
    "check_reporter",
    "check_task",
]
