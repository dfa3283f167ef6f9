"""The worker entry point: ``run_trial(spec) -> record``.

The :class:`~harness.records.RunSpec` is plain data; the worker loads the plugins itself
and rebuilds the run. It never raises for a failed run: the
:class:`~harness.records.RunRecord` says ``failed`` and why.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.records import Direction, RunRecord, RunSpec, RuntimeInfo
from harness.settings import MeasureSpec

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from harness.interfaces import Architecture, MetricSpec, Task, TaskInfo
    from harness.train.lean import LeanLoop
    from harness.train.module import HarnessModule, HistoryCallback

QUIET_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric")
QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*The number of training batches.*",
    ".*Checkpoint directory.*exists and is not empty.*",
    ".*torch.use_deterministic_algorithms.*",
    ".*deterministic.*",
    ".*enable_nested_tensor.*",
    ".*treespec.*",
)


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness").resolve()


def _quiet() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pytorch_lightning")


def describe_device(accelerator: str) -> str:
    import torch

    if accelerator == "gpu" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


@dataclass
class _Parts:
    """What a run is built from, inside the worker."""

    task: Task[Any]
    arch: Architecture[Any]
    info: TaskInfo
    metrics: dict[str, MetricSpec]
    module: HarnessModule
    data: pl.LightningDataModule


@dataclass
class _Outcome:
    """What training and testing one run produced (becomes the record's result fields)."""

    metrics: dict[str, float]
    directions: dict[str, Direction]
    cost: dict[str, float]
    artifacts: dict[str, str]
    gradient_flow: dict[str, Any] | None
    #: samples per split (see :func:`data_sizes`)
    data_sizes: dict[str, int]
    #: the serialized best-validation network (``spec.log_model == "best"``), else None
    model: bytes | None


def build_data(spec: RunSpec, task: Task[Any] | None = None) -> pl.LightningDataModule:
    """The run's data module, made as the worker makes it: the task (``spec``'s, unless given)
    with the run's batch size, seed and cache folder, after seeding every RNG with the run's seed.
    """
    import pytorch_lightning as pl

    from harness.interfaces import DataConfig

    if task is None:
        from harness.plugins import get_registry

        task = get_registry().tasks.get(spec.task).obj(spec.task_params)
    pl.seed_everything(spec.seed, workers=True, verbose=False)
    cache_dir = Path(spec.cache_dir) if spec.cache_dir else default_cache_dir()
    return task.datamodule(
        DataConfig(batch_size=spec.trainer.batch_size, seed=spec.seed, cache_dir=cache_dir)
    )


def _build(spec: RunSpec) -> _Parts:
    import torch

    from harness.plugins import get_registry
    from harness.train.module import build_module

    torch.set_num_threads(max(1, int(spec.resources.cpus)))
    registry = get_registry()
    task = registry.tasks.get(spec.task).obj(spec.task_params)
    arch = registry.architectures.get(spec.architecture).obj(spec.arch_params)
    metrics = {name: registry.metrics.get(name).obj for name in spec.metrics}
    info = task.cached_info()
    data = build_data(spec, task)
    module = build_module(task, arch, spec.trainer, metrics)
    if spec.trainer.tbptt is not None and arch.trainable:
        _check_tbptt(arch)
    return _Parts(task, arch, info, metrics, module, data)


def _callbacks(spec: RunSpec, parts: _Parts, history: HistoryCallback) -> list[Any]:
    import pytorch_lightning as pl

    callbacks: list[Any] = [history]
    if spec.measure.gradient_flow is not None and parts.arch.trainable:
        from harness.measure.gradient_flow import GradientFlowCallback

        callbacks.append(GradientFlowCallback(spec.measure.gradient_flow))
    es = spec.trainer.early_stopping
    if es is not None:
        es_monitor = es.monitor or f"val_{parts.info.primary_metric}"
        callbacks.append(
            pl.callbacks.EarlyStopping(
                monitor=es_monitor,
                mode=monitor_direction(es_monitor, parts.metrics),
                patience=es.patience,
                min_delta=es.min_delta,
            )
        )
    return callbacks


def _trainer(spec: RunSpec, callbacks: list[Any], root: str, overrides: dict[str, Any] | None) -> pl.Trainer:
    """The Lightning trainer of the run (Ray Train's ``overrides`` add its strategy, plugins and devices)."""
    import pytorch_lightning as pl

    settings, accelerator = spec.trainer, spec.accelerator
    return pl.Trainer(
        **{
            **dict(
                accelerator=accelerator,
                devices=max(1, int(spec.resources.gpus)) if accelerator == "gpu" else 1,
                precision=settings.precision,
                max_epochs=settings.max_epochs,
                max_steps=settings.max_steps or -1,
                max_time=timedelta(seconds=float(settings.max_time)) if settings.max_time else None,
                gradient_clip_val=settings.gradient_clip_val,
                gradient_clip_algorithm=settings.gradient_clip_algorithm,
                callbacks=callbacks,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                deterministic="warn" if accelerator == "gpu" else True,
                default_root_dir=root,
            ),
            **(overrides or {}),
        }
    )


def evaluation_trainer(spec: RunSpec, root: str, accelerator: str = "cpu") -> pl.Trainer:
    """A trainer that tests a module of the run as the run's own trainer did, on one device of
    ``accelerator`` (see :func:`harness.tracking.models.evaluate`)."""
    _quiet()
    overrides = {
        "accelerator": accelerator,
        "devices": 1,
        "deterministic": "warn" if accelerator == "gpu" else True,
    }
    return _trainer(spec, [], root, overrides)


@dataclass
class _Fitted:
    callbacks: list[Any]
    tested: dict[str, float]
    train_time: float
    peak_mb: float
    #: optimizer steps taken
    steps: int
    #: this process's rank (data-parallel runs: rank 0 measures and serializes)
    rank: int
    #: ``time.perf_counter()`` when training started
    fit_start: float


def _fit_and_test(
    spec: RunSpec, parts: _Parts, history: HistoryCallback, overrides: dict[str, Any] | None
) -> _Fitted:
    """Train (or fit a closed-form baseline), then test the best-validation weights.

    Training and testing run in the lean loop (:mod:`harness.train.lean`) wherever it applies,
    else in Lightning's.
    """
    from harness.measure.memory import PeakMemory
    from harness.train.lean import lean_unsupported

    callbacks = _callbacks(spec, parts, history)
    peak = PeakMemory(_device(spec.accelerator))
    # a tuning trial selects on validation: the test split is never touched
    test = not spec.is_trial
    if parts.arch.trainable and lean_unsupported(spec, overrides) is None:
        from harness.train.lean import load_best

        loop = _lean_loop(spec, parts, callbacks)
        peak.start()
        fit_start = time.perf_counter()
        result = loop.fit()
        train_time = time.perf_counter() - fit_start
        peak_mb = peak.peak_mb()
        load_best(parts.module, result.best_state)
        tested = loop.test() if test else {}
        steps, rank = result.global_step, 0
    else:
        with tempfile.TemporaryDirectory(prefix="harness-ckpt-") as ckpt_dir:
            checkpoint = _checkpoint(ckpt_dir, parts) if parts.arch.trainable else None
            listed = [*callbacks, checkpoint] if checkpoint is not None else list(callbacks)
            trainer = _trainer(spec, listed, ckpt_dir, overrides)  # it appends its defaults to `listed`
            peak.start()
            fit_start = time.perf_counter()
            best: str | None = None
            if checkpoint is not None:
                trainer.fit(parts.module, datamodule=parts.data)
                best = checkpoint.best_model_path or None
            else:  # a closed-form baseline: estimate it from the training split, no gradient steps
                _fit_baseline(parts.module, parts.data)
            train_time = time.perf_counter() - fit_start
            peak_mb = peak.peak_mb()
            steps, rank = trainer.global_step, trainer.global_rank
            tested = {}
            if test:
                out = trainer.test(parts.module, datamodule=parts.data, ckpt_path=best, verbose=False)[0]
                tested = {k: float(v) for k, v in out.items()}
    if not spec.measure.memory:
        peak_mb = float("nan")
    elif not peak.cuda and test:  # CUDA: the allocator's peak; the CPU: a training step's tensors
        peak_mb = _cpu_step_memory(spec, parts)
    return _Fitted(callbacks, tested, train_time, peak_mb, steps, rank, fit_start)


def _checkpoint(ckpt_dir: str, parts: _Parts) -> Any:
    """Lightning's loop keeps the best-validation weights in a checkpoint file."""
    import pytorch_lightning as pl

    return pl.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir,
        monitor=f"val_{parts.info.primary_metric}",
        mode=parts.info.direction,
        save_top_k=1,
        save_weights_only=True,
    )


