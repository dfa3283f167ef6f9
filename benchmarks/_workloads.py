"""The code the benchmarks time, importable on its own so a default-run test can execute it once
with tiny sizes (no timing asserted) and it cannot rot.

* :func:`arch_step`: one architecture's forward+backward step at fixed shapes.
* :func:`harness_fit` / :func:`plain_fit`: the harness training loop (``run_trial``'s
  ``pl.Trainer.fit``, exactly as a suite runs it) against a hand-written PyTorch loop on the same
  model, data, optimizer and epochs (with the same per-epoch validation pass).
* :func:`warm_run_cost`: the per-run fixed cost of a near-empty run on a warm Ray worker.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.records import RunRecord, RunSpec

ARCHS = ("rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer")


def arch_step(arch: str, *, batch: int = 32, length: int = 100, hidden: int = 64) -> Callable[[], None]:
    """A closure doing one forward+backward pass of ``arch`` on adding-problem shapes."""
    import torch

    from harness.interfaces import InputSpec
    from harness.plugins import get_registry
    from harness.train.module import output_size

    torch.manual_seed(0)
    params: dict[str, Any] = {"d_model": hidden} if arch == "transformer" else {"hidden_size": hidden}
    encoder = get_registry().architectures.get(arch).obj(params).build_encoder(InputSpec("continuous", 2))
    head = torch.nn.Linear(output_size(encoder), 1)
    x, lengths, y = torch.randn(batch, length, 2), torch.full((batch,), length), torch.randn(batch, 1)

    def step() -> None:
        encoder.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(head(encoder(x, lengths).summary), y)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated

    return step


def adding_payload(
    cache_dir: Path,
    *,
    length: int = 50,
    num_train: int = 2048,
    epochs: int = 2,
    batch_size: int = 64,
    arch: str = "gru",
    measure: bool = False,
) -> RunSpec:
    """The RunSpec that run_trial gets, built through the real plan (suite -> matrix -> cell)."""
    import yaml

    from harness.matrix import build_plan
    from harness.plugins import get_registry
    from harness.suite import load_suite

    suite = {
        "name": "bench",
        "seeds": [0],
        "tasks": [
            {
                "name": "adding",
                "params": {"length": length, "num_train": num_train, "num_val": 256, "num_test": 256},
            }
        ],
        "architectures": [{"name": arch}],
        "trainer": {"max_epochs": epochs, "batch_size": batch_size, "lr": 2e-3},
        "measure": {"latency": measure, "flops": measure, "memory": measure, "rounds": 3, "warmup": 1},
    }
    path = cache_dir / "bench.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    (cell,) = build_plan(load_suite(path), get_registry()).runnable
    return cell.model_copy(update={"cache_dir": str(cache_dir)})


def _finished(record: RunRecord) -> RunRecord:
    if not record.finished:
        raise RuntimeError((record.failure.traceback if record.failure else "") or record.error)
    return record


def harness_fit(payload: RunSpec) -> float:
    """Seconds of ``pl.Trainer.fit`` inside ``run_trial`` (its ``train_time_s``)."""
    from harness.train.trial import run_trial

    return _finished(run_trial(payload)).cost["train_time_s"]


def plain_fit(payload: RunSpec) -> float:
    """Seconds of a hand-written loop: same model, data loaders, optimizer, epochs, validation."""
    import torch

    from harness.interfaces import DataConfig
    from harness.plugins import get_registry
    from harness.train.module import build_optimizer, output_size

    registry = get_registry()
    torch.set_num_threads(max(1, int(payload.resources.cpus)))
    task = registry.tasks.get(payload.task).obj(payload.task_params)
    arch = registry.architectures.get(payload.architecture).obj(payload.arch_params)
    spec = payload.trainer
    info = task.cached_info()
    torch.manual_seed(payload.seed)
    if payload.cache_dir is None:
        raise ValueError("plain_fit needs the payload's cache_dir (adding_payload sets it)")
    data = task.datamodule(
        DataConfig(batch_size=spec.batch_size, seed=payload.seed, cache_dir=Path(payload.cache_dir))
    )
    data.prepare_data()
    data.setup("fit")
    encoder = arch.build_encoder(info.input)
    head = task.build_head(output_size(encoder))
    model = torch.nn.ModuleDict({"encoder": encoder, "head": head})
    optimizer = build_optimizer(model.parameters(), spec)
    start = time.perf_counter()
    for _ in range(spec.max_epochs):
        model.train()
        for batch in data.train_dataloader():
            optimizer.zero_grad()
            loss = task.loss(head(encoder(batch["x"], batch["lengths"])), batch["y"])
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimizer.step()
        model.eval()
        with torch.no_grad():
            total = sum(
                float(task.loss(head(encoder(b["x"], b["lengths"])), b["y"])) for b in data.val_dataloader()
            )
        del total
    return time.perf_counter() - start


def loop_ratio(payload: RunSpec, rounds: int = 5) -> dict[str, float]:
    """Fit seconds of the harness and of the plain loop, interleaved round by round, and their
    ratio from the medians and from the minima (the minimum is the figure least disturbed by
    other processes on a shared machine)."""
    harness_fit(payload)  # warm: data cached, imports done
    plain_fit(payload)
    h, p = [], []
    for _ in range(rounds):
        h.append(harness_fit(payload))
        p.append(plain_fit(payload))
    return {
        "harness_s": statistics.median(h),
        "plain_s": statistics.median(p),
        "ratio": statistics.median(h) / statistics.median(p),
        "ratio_min": min(h) / min(p),
    }


def warm_run_cost(rounds: int = 5, num_cpus: int = 1) -> dict[str, float]:
    """Per-run fixed cost on a warm Ray worker: driver-side seconds for a near-empty run
    (one training step on 128 tiny sequences, default measurements on), after a warm-up run.
    Starts and stops its own local Ray instance."""
    import ray

    from harness.tracking.mlflow_store import MlflowTracker
    from harness.train.trial import run_trial

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        payload = adding_payload(Path(tmp), length=12, num_train=128, epochs=1, measure=True)
        payload = payload.model_copy(update={"trainer": payload.trainer.model_copy(update={"max_steps": 1})})
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,  # own instance
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
        )
        try:
            remote = ray.remote(num_cpus=1)(run_trial)
            ray.get(remote.remote(payload))  # warm the worker: imports, plugin load, data cache
            walls: list[float] = []
            inside: list[float] = []
            fits: list[float] = []
            logs: list[float] = []
            tracker = MlflowTracker(f"sqlite:///{tmp}/mlflow.db", "bench")
            tracker.connect()
            tracker.start_parent("bench", {}, {}, "")
            for _ in range(rounds):
                start = time.perf_counter()
                result: RunRecord = _finished(ray.get(remote.remote(payload)))
                walls.append(time.perf_counter() - start)
                inside.append(result.wall_time_s)
                fits.append(result.cost["train_time_s"])
                start = time.perf_counter()
                tracker.log_child(result)  # what the driver does with every result
                logs.append(time.perf_counter() - start)
        finally:
            ray.shutdown()
    return {
        "driver_s": statistics.median(walls),
        "worker_s": statistics.median(inside),
        "fit_s": statistics.median(fits),
        "mlflow_log_s": statistics.median(logs),
        "total_s": statistics.median(walls) + statistics.median(logs),
    }
