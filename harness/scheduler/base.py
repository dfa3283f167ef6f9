"""The executor contract: run payloads, report starts and results as they happen."""

from __future__ import annotations

import time
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
    #: cells never started because the suite stopped early (Ctrl-C, deadline)
    unscheduled: int
    #: whether ``execution.deadline`` stopped the suite
    deadline_hit: bool

    def start(self, resources: dict[str, float], execution: dict[str, Any] | None = None) -> None:
        """Acquire compute; raise ResourceError if no node can host one run.

        ``execution`` is the suite's ``execution:`` section (``max_retries``, ``deadline``).
        """

    def run(self, payloads: list[Payload], on_start: OnStart, on_result: OnResult) -> None:
        """Run every payload; call ``on_result`` once per payload, in finishing order.

        On KeyboardInterrupt: cancel what runs, report each as ``killed`` and re-raise.
        """

    def close(self) -> None:
        """Release what ``start`` acquired."""


def failed_result(payload: Payload, exc: BaseException | None, cause: str = "", *, kind: str | None = None,
                  message: str | None = None, attempts: int = 1, history: list[dict[str, float]] | None = None,
                  started: float | None = None, status: str | None = None) -> Result:
    """A result for a run that ended outside ``run_trial``: its worker died, or the driver stopped it.

    ``kind`` overrides the classification of ``exc`` (e.g. ``killed`` for Ctrl-C, ``timeout``);
    ``status`` overrides the status (``killed`` for cells the suite deadline cancelled);
    ``history`` holds the epoch rows the worker streamed before it stopped (partial metrics).
    """
    from harness.train.failures import classify, failure, one_line, status_for, trimmed_traceback
    from harness.train.trial import result_skeleton  # light: torch loads only inside run_trial

    kind = kind or (classify(exc) if exc is not None else "exception")
    text = message or (one_line(exc) if exc is not None else kind)
    result = result_skeleton(payload)
    if started:
        result["started_at"] = started
    now = time.time()
    result.update(
        status=status or status_for(kind),
        error=(cause + text) if cause else text,
        traceback=trimmed_traceback(exc) if exc is not None else "",
        failure=failure(kind, (cause + text) if cause else text, attempts),
        history=list(history or []),
        attempts=attempts,
        finished_at=now,
        wall_time_s=max(0.0, now - result["started_at"]),
    )
    return result


def describe_request(resources: dict[str, float]) -> str:
    text = f"cpus: {resources.get('cpus', 1):g}, gpus: {resources.get('gpus', 0):g}"
    workers = int(resources.get("workers", 1) or 1)
    return text + (f", workers: {workers}" if workers > 1 else "")
