"""``harness run --timings``: the span recorder, the worker figures, the collector policy and the
table of a real run. No speed figure is asserted: only that the rows exist and add up."""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.heap import GcWindow, gc_window, paused_gc
from harness.runner import (
    PRELOAD_SPAN,
    TRACKING_START_SPAN,
    TRACKING_WAIT_SPAN,
    WORKER_FIT,
    WORKER_REST,
    WORKER_SETUP,
    WORKER_UNSPLIT,
    _time_worker,
)
from harness.timings import OTHER, Row, Timings, process_age
from tests.helpers import harness_local, make_record, tiny_suite, write_suite


def _top(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.depth == 0 and r.name != "total"]


def test_spans_nest_and_add_up() -> None:
    timings = Timings(age=0.5)
    with timings.span("a"):
        time.sleep(0.02)
        with timings.span("a.1"):
            time.sleep(0.01)
    with timings.span("b"):
        pass
    with timings.span("a"):  # entered again: one row, the sum
        time.sleep(0.01)
    rows = timings.rows(total=2.0)
    names = [(r.depth, r.name) for r in rows]
    assert names == [
        (0, "start-up: Python, harness CLI"),
        (0, "a"),
        (1, "a.1"),
        (1, OTHER),
        (0, "b"),
        (0, OTHER),
        (0, "total"),
    ]
    by_name = {(r.depth, r.name): r.seconds for r in rows}
    entered = timings.get("a")
    assert by_name[(0, "a")] >= 0.04 and entered is not None and entered.count == 2
    assert by_name[(1, "a.1")] + by_name[(1, OTHER)] == pytest.approx(by_name[(0, "a")])
    assert sum(r.seconds for r in _top(rows)) == pytest.approx(2.0)
    assert rows[-1].seconds == 2.0


def test_parts_that_overlap_are_sums_without_other() -> None:
    """Runs in parallel: worker figures summed over runs exceed their span; no negative `other`."""
    timings = Timings(age=0.0)
    with timings.span("runs"):
        pass
    timings.add(("runs", "worker: fit"), 5.0)
    timings.add(("runs", "worker: fit"), 5.0)
    rows = timings.rows(total=1.0)
    runs = next(r for r in rows if r.name == "runs")
    assert runs.overlapping
    assert [r.name for r in rows if r.depth == 1] == ["worker: fit"]
    assert next(r for r in rows if r.depth == 1).seconds == 10.0


def test_other_threads_record_nothing() -> None:
    timings = Timings(age=0.0)

    def work() -> None:
        with timings.span("from a thread"):
            pass

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert timings.get("from a thread") is None


def test_process_age_is_the_process_age() -> None:
    age = process_age()
    if age is None:
        pytest.skip("no /proc/self/stat here")
    assert 0.0 < age < 24 * 3600
    timings = Timings()
    assert timings.startup is not None and timings.elapsed() >= timings.startup


def test_worker_figures_split_the_record_wall_time() -> None:
    record = make_record(cost={"train_time_s": 3.0})
    record.wall_time_s = 5.0
    timings = Timings(age=0.0)
    _time_worker(timings, "runs", record)
    runs = timings.get("runs")
    assert runs is not None
    assert {p.name: p.seconds for p in runs.parts} == {WORKER_FIT: 3.0, WORKER_UNSPLIT: 2.0}

    record = make_record(cost={"train_time_s": 3.0, "setup_time_s": 1.5})
    record.wall_time_s = 5.0
    timings = Timings(age=0.0)
    _time_worker(timings, "runs", record)
    runs = timings.get("runs")
    assert runs is not None
    parts = {p.name: p.seconds for p in runs.parts}
    assert parts == {WORKER_SETUP: 1.5, WORKER_FIT: 3.0, WORKER_REST: pytest.approx(0.5)}

    failed = make_record(status="failed", cost={})  # failed before training: all of it is setup
    failed.wall_time_s = 2.0
    timings = Timings(age=0.0)
    _time_worker(timings, "runs", failed)
    runs = timings.get("runs")
    assert runs is not None
    assert {p.name: p.seconds for p in runs.parts} == {WORKER_FIT: 0.0, WORKER_UNSPLIT: 2.0}