def _lean_loop(spec: RunSpec, parts: _Parts, callbacks: list[Any]) -> LeanLoop:
    """The lean loop of the run (its callbacks but early stopping, which the loop does itself),
    with Lightning's determinism settings."""
    from harness.train.lean import LeanLoop, set_determinism

    set_determinism(spec.accelerator)
    return LeanLoop(
        spec,
        parts.module,
        parts.data,
        [c for c in callbacks if not _lightning_only(c)],
        monitor=f"val_{parts.info.primary_metric}",
        mode=parts.info.direction,
        device=_device(spec.accelerator),
    )


def _lightning_only(callback: Any) -> bool:
    """Callbacks the lean loop does itself (early stopping)."""
    import pytorch_lightning as pl

    return isinstance(callback, pl.callbacks.EarlyStopping)


def _train(
    spec: RunSpec,
    history_sink: list[dict[str, float]],
    trainer_overrides: dict[str, Any] | None = None,
    started: float | None = None,
) -> _Outcome:
    """Build, train, test and measure the run (``started``: ``time.perf_counter()`` when the run
    began, for ``setup_time_s``)."""
    started = time.perf_counter() if started is None else started
    _quiet()
    import torch

    from harness.measure.gradient_flow import GradientFlowCallback
    from harness.train.module import HistoryCallback

    _quiet()  # lightning resets its loggers to INFO on import
    parts = _build(spec)
    monitor, mode = f"val_{parts.info.primary_metric}", parts.info.direction
    history = HistoryCallback(history_sink, monitor=monitor, target=spec.target, direction=mode)
    fitted = _fit_and_test(spec, parts, history, trainer_overrides)
    if spec.is_trial:
        return _trial_outcome(spec, parts, history, fitted, history_sink, started)
    metrics = {k: v for k, v in fitted.tested.items() if k.startswith("test_") and k != "test_loss"}
    metrics["test_loss"] = fitted.tested.get("test_loss", float("nan"))
    diverged = divergence(parts.info, metrics)
    if diverged:
        from harness.errors import Diverged

        raise Diverged(diverged)
    # Lightning moves the model back to the CPU at teardown: measure on the device it trained on
    measured: dict[str, float] = {}
    if fitted.rank == 0:  # data-parallel: rank 0 measures, once
        measured = _measure_inference(parts.module.to(_device(spec.accelerator)), parts.data, spec.measure)
    with torch.inference_mode():
        artifacts = parts.task.artifacts(parts.module.eval(), parts.data)
    probe = next((c for c in fitted.callbacks if isinstance(c, GradientFlowCallback)), None)
    gradient_flow = probe.result() if probe is not None else None
    cost = {
        **_training_cost(parts, history, fitted, history_sink, started),
        **measured,
        "peak_memory_mb": fitted.peak_mb,
        **history.ttt(),
        **_gradflow_cost(gradient_flow),
    }
    model = None
    if spec.log_model == "best" and fitted.rank == 0:
        model = _serialized_model(parts)
    return _Outcome(
        metrics,
        _directions(parts),
        cost,
        {str(k): str(v) for k, v in artifacts.items()},
        gradient_flow,
        _data_sizes(parts.data),
        model,
    )


