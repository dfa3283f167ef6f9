"""Learning-rate schedules: a run's ``trainer.scheduler`` as Lightning lr-scheduler configs.

- ``none`` (with a warm-up), ``cosine`` and ``step`` are one ``LambdaLR`` stepped after every
  optimizer step: :func:`lr_factor` multiplies the warm-up and the schedule in closed form, so
  the lr of each step is exact and can be tested without training.
- ``plateau`` is ``ReduceLROnPlateau`` stepped each epoch on the monitored validation metric,
  after a ``LinearLR`` warm-up stepped each optimizer step (both scale the lr the other left).
- ``onecycle`` is ``OneCycleLR`` over the run's steps; it warms up by itself (``pct_start``).
  Momentum is not cycled: ``trainer.momentum`` and Adam's betas stay as set.

The warm-up is linear: at optimizer step ``k`` (from 0) of a warm-up of ``W`` steps the lr is
``lr * (k + 1) / W``, reaching ``lr`` at the last warm-up step; a schedule's decay starts after it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from harness.errors import RunFailure
from harness.settings import SchedulerSpec, TrainerSpec


def lr_factor(
    spec: SchedulerSpec, step: int, *, total_steps: int, steps_per_epoch: int, max_epochs: int, lr: float
) -> float:
    """The multiple of ``trainer.lr`` used at optimizer step ``step`` (from 0) by ``none``,
    ``cosine`` and ``step`` schedules, warm-up included."""
    warm = spec.warmup(total_steps)
    factor = (step + 1) / warm if step < warm else 1.0
    if spec.name == "cosine":
        floor = spec.floor(lr) / lr
        progress = min(1.0, max(0, step - warm) / max(1, total_steps - warm))
        factor *= floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif spec.name == "step":
        epoch = step // max(1, steps_per_epoch)
        factor *= spec.decay() ** (epoch // spec.epochs_per_step(max_epochs))
    return factor


def build_schedulers(
    optimizer: torch.optim.Optimizer,
    trainer: TrainerSpec,
    *,
    total_steps: int,
    steps_per_epoch: int,
    monitor: str,
    mode: str,
) -> list[dict[str, Any]]:
    """Lightning's lr-scheduler configs for ``trainer.scheduler`` (empty for a constant lr).

    ``total_steps``: the run's optimizer steps (``max_steps`` respected); ``monitor`` / ``mode``:
    the validation metric a plateau schedule watches and whether lower or higher is better.
    """
    spec = trainer.scheduler
    if spec.constant:
        return []
    _check_steps(spec, total_steps)
    if spec.name == "onecycle":
        onecycle = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=spec.peak(trainer.lr),
            total_steps=total_steps,
            pct_start=spec.rise(),
            cycle_momentum=False,
        )
        return [{"scheduler": onecycle, "interval": "step", "name": "lr"}]
    if spec.name == "plateau":
        configs: list[dict[str, Any]] = []
        warm = spec.warmup(total_steps)
        if warm > 1:
            warmup = torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1
            )
            configs.append({"scheduler": warmup, "interval": "step", "name": "lr-warmup"})
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if mode == "min" else "max",
            factor=spec.decay(),
            patience=spec.plateau_patience(),
            min_lr=spec.floor(trainer.lr),
        )
        configs.append({"scheduler": plateau, "interval": "epoch", "monitor": monitor, "name": "lr"})
        return configs
    factor = functools.partial(
        lr_factor,
        spec,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        max_epochs=trainer.max_epochs,
        lr=trainer.lr,
    )
    return [
        {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step", "name": "lr"}
    ]


def _check_steps(spec: SchedulerSpec, total_steps: int) -> None:
    if total_steps < 1:  # an iterable dataset without max_steps: no length to schedule over
        raise RunFailure(
            f"the {spec.name} schedule needs the run's number of optimizer steps, which is unknown "
            "(the training data has no length); set trainer.max_steps"
        )
    if spec.warmup_steps is not None and spec.warmup_steps >= total_steps:
        raise RunFailure(
            f"trainer.scheduler.warmup_steps ({spec.warmup_steps}) must be below the run's "
            f"{total_steps} optimizer steps, or the lr never leaves the warm-up; lower it, or give "
            "warmup_fraction (a share of the run's steps) instead"
        )
