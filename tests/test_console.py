"""Console output keeps labels with grid points (`task[key=value]`) intact: they are not rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from harness.console import Progress, summary_table
from harness.report.summary import summarize


def _record(task_label: str, arch_label: str, value: float) -> dict:
    return {"run_id": task_label + arch_label, "task": "ucr", "task_label": task_label, "architecture": "gru",
            "arch_label": arch_label, "seed": 0, "status": "finished", "primary_metric": "accuracy",
            "direction": "max", "metrics": {"test_accuracy": value}, "wall_time_s": 1.0}


def _render(renderable: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, force_terminal=False).print(renderable)
    return buffer.getvalue()


def test_grid_labels_survive_the_summary_table_and_progress_lines() -> None:
    records = [_record("ucr[dataset=GunPoint]", "gru[hidden_size=32]", 0.9),
               _record("ucr[dataset=ArrowHead]", "gru[hidden_size=32]", 0.8)]
    text = _render(summary_table(summarize(records), title="t"))
    assert "ucr[dataset=GunPoint]" in text and "ucr[dataset=ArrowHead]" in text and "gru[hidden_size=32]" in text

    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=200), total=1, capacity=1)
    progress.start({"run_id": records[0]["run_id"], "task_label": records[0]["task_label"],
                    "arch_label": records[0]["arch_label"], "seed": 0})
    progress.finish(records[0])
    assert "ucr[dataset=GunPoint] × gru[hidden_size=32] · seed 0" in buffer.getvalue()
