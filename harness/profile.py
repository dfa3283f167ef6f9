"""``harness profile``: efficiency of each architecture as the sequence grows.

For every (architecture, length) it builds the task at that length (the task's ``length``
parameter), takes one training batch of the task's own data, and measures — without training to
convergence — training throughput (forward+backward+optimizer steps), inference throughput and
batch-1 latency, each timed after warm-up and repeated until its median is known to
``rel_error`` (or a time budget is spent; :func:`harness.measure.timing.time_until_stable`), with
its IQR; FLOPs per sample (:mod:`harness.measure.flops`); the peak tensor memory of a training
step (:mod:`harness.measure.memory`: CUDA max allocated on a GPU, the step's tensor peak on the
CPU) and the activation memory autograd saves for one backward pass (``activation_memory_mb``).

Records are appended to ``results/profile/<task>.jsonl``, each with the ``session`` that made it
and, when profiled for a suite (``--suite``), the suite name and ``suite_hash``: a suite's report
shows only the profile rows of that suite (:func:`harness.report.context.load_profiles`). MLflow
gets experiment ``profile-<task>``, one run per architecture, metrics stepped by length.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

#: parameter names that set a task's sequence length, in order of preference
LENGTH_PARAMS = ("length", "seq_len", "sequence_length", "max_length")
#: dataset-size parameters shrunk for profiling (only one batch is needed)
SIZE_PARAMS = ("num_train", "num_val", "num_test")
PROFILE_KEYS = (
    "train_samples_per_s",
    "train_samples_per_s_iqr",
    "train_timesteps_per_s",
    "train_timesteps_per_s_iqr",
    "infer_samples_per_s",
    "infer_samples_per_s_iqr",
    "latency_p50_ms",
    "latency_iqr_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "peak_memory_mb",
    "activation_memory_mb",
    "flops_per_sample",
    "num_params",
)


def length_param(task_cls: Any) -> str:
    fields = getattr(task_cls.Params, "model_fields", {})
    for name in LENGTH_PARAMS:
        if name in fields:
            return name
    raise HarnessError(
        f"task `{task_cls.name}` has no sequence-length parameter ({' / '.join(LENGTH_PARAMS)}), so "
        "`harness profile` cannot vary its length; profile a task with one, "
        "e.g. --task adding or --task copy_memory"
    )


def parse_lengths(text: str) -> list[int]:
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise HarnessError(
            f"--lengths {text!r}: give positive integers separated by commas, e.g. --lengths 50,100,200"
        )
    return lengths


def profile_one(
    task: Any,
    arch: Any,
    batch_size: int,
    device: Any,
    *,
    steps: int,
    warmup: int,
    rounds: int,
    cache_dir: Path,
    max_time_s: float = 2.0,
    rel_error: float = 0.02,
) -> dict[str, float]:
    """The cost keys of one architecture on one task instance (one length): ``steps`` and
    ``rounds`` are the fewest timed training steps and inference rounds; each timing repeats until
    its median is within ``rel_error`` or ``max_time_s`` seconds of timed calls are spent."""
    import torch

    from harness.interfaces import DataConfig
    from harness.measure.flops import forward_flops_per_sample
    from harness.measure.memory import PeakMemory, activation_mb, training_step_peak_mb
    from harness.measure.timing import inference_timing, rate, time_until_stable, to_device
    from harness.settings import TrainerSpec
    from harness.train.module import build_module, build_optimizer

    torch.manual_seed(0)
    data = task.datamodule(DataConfig(batch_size=batch_size, seed=0, cache_dir=cache_dir))
    data.prepare_data()
    data.setup("fit")
    batch = to_device(next(iter(data.train_dataloader())), device)
    trainer = TrainerSpec(optimizer="adam", lr=1e-3)
    module = build_module(task, arch, trainer).to(device)
    out: dict[str, float] = {}
    if not PeakMemory(device).cuda:  # before any timing: a fresh optimizer, the step's tensor peak
        out["peak_memory_mb"] = training_step_peak_mb(
            module,
            lambda: task.batch_loss(module(batch), batch),
            lambda params: build_optimizer(params, trainer),
            inputs=[v for v in batch.values() if isinstance(v, torch.Tensor)],
        )
    optimizer = build_optimizer(module.parameters(), trainer)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        task.batch_loss(module(batch), batch).backward()
        optimizer.step()

    module.train()
    peak = PeakMemory(device)
    peak.start()
    times = time_until_stable(
        train_step, min_rounds=steps, warmup=warmup, max_time_s=max_time_s, rel_error=rel_error, device=device
    )
    if peak.cuda:
        out["peak_memory_mb"] = peak.peak_mb()
    optimizer.zero_grad(set_to_none=True)
    out["activation_memory_mb"] = activation_mb(lambda: task.batch_loss(module(batch), batch))
    samples = int(batch["y"].shape[0])
    timesteps = float(batch["lengths"].sum()) if "lengths" in batch else float("nan")
    out["train_samples_per_s"], out["train_samples_per_s_iqr"] = rate(samples, times)
    out["train_timesteps_per_s"], out["train_timesteps_per_s_iqr"] = rate(timesteps, times)
    out["train_rounds"] = float(len(times))
    out.update(
        inference_timing(
            module,
            batch,
            rounds=rounds,
            warmup=warmup,
            max_time_s=max_time_s,
            rel_error=rel_error,
            counts=True,
        )
    )
    out["flops_per_sample"] = forward_flops_per_sample(module, batch)
    out["num_params"] = float(sum(p.numel() for p in module.parameters()))
    return out


def run_profile(
    task_name: str,
    lengths: Sequence[int],
    archs: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    gpus: float = 0,
    steps: int = 5,
    warmup: int = 2,
    rounds: int = 10,
    max_time_s: float = 2.0,
    rel_error: float = 0.02,
    suite: str | None = None,
    suite_hash: str | None = None,
    out_dir: Path = Path("results/profile"),
    tracking_uri: str | None = None,
    cache_dir: Path | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Profile ``archs`` (default: every trainable architecture that can run the task) at each length.

    Every record carries this call's ``session`` id and ``profiled_at`` time, and ``suite`` /
    ``suite_hash`` when profiled for a suite; records are appended to ``out_dir/<task>.jsonl``."""
    import torch

    from harness.plugins import get_registry
    from harness.train.trial import default_cache_dir, describe_device

    registry = get_registry()
    task_cls = registry.tasks.get(task_name, "--task").obj
    param = length_param(task_cls)
    names = list(archs) if archs else [e.name for e in registry.architectures if e.obj.trainable]
    arch_objs = {name: registry.architectures.get(name, "--arch").obj() for name in names}
    if gpus > 0 and not torch.cuda.is_available():
        raise HarnessError(
            f"--gpus {gpus}: no CUDA device is visible here; use --gpus 0 to profile on the CPU"
        )
    device = torch.device("cuda", 0) if gpus > 0 else torch.device("cpu")
    sizes = {k: batch_size for k in SIZE_PARAMS if k in task_cls.Params.model_fields}
    records: list[dict[str, Any]] = []
    session = uuid.uuid4().hex[:12]
    for length in lengths:
        task = task_cls({param: length, **sizes})
        info = task.cached_info()
        for name, arch in arch_objs.items():
            base = {
                "session": session,
                "profiled_at": time.time(),
                "suite": suite,
                "suite_hash": suite_hash,
                "task": task_name,
                "architecture": name,
                "arch_label": name,
                "length": length,
                "batch_size": batch_size,
                "device": describe_device("gpu" if gpus > 0 else "cpu"),
            }
            reason = arch.incompatibility(info)
            if reason:
                if archs:  # asked for by name: say why not
                    raise HarnessError(f"--arch {name}: cannot run task `{task_name}`: {reason}")
                continue
            try:
                cost = profile_one(
                    task,
                    arch,
                    batch_size,
                    device,
                    steps=steps,
                    warmup=warmup,
                    rounds=rounds,
                    cache_dir=cache_dir or default_cache_dir(),
                    max_time_s=max_time_s,
                    rel_error=rel_error,
                )
                record = {**base, **cost}
            except torch.cuda.OutOfMemoryError as exc:  # a real result at long lengths
                record = {**base, "error": f"out of memory: {str(exc).splitlines()[0]}"}
                torch.cuda.empty_cache()
            records.append(record)
            if on_record:
                on_record(record)
    _write(records, out_dir / f"{task_name}.jsonl")
    _log_mlflow(records, task_name, tracking_uri)
    return records


