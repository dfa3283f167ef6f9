"""The executor contract: run payloads, report starts and results as they happen."""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

Payload = dict[str, Any]
Result = dict[str, Any]
OnStart = Callable[[Payload], None]
OnResult = Callable[[Result], None]


class Executor(Protocol):
    name: str
    #: how many runs can execute at once (for the progress display)
    capacity: int

    def start(self, resources: dict[str, float]) -> None:
        """Acquire compute; raise ResourceError if no node can host one run."""

    def run(self, payloads: list[Payload], on_start: OnStart, on_result: OnResult) -> None:
        """Run every payload; call ``on_result`` once per payload, in finishing order."""

    def close(self) -> None:
        """Release what ``start`` acquired."""


def failed_result(payload: Payload, exc: BaseException, cause: str = "") -> Result:
    """A result for a run that died outside ``run_trial`` (worker crash, OOM kill...)."""
    now = time.time()
    keys = ("run_id", "suite", "task", "task_label", "architecture", "arch_label", "seed",
            "task_params", "arch_params", "trainer", "primary_metric", "direction", "grid", "resources")
    message = f"{type(exc).__name__}: {exc}".strip()
    return {
        **{k: payload[k] for k in keys if k in payload},
        "status": "failed",
        "error": (cause + message) if cause else message,
        "traceback": "".join(traceback.format_exception(exc)),
        "history": [],
        "host": socket.gethostname(),
        "started_at": now,
        "finished_at": now,
        "wall_time_s": 0.0,
    }


def describe_request(resources: dict[str, float]) -> str:
    return f"cpus: {resources.get('cpus', 1):g}, gpus: {resources.get('gpus', 0):g}"
