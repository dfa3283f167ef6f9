"""`harness prepare`: data built and cached ahead of a run; broken and unavailable tasks reported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from tests.helpers import BROKEN_TASKS, TINY_ADDING, write_suite

UNAVAILABLE_TASK = """
from harness import hookimpl, Task, TaskInfo, InputSpec

class NeedsProgram(Task):
    name = "needs_program"
    def info(self):
        return TaskInfo(
            InputSpec("continuous", 8), "classification", 10, "ce", ("accuracy",), "accuracy", "max"
        )
    def unavailable(self):
        return "frobnicate not found on PATH; install it with `apt-get install frobnicate`"

@hookimpl
def register_tasks(register):
    register(NeedsProgram)
"""


def _suite(tmp_path: Path, tasks: list[dict]) -> Path:
    return write_suite(
        tmp_path,
        {
            "name": "prep",
            "seeds": [0, 1],
            "tasks": tasks,
            "architectures": [{"name": "gru"}, {"name": "lstm"}],
            "trainer": {"max_epochs": 1},
        },
    )


def test_prepare_builds_each_dataset_once_and_caches_it(cli: Callable[..., Result], tmp_path: Path) -> None:
    suite = _suite(tmp_path, [{"name": "adding", "params": TINY_ADDING}, {"name": "digits"}])
    cache = tmp_path / "cache"
    result = cli("prepare", str(suite), "--cache-dir", str(cache))
    assert result.exit_code == 0, result.output
    # 2 tasks × 2 seeds (architectures share the data): 4 preparations, one cached file for adding
    assert result.output.count("✓") == 4, result.output
    files = list((cache / "adding").glob("*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = cli("prepare", str(suite), "--cache-dir", str(cache))
    assert again.exit_code == 0
    assert files[0].stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_prepare_reports_a_broken_data_source(
    cli: Callable[..., Result], tmp_path: Path, make_plugin
) -> None:
    make_plugin("broken_tasks", BROKEN_TASKS)
    suite = _suite(tmp_path, [{"name": "crash_task"}, {"name": "digits"}])
    result = cli("prepare", str(suite), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert "✗ crash_task: RuntimeError: data source unavailable" in result.output
    assert "✓ digits" in result.output  # the others are still prepared


def test_unavailable_task_is_skipped_with_its_reason(
    cli: Callable[..., Result], tmp_path: Path, make_plugin
) -> None:
    make_plugin("needs_program", UNAVAILABLE_TASK)
    suite = _suite(tmp_path, [{"name": "needs_program"}, {"name": "digits"}])
    result = cli("validate", str(suite))
    assert result.exit_code == 0, result.output
    assert "task `needs_program` unavailable: frobnicate not found on PATH" in result.output
    assert "4 to run, 4 skipped" in result.output
    prepared = cli("prepare", str(suite), "--cache-dir", str(tmp_path / "cache"))
    assert prepared.exit_code == 0
    assert "skipped needs_program" in prepared.output and "apt-get install frobnicate" in prepared.output
    assert prepared.output.count("skipped needs_program") == 1  # once per task, not per cell
    assert "2 task data sets ready" in prepared.output  # digits × 2 seeds; nothing for needs_program