def _write(records: list[dict[str, Any]], path: Path) -> None:
    """Append: the rows of other sessions (other suites) stay; readers select by suite/session."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


def _log_mlflow(records: list[dict[str, Any]], task_name: str, uri: str | None) -> None:
    """Experiment ``profile-<task>``: one run per architecture, each metric stepped by length."""
    import math

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from harness.tracking.mlflow_store import artifact_location, resolve_uri

    resolved = resolve_uri(uri)
    client = MlflowClient(tracking_uri=resolved)
    experiment = f"profile-{task_name}"
    found = client.get_experiment_by_name(experiment)
    exp_id = (
        found.experiment_id if found else client.create_experiment(experiment, artifact_location(resolved))
    )
    now = int(time.time() * 1000)
    for arch in dict.fromkeys(r["architecture"] for r in records):
        rows = [r for r in records if r["architecture"] == arch]
        run = client.create_run(
            exp_id,
            run_name=arch,
            tags={
                "harness.task": task_name,
                "harness.architecture": arch,
                "harness.device": rows[0]["device"],
                "harness.profile_session": rows[0]["session"],
                **({"harness.suite": rows[0]["suite"]} if rows[0].get("suite") else {}),
            },
        )
        metrics = [
            Metric(k, float(r[k]), now, int(r["length"]))
            for r in rows
            for k in PROFILE_KEYS
            if k in r and math.isfinite(float(r[k]))
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.log_param(run.info.run_id, "batch_size", str(rows[0]["batch_size"]))
        client.log_dict(run.info.run_id, {"records": rows}, "profile.json")
        client.set_terminated(run.info.run_id)
