"""Multi-worker runs (``resources.workers`` > 1): data-parallel Lightning through Ray Train.

The cell's Ray task only coordinates: it starts a ``TorchTrainer`` whose ``workers`` processes
each hold ``resources.cpus`` / ``resources.gpus`` and run the ordinary :func:`run_trial` with
Ray's DDP strategy (gloo on CPU, NCCL on GPU). Lightning's ``DistributedSampler`` splits every
split across the workers and torchmetrics reduces the metric states across them at
``compute()``, so validation and test metrics cover the whole split once. Only rank 0's result
(and its epoch rows) comes back, so the run is recorded once.

Ray Train costs ~20 s of fixed start-up on a small machine (worker group, process group,
storage): it pays off for runs of minutes, not for the seconds-long runs of a small suite.
The checkpoint of the best epoch is written by rank 0 to a local temporary folder that the
other ranks read for testing: the workers of one run must share a node (or a file system).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

from harness.records import RunRecord, RunSpec

#: how long a rank waits in a collective for the others (a failed rank must not hang the run for 30 min)
COLLECTIVE_TIMEOUT_S = 180


class ResultBox:
    """Holds rank 0's result until the coordinating task reads it (a tiny Ray actor)."""

    def __init__(self) -> None:
        self.result: RunRecord | None = None

    def put(self, result: RunRecord) -> None:
        self.result = result

    def get(self) -> RunRecord | None:
        return self.result


def _worker_loop(config: dict[str, Any]) -> None:
    """Runs in every Ray Train worker: one rank of the data-parallel run."""
    import ray
    import ray.train
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    from harness.train.trial import run_trial

    rank = ray.train.get_context().get_world_rank()
    # Ray ships these two untyped
    strategy: Any = RayDDPStrategy()  # type: ignore[no-untyped-call]
    environment: Any = RayLightningEnvironment()  # type: ignore[no-untyped-call]
    overrides = {"strategy": strategy, "plugins": [environment], "devices": "auto"}
    record = run_trial(
        config["spec"], on_epoch=config["on_epoch"] if rank == 0 else None, trainer_overrides=overrides
    )
    if rank == 0:
        record.world_size = ray.train.get_context().get_world_size()
        ray.get(config["box"].put.remote(record))


def run_distributed(spec: RunSpec, on_epoch: Callable[[dict[str, float]], None] | None = None) -> RunRecord:
    """Train one cell on ``resources.workers`` Ray Train workers; rank 0's record, or a failed one."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from harness.train.failures import failed_record

    workers, cpus, gpus = spec.resources.workers, spec.resources.cpus, spec.resources.gpus
    started = time.time()
    box: Any = ray.remote(num_cpus=0)(ResultBox).remote()  # an actor handle (untyped methods)
    try:
        with tempfile.TemporaryDirectory(prefix="harness-train-") as storage:
            trainer = TorchTrainer(
                _worker_loop,
                train_loop_config={"spec": spec, "box": box, "on_epoch": on_epoch},
                scaling_config=ScalingConfig(
                    num_workers=workers,
                    use_gpu=gpus > 0,
                    resources_per_worker={"CPU": cpus, **({"GPU": gpus} if gpus else {})},
                ),
                torch_config=TorchConfig(
                    backend="nccl" if gpus > 0 else "gloo", timeout_s=COLLECTIVE_TIMEOUT_S
                ),
                run_config=RunConfig(storage_path=storage, name=f"harness-{spec.run_id}"),
            )
            trainer.fit()
        record: RunRecord | None = ray.get(box.get.remote())
        if record is None:
            raise RuntimeError("Ray Train finished but rank 0 returned no result")
        return record
    except Exception as exc:  # a rank crashed or the worker group could not start
        partial: RunRecord | None = ray.get(box.get.remote())
        if partial is not None:  # rank 0 recorded its own failure before another rank brought the group down
            return partial
        message = f"Ray Train run failed: {type(exc).__name__}: {str(exc)[:500]}"
        return failed_record(spec, exc, message=message, started=started)
    finally:
        ray.kill(box)
