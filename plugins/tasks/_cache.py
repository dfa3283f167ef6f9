"""The on-disk cache of a built-in task's arrays, keyed by everything that changes the data."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness import HarnessError, Task


def task_arrays(
    task: Task,
    cache_dir: Path,
    build: Callable[[], dict[str, Any]],
    *,
    exclude: Iterable[str] = ("target_accuracy",),
    package: str | None = None,
) -> dict[str, Any]:
    """``task``'s cached arrays (built with ``build`` on a miss).

    The cache key is the task's name, ``data_version`` and params, less ``exclude`` (params
    that do not change the data), plus the version of the data ``package`` when given.
    Raises the task's :meth:`~harness.Task.unavailable` reason as a ``HarnessError``.
    """
    from harness.data import cached_arrays

    if (reason := task.unavailable()) is not None:
        raise HarnessError(reason)
    spec: dict[str, Any] = {"task": task.name, "version": task.data_version}
    if package is not None:
        from importlib.metadata import version

        spec[package] = version(package)
    spec.update(task.params.model_dump(exclude=set(exclude)))
    return cached_arrays(cache_dir, task.name, spec, build)