# --- the collector policy (harness.heap) ------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test found it, put back after (a failing test must not leave it off)."""
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    yield None
    if gc.get_freeze_count() and not frozen:
        gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_paused_gc_puts_the_collector_back(collector: None) -> None:
    gc.enable()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()  # it was off: it stays off


def test_window_pauses_freezes_and_gives_back(collector: None) -> None:
    gc.enable()
    assert gc.get_freeze_count() == 0
    with gc_window() as window:
        assert not gc.isenabled()
        alive = [object() for _ in range(10)]
        window.settle()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed is out of the collector's passes
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert alive


def test_window_leaves_a_freeze_it_did_not_make(collector: None) -> None:
    gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    window = GcWindow()
    window.open()
    window.settle()
    window.close()
    assert gc.get_freeze_count() == frozen and gc.isenabled()


def test_window_closes_after_an_error(collector: None) -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_window():
        raise RuntimeError("boom")
    assert gc.isenabled() and gc.get_freeze_count() == 0


# --- a real run ---------------------------------------------------------------------------------------

ROW = re.compile(r"^│ (?P<indent> *)(?P<name>\S.*?)\s*│\s*(?P<seconds>[\d.]+) │")


def _table(stdout: str) -> list[tuple[int, str, float]]:
    """(depth, name, seconds) of the `Where the time went` table's rows."""
    start = stdout.index("Where the time went")
    rows = []
    for line in stdout[start:].splitlines():
        match = ROW.match(line)
        if match:
            rows.append((len(match["indent"]) // 2, match["name"], float(match["seconds"])))
    return rows


@pytest.mark.timeout(300)
def test_run_with_timings_shows_rows_that_add_up(tmp_path: Path) -> None:
    """`harness run --executor local --timings` (a subprocess: a real process start and exit)."""
    suite = write_suite(tmp_path, tiny_suite("timed", tasks=["adding"]))
    proc = harness_local(tmp_path, suite, "--timings")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 finished, 0 failed" in proc.stdout  # the summary first, then the table
    assert proc.stdout.index("1 finished") < proc.stdout.index("Where the time went")
    rows = _table(proc.stdout)
    names = [name for _, name, _ in rows]
    if process_age() is not None:  # the process's start time is readable (Linux)
        assert names[0] == "start-up: Python, harness CLI", proc.stdout
    for expected in (
        "imports: harness driver",
        "plugins: discovery and imports",
        "suite: load, validate, plan",
        "results file: lock, read",
        "local executor: start",
        TRACKING_START_SPAN,  # MLflow in a process of its own: it imports and opens the store
        TRACKING_WAIT_SPAN,  # while this one imports what its runs need
        "MLflow: reconcile with the results file",
        "MLflow: finished runs (resume), parent run",
        "runs: 1 on the local executor",
        PRELOAD_SPAN,
        "MLflow: close the tracking process",
        WORKER_FIT,
        WORKER_SETUP,
        "MLflow: wait for the logging queue, close the parent run",
        "report: HTML, Markdown, CSV, plots",
        "summary: statistics, console",
        OTHER,
        "total",
    ):
        assert expected in names, (expected, proc.stdout)
    total = rows[names.index("total")][2]
    top = [seconds for depth, name, seconds in rows if depth == 0 and name != "total"]
    assert sum(top) == pytest.approx(total, abs=0.005 * len(top) + 0.01)  # the table's rounding
    runs = names.index("runs: 1 on the local executor")
    parts = []
    for depth, _, seconds in rows[runs + 1 :]:
        if depth == 0:
            break
        parts.append(seconds)
    assert sum(parts) == pytest.approx(rows[runs][2], abs=0.005 * len(parts) + 0.01)
    assert all(seconds >= 0 for _, _, seconds in rows)


def test_run_help_lists_timings(cli: Callable[..., Any]) -> None:
    result = cli("run", "--help")
    assert result.exit_code == 0 and "--timings" in result.output
