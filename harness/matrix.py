"""Suite + registry → the plan: tasks × architectures × grid × seeds.

Every cell is validated here, on the driver, before anything runs: component
parameters, per-cell trainer settings, metric names, capability checks. A cell
whose architecture cannot run its task is kept with a skip reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from harness import __version__
from harness.budget import cell_budget, provisional, size_cell, sizes_entry
from harness.errors import SuiteError, suggest
from harness.provenance import digests_enabled, git_commit, source_digest
from harness.records import PlanProvenance, PluginRef, RunSpec
from harness.registry import Provenance, Registry
from harness.settings import TrainerSpec, merge_settings
from harness.suite import ComponentEntry, Suite, check_accelerator
from harness.validation import allowed_keys, raise_for
from harness.yamlsrc import Loc, format_loc

TRAINER_PREFIX = "trainer."


@dataclass
class Plan:
    suite: Suite
    cells: list[RunSpec]

    @property
    def runnable(self) -> list[RunSpec]:
        return [c for c in self.cells if c.skip_reason is None]

    @property
    def skipped(self) -> list[RunSpec]:
        return [c for c in self.cells if c.skip_reason is not None]

    def filtered(self, only: dict[str, set[str]]) -> Plan:
        """The cells matching ``only`` ({"task": names, "arch": names}; a name or a label).

        A name that matches no cell is an error (a typo would otherwise silently run less).
        """
        known = {
            "task": {n for c in self.cells for n in (c.task, c.task_label)},
            "arch": {n for c in self.cells for n in (c.architecture, c.arch_label)},
        }
        for kind, names in only.items():
            choices = known.get(kind, set())
            for name in sorted(names):
                if name not in choices:
                    listed = sorted({c.task if kind == "task" else c.architecture for c in self.cells})
                    raise SuiteError(
                        f"--only {kind}={name} matches no cell of {self.suite.path}. {suggest(name, choices)}"
                        f"{'Tasks' if kind == 'task' else 'Architectures'} in this suite: "
                        f"{', '.join(listed)} "
                        "(grid points can also be named by their label, as `harness validate` shows them)."
                    )

        def keep(cell: RunSpec) -> bool:
            tasks, archs = only.get("task"), only.get("arch")
            return (not tasks or cell.task in tasks or cell.task_label in tasks) and (
                not archs or cell.architecture in archs or cell.arch_label in archs
            )

        return Plan(self.suite, [c for c in self.cells if keep(c)])


def run_id(recipe: dict[str, Any]) -> str:
    """Content hash of a resolved run recipe (stable across processes and machines)."""
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _recipe(
    task: str,
    task_params: dict[str, Any],
    arch: str,
    arch_params: dict[str, Any],
    trainer: TrainerSpec,
    seed: int,
    metrics: tuple[str, ...],
    provenance: PlanProvenance,
    target: float | None,
    workers: int,
) -> dict[str, Any]:
    """What the run id hashes: the resolved run, in the layout every earlier run id was hashed with.

    Settings at their "off" default stay out, so adding them kept the run ids of earlier results.
    The git commit stays out too: a new commit of harness must not re-run a finished suite.
    """
    recipe: dict[str, Any] = {
        "task": task,
        "task_params": task_params,
        "architecture": arch,
        "arch_params": arch_params,
        "trainer": trainer.model_dump(mode="json", exclude=_off_by_default(trainer)),
        "seed": seed,
        "metrics": list(metrics),
        "versions": provenance.id_versions(),
    }
    if target is not None:
        recipe["target"] = target
    if workers > 1:  # data-parallel training changes the effective batch
        recipe["workers"] = workers
    return recipe


def _off_by_default(trainer: TrainerSpec) -> set[str]:
    """The trainer settings the run id leaves out: those added later, while at their "off" default,
    and ``loop``."""
    off = {"loop"}  # the training loop changes how fast a run trains, not what it computes
    off |= {"tbptt"} if trainer.tbptt is None else set()
    return off | ({"scheduler"} if trainer.scheduler.constant else set())


def plugin_ref(provenance: Provenance) -> PluginRef:
    """What the plan records (and the run id hashes) of the plugin that registered a name.

    Its distribution and version; plus, for a plugin whose code can change without a new
    version (``provenance.source``: editable or local-directory installs, ``HARNESS_PLUGINS``
    modules), the digest of its Python source, so that editing it changes the run ids of the
    cells it serves. ``HARNESS_SOURCE_DIGEST=0`` leaves the digest out (the version alone).
    The digest is computed once per process (:func:`harness.provenance.source_digest`).
    """
    source = source_digest(provenance.source) if provenance.source and digests_enabled() else None
    return PluginRef(distribution=provenance.distribution, version=provenance.version, source=source)


def _grid_points(entry: ComponentEntry) -> list[dict[str, Any]]:
    keys = list(entry.grid)
    return [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*(entry.grid[k] for k in keys))
    ]


def _label(entry: ComponentEntry, point: dict[str, Any]) -> str:
    base = entry.label or entry.name
    if not point:
        return base
    return base + "[" + ",".join(f"{k}={v}" for k, v in point.items()) + "]"


def _validate(
    model: type[BaseModel],
    raw: dict[str, Any],
    suite: Suite,
    where: Loc,
    point: dict[str, Any] | None = None,
    grid_loc: Loc = (),
    strip: str = "",
) -> Any:
    """Validate ``raw``; errors on values that came from a grid point name the grid entry."""

    def relocate(inner: Loc) -> Loc | None:
        if not point or not inner:
            return None
        for n in range(len(inner), 0, -1):  # a dotted axis (trainer.scheduler.name) before its block
            key = strip + ".".join(str(part) for part in inner[:n])
            if key in point:
                values = _grid_values(suite, grid_loc, key)
                index = values.index(point[key]) if point[key] in values else 0
                return (*grid_loc, "grid", key, index, *inner[n:])
        return None

    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise_for(exc, suite.source, model, where, relocate)


def _grid_values(suite: Suite, base: Loc, key: str) -> list[Any]:
    entries: Any = getattr(suite.spec, str(base[0]))
    return list(entries[int(base[1])].grid.get(key, []))


def _component_params(
    entry: ComponentEntry,
    point: dict[str, Any],
    cls: Any,
    suite: Suite,
    base: Loc,
    fill: dict[str, Any] | None = None,
) -> Any:
    """``entry``'s params at grid ``point``, validated; ``fill``: values under them (a budget's
    provisional width)."""
    params = {k: v for k, v in point.items() if not k.startswith(TRAINER_PREFIX)}
    raw = {**(fill or {}), **entry.params, **params}
    return _validate(cls.Params, raw, suite, (*base, "params"), params, base)


def _trainer_loc(key: str, arch_entry: Any, point: dict[str, Any], base: Loc) -> Loc:
    """Where the trainer setting ``key`` (dotted: ``scheduler.monitor``) of this cell was written
    (grid, entry override, suite)."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        grid_key = TRAINER_PREFIX + ".".join(parts[:n])
        if grid_key in point:
            values = list(arch_entry.grid[grid_key])
            return (*base, "grid", grid_key, values.index(point[grid_key]), *parts[n:])
    if parts[0] in arch_entry.trainer:
        return (*base, "trainer", *parts)
    return ("trainer", *parts)


