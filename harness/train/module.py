"""The LightningModule that joins an architecture's encoder with a task's head,
loss and metrics; and the callback that records per-epoch history and timing."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import MetricCollection

from harness.errors import RunFailure
from harness.interfaces import Architecture, MetricSpec, Task, TaskInfo
from harness.network import build_network
from harness.network import output_size as output_size  # re-exported: benchmarks import it from here
from harness.settings import TrainerSpec


def build_optimizer(params: Any, trainer: TrainerSpec) -> torch.optim.Optimizer:
    name, lr, wd = trainer.optimizer, trainer.lr, trainer.weight_decay
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=trainer.momentum)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=trainer.momentum)
    raise ValueError(f"unknown optimizer {name!r}")


def build_module(
    task: Task[Any],
    arch: Architecture[Any],
    trainer: TrainerSpec,
    metrics: Mapping[str, MetricSpec] | None = None,
) -> HarnessModule:
    """The network of one run: the architecture's encoder (and, for seq2seq tasks, its decoder)
    with the task's head on top, as the LightningModule that trains it."""
    network = build_network(task, arch)  # the same assembly the parameter budget counts
    return HarnessModule(
        network.encoder,
        network.head,
        task,
        task.cached_info(),
        metrics or {},
        trainer,
        decoder=network.decoder,
    )


@dataclass
class EpochLoss:
    """The training loss of an epoch so far: its sum over samples, the samples, and (CUDA) the
    steps since it was last checked for NaN / inf."""

    total: torch.Tensor | float = 0.0
    count: int = 0
    unchecked: int = 0


#: on CUDA, the training loss is checked for NaN / inf every this many steps (each check waits
#: for the GPU; on the CPU it is checked every step, at no cost)
CUDA_CHECK_EVERY = 16


