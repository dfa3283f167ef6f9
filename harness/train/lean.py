"""The lean training loop: what Lightning's fit loop does for a one-device harness run, without
its per-step cost.

Lightning's loop costs about 0.45 ms per optimizer step on a CPU (its hooks, closures, progress
tracking and logger connector; measured with a near-empty model, see docs/measurements.md). A
small recurrent model's step takes 3–12 ms on a CPU and about 1 ms on a GPU, so that is 4–45 % of
a run. This loop trains the same :class:`~harness.train.module.HarnessModule` with the same
callbacks, data loaders, optimizer, lr schedules, clipping, early stopping and best-weights rule,
in the same order, so that a run gives the same figures bit for bit as under Lightning
(``tests/train/test_lean.py`` checks it); Lightning still tests the model, and still trains every
run the lean loop does not cover (:func:`lean_unsupported`: data-parallel runs on Ray Train,
``16-mixed`` precision, ``trainer.loop: lightning``).

What it reproduces of Lightning 2's ``fit`` (the order matters for bit-equality):

* ``prepare_data`` / ``setup("fit")``, then the optimizer and schedulers, ``on_fit_start`` and
  ``on_train_start``; the train and validation loaders are made once and iterated every epoch
  (each validation iterator draws one number from the global RNG, as under Lightning);
* per step: ``on_train_batch_start``, ``zero_grad``, ``training_step``, ``backward``, gradient
  clipping, ``optimizer.step``; the step-interval schedulers; ``on_train_batch_end``;
* validation after the epoch's last step (or when ``max_time`` runs out), under
  ``inference_mode``, with the module in eval mode; ``val_loss`` is the batch-size-weighted mean;
* at the end of the epoch: the callbacks' ``on_train_epoch_end``, then ``train_loss``, then early
  stopping and the best weights (kept in memory, never written to disk: ModelCheckpoint's rule,
  strictly better, NaN as worst), then the plateau schedulers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch

from harness.records import RunSpec
from harness.settings import EarlyStopping

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from torchmetrics import MetricCollection

    from harness.train.module import HarnessModule

#: the precisions the lean loop trains in (``16-mixed`` needs a gradient scaler: Lightning's)
LEAN_PRECISIONS = ("32-true", "bf16-mixed")


def lean_unsupported(spec: RunSpec, overrides: Mapping[str, Any] | None) -> str | None:
    """Why ``spec`` trains under Lightning's loop rather than the lean one, or None."""
    if spec.trainer.loop == "lightning":
        return "trainer.loop is lightning"
    if overrides:
        return "a data-parallel run (Ray Train's strategy)"
    if spec.trainer.precision not in LEAN_PRECISIONS:
        return f"precision {spec.trainer.precision}"
    return None


@dataclass
class LoopView:
    """What the harness's callbacks read of ``pl.Trainer`` (they are passed this instead)."""

    datamodule: Any
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    callback_metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    global_step: int = 0
    current_epoch: int = 0
    global_rank: int = 0
    world_size: int = 1
    sanity_checking: bool = False
    should_stop: bool = False


@dataclass
class LeanResult:
    global_step: int
    #: the best-validation weights (``None`` when no validation ran)
    best_state: dict[str, torch.Tensor] | None


class _Best:
    """ModelCheckpoint's ``save_top_k=1`` rule, in memory: the first validation is kept, then
    every strictly better one; NaN counts as the worst value."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.score: float | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, value: float | None, module: torch.nn.Module) -> None:
        if value is None:
            return
        if math.isnan(value):
            value = math.inf if self.mode == "min" else -math.inf
        if self.score is not None and not (value < self.score if self.mode == "min" else value > self.score):
            return
        self.score = value
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}


class _EarlyStop:
    """Lightning's ``EarlyStopping`` (check_finite, min_delta, patience) on one monitored value."""

    def __init__(self, spec: EarlyStopping, monitor: str, mode: str) -> None:
        self.monitor, self.mode, self.patience = monitor, mode, spec.patience
        self.min_delta = spec.min_delta if mode == "max" else -spec.min_delta
        self.best = torch.tensor(-math.inf if mode == "max" else math.inf)
        self.wait = 0

    def should_stop(self, metrics: Mapping[str, torch.Tensor]) -> bool:
        current = metrics.get(self.monitor)
        if current is None:
            return False
        current = current.detach().float().cpu().squeeze()
        if not torch.isfinite(current):
            return True
        improved = (
            current - self.min_delta > self.best
            if self.mode == "max"
            else current - self.min_delta < self.best
        )
        if bool(improved):
            self.best, self.wait = current, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if isinstance(batch, Mapping) and all(isinstance(v, torch.Tensor) for v in batch.values()):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    from lightning_fabric.utilities.apply_func import move_data_to_device

    return move_data_to_device(batch, device)