def _trainer(
    suite: Suite, arch_entry: Any, point: dict[str, Any], base: Loc, metrics: tuple[str, ...]
) -> TrainerSpec:
    raw = suite.spec.trainer.model_dump(exclude_unset=True)
    raw.update(arch_entry.trainer)
    overrides = {k[len(TRAINER_PREFIX) :]: v for k, v in point.items() if k.startswith(TRAINER_PREFIX)}
    raw = merge_settings(raw, overrides)  # dotted axes (trainer.scheduler.name) set a key of a block
    where: Loc = (*base, "trainer") if arch_entry.trainer else ("trainer",)
    trainer: TrainerSpec = _validate(TrainerSpec, raw, suite, where, point, base, strip=TRAINER_PREFIX)
    accel_loc = _trainer_loc("accelerator", arch_entry, point, base)
    check_accelerator(trainer.accelerator, suite.spec.resources, suite.source.where(accel_loc))
    es = trainer.early_stopping
    allowed = ["val_loss", *(f"val_{m}" for m in metrics)]
    if es is not None and es.monitor is not None and es.monitor not in allowed:
        es_loc = _trainer_loc("early_stopping", arch_entry, point, base)
        raise SuiteError(
            f"{suite.source.where((*es_loc, 'monitor'))}: early stopping cannot monitor "
            f"`{es.monitor}`: this task logs {', '.join(allowed)}. {suggest(es.monitor, allowed)}"
            "Pick one of them, or drop `monitor` to use the task's primary metric."
        )
    plateau = trainer.scheduler.monitor
    if plateau is not None and plateau not in allowed:
        sched_loc = _trainer_loc("scheduler.monitor", arch_entry, point, base)
        raise SuiteError(
            f"{suite.source.where(sched_loc)}: the plateau schedule cannot monitor `{plateau}`: this task "
            f"logs {', '.join(allowed)}. {suggest(plateau, allowed)}"
            "Pick one of them, or drop `monitor` to use the task's primary metric."
        )
    return trainer