def _trial_outcome(
    spec: RunSpec,
    parts: _Parts,
    history: Any,
    fitted: _Fitted,
    history_sink: list[dict[str, float]],
    started: float,
) -> _Outcome:
    """A tuning trial's outcome: its training cost and validation history only. No test metrics,
    no inference measurements (they read a test batch), no task artifacts, no model."""
    return _Outcome(
        {},
        _directions(parts),
        _training_cost(parts, history, fitted, history_sink, started),
        {},
        None,
        {},
        None,
    )


def _training_cost(
    parts: _Parts, history: Any, fitted: _Fitted, history_sink: list[dict[str, float]], started: float
) -> dict[str, float]:
    """What training cost: time (and the set-up before it), rates, parameters, epochs, steps, the
    best epoch."""
    monitor, mode = f"val_{parts.info.primary_metric}", parts.info.direction
    return {
        "setup_time_s": fitted.fit_start - started,
        "train_time_s": fitted.train_time,
        **_train_rates(history),
        "num_params": float(sum(p.numel() for p in parts.module.parameters())),
        "epochs": float(len(history_sink)),
        "steps": float(fitted.steps),
        "best_epoch": float(_best_epoch(history_sink, monitor, mode)),
    }


def _directions(parts: _Parts) -> dict[str, Direction]:
    directions: dict[str, Direction] = {name: metric.direction for name, metric in parts.metrics.items()}
    directions.update({parts.info.primary_metric: parts.info.direction, "loss": "min"})
    return directions


def _data_sizes(data: Any) -> dict[str, int]:
    from harness.train.export import data_sizes

    return data_sizes(data)


