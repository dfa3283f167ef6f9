"""The worker entry point: ``run_trial(payload) -> result``.

The payload is plain data (a :class:`harness.matrix.Cell` as a dict plus the
cache directory); the worker loads the plugins itself and rebuilds the run.
It never raises for a failed run: the result says ``status: failed`` and why.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from harness import __version__

if TYPE_CHECKING:
    from harness.interfaces import MetricSpec

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


def _accelerator(payload: dict[str, Any]) -> tuple[str, int]:
    trainer, gpus = payload["trainer"], float(payload["resources"].get("gpus", 0))
    accel = trainer["accelerator"]
    if accel == "auto":
        accel = "gpu" if gpus > 0 else "cpu"
    devices = max(1, int(gpus)) if accel == "gpu" else 1
    return accel, devices


def _train(payload: dict[str, Any], history_sink: list[dict[str, float]],
           trainer_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    _quiet()
    import pytorch_lightning as pl
    import torch

    from harness.interfaces import DataConfig
    from harness.plugins import get_registry
    from harness.train.module import HarnessModule, HistoryCallback

    _quiet()  # lightning resets its loggers to INFO on import
    torch.set_num_threads(max(1, int(payload["resources"].get("cpus", 1))))
    registry = get_registry()
    task = registry.tasks.get(payload["task"]).obj(payload["task_params"])
    arch = registry.architectures.get(payload["architecture"]).obj(payload["arch_params"])
    metrics = {name: registry.metrics.get(name).obj for name in payload["metrics"]}
    spec = payload["trainer"]
    info = task.cached_info()
    pl.seed_everything(payload["seed"], workers=True, verbose=False)
    cache_dir = Path(payload.get("cache_dir") or default_cache_dir())
    data = task.datamodule(DataConfig(batch_size=spec["batch_size"], seed=payload["seed"], cache_dir=cache_dir))
    encoder = arch.build_encoder(info.input)
    decoder = arch.build_decoder(info, encoder.output_size) if info.output_kind == "seq2seq" else None
    head = task.build_head(decoder.output_size if decoder is not None else encoder.output_size)
    module = HarnessModule(encoder, head, task, info, metrics, spec, decoder=decoder)
    num_params = sum(p.numel() for p in module.parameters())
    if spec.get("tbptt") and arch.trainable:
        _check_tbptt(arch)
    measure = payload.get("measure") or {}

    accelerator, devices = _accelerator(payload)
    monitor = f"val_{info.primary_metric}"
    mode = info.direction
    history = HistoryCallback(history_sink, monitor=monitor, target=payload.get("target"), direction=mode)
    with tempfile.TemporaryDirectory(prefix="harness-ckpt-") as ckpt_dir:
        checkpoint = pl.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir, monitor=monitor, mode=mode, save_top_k=1, save_weights_only=True
        )
        callbacks: list[pl.Callback] = [history, checkpoint]
        probe = None
        if measure.get("gradient_flow") and arch.trainable:
            from harness.measure.gradient_flow import GradientFlowCallback

            probe = GradientFlowCallback(measure["gradient_flow"])
            callbacks.append(probe)
        if spec.get("early_stopping"):
            es = spec["early_stopping"]
            es_monitor = es.get("monitor") or monitor
            callbacks.append(pl.callbacks.EarlyStopping(
                monitor=es_monitor, mode=monitor_direction(es_monitor, metrics),
                patience=es["patience"], min_delta=es["min_delta"],
            ))
        trainer = _make_trainer(pl, trainer_overrides,  # Ray Train adds strategy/plugins/devices
            accelerator=accelerator, devices=devices, precision=spec["precision"],
            max_epochs=spec["max_epochs"], max_steps=spec["max_steps"] or -1,
            max_time=timedelta(seconds=spec["max_time"]) if spec.get("max_time") else None,
            gradient_clip_val=spec.get("gradient_clip_val"),
            gradient_clip_algorithm=spec.get("gradient_clip_algorithm", "norm"),
            callbacks=callbacks, logger=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, deterministic="warn" if accelerator == "gpu" else True,
            default_root_dir=ckpt_dir,
        )
        from harness.measure.memory import PeakMemory

        peak = PeakMemory(_device(accelerator))
        peak.start()
        fit_start = time.perf_counter()
        if arch.trainable:
            trainer.fit(module, datamodule=data)
            best = checkpoint.best_model_path or None
        else:  # a closed-form baseline: estimate it from the training split, no gradient steps
            _fit_baseline(module, data)
            best = None
        train_time = time.perf_counter() - fit_start
        peak_mb = peak.peak_mb() if measure.get("memory", True) else float("nan")
        tested = trainer.test(module, datamodule=data, ckpt_path=best, verbose=False)[0]
    final = {k: float(v) for k, v in tested.items() if k.startswith("test_") and k != "test_loss"}
    final["test_loss"] = float(tested.get("test_loss", float("nan")))
    # Lightning moves the model back to the CPU at teardown: measure on the device it trained on
    device = _device(accelerator)
    measured: dict[str, float] = {}
    if getattr(trainer, "global_rank", 0) == 0:  # data-parallel: rank 0 measures, once
        measured = _measure_inference(module.to(device), data, measure)
    with torch.inference_mode():
        artifacts = task.artifacts(module.eval(), data)
    best_epoch = _best_epoch(history_sink, monitor, mode)
    gradient_flow = probe.result() if probe is not None else None
    return {
        "metrics": final,
        "cost": {
            "train_time_s": train_time,
            **_train_rates(history),
            **measured,
            "peak_memory_mb": peak_mb,
            "num_params": float(num_params),
            "epochs": float(len(history_sink)),
            "steps": float(trainer.global_step),
            "best_epoch": float(best_epoch),
            **history.ttt(),
            **_gradflow_cost(gradient_flow),
        },
        **({"gradient_flow": gradient_flow} if gradient_flow else {}),
        "device": describe_device(accelerator),
        "artifacts": {str(k): str(v) for k, v in artifacts.items()},
    }


def _make_trainer(pl: Any, overrides: dict[str, Any] | None, **kwargs: Any) -> Any:
    """``pl.Trainer(**kwargs)`` with ``overrides`` (e.g. the DDP strategy of a multi-worker run) on top."""
    return pl.Trainer(**{**kwargs, **(overrides or {})})


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
    """Training samples/s and time steps/s over the time spent inside training batches."""
    if not history.train_batch_time:
        return {"train_samples_per_s": float("nan"), "train_timesteps_per_s": float("nan")}
    return {
        "train_samples_per_s": history.train_samples / history.train_batch_time,
        "train_timesteps_per_s": history.train_timesteps / history.train_batch_time,
    }


def _gradflow_cost(flow: Mapping[str, Any] | None) -> dict[str, float]:
    if not flow:
        return {}
    return {
        "gradflow_ratio": float(flow["ratio"]),
        "gradflow_vanishing": float(flow["vanishing"]),
        "gradflow_exploding": float(flow["exploding"]),
    }


def _measure_inference(module: Any, data: Any, measure: Mapping[str, Any]) -> dict[str, float]:
    """Throughput, latency and FLOPs of the trained model on the first test batch (the training
    batch size), with the TorchBench recipe (see :mod:`harness.measure.timing`); and the
    activation memory one training batch of that size saves for backward."""
    import torch

    from harness.measure.flops import forward_flops_per_sample
    from harness.measure.memory import activation_mb
    from harness.measure.timing import inference_timing, to_device

    batch = to_device(next(iter(data.test_dataloader())), module.device)
    out = inference_timing(
        module, batch, rounds=int(measure.get("rounds", 30)), warmup=int(measure.get("warmup", 5)),
        latency=bool(measure.get("latency", True)),
    )
    if measure.get("flops", True):
        out["flops_per_sample"] = forward_flops_per_sample(module, batch)
    if measure.get("memory", True) and any(p.requires_grad for p in module.parameters()):
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


#: the payload keys a result carries over, so a result is self-describing
RECIPE_KEYS = ("run_id", "suite", "task", "task_label", "architecture", "arch_label", "seed",
               "task_params", "arch_params", "trainer", "primary_metric", "direction", "grid", "resources")


def result_skeleton(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe part of a result, plus where and when it ran."""
    return {
        **{key: payload[key] for key in RECIPE_KEYS if key in payload},
        "host": socket.gethostname(), "pid": os.getpid(), "started_at": time.time(),
    }


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