def _metrics(
    entry: Any, default: tuple[str, ...], primary: str, kind: str, registry: Registry, base: Loc, suite: Suite
) -> tuple[str, ...]:
    names = tuple(entry.metrics) if entry.metrics is not None else default
    for i, name in enumerate(names):
        spec = registry.metrics.get(name, where=suite.source.where((*base, "metrics", i))).obj
        if kind not in spec.output_kinds:
            raise SuiteError(
                f"{suite.source.where((*base, 'metrics', i))}: metric `{name}` does not apply to "
                f"{kind} tasks "
                f"(it is for {', '.join(sorted(spec.output_kinds))}). Remove it or pick another metric."
            )
    if primary not in names:
        names = (primary, *names)
    return names


#: the most cells a plan may have unless ``HARNESS_MAX_CELLS`` allows more: past this a suite is
#: almost always a typo in a grid or ``seeds`` (10,000 cells plan in about 3 s and 100 MB)
MAX_CELLS = 20_000
MAX_CELLS_ENV = "HARNESS_MAX_CELLS"


def _points(entry: ComponentEntry) -> int:
    return math.prod(len(values) for values in entry.grid.values())


def check_plan_size(suite: Suite) -> int:
    """The number of cells ``suite`` expands to, counted before expanding; a
    :class:`SuiteError` above :data:`MAX_CELLS` (or ``$HARNESS_MAX_CELLS``)."""
    spec = suite.spec
    tasks = sum(_points(entry) for entry in spec.tasks)
    archs = sum(_points(entry) for entry in spec.architectures)
    cells = tasks * archs * len(spec.seeds)
    raw = os.environ.get(MAX_CELLS_ENV, "")
    limit = int(raw) if raw.isdigit() else MAX_CELLS
    if cells > limit:
        raise SuiteError(
            f"{suite.path}: the suite expands to {cells:,} cells ({tasks:,} task point(s) × "
            f"{archs:,} architecture point(s) × {len(spec.seeds):,} seed(s)), more than the limit of "
            f"{limit:,}. Check the `grid:` axes and `seeds` for a typo; to run a plan this large on "
            f"purpose, set {MAX_CELLS_ENV}={cells}."
        )
    return cells