def _serialized_model(parts: _Parts) -> bytes:
    """The tested (best-validation) network and an input example, for ``tracking.log_model: best``."""
    from harness.errors import RunFailure

    try:
        from harness.train.export import serialize_model

        return serialize_model(parts.module, next(iter(parts.data.test_dataloader())))
    except Exception as exc:
        raise RunFailure(
            f"tracking.log_model is `best` but the trained network could not be serialized "
            f"({type(exc).__name__}: {exc}); make the architecture's and the task's modules "
            "picklable, or set tracking.log_model: none"
        ) from exc


def divergence(info: TaskInfo, metrics: Mapping[str, float]) -> str | None:
    """Why a run that trained to the end diverged (see ``TaskInfo.divergence_bound``), or None."""
    primary = f"test_{info.primary_metric}"
    for key in ("test_loss", primary):
        value = metrics.get(key)
        if value is None or not math.isfinite(value):
            return f"{key} is {value}: the run diverged; lower trainer.lr or set trainer.gradient_clip_val"
    bound, value = info.divergence_bound, metrics[primary]
    if bound is not None and (value > bound if info.direction == "min" else value < bound):
        side = "above" if info.direction == "min" else "below"
        return (
            f"{primary} = {value:.4g} is {side} the task's divergence bound {bound:.4g}: the run "
            "diverged; lower trainer.lr or set trainer.gradient_clip_val"
        )
    return None


def _fit_baseline(module: Any, data: Any) -> None:
    data.prepare_data()
    data.setup("fit")
    fit = getattr(module.encoder, "fit", None)
    if callable(fit):
        fit(data)


def monitor_direction(monitor: str, metrics: Mapping[str, MetricSpec]) -> str:
    """``min`` for ``val_loss``, else the direction of the monitored metric (validated at plan time)."""
    return "min" if monitor == "val_loss" else metrics[monitor.removeprefix("val_")].direction


def _best_epoch(history: list[dict[str, float]], monitor: str, mode: str) -> int:
    scored = [(row[monitor], int(row["epoch"])) for row in history if monitor in row]
    if not scored:
        return -1
    return (max if mode == "max" else min)(scored)[1]


def _device(accelerator: str) -> Any:
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if accelerator == "gpu" else torch.device("cpu")


def _check_tbptt(arch: Any) -> None:
    from harness.errors import RunFailure

    reason = arch.tbptt_incompatibility()
    if reason:
        raise RunFailure(f"{reason}; remove trainer.tbptt for this architecture")


def _train_rates(history: Any) -> dict[str, float]:
    """Training samples/s and time steps/s over the time spent inside training batches, and the
    IQR of the per-batch rates."""
    if not history.train_batch_time:
        return {"train_samples_per_s": float("nan"), "train_timesteps_per_s": float("nan")}
    return {
        "train_samples_per_s": history.train_samples / history.train_batch_time,
        "train_timesteps_per_s": history.train_timesteps / history.train_batch_time,
        **history.rate_spread(),
    }


def _gradflow_cost(flow: Mapping[str, Any] | None) -> dict[str, float]:
    if not flow:
        return {}
    return {
        "gradflow_ratio": float(flow["ratio"]),
        "gradflow_vanishing": float(flow["vanishing"]),
        "gradflow_exploding": float(flow["exploding"]),
    }


def _cpu_step_memory(spec: RunSpec, parts: _Parts) -> float:
    """CPU ``peak_memory_mb``: the tensor peak of two training steps on the first test batch (the
    training batch size), with the run's optimizer; the trained weights are left as they were."""
    from harness.measure.memory import training_step_peak_mb
    from harness.measure.timing import to_device
    from harness.train.module import build_optimizer

    module = parts.module.to("cpu")
    batch = to_device(next(iter(parts.data.test_dataloader())), "cpu")
    trainable = parts.arch.trainable and any(p.requires_grad for p in module.parameters())
    return training_step_peak_mb(
        module,
        lambda: module.task.batch_loss(module(batch), batch),
        (lambda params: build_optimizer(params, spec.trainer)) if trainable else None,
        inputs=[v for v in batch.values() if hasattr(v, "untyped_storage")],
    )