def check_plugins(payload: Mapping[str, Any]) -> None:
    """Refuse to train with another plugin (or version) than the driver planned with.

    On a cluster every node needs the same plugins installed; a node without one would
    otherwise fail with an unknown-name error, or silently train different code.
    """
    from harness.plugins import get_registry
    from harness.train.failures import PluginMismatch

    registry = get_registry()
    wanted = payload.get("versions") or {}
    for kind, key, version_key in (("tasks", "task", "task_plugin"), ("architectures", "architecture", "arch_plugin")):
        want = wanted.get(version_key)
        if not want:
            continue
        entry = getattr(registry, kind).entries.get(payload[key])
        have = f"{entry.provenance.distribution}=={entry.provenance.version}" if entry else None
        if have == want:
            continue
        dist = want.split("==")[0]
        fix = (f"make module `{payload[key]}`'s plugin importable there and list it in HARNESS_PLUGINS"
               if dist == "HARNESS_PLUGINS" else f"run `pip install '{want}'` on every node of the cluster")
        found = f"`{payload[key]}` from {have}" if entry else f"no {kind[:-1]} `{payload[key]}`"
        raise PluginMismatch(
            f"node {socket.gethostname()} has {found}, but the driver planned this run with {want}; {fix}, "
            "then run the suite again."
        )


def run_trial(payload: dict[str, Any], on_epoch: Callable[[dict[str, float]], None] | None = None,
              trainer_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, validate and test one cell; always returns a result dict.

    A failed run has ``status: failed`` and a ``failure`` block (see ``harness.train.failures``);
    the epoch rows reached so far are kept in ``history``.
    """
    from harness.train.failures import classify, failure, status_for, trimmed_traceback

    history = _StreamingHistory(on_epoch)
    result = result_skeleton(payload)
    started = result["started_at"]
    try:
        check_plugins(payload)
        result.update(_train(payload, history, trainer_overrides))
        result["status"] = "finished"
    except Exception as exc:  # every failure is recorded, the suite goes on
        kind = classify(exc)
        error = f"{type(exc).__name__}: {exc}"
        result.update(status=status_for(kind), error=error, traceback=trimmed_traceback(exc),
                      failure=failure(kind, error, int(payload.get("attempt", 1))))
    result["history"] = list(history)
    result["versions"] = _versions()
    result["finished_at"] = time.time()
    result["wall_time_s"] = result["finished_at"] - started
    return result
