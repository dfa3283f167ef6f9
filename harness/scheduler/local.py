"""In-process executor: one run after another, for debugging and tests.

It cannot kill a run it hosts: the suite deadline is checked between runs, and a per-run
timeout is left to Lightning's ``max_time``. Ctrl-C records the current run as killed.
"""

from __future__ import annotations

import time
from typing import Any

from harness.errors import ResourceError
from harness.scheduler.base import OnResult, OnStart, Payload, describe_request, failed_result


class LocalExecutor:
    name = "local"
    capacity = 1

    def __init__(self) -> None:
        self.unscheduled = 0
        self.deadline_hit = False
        self.deadline: float | None = None

    def start(self, resources: dict[str, float], execution: dict[str, Any] | None = None) -> None:
        self.deadline = (execution or {}).get("deadline")
        if int(resources.get("workers", 1) or 1) > 1:
            raise ResourceError(
                f"The suite asks for {describe_request(resources)} per run: multi-worker (data-parallel) "
                "runs need Ray Train. Use --executor ray, or set resources.workers to 1."
            )
        gpus = float(resources.get("gpus", 0))
        if gpus <= 0:
            return
        import torch

        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available < max(1, int(gpus)):
            raise ResourceError(
                f"The suite asks for {describe_request(resources)} per run, but this machine has "
                f"{available} CUDA GPU(s). Set resources.gpus to 0 (or at most {available}), "
                "or run on a machine or Ray cluster with GPUs."
            )

    def run(self, payloads: list[Payload], on_start: OnStart, on_result: OnResult) -> None:
        from harness.train.trial import run_trial

        suite_start = time.monotonic()
        for i, payload in enumerate(payloads):
            if self.deadline and time.monotonic() - suite_start > float(self.deadline):
                self.deadline_hit = True
                self.unscheduled = len(payloads) - i
                return
            on_start(payload)
            history: list[dict[str, float]] = []
            try:
                result = run_trial(payload, on_epoch=history.append)
            except KeyboardInterrupt:
                on_result(failed_result(payload, None, kind="killed", history=history,
                                        message="interrupted (Ctrl-C); run the suite again to resume"))
                self.unscheduled = len(payloads) - i - 1
                raise
            except Exception as exc:  # run_trial records its own failures; this is a last resort
                result = failed_result(payload, exc, history=history)
            result["attempts"] = 1
            on_result(result)

    def close(self) -> None:
        return None