def _measure_inference(module: Any, data: Any, measure: MeasureSpec) -> dict[str, float]:
    """Throughput, latency and FLOPs of the trained model on the first test batch (the training
    batch size), with the TorchBench recipe (see :mod:`harness.measure.timing`); and the
    activation memory one training batch of that size saves for backward."""
    import torch

    from harness.measure.flops import forward_flops_per_sample
    from harness.measure.memory import activation_mb
    from harness.measure.timing import inference_timing, to_device

    batch = to_device(next(iter(data.test_dataloader())), module.device)
    out = inference_timing(
        module,
        batch,
        rounds=measure.rounds,
        warmup=measure.warmup,
        latency=measure.latency,
    )
    if measure.flops:
        out["flops_per_sample"] = forward_flops_per_sample(module, batch)
    if measure.memory and any(p.requires_grad for p in module.parameters()):
        # what one training batch of this size keeps for backward: exact on any device
        was_training = module.training
        module.train()
        with torch.enable_grad():
            out["activation_memory_mb"] = activation_mb(lambda: module.task.batch_loss(module(batch), batch))
        module.zero_grad(set_to_none=True)
        module.train(was_training)
    return out


def _versions() -> dict[str, str]:
    out = {"harness": __version__, "python": platform.python_version()}
    for name in ("torch", "pytorch_lightning", "torchmetrics"):
        try:
            module = __import__(name)
            out[name] = str(getattr(module, "__version__", "?"))
        except ImportError:  # pragma: no cover
            out[name] = "missing"
    return out


def runtime_info(accelerator: str) -> RuntimeInfo:
    """Where this worker runs: host, process, device and library versions."""
    try:
        device = describe_device(accelerator)
    except Exception:  # noqa: BLE001 - a broken CUDA setup must not hide the run's own failure
        device = accelerator
    return RuntimeInfo(host=socket.gethostname(), pid=os.getpid(), device=device, versions=_versions())


class _StreamingHistory(list):  # type: ignore[type-arg]
    """The epoch rows of a run; each row also goes to ``on_epoch`` as it is appended.

    The executor streams rows to the driver this way, so a run killed from outside (kill -9,
    Ctrl-C, timeout) still leaves its partial history behind.
    """

    def __init__(self, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
        super().__init__()
        self._on_epoch = on_epoch

    def append(self, row: dict[str, float]) -> None:
        super().append(row)
        if self._on_epoch is not None:
            try:
                self._on_epoch(dict(row))
            except Exception:  # a lost progress row must never fail the run
                pass


def check_plugins(spec: RunSpec) -> None:
    """Refuse to train with another plugin (or version) than the driver planned with.

    On a cluster every node needs the same plugins installed; a node without one would
    otherwise fail with an unknown-name error, or silently train different code.
    """
    from harness.plugins import get_registry
    from harness.train.failures import PluginMismatch

    registry = get_registry()
    planned = spec.provenance
    for entries, name, kind, want in (
        (registry.tasks.entries, spec.task, "task", planned.task_plugin),
        (registry.architectures.entries, spec.architecture, "architecture", planned.arch_plugin),
    ):
        entry = entries.get(name)
        have = f"{entry.provenance.distribution}=={entry.provenance.version}" if entry else None
        if have == want.pin:
            continue
        fix = (
            f"make module `{name}`'s plugin importable there and list it in HARNESS_PLUGINS"
            if want.distribution == "HARNESS_PLUGINS"
            else f"run `pip install '{want.pin}'` on every node of the cluster"
        )
        found = f"`{name}` from {have}" if entry else f"no {kind} `{name}`"
        raise PluginMismatch(
            f"node {socket.gethostname()} has {found}, "
            f"but the driver planned this run with {want.pin}; {fix}, "
            "then run the suite again."
        )


def run_trial(
    spec: RunSpec,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    trainer_overrides: dict[str, Any] | None = None,
) -> RunRecord:
    """Train, validate and test one cell; always returns a record, never raises for a failed run.

    A failed run has status ``failed`` and a :class:`~harness.records.Failure` (see
    :mod:`harness.train.failures`); the epoch rows reached so far are kept in ``history``.
    """
    from harness.train.failures import failed_record

    history = _StreamingHistory(on_epoch)
    started, begun = time.time(), time.perf_counter()
    try:
        check_plugins(spec)
        outcome = _train(spec, history, trainer_overrides, begun)
    except Exception as exc:  # every failure is recorded, the suite goes on
        return failed_record(
            spec,
            exc,
            message=f"{type(exc).__name__}: {exc}",
            history=list(history),
            started=started,
            runtime=runtime_info(spec.accelerator),
        )
    finished = time.time()
    return RunRecord(
        spec=spec,
        status="finished",
        metrics=outcome.metrics,
        directions=outcome.directions,
        cost=outcome.cost,
        history=list(history),
        gradient_flow=outcome.gradient_flow,
        artifacts=outcome.artifacts,
        data_sizes=outcome.data_sizes,
        model=outcome.model,
        runtime=runtime_info(spec.accelerator),
        attempts=spec.attempt,
        started_at=started,
        finished_at=finished,
        wall_time_s=finished - started,
    )
