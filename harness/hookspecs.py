"""Hook specifications: the whole contract between harness and its plugins.

A plugin is a module (or object) exposed through an entry point of group
``harness``; it implements any of these hooks with ``@harness.hookimpl``.

Every registration hook runs in the driver *and* in every worker (workers load
the plugins themselves and rebuild a run from its recipe), so it must be cheap
and free of side effects: no data loading, no heavy imports at module level.

The hook API has a version, :data:`HOOK_API_VERSION` (``harness.HOOK_API_VERSION``).
Its major number changes only when a hook changes incompatibly; a plugin may
declare the versions it supports with a module attribute such as
``HARNESS_API = ">=1,<2"`` (a PEP 440 version specifier), and a plugin whose
range excludes this harness is refused at load time, with a message, instead
of failing mid-run. ``docs/hooks.md`` is generated from the docstrings below
(``harness list hooks --format markdown``): each says what ``register``
accepts, where the hook runs (``Runs in:``) and since which API version it
exists (``Since:``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # annotations only: importing the hook specs stays light
    from harness.interfaces import Architecture, MetricSpec, Reporter, Task

PROJECT = "harness"
#: the version of the hook API below (major.minor); see the module docstring
HOOK_API_VERSION = "1.1"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_architectures(register: Callable[[type[Architecture[Any]]], None]) -> None:
    """Register :class:`harness.Architecture` subclasses.

    ``register(cls)``: call once per class (the class itself, not an instance).
    Its ``name`` class attribute is the name suites use; its ``Params`` (a
    :class:`harness.Params` subclass, given as the type argument of the base:
    ``class MyArch(harness.Architecture[MyParams])``) validates the suite's
    ``params``.

    Runs in: driver and workers.
    Since: hook API 1.0.
    """


@hookspec
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    """Register :class:`harness.Task` subclasses.

    ``register(cls)``: call once per class (the class itself, not an instance).
    Its ``name`` class attribute is the name suites use; its ``Params`` (a
    :class:`harness.Params` subclass, given as the type argument of the base:
    ``class MyTask(harness.Task[MyParams])``) validates the suite's
    ``params``.

    Runs in: driver and workers.
    Since: hook API 1.0.
    """


@hookspec
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register metrics as :class:`harness.MetricSpec` objects.

    ``register(spec)``: call once per :class:`harness.MetricSpec`. A spec
    names a factory that builds a ``torchmetrics.Metric`` for a given
    :class:`harness.TaskInfo`, the output kinds it accepts and its direction
    (``"max"`` or ``"min"``).

    Runs in: driver and workers.
    Since: hook API 1.0.
    """


@hookspec
def register_reporters(register: Callable[[type[Reporter[Any]]], None]) -> None:
    """Register :class:`harness.Reporter` subclasses (report writers).

    ``register(cls)``: call once per class (the class itself, not an instance).
    Its ``name`` class attribute identifies it; after a suite runs, every
    registered reporter writes ``<filename><suffix>`` into the report folder.
    ``render``/``write`` receive the suite's :class:`harness.RunRecord` objects
    (since hook API 1.1; a reporter written for 1.0, which read each record as a
    mapping, keeps working through ``RunRecord.get`` / ``record["key"]``).

    Runs in: driver only (reports are written where results are collected).
    Since: hook API 1.0.
    """