def _autocast(spec: RunSpec, device: torch.device) -> Callable[[], AbstractContextManager[Any]]:
    if spec.trainer.precision == "bf16-mixed":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def _clipper(spec: RunSpec, params: list[torch.nn.Parameter]) -> Callable[[], None] | None:
    value, algorithm = spec.trainer.gradient_clip_val, spec.trainer.gradient_clip_algorithm
    if value is None:
        return None
    if algorithm == "value":
        return lambda: torch.nn.utils.clip_grad_value_(params, value)
    return lambda: void(torch.nn.utils.clip_grad_norm_(params, value))


def void(_: object) -> None:
    return None


class LeanLoop:
    """Trains ``module`` on ``data`` for ``spec`` (see the module docstring)."""

    def __init__(
        self,
        spec: RunSpec,
        module: HarnessModule,
        data: pl.LightningDataModule,
        callbacks: list[pl.Callback],
        *,
        monitor: str,
        mode: str,
        device: torch.device,
    ) -> None:
        self.spec, self.module, self.data, self.callbacks = spec, module, data, callbacks
        self.monitor, self.device = monitor, device
        self.view = LoopView(datamodule=data)
        self.best = _Best(mode)
        es = spec.trainer.early_stopping
        self.early: _EarlyStop | None = None
        if es is not None:
            es_monitor = es.monitor or monitor
            # "val_<metric>" -> "min" / "max" (validated at plan time; val_loss is "min")
            self.early = _EarlyStop(es, es_monitor, module.directions.get(es_monitor, "min"))
        self.autocast = _autocast(spec, device)

    def _hook(self, name: str, *args: Any) -> None:
        trainer = cast("pl.Trainer", self.view)  # the callbacks read only what LoopView has
        for callback in self.callbacks:
            getattr(callback, name)(trainer, self.module, *args)

    def fit(self) -> LeanResult:
        spec, module, view = self.spec, self.module, self.view
        settings = spec.trainer
        self.data.prepare_data()
        self.data.setup("fit")
        module.to(self.device)
        module.__dict__["loop_view"] = view  # HarnessModule.position() reads the step from it
        train_loader, val_loader = self.data.train_dataloader(), self.data.val_dataloader()
        batches = len(train_loader)
        max_steps = settings.max_steps or -1
        total = batches * settings.max_epochs
        total = min(total, max_steps) if max_steps > 0 else total
        optimizer, configs = module.optimization(total, batches)
        view.optimizers = [optimizer]
        step_schedulers = [c["scheduler"] for c in configs if c["interval"] == "step"]
        plateau = [(c["scheduler"], c["monitor"]) for c in configs if c["interval"] == "epoch"]
        clip = _clipper(spec, [p for group in optimizer.param_groups for p in group["params"]])
        deadline = time.monotonic() + float(settings.max_time) if settings.max_time else math.inf
        self._hook("on_fit_start")
        self._hook("on_train_start")
        module.train()
        try:
            for epoch in range(settings.max_epochs):
                view.current_epoch = epoch
                self._hook("on_train_epoch_start")
                module.on_train_epoch_start()
                finished = self._epoch(
                    train_loader, val_loader, optimizer, step_schedulers, clip, max_steps, deadline
                )
                self._epoch_end(finished, plateau)
                if view.should_stop or (max_steps > 0 and view.global_step >= max_steps):
                    break
            self._hook("on_train_end")
        finally:
            module.__dict__.pop("loop_view", None)
        return LeanResult(view.global_step, self.best.state)

    def _epoch(
        self,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any],
        optimizer: torch.optim.Optimizer,
        step_schedulers: list[Any],
        clip: Callable[[], None] | None,
        max_steps: int,
        deadline: float,
    ) -> bool:
        """One training epoch (and its validation); True when every batch of it ran."""
        module, view, autocast, device = self.module, self.view, self.autocast, self.device
        hooked = self.callbacks
        trainer = cast("pl.Trainer", view)
        last = len(train_loader) - 1  # type: ignore[arg-type]  # DataLoaders have a length
        for index, raw in enumerate(train_loader):
            batch = _to_device(raw, device)
            for callback in hooked:
                callback.on_train_batch_start(trainer, module, batch, index)
            optimizer.zero_grad()
            with autocast():
                loss = module.training_step(batch, index)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            if clip is not None:
                clip()
            optimizer.step()
            view.global_step += 1
            for scheduler in step_schedulers:
                scheduler.step()
            for callback in hooked:
                callback.on_train_batch_end(trainer, module, loss, batch, index)
            if time.monotonic() >= deadline:
                view.should_stop = True
            if index == last or view.should_stop:
                self._validate(val_loader)
                return index == last
            if max_steps > 0 and view.global_step >= max_steps:
                return False
        return True

    def _validate(self, val_loader: Iterable[Any]) -> None:
        self.module.zero_grad(set_to_none=True)  # Lightning's on_validation_model_zero_grad
        self.view.callback_metrics.update(self._evaluate(val_loader, "val", self.module.val_metrics))
        self._hook("on_validation_end")

    def test(self) -> dict[str, float]:
        """Test the module as it is (load the best weights first): ``test_loss`` and
        ``test_<metric>``, as ``pl.Trainer.test`` returns them."""
        self.data.setup("test")
        self.module.to(self.device)
        tested = self._evaluate(self.data.test_dataloader(), "test", self.module.test_metrics)
        return {k: float(v) for k, v in tested.items()}

    def _evaluate(
        self, loader: Iterable[Any], stage: str, metrics: MetricCollection
    ) -> dict[str, torch.Tensor]:
        """The ``<stage>_loss`` (batch-size-weighted mean) and ``metrics`` over ``loader``, under
        ``inference_mode`` in eval mode; the module's training mode is restored after."""
        module = self.module
        was_training = module.training
        module.eval()
        total: torch.Tensor | None = None
        count = 0
        with torch.inference_mode():
            for raw in loader:
                batch = _to_device(raw, self.device)
                with self.autocast():
                    loss = module.eval_batch(batch, metrics)
                size = len(batch["y"])
                weighted = loss.detach().float() * size
                total = weighted if total is None else total + weighted
                count += size
            out = {k: v.float() for k, v in metrics.compute().items()}
        metrics.reset()
        module.train(was_training)
        if total is not None and count:
            out = {f"{stage}_loss": total / count, **out}
        return out

    def _epoch_end(self, finished: bool, plateau: list[tuple[Any, str]]) -> None:
        module, view = self.module, self.view
        self._hook("on_train_epoch_end")
        module.check_epoch_loss()
        loss = module.epoch_train_loss()
        if loss is not None:
            view.callback_metrics["train_loss"] = torch.tensor(loss)
        if self.early is not None and self.early.should_stop(view.callback_metrics):
            view.should_stop = True
        value = view.callback_metrics.get(self.monitor)
        self.best.offer(float(value) if value is not None else None, module)
        if finished:
            for scheduler, monitor in plateau:
                current = view.callback_metrics.get(monitor)
                if current is not None:
                    scheduler.step(current)


def set_determinism(accelerator: str) -> None:
    """What ``pl.Trainer(deterministic=...)`` sets, as the harness's trainers use it: deterministic
    algorithms (only warned about on a GPU, where some kernels have no deterministic version), no
    cuDNN autotuning, cuBLAS's reproducible workspace."""
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=accelerator == "gpu")
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def load_best(module: torch.nn.Module, state: Mapping[str, torch.Tensor] | None) -> None:
    """Put the best-validation weights back into ``module`` (what ``ckpt_path=best`` does)."""
    if state is not None:
        module.load_state_dict(state)
