"""Executors: ``ray`` (default) and ``local`` (in-process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import HarnessError, suggest

if TYPE_CHECKING:
    from harness.scheduler.base import Executor

#: the names ``--executor`` accepts (importing this module stays cheap: the CLI reads it at start-up)
EXECUTORS = ("ray", "local")


def make_executor(name: str, address: str | None = None, dashboard: bool = False) -> Executor:
    if name == "ray":
        from harness.scheduler.ray_executor import RayExecutor

        return RayExecutor(address, dashboard=dashboard)
    if name == "local":
        if address:
            raise HarnessError("--address joins a Ray cluster and needs --executor ray; drop one of them.")
        if dashboard:
            raise HarnessError(
                "--dashboard starts the Ray dashboard and needs --executor ray; drop one of them."
            )
        from harness.scheduler.local import LocalExecutor

        return LocalExecutor()
    raise HarnessError(
        f"Unknown executor `{name}`. {suggest(name, EXECUTORS)}Choose one of: {', '.join(EXECUTORS)}."
    )
