"""The parallel-efficiency benchmark's figures (``benchmarks/_process.py``), without running it."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from benchmarks._process import PARALLEL, SINGLE_RUN, Proc, _after_first, parallel_figures


def _record(start: float, wall: float, pid: int, train: float) -> dict[str, Any]:
    return {
        "started_at": start,
        "finished_at": start + wall,
        "wall_time_s": wall,
        "runtime": {"pid": pid},
        "cost": {"steps": 10, "train_time_s": train},
    }


def test_the_parallel_cell_is_the_single_run_cell() -> None:
    parallel, single = (yaml.safe_load(p.read_text(encoding="utf-8")) for p in (PARALLEL, SINGLE_RUN))
    for key in ("tasks", "architectures", "trainer", "resources"):
        assert parallel[key] == single[key], key
    assert parallel["seeds"] == 8 and parallel["resources"]["cpus"] == 1


def test_alone_leaves_out_each_processes_first_run() -> None:
    before = [_record(0, 12.0, 1, 8.0), _record(12, 9.0, 1, 8.0), _record(21, 9.2, 1, 8.2)]
    after = [_record(90, 11.0, 2, 8.0), _record(101, 9.6, 2, 8.6), _record(111, 9.8, 2, 8.8)]
    assert [r["wall_time_s"] for r in _after_first([*before, *after])] == [9.0, 9.2, 9.6, 9.8]
    assert _after_first(before[:1]) == before[:1]  # nothing else to go by


def test_the_figures_split_a_runs_slowdown_and_count_other_load() -> None:
    alone = [
        _record(start, wall, pid, 8.0)
        for start, wall, pid in ((0, 12.0, 1), (12, 9.0, 1), (90, 11.0, 2), (101, 9.0, 2))
    ]
    runs = [_record(start, 10.0, pid, 8.8) for start in (30, 40) for pid in (7, 8)]
    proc = Proc(58.0, 1.0, 0, "", started=22.0, ended=80.0, cpu_s=70.0, busy_s=71.5)
    f = parallel_figures(alone, runs, proc, cpus=1.0, cores=2, single_process_s=13.0)
    assert f["ratio_total"] == pytest.approx(58.0 / (13.0 * 4 / 2))  # four one-run invocations, 2 at a time
    assert math.isnan(parallel_figures(alone, runs, proc, cpus=1.0, cores=2)["ratio_total"])
    assert f["alone_wall_time_s"] == 9.0 and f["alone_runs_used"] == 2 and f["ideal_s"] == 18.0
    assert f["ratio"] == pytest.approx(58.0 / 18.0) and f["ratio_span"] == pytest.approx(20.0 / 18.0)
    assert f["startup_s"] == 8.0 and f["teardown_s"] == 30.0
    assert f["fit_slowdown"] == pytest.approx(1.1) and f["rest_slowdown"] == pytest.approx(1.2)
    assert f["other_load_s"] == pytest.approx(1.5)
