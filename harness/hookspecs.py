"""Hook specifications: the whole contract between harness and its plugins.

A plugin is a module (or object) exposed through an entry point of group
``harness``; it implements any of these hooks with ``@harness.hookimpl``.

Every registration hook runs in the driver *and* in every worker (workers load
the plugins themselves and rebuild a run from its recipe), so it must be cheap
and free of side effects: no data loading, no heavy imports at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_architectures(register: Callable[[Any], None]) -> None:
    """Register :class:`harness.Architecture` subclasses.

    Call ``register(MyArchitecture)`` once per class; its ``name`` class
    attribute is the name suites use. Runs in: driver and workers.
    """


@hookspec
def register_tasks(register: Callable[[Any], None]) -> None:
    """Register :class:`harness.Task` subclasses.

    Call ``register(MyTask)`` once per class. Runs in: driver and workers.
    """


@hookspec
def register_metrics(register: Callable[[Any], None]) -> None:
    """Register metrics as :class:`harness.MetricSpec` objects.

    A metric spec names a factory that builds a ``torchmetrics.Metric`` for a
    given :class:`harness.TaskInfo`. Runs in: driver and workers.
    """


@hookspec
def register_reporters(register: Callable[[Any], None]) -> None:
    """Register :class:`harness.Reporter` subclasses (report writers).

    Runs in: driver only (reports are written where results are collected).
    """
