"""Ray executor (the default): each cell is a Ray task with the suite's resources.

Joins ``--address`` / ``RAY_ADDRESS`` when given, otherwise starts a local Ray
instance for the duration of the suite. Submission is windowed to what the
cluster can run at once, so "running" in the progress display is real.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from typing import Any

from harness.errors import HarnessError, ResourceError
from harness.scheduler.base import OnResult, OnStart, Payload, describe_request, failed_result

FORWARDED_ENV = ("HARNESS_CACHE_DIR", "HARNESS_DISABLE_PLUGINS", "HARNESS_PLUGINS")


def _capacity(nodes: list[dict[str, Any]], cpus: float, gpus: float) -> int:
    total = 0
    for node in nodes:
        res = node.get("Resources", {})
        fits = math.floor(res.get("CPU", 0.0) / cpus + 1e-9) if cpus > 0 else 10**6
        if gpus > 0:
            fits = min(fits, math.floor(res.get("GPU", 0.0) / gpus + 1e-9))
        total += max(0, fits)
    return total


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.capacity = 1
        self._owned = False
        self._resources: dict[str, float] = {}

    def start(self, resources: dict[str, float]) -> None:
        import ray

        self._resources = dict(resources)
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,  # keep start-up chatter (auth notice) off the console
                    runtime_env={"env_vars": env} if env and self.address else None,
                )
            except Exception as exc:
                where = f"the Ray cluster at `{self.address}`" if self.address else "a local Ray instance"
                raise HarnessError(
                    f"Could not start or join {where} ({type(exc).__name__}: {str(exc)[:300]}). "
                    "Check --address / RAY_ADDRESS (e.g. 127.0.0.1:6379, and `ray status` there), "
                    "or use --executor local."
                ) from None
            self._owned = True
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus, gpus = float(resources.get("cpus", 1)), float(resources.get("gpus", 0))
        self.capacity = _capacity(nodes, cpus, gpus)
        if self.capacity < 1:
            largest = max(nodes, key=lambda n: (n["Resources"].get("GPU", 0), n["Resources"].get("CPU", 0)), default=None)
            have = largest["Resources"] if largest else {}
            self.close()
            raise ResourceError(
                f"The suite asks for {describe_request(resources)} per run, but no node of the Ray cluster can "
                f"host that (largest node: {have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs; "
                f"{len(nodes)} node(s)). Lower `resources` in the suite, or join a cluster with bigger "
                "nodes via --address."
            )

    def run(self, payloads: list[Payload], on_start: OnStart, on_result: OnResult) -> None:
        import ray

        from harness.train.trial import run_trial

        remote = ray.remote(run_trial)
        options = {
            "num_cpus": float(self._resources.get("cpus", 1)),
            "num_gpus": float(self._resources.get("gpus", 0)),
            "max_retries": 0,
        }
        queue = deque(payloads)
        pending: dict[Any, Payload] = {}
        while queue or pending:
            while queue and len(pending) < self.capacity:
                payload = queue.popleft()
                pending[remote.options(name=f"harness:{payload['run_id']}", **options).remote(payload)] = payload
                on_start(payload)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                payload = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # worker died (OOM kill, segfault, node lost)
                    result = failed_result(payload, exc, cause="worker died: ")
                on_result(result)

    def close(self) -> None:
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False