class HarnessModule(pl.LightningModule):
    def __init__(
        self,
        encoder: torch.nn.Module,
        head: torch.nn.Module,
        task: Task,
        info: TaskInfo,
        metrics: Mapping[str, MetricSpec],
        trainer: TrainerSpec,
        decoder: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.decoder = decoder
        self.task = task
        self.info = info
        self.trainer_spec = trainer
        #: the training loss of the epoch so far (see training_step); a plain object, so that the
        #: per-step updates skip nn.Module's attribute bookkeeping (~5 µs an assignment)
        self.epoch_loss = EpochLoss()
        built = {name: spec.factory(info) for name, spec in metrics.items()}
        #: whether lower or higher is better, per validation metric (a plateau schedule's mode)
        self.directions = {f"val_{name}": spec.direction for name, spec in metrics.items()}
        self.directions.update({f"val_{info.primary_metric}": info.direction, "val_loss": "min"})
        self.val_metrics = MetricCollection(dict(built), prefix="val_", compute_groups=False)
        self.test_metrics = self.val_metrics.clone(prefix="test_")

    def forward(self, batch: Mapping[str, Any]) -> Any:
        return self.task.forward(self, batch)

    def _step(self, batch: Mapping[str, Any]) -> tuple[Any, torch.Tensor]:
        prediction = self(batch)
        return prediction, self.task.batch_loss(prediction, batch)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        tbptt = self.trainer_spec.tbptt
        if tbptt is not None:  # truncated BPTT in training only; validation/test see full sequences
            from harness.train.tbptt import tbptt_forward

            loss = self.task.batch_loss(tbptt_forward(self, batch, tbptt), batch)
        else:
            _, loss = self._step(batch)
        # the epoch mean is accumulated here, not with a per-step self.log: Lightning's logging
        # machinery costs ~0.5 ms a step, a measurable share of a small model's step on CPU
        size = len(batch["y"])
        tally = self.epoch_loss
        tally.total = tally.total + loss.detach().float() * size
        tally.count += size
        if loss.device.type != "cuda":
            self._check_finite(loss, "at")
        else:  # reading a CUDA loss back stalls the queue: check the epoch's sum now and then
            tally.unchecked += 1
            if tally.unchecked >= CUDA_CHECK_EVERY:
                self.check_epoch_loss()
        return loss

    def _check_finite(self, loss: torch.Tensor | float, where: str) -> None:
        if not torch.isfinite(torch.as_tensor(loss)):
            step, epoch = self.position()
            value = loss.item() if isinstance(loss, torch.Tensor) else loss
            raise RunFailure(
                f"training loss became {value} {where} step {step} (epoch {epoch}); "
                "lower trainer.lr or set trainer.gradient_clip_val"
            )

    def check_epoch_loss(self) -> None:
        """Fail the run when a training loss of this epoch so far was not finite (on CUDA,
        every :data:`CUDA_CHECK_EVERY` steps and at the end of the epoch)."""
        tally = self.epoch_loss
        tally.unchecked = 0
        if tally.count:
            self._check_finite(tally.total, "by")

    def position(self) -> tuple[int, int]:
        """(optimizer step, epoch) of the loop training this module: Lightning's, or the lean
        loop's (:mod:`harness.train.lean`)."""
        view = self.__dict__.get("loop_view")
        if view is not None:
            return view.global_step, view.current_epoch
        return self.global_step, self.current_epoch

    def on_train_epoch_start(self) -> None:
        self.epoch_loss = EpochLoss()

    def epoch_train_loss(self) -> float | None:
        """Mean training loss of the epoch so far (this rank), or None before any step."""
        tally = self.epoch_loss
        return float(tally.total) / tally.count if tally.count else None

    def on_train_epoch_end(self) -> None:
        self.check_epoch_loss()
        loss = self.epoch_train_loss()
        if loss is not None:  # kept in callback_metrics for callbacks that monitor it
            # sync_dist: the mean over data-parallel ranks (a no-op on one device)
            self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)

    def _eval_step(self, batch: Mapping[str, torch.Tensor], stage: str, metrics: MetricCollection) -> None:
        loss = self.eval_batch(batch, metrics)
        self.log(
            f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["y"]), sync_dist=True
        )

    def eval_batch(self, batch: Mapping[str, torch.Tensor], metrics: MetricCollection) -> torch.Tensor:
        """The loss of an evaluation batch; ``metrics`` are updated with its predictions."""
        prediction, loss = self._step(batch)
        if isinstance(prediction, torch.Tensor) and prediction.is_floating_point():
            prediction = prediction.float()  # metrics in full precision under mixed precision
        inputs = self.task.evaluate(self, prediction, batch)
        if isinstance(inputs, Mapping):
            update_by_name(metrics, inputs, self.task)
        else:
            metrics.update(*inputs)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({k: v.float() for k, v in self.val_metrics.compute().items()})
        self.val_metrics.reset()

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_dict({k: v.float() for k, v in self.test_metrics.compute().items()})
        self.test_metrics.reset()

    def configure_optimizers(self) -> Any:
        """The optimizer, with the lr schedulers of ``trainer.scheduler`` (none: a constant lr)."""
        if self.trainer_spec.scheduler.constant:
            return build_optimizer(self.parameters(), self.trainer_spec)
        trainer = self.trainer
        total = trainer.estimated_stepping_batches  # max_epochs × steps per epoch, or max_steps if fewer
        batches = trainer.num_training_batches
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else 0
        optimizer, configs = self.optimization(int(total) if math.isfinite(total) else 0, per_epoch)
        return [optimizer], configs

    def optimization(
        self, total_steps: int, steps_per_epoch: int
    ) -> tuple[torch.optim.Optimizer, list[dict[str, Any]]]:
        """The optimizer and the lr schedulers (Lightning's scheduler configs) of ``trainer.scheduler``
        for a run of ``total_steps`` optimizer steps (0: unknown)."""
        optimizer = build_optimizer(self.parameters(), self.trainer_spec)
        schedule = self.trainer_spec.scheduler
        if schedule.constant:
            return optimizer, []
        from harness.train.schedules import build_schedulers

        monitor = schedule.monitor or f"val_{self.info.primary_metric}"
        configs = build_schedulers(
            optimizer,
            self.trainer_spec,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            monitor=monitor,
            mode=self.directions.get(monitor, "min"),
        )
        return optimizer, configs


def update_by_name(metrics: MetricCollection, inputs: Mapping[str, Any], task: Task) -> None:
    """Update each metric with ``inputs[name]``, else ``inputs["*"]`` (see ``Task.evaluate``)."""
    for key, metric in metrics.items(keep_base=True):
        args = inputs.get(key, inputs.get("*"))
        if args is None:
            raise RunFailure(
                f"task `{task.name}` gave no inputs for metric `{key}` "
                f"(it gave: {', '.join(sorted(inputs))}); "
                "choose metrics the task supports, or have its evaluate() return a '*' entry"
            )
        metric.update(*args)


