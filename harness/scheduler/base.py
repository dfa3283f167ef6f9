"""The executor contract: run payloads, report starts and results as they happen."""

from __future__ import annotations

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
    from harness.train.trial import result_skeleton  # light: torch loads only inside run_trial

    message = f"{type(exc).__name__}: {exc}".strip()
    result = result_skeleton(payload)
    result.update(
        status="failed",
        error=(cause + message) if cause else message,
        traceback="".join(traceback.format_exception(exc)),
        history=[],
        finished_at=result["started_at"],
        wall_time_s=0.0,
    )
    return result


def describe_request(resources: dict[str, float]) -> str:
    return f"cpus: {resources.get('cpus', 1):g}, gpus: {resources.get('gpus', 0):g}"
