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
import traceback
import warnings
from datetime import timedelta
from pathlib import Path
from collections.abc import Mapping
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


def _train(payload: dict[str, Any], history_sink: list[dict[str, float]]) -> dict[str, Any]:
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

    accelerator, devices = _accelerator(payload)
    history = HistoryCallback(history_sink)
    monitor = f"val_{info.primary_metric}"
    mode = info.direction
    with tempfile.TemporaryDirectory(prefix="harness-ckpt-") as ckpt_dir:
        checkpoint = pl.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir, monitor=monitor, mode=mode, save_top_k=1, save_weights_only=True
        )
        callbacks: list[pl.Callback] = [history, checkpoint]
        if spec.get("early_stopping"):
            es = spec["early_stopping"]
            es_monitor = es.get("monitor") or monitor
            callbacks.append(pl.callbacks.EarlyStopping(
                monitor=es_monitor, mode=monitor_direction(es_monitor, metrics),
                patience=es["patience"], min_delta=es["min_delta"],
            ))
        trainer = pl.Trainer(
            accelerator=accelerator, devices=devices, precision=spec["precision"],
            max_epochs=spec["max_epochs"], max_steps=spec["max_steps"] or -1,
            max_time=timedelta(seconds=spec["max_time"]) if spec.get("max_time") else None,
            gradient_clip_val=spec.get("gradient_clip_val"),
            gradient_clip_algorithm=spec.get("gradient_clip_algorithm", "norm"),
            callbacks=callbacks, logger=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, deterministic="warn" if accelerator == "gpu" else True,
            default_root_dir=ckpt_dir,
        )
        fit_start = time.perf_counter()
        if arch.trainable:
            trainer.fit(module, datamodule=data)
            best = checkpoint.best_model_path or None
        else:  # a closed-form baseline: estimate it from the training split, no gradient steps
            _fit_baseline(module, data)
            best = None
        train_time = time.perf_counter() - fit_start
        tested = trainer.test(module, datamodule=data, ckpt_path=best, verbose=False)[0]
    final = {k: float(v) for k, v in tested.items() if k.startswith("test_") and k != "test_loss"}
    final["test_loss"] = float(tested.get("test_loss", float("nan")))
    # Lightning moves the model back to the CPU at teardown: measure on the device it trained on
    device = torch.device("cuda", torch.cuda.current_device()) if accelerator == "gpu" else torch.device("cpu")
    infer_throughput = _inference_throughput(module.to(device), data)
    with torch.inference_mode():
        artifacts = task.artifacts(module.eval(), data)
    best_epoch = _best_epoch(history_sink, monitor, mode)
    return {
        "metrics": final,
        "cost": {
            "train_time_s": train_time,
            "train_throughput": history.train_samples / history.train_batch_time if history.train_batch_time else 0.0,
            "inference_throughput": infer_throughput,
            "num_params": float(num_params),
            "epochs": float(len(history_sink)),
            "steps": float(trainer.global_step),
            "best_epoch": float(best_epoch),
        },
        "device": describe_device(accelerator),
        "artifacts": {str(k): str(v) for k, v in artifacts.items()},
    }


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


def _inference_throughput(module: Any, data: Any) -> float:
    """Samples per second of a forward pass over the test set (eval mode, no grad)."""
    import torch

    module.eval()
    samples, elapsed = 0, 0.0
    with torch.inference_mode():
        for batch in data.test_dataloader():
            batch = {k: v.to(module.device) if hasattr(v, "to") else v for k, v in batch.items()}
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)
            start = time.perf_counter()
            module(batch)
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)
            elapsed += time.perf_counter() - start
            samples += len(batch["lengths"])
    return samples / elapsed if elapsed > 0 else 0.0


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


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Train, validate and test one cell; always returns a result dict."""
    history: list[dict[str, float]] = []
    result = result_skeleton(payload)
    started = result["started_at"]
    try:
        result.update(_train(payload, history))
        result["status"] = "finished"
    except Exception as exc:  # every failure is recorded, the suite goes on
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    result["history"] = history
    result["versions"] = _versions()
    result["finished_at"] = time.time()
    result["wall_time_s"] = result["finished_at"] - started
    return result