class HistoryCallback(pl.Callback):
    """Collects per-epoch metrics, the time spent in training batches, and time-to-target.

    Time-to-target follows MLPerf: at the first *validation* whose ``val_<primary>`` reaches
    ``target`` (>= for ``direction="max"``, <= for ``"min"``) it records the optimizer steps,
    training samples (all ranks) and wall-clock seconds since fit start.
    """

    def __init__(
        self,
        history: list[dict[str, float]] | None = None,
        *,
        monitor: str | None = None,
        target: float | None = None,
        direction: str = "max",
    ) -> None:
        #: one row per epoch; pass a list to keep the rows even if training raises
        self.history: list[dict[str, float]] = history if history is not None else []
        self.train_batch_time = 0.0
        self.train_samples = 0
        self.train_timesteps = 0
        #: (seconds, samples, time steps) of every training batch: the spread of the training rates
        self.batches: list[tuple[float, int, int]] = []
        self.monitor, self.target, self.direction = monitor, target, direction
        #: ``{"ttt_steps", "ttt_samples", "ttt_time_s"}`` once the target is reached
        self.reached: dict[str, float] | None = None
        self._batch_start = 0.0
        self._cuda_start: torch.cuda.Event | None = None
        #: CUDA batches not yet read back: (start event, end event, samples, time steps)
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event, int, Any]] = []
        self._fit_start = 0.0
        self._epoch_lr: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the lr the epoch's first step uses (a plateau schedule's lr of the whole epoch)
        groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
        self._epoch_lr = float(groups[0]["lr"]) if groups else None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.device.type == "cuda":  # CUDA events: no synchronisation inside the step
            self._cuda_start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            self._cuda_start.record()
        else:
            self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        samples = len(batch["y"])
        lengths = batch.get("lengths") if isinstance(batch, Mapping) else None
        # the real (unpadded) time steps
        timesteps = lengths.sum() if lengths is not None else 0
        if self._cuda_start is not None:
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end.record()
            # read back at the end of the epoch, in one synchronisation (see _settle)
            self._pending.append((self._cuda_start, end, samples, timesteps))
            self._cuda_start = None
            return
        self._add(time.perf_counter() - self._batch_start, samples, int(timesteps))

    def _add(self, seconds: float, samples: int, timesteps: int) -> None:
        self.train_batch_time += seconds
        self.train_samples += samples
        self.train_timesteps += timesteps
        self.batches.append((seconds, samples, timesteps))

    def _settle(self) -> None:
        """Account the CUDA batches timed with events (waits for the last one)."""
        for start, end, samples, timesteps in self._pending:
            end.synchronize()
            self._add(start.elapsed_time(end) / 1000.0, samples, int(timesteps))
        self._pending.clear()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._settle()

    def rate_spread(self) -> dict[str, float]:
        """IQR of the per-batch samples/s and time steps/s (absent below 4 batches)."""
        from harness.measure.timing import iqr

        timed = [b for b in self.batches if b[0] > 0]
        if len(timed) < 4:
            return {}
        out = {"train_samples_per_s_iqr": iqr([n / s for s, n, _ in timed])}
        if self.train_timesteps:
            out["train_timesteps_per_s_iqr"] = iqr([t / s for s, _, t in timed])
        return out

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reached is not None or self.target is None or trainer.sanity_checking or not self.monitor:
            return
        metric = trainer.callback_metrics.get(self.monitor)
        if metric is None:
            return
        value = float(metric)
        if (value >= self.target) if self.direction == "max" else (value <= self.target):
            self.reached = {
                "ttt_steps": float(trainer.global_step),
                "ttt_samples": float(self.train_samples * max(1, trainer.world_size)),
                "ttt_time_s": time.perf_counter() - self._fit_start,
            }

    def ttt(self) -> dict[str, float]:
        """The time-to-target cost keys (``ttt_reached`` only when no target is set: NaN)."""
        if self.target is None:
            return {}
        if self.reached is None:
            return {"ttt_reached": 0.0}
        return {"ttt_reached": 1.0, **self.reached}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._settle()
        row: dict[str, float] = {"epoch": float(trainer.current_epoch), "step": float(trainer.global_step)}
        for key, value in trainer.callback_metrics.items():
            if key == "train_loss" or key.startswith("val_"):
                row[key] = float(value)
        epoch_loss = getattr(pl_module, "epoch_train_loss", None)
        if callable(epoch_loss) and epoch_loss() is not None:  # callbacks run before the module's hook
            row["train_loss"] = float(epoch_loss())
        if self._epoch_lr is not None:  # train_lr: MLflow's train/lr, read back as history
            row["train_lr"] = self._epoch_lr
        row["elapsed_s"] = time.perf_counter() - self._fit_start
        self.history.append(row)
