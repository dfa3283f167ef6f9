"""The tuning plan: contenders, their search spaces, trial specs and the final runs' specs.

Pure functions over typed specs (no Ray, no torch), used by the driver and by the Tune workers
alike (a worker rebuilds its trial's spec from the contender's base spec and the sampled settings).

- A *contender* is one (task, architecture) pair of the plan: its base cell is the plan's cell
  of the first seed; its space is the core's default (the learning rate), the architecture's own
  (``Architecture.tune_space``) and the suite's ``tune.space``, in that order.
- A *trial* is the base cell with sampled settings, trained with ``tune.seed``, validated only
  (``Tuning.role == "trial"``), measurements off. Its run id is a hash of the base cell's id, the
  seed and the settings: the same settings are the same trial, so an interrupted tuning resumes
  without repeating a finished trial.
- The final runs are every plan cell of a contender with its best settings (``tuned``), and with
  the suite's own (``default``, the plain cell: same run id) when ``compare_default`` is on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.records import RunRecord, RunSpec, Tuning
from harness.settings import MeasureSpec
from harness.tunespec import Domain, Space, TuneSpec, default_trainer_space, split


@dataclass(frozen=True)
class Contender:
    key: str
    base: RunSpec
    cells: tuple[RunSpec, ...]
    space: Space

    @property
    def metric(self) -> str:
        return f"val_{self.base.primary_metric}"

    @property
    def mode(self) -> str:
        return self.base.direction


def contender_key(spec: RunSpec) -> str:
    return f"{spec.task_label} × {spec.arch_label}"


def _hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def contenders(
    cells: Iterable[RunSpec], tune: TuneSpec, arch_spaces: dict[str, dict[str, Any]]
) -> list[Contender]:
    """The plan's runnable cells grouped by (task, architecture), in plan order.

    ``arch_spaces``: architecture name → its plugin's :meth:`~harness.Architecture.tune_space`.
    An invalid plugin space is a :class:`HarnessError` naming the architecture.
    """
    groups: dict[str, list[RunSpec]] = {}
    for cell in cells:
        if cell.skip_reason is None:
            groups.setdefault(contender_key(cell), []).append(cell)
    out = []
    for key, group in groups.items():
        base = group[0]
        space: Space = dict(default_trainer_space(base.trainer.lr))
        for target, raw in arch_spaces.get(base.architecture, {}).items():
            try:
                space[target] = raw if isinstance(raw, Domain) else Domain.model_validate(raw)
            except ValidationError as exc:
                raise HarnessError(
                    f"The architecture `{base.architecture}` declares an invalid tuning space at `{target}` "
                    f"({exc.errors()[0]['msg']}). Fix its plugin's tune_space(), or override `{target}` "
                    "in the suite's tune.space."
                ) from None
        space.update(tune.space_for(base.architecture, base.arch_label))
        out.append(Contender(key, base, tuple(group), space))
    return out


def apply(spec: RunSpec, config: dict[str, Any], arch_params: type[Any] | None = None) -> RunSpec:
    """``spec`` with the tuned ``config`` (``trainer.<key>`` / ``params.<key>``) applied and
    validated: a ``ValueError`` naming the setting when a value does not fit."""
    trainer_overrides, params = split(config)
    try:
        trainer = spec.trainer.override(trainer_overrides) if trainer_overrides else spec.trainer
    except ValidationError as exc:
        raise ValueError(f"trainer settings {trainer_overrides}: {exc.errors()[0]['msg']}") from None
    merged = {**spec.arch_params, **params}
    if arch_params is not None and params:
        try:
            arch_params.model_validate(merged)
        except ValidationError as exc:
            raise ValueError(f"architecture params {params}: {exc.errors()[0]['msg']}") from None
    return spec.model_copy(update={"trainer": trainer, "arch_params": merged})


def trial_spec(
    contender: Contender,
    config: dict[str, Any],
    index: int,
    tune: TuneSpec,
    params_model: type[Any] | None = None,
) -> RunSpec:
    """Trial ``index`` of ``contender`` with ``config``: validation only, ``tune.seed``, no
    measurements (``params_model``: the architecture's ``Params``, to validate tuned params)."""
    spec = apply(contender.base, config, params_model)
    return spec.model_copy(
        update={
            "run_id": _hash("trial", contender.base.run_id, tune.seed, config),
            "seed": tune.seed,
            "measure": MeasureSpec(latency=False, flops=False, memory=False),
            "log_model": "none",
            "tuning": Tuning(role="trial", contender=contender.key, trial=index, config=config),
        }
    )


def final_specs(contender: Contender, best: dict[str, Any], compare_default: bool) -> list[RunSpec]:
    """The final runs of ``contender``: each of its cells (seeds) with ``best`` (``tuned``), and as
    written (``default``, the plain cell's run id) when ``compare_default``."""
    out = []
    for cell in contender.cells:
        tuned = apply(cell, best).model_copy(
            update={
                "run_id": _hash("tuned", cell.run_id, best) if best else cell.run_id,
                "tuning": Tuning(role="tuned", contender=contender.key, config=best),
            }
        )
        out.append(tuned)
        if compare_default and best:
            default = cell.model_copy(update={"tuning": Tuning(role="default", contender=contender.key)})
            out.append(default)
    return out


def best_value(record: RunRecord) -> float | None:
    """A trial's best validation score of its primary metric over its epochs (None: none finite)."""
    key = f"val_{record.spec.primary_metric}"
    values = [row[key] for row in record.history if key in row and math.isfinite(row[key])]
    if not values:
        return None
    return max(values) if record.spec.direction == "max" else min(values)


def compute_seconds(record: RunRecord) -> tuple[float, float]:
    """(CPU-seconds, GPU-seconds) a run held: its wall time × the CPUs / GPUs it asked for (per
    worker, × workers)."""
    res = record.spec.resources
    return (
        record.wall_time_s * res.cpus * res.workers,
        record.wall_time_s * res.gpus * res.workers,
    )


def best_config(trials: Iterable[RunRecord]) -> tuple[dict[str, Any], float | None]:
    """The settings of the finished trial with the best validation score, and that score ({} and
    None when no trial has one: the final runs then use the suite's own settings). A failed
    trial's settings are never chosen (a run that diverged after a good epoch is a poor pick)."""
    scored: list[tuple[float, RunRecord]] = []
    for record in trials:
        value = best_value(record)
        if record.spec.tuning is not None and record.finished and value is not None:
            scored.append((value, record))
    if not scored:
        return {}, None
    sign = 1.0 if scored[0][1].spec.direction == "max" else -1.0

    def rank(pair: tuple[float, RunRecord]) -> tuple[float, int]:  # ties: the earlier trial
        tuning = pair[1].spec.tuning
        return sign * pair[0], -(tuning.trial or 0 if tuning is not None else 0)

    value, record = max(scored, key=rank)
    return dict(record.spec.tuning.config) if record.spec.tuning else {}, value


__all__ = [
    "Contender",
    "apply",
    "best_config",
    "best_value",
    "compute_seconds",
    "contender_key",
    "contenders",
    "final_specs",
    "trial_spec",
]
