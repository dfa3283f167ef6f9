"""A suite's `reporters:` picks which reporter plugins write the report folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import TINY_ADDING, make_record, write_suite

from harness.runner import write_reports

RECORDS = [
    make_record(
        "adding",
        "gru",
        0,
        0.1,
        metric="mse",
        direction="min",
        run_id="r1",
        suite="sel",
        cost={"num_params": 10.0},
    )
]


def test_only_the_selected_reporters_write(tmp_path: Path) -> None:
    paths = write_reports(RECORDS, "sel", str(tmp_path), invocation="inv1", reporters=["markdown"])
    assert [p.name for p in paths] == ["report.md"]
    assert sorted(p.name for p in (tmp_path / "inv1").iterdir()) == ["report.md"]
    assert (tmp_path / "latest" / "report.md").is_file() and not (tmp_path / "latest" / "index.html").exists()


def test_every_installed_reporter_writes_by_default(tmp_path: Path) -> None:
    paths = write_reports(RECORDS, "sel", str(tmp_path), invocation="inv2")
    assert {p.name for p in paths} == {"index.html", "report.md", "results.csv"}


def test_a_suite_selecting_csv_gets_only_the_csv(tmp_path: Path) -> None:
    write_suite(
        tmp_path,
        {
            "name": "sel",
            "reporters": ["csv"],
            "tasks": [{"name": "adding", "params": dict(TINY_ADDING)}],
            "architectures": [{"name": "gru", "params": {"hidden_size": 8}}],
            "trainer": {"max_epochs": 1, "batch_size": 64},
        },
    )
    harness = str(Path(sys.executable).with_name("harness"))
    done = subprocess.run(
        [harness, "run", "suite.yaml", "--executor", "local"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    latest = tmp_path / "reports" / "sel" / "latest"
    assert sorted(p.name for p in latest.iterdir()) == ["INVOCATION", "results.csv"]
