"""``harness prepare``: build and cache every task's data ahead of a run.

Data is built in the worker anyway (and cached); preparing first moves the cost
(synthesis, downloads, parsing) out of the timed runs and surfaces a broken data
source before any training starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.matrix import Plan


@dataclass(frozen=True)
class Prepared:
    task: str
    seconds: float = 0.0
    error: str | None = None
    #: why the task cannot run here (``Task.unavailable()``): nothing was built
    unavailable: str | None = None


def prepare_plan(
    plan: Plan, cache_dir: Path, on_done: Callable[[Prepared], None] | None = None
) -> list[Prepared]:
    """Prepare the data of every distinct (task, params, seed) among the plan's runnable cells;
    tasks unavailable on this machine are reported once each instead."""
    from harness.interfaces import DataConfig
    from harness.plugins import get_registry

    registry = get_registry()
    seen: set[str] = set()
    done: list[Prepared] = []
    for cell in plan.cells:
        task = registry.tasks.get(cell.task).obj(cell.task_params)
        reason = task.unavailable()
        key = json.dumps([cell.task, cell.task_params] + ([] if reason else [cell.seed]), sort_keys=True)
        if key in seen or (cell.skip_reason and not reason):
            continue  # done already, or no run needs these data
        seen.add(key)
        if reason:
            item = Prepared(cell.task_label, unavailable=reason)
        else:
            start = time.perf_counter()
            error = None
            try:
                task.prepare(
                    DataConfig(batch_size=cell.trainer.batch_size, seed=cell.seed, cache_dir=cache_dir)
                )
            except Exception as exc:  # report every broken source, not just the first
                error = f"{type(exc).__name__}: {exc}"
            item = Prepared(cell.task_label, time.perf_counter() - start, error)
        done.append(item)
        if on_done is not None:
            on_done(item)
    return done
