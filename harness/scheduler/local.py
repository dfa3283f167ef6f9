"""In-process executor: one run after another, for debugging and tests."""

from __future__ import annotations

from harness.errors import ResourceError
from harness.scheduler.base import OnResult, OnStart, Payload, describe_request, failed_result


class LocalExecutor:
    name = "local"
    capacity = 1

    def start(self, resources: dict[str, float]) -> None:
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

        for payload in payloads:
            on_start(payload)
            try:
                result = run_trial(payload)
            except Exception as exc:  # run_trial records its own failures; this is a last resort
                result = failed_result(payload, exc)
            on_result(result)

    def close(self) -> None:
        return None
