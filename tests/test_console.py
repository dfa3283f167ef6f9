"""Console output keeps labels with grid points (`task[key=value]`) intact: they are not rich markup."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from rich.console import Console

from harness.console import Progress, summary_table
from harness.records import RunRecord
from harness.report.summary import summarize
from tests.helpers import make_record, make_spec, write_suite

REPO = Path(__file__).resolve().parents[1]
#: how Ray words a task's error: the task name coloured cyan (raw escape codes in the text)
RAY_COLOURED = (
    "\x1b[36mray::harness:cell()\x1b[39m (pid=1, ip=127.0.0.1) data source \x1b[31munavailable\x1b[0m"
)


def _record(task_label: str, arch_label: str, value: float) -> RunRecord:
    record = make_record(
        "ucr", "gru", 0, value, run_id=task_label + arch_label, task_label=task_label, arch_label=arch_label
    )
    return record.model_copy(update={"wall_time_s": 1.0})


def _render(renderable: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, force_terminal=False).print(renderable)
    return buffer.getvalue()


def test_grid_labels_survive_the_summary_table_and_progress_lines() -> None:
    records = [
        _record("ucr[dataset=GunPoint]", "gru[hidden_size=32]", 0.9),
        _record("ucr[dataset=ArrowHead]", "gru[hidden_size=32]", 0.8),
    ]
    text = _render(summary_table(summarize(records), title="t"))
    assert (
        "ucr[dataset=GunPoint]" in text and "ucr[dataset=ArrowHead]" in text and "gru[hidden_size=32]" in text
    )

    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=200), total=1, capacity=1)
    progress.start(records[0].spec)
    progress.finish(records[0])
    assert "ucr[dataset=GunPoint] × gru[hidden_size=32] · seed 0" in buffer.getvalue()


def test_progress_at_1000_cells_summarises_instead_of_flooding() -> None:
    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=200), total=1000, capacity=64)
    specs = [make_spec("fault", "instant", i, run_id=f"r{i}") for i in range(1000)]
    for spec in specs[:64]:
        progress.start(spec)
    live = _render(progress)
    assert "0/1000 done · 64 running" in live
    assert live.count("… fault × instant") == Progress.max_running and "and 56 more running" in live
    for i, spec in enumerate(specs):
        progress.start(spec)
        failed = i % 100 == 7
        record = make_record(
            "fault",
            "instant",
            i,
            None if failed else 0.5,
            "failed" if failed else "finished",
            run_id=spec.run_id,
            kind="nan",
            error=f"RunFailure: loss became nan (cell {i})",
        )
        progress.finish(record.model_copy(update={"wall_time_s": 0.1}))
    out = buffer.getvalue()
    lines = out.splitlines()
    assert len(lines) <= 30, len(lines)  # 10 failure lines + 10 progress lines, not 1000
    assert "✓" not in out and out.count("failed (nan): RunFailure: loss became nan") == 10
    assert lines[-1].startswith("cells 1000/1000 done · 0 running · 10 failed")
    live = _render(progress)
    assert "recent failures:" in live and "(cell 907)" in live and "(cell 7)" not in live


def test_progress_prints_killed_cells_apart_from_failures() -> None:
    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=200), total=2, capacity=2)
    killed = make_record(
        "t", "a", 0, status="killed", run_id="a", kind="killed", error="interrupted (Ctrl-C)"
    )
    progress.start(killed.spec)
    progress.finish(killed)
    assert "killed (killed): interrupted" in buffer.getvalue()
    assert "0 failed · 1 killed" in progress.status_line()
    assert progress.status_line().startswith("cells 0/2 done")  # killed is not done (issue 17, 17)


def test_console_shows_the_reports_labelled_95_ci_not_a_std() -> None:
    """One statistics vocabulary: the console's "±" is the report's 95 % CI half-width, labelled."""
    from harness.report.analysis import analyze
    from harness.report.markdown import render_markdown
    from harness.report.stats import mean_ci

    values = [0.90, 0.94, 0.95]
    records = [make_record("digits", "gru", s, v, run_id=f"g{s}") for s, v in enumerate(values)]
    records += [make_record("digits", "lstm", s, v, run_id=f"l{s}") for s, v in enumerate((0.7, 0.75, 0.72))]
    text = _render(summary_table(summarize(records), title="t"))
    half = mean_ci(values).half
    assert half is not None and round(half, 2) == 0.07  # the std would be 0.026
    assert "0.93 ± 0.066 (n=3)" in text
    assert "mean ± 95 % CI" in text  # labelled on the console
    assert "| gru | **0.93 ± 0.066 (n=3)** |" in render_markdown(analyze(records))  # the same figure


def test_failure_lines_carry_no_colour_codes_from_the_error_text() -> None:
    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=200), total=1, capacity=1)
    record = make_record("digits", "gru", 0, status="failed", kind="infrastructure", error=RAY_COLOURED)
    progress.start(record.spec)
    progress.finish(record)
    out = buffer.getvalue()
    assert "\x1b" not in out and "ray::harness:cell() (pid=1, ip=127.0.0.1) data source unavailable" in out


COLOURED_PLUGIN = f"""
from harness import hookimpl
from tests.fault_plugin import FaultTask


class ColouredCrash(FaultTask):
    name = "coloured_crash"
    description = "Fails with an error message a library coloured (tests only)."

    def datamodule(self, config):
        raise RuntimeError({RAY_COLOURED!r})


@hookimpl
def register_tasks(register):
    register(ColouredCrash)
"""


def test_piped_run_and_validate_output_has_no_colour_codes(tmp_path: Path) -> None:
    """Issue 17, defect 17: raw colour codes reached piped output (stdout and stderr)."""
    (tmp_path / "coloured_plugin.py").write_text(textwrap.dedent(COLOURED_PLUGIN))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env.update(
        HARNESS_PLUGINS="tests.fault_plugin,coloured_plugin",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        HARNESS_CACHE_DIR=str(tmp_path / "cache"),
        TERM="xterm-256color",
    )
    suite = write_suite(
        tmp_path,
        {
            "name": "coloured",
            "seeds": [0],
            "tasks": [{"name": "coloured_crash"}, {"name": "fault"}],
            "architectures": [{"name": "instant"}],
            "trainer": {"max_epochs": 1, "batch_size": 16, "lr": 0.01},
        },
    )
    for args, code in ((["validate", str(suite)], 0), (["run", str(suite), "--executor", "local"], 1)):
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,  # pipes: what a CI log or `| tee` gets
            text=True,
            timeout=300,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == code, out
        assert "\x1b" not in out, out
    assert (
        "failed (exception): RuntimeError: ray::harness:cell() (pid=1, ip=127.0.0.1) data source"
        in proc.stdout
    )
