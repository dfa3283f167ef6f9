"""Summary table: aggregation over seeds, best per task by direction, failures and skips."""

from __future__ import annotations

import pytest

from harness.records import RunRecord
from harness.report.summary import summarize
from harness_builtins.reporters import CsvReporter, MarkdownReporter
from tests.helpers import make_record


def _record(
    run_id: str,
    task: str,
    arch: str,
    value: float | None,
    status: str = "finished",
    metric: str = "accuracy",
    direction: str = "max",
) -> RunRecord:
    return make_record(
        task,
        arch,
        0,
        value,
        status,
        metric=metric,
        direction=direction,
        run_id=run_id,
        error="boom",
        skip_reason="lacks causal" if status == "skipped" else None,
    )


RECORDS = [
    _record("1", "digits", "lstm", 0.90),
    _record("2", "digits", "lstm", 0.94),
    _record("3", "digits", "gru", 0.95),
    _record("4", "digits", "gru", None, status="failed"),
    _record("5", "adding", "lstm", 0.01, metric="mse", direction="min"),
    _record("6", "adding", "gru", 0.002, metric="mse", direction="min"),
    _record("7", "adding", "birnn", None, status="skipped", metric="mse", direction="min"),
]


def test_mean_std_and_best_follow_the_metric_direction() -> None:
    table = summarize(RECORDS)
    lstm = table.cells[("digits", "lstm")]
    assert lstm.mean == pytest.approx(0.92) and lstm.std == pytest.approx(0.0282842712)
    assert table.best("digits") == "gru"  # higher accuracy wins
    assert table.best("adding") == "gru"  # lower mse wins
    assert table.cells[("digits", "gru")].text() == "0.95 (n=1), 1 failed"
    assert table.cells[("adding", "birnn")].text() == "skipped"
    assert table.counts == {"finished": 5, "failed": 1, "skipped": 1}


def test_a_rerun_replaces_the_earlier_record_of_the_same_run() -> None:
    table = summarize([*RECORDS, _record("4", "digits", "gru", 0.97)])
    assert table.cells[("digits", "gru")].values == [0.95, 0.97]
    assert table.cells[("digits", "gru")].failed == 0


def test_markdown_and_csv_reporters_render_the_table() -> None:
    markdown = MarkdownReporter().render(RECORDS)
    # mean ± 95 % t half-width: 0.92 ± 12.706 · 0.028284 / √2 = 0.92 ± 0.25
    assert "| lstm | 0.92 ± 0.25 (n=2) |" in markdown
    assert "| gru | **0.95 (n=1), 1 failed** |" in markdown
    assert "| adding | birnn | skipped | skipped | 0 | lacks causal |" in markdown
    assert "| digits | gru | failed | exception | 0 | boom |" in markdown
    rows = CsvReporter().render(RECORDS).splitlines()
    assert rows[0].startswith("run_id,suite,task,architecture,seed,status,failure_kind") and len(rows) == 8