def build_plan(suite: Suite, registry: Registry) -> Plan:
    """Expand and validate every cell of ``suite`` against ``registry``."""
    spec = suite.spec
    cells: list[RunSpec] = []
    origins: list[Loc] = []  # the architecture entry each cell comes from (for duplicate errors)
    commit = git_commit()
    refs: dict[tuple[str, str], PluginRef] = {}  # (kind, name) -> the plugin, hashed once a plan

    def ref(kind: str, name: str, provenance: Provenance) -> PluginRef:
        key = (kind, name)
        if key not in refs:
            refs[key] = plugin_ref(provenance)
        return refs[key]

    _check_reporters(suite, registry)
    check_plan_size(suite)
    for ti, t_entry in enumerate(spec.tasks):
        t_base: Loc = ("tasks", ti)
        t_reg = registry.tasks.get(t_entry.name, where=suite.source.where((*t_base, "name")))
        for t_point in _grid_points(t_entry):
            _check_grid_keys(t_entry, t_point, t_reg.obj, suite, t_base, allow_trainer=False)
            t_params = _component_params(t_entry, t_point, t_reg.obj, suite, t_base)
            task = t_reg.obj(t_params)
            info = task.info()
            missing = task.unavailable()
            metrics = _metrics(
                t_entry, info.metrics, info.primary_metric, info.output_kind, registry, t_base, suite
            )
            budget = cell_budget(suite, t_entry, t_base)
            for ai, a_entry in enumerate(spec.architectures):
                a_base: Loc = ("architectures", ai)
                a_reg = registry.architectures.get(a_entry.name, where=suite.source.where((*a_base, "name")))
                sized = budget is not None and sizes_entry(a_entry, a_reg, a_base, budget[1], suite)
                for a_point in _grid_points(a_entry):
                    _check_grid_keys(a_entry, a_point, a_reg.obj, suite, a_base, allow_trainer=True)
                    explicit = {k: v for k, v in a_point.items() if not k.startswith(TRAINER_PREFIX)}
                    explicit = {**a_entry.params, **explicit}
                    fill = provisional(a_reg.obj, explicit) if sized else None
                    a_params = _component_params(a_entry, a_point, a_reg.obj, suite, a_base, fill)
                    trainer = _trainer(suite, a_entry, a_point, a_base, metrics)
                    arch = a_reg.obj(a_params)
                    reason = (
                        f"task `{t_entry.name}` unavailable: {missing}"
                        if missing
                        else arch.incompatibility(info)
                    )
                    if reason is None and trainer.tbptt is not None:
                        reason = arch.tbptt_incompatibility()
                    sizing = None
                    if sized and reason is None and budget is not None:
                        a_params, sizing = size_cell(task, a_reg.obj, explicit, budget, a_base, suite)
                    provenance = PlanProvenance(
                        harness=__version__,
                        task_plugin=ref("task", t_entry.name, t_reg.provenance),
                        arch_plugin=ref("architecture", a_entry.name, a_reg.provenance),
                        data_version=task.data_version,
                        git_commit=commit,
                    )
                    task_params = t_params.model_dump(mode="json")
                    arch_params = a_params.model_dump(mode="json")
                    for seed in spec.seeds:
                        cells.append(
                            RunSpec(
                                run_id=run_id(
                                    _recipe(
                                        t_entry.name,
                                        task_params,
                                        a_entry.name,
                                        arch_params,
                                        trainer,
                                        seed,
                                        metrics,
                                        provenance,
                                        t_entry.target,
                                        spec.resources.workers,
                                    )
                                ),
                                suite=spec.name,
                                task=t_entry.name,
                                task_label=_label(t_entry, t_point),
                                task_params=task_params,
                                architecture=a_entry.name,
                                arch_label=_label(a_entry, a_point),
                                arch_params=arch_params,
                                seed=seed,
                                trainer=trainer,
                                resources=spec.resources,
                                measure=spec.measure,
                                execution=spec.execution,
                                metrics=metrics,
                                primary_metric=info.primary_metric,
                                direction=info.direction,
                                target=t_entry.target if t_entry.target is not None else info.target,
                                provenance=provenance,
                                skip_reason=reason,
                                grid={**{f"task.{k}": v for k, v in t_point.items()}, **a_point},
                                log_model=spec.tracking.log_model,
                                sizing=sizing,
                            )
                        )
                        origins.append(a_base)
    _check_unique(cells, origins, suite)
    return Plan(suite, cells)


def _check_reporters(suite: Suite, registry: Registry) -> None:
    for i, name in enumerate(suite.spec.reporters or []):
        registry.reporters.get(name, where=suite.source.where(("reporters", i)))


def _check_grid_keys(
    entry: ComponentEntry, point: dict[str, Any], cls: Any, suite: Suite, base: Loc, allow_trainer: bool
) -> None:
    fields = list(cls.Params.model_fields)
    trainer_fields = list(TrainerSpec.model_fields)
    for key in point:
        if allow_trainer and key.startswith(TRAINER_PREFIX):
            path = tuple(key[len(TRAINER_PREFIX) :].split("."))  # a block's key: trainer.scheduler.name
            siblings = allowed_keys(TrainerSpec, path[:-1])
            if path[-1] in siblings:
                continue
            block = TRAINER_PREFIX + "".join(f"{part}." for part in path[:-1])
            options = [block + f for f in siblings] or [TRAINER_PREFIX + f for f in trainer_fields]
        elif key in fields:
            continue
        else:
            options = fields + ([TRAINER_PREFIX + "<setting>"] if allow_trainer else [])
        raise SuiteError(
            f"{suite.source.where((*base, 'grid', key))}: `{key}` is not a parameter of `{entry.name}`. "
            f"{suggest(key, options)}Grid axes must be parameters ({', '.join(options)})."
        )


def _check_unique(cells: list[RunSpec], origins: list[Loc], suite: Suite) -> None:
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells):
        first = seen.get(cell.run_id)
        if first is not None:
            other, here, there = cells[first], origins[i], origins[first]
            both = (
                f"both are {cell.label}, with"
                if cell.label == other.label
                else f"{cell.label} and {other.label} have"
            )
            raise SuiteError(
                f"{suite.source.where(here)}: this entry gives the same run as `{format_loc(there)}` "
                f"(line {suite.source.line(there)}): {both} identical task, architecture, parameters, "
                "trainer settings and seed. Remove the duplicate entry, or change its params."
            )
        seen[cell.run_id] = i
