"""End to end from a real `harness run`: the report folder, the HTML in headless Chromium, the
same report from MLflow, and `harness compare` on real records with an injected regression."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import CHROMIUM, TINY_ADDING, chromium, console_messages, write_suite

from harness.records import RunRecord
from harness.tracking.results import ResultsFile
from tests.report.test_layout import assert_fits, layout

REPO = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).with_name("harness"))


def _records(work: Path) -> list[RunRecord]:
    results = ResultsFile(work / "results" / "tinyreport.jsonl")
    records = results.read()
    assert records and results.unreadable == []
    return records


def _harness(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAY_ADDRESS": "",
        "HARNESS_CACHE_DIR": str(workdir.parent / "cache"),
        "COLUMNS": "200",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [HARNESS, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-seed run of gru and rnn on tiny digits and adding (plus a skipped naive cell)."""
    work = tmp_path_factory.mktemp("report") / "work"
    work.mkdir()
    write_suite(
        work,
        {
            "name": "tinyreport",
            "seeds": [0, 1],
            "tasks": [{"name": "digits"}, {"name": "adding", "params": dict(TINY_ADDING)}],
            "architectures": [
                {"name": "gru", "params": {"hidden_size": 16}},
                {"name": "rnn", "params": {"hidden_size": 16}},
                {"name": "naive"},
            ],
            "trainer": {"max_epochs": 2, "batch_size": 64, "lr": 0.003},
        },
    )
    _harness(work, "run", "suite.yaml", "--executor", "local")
    return work


def test_run_writes_the_invocation_folder_and_latest(suite_run: Path) -> None:
    records = _records(suite_run)
    parent = records[-1].parent_run_id
    assert parent is not None and {r.parent_run_id for r in records} == {parent}
    folder = suite_run / "reports" / "tinyreport"
    for sub in (parent, "latest"):
        assert {p.name for p in (folder / sub).iterdir()} >= {"index.html", "report.md", "results.csv"}
    assert (folder / "latest" / "INVOCATION").read_text().strip() == parent
    markdown = (folder / "latest" / "report.md").read_text()
    assert re.search(r"\| gru \| .*± .* \(n=2\)", markdown)  # a 95 % CI over the two seeds
    assert "harness run suite.yaml --executor local" in markdown  # provenance: command line
    assert "suite hash" in markdown and "unknown (suite file" not in markdown
    assert "| digits | naive | skipped | skipped | 0, 1 |" in markdown
    # plan provenance of the records: plugin pins and data versions
    plan = next(r.spec for r in records if r.spec.task == "digits").provenance
    assert f"| plugin of task `digits` | {plan.task_plugin.pin} |" in markdown
    assert f"| plugin of architecture `gru` | {plan.arch_plugin.pin} |" in markdown
    assert f"| data version of `digits` | {plan.data_version} |" in markdown
    rows = (folder / "latest" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and "train_samples_per_s" in rows[0]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_html_report_renders_in_headlesschromium(suite_run: Path, tmp_path: Path) -> None:
    index = suite_run / "reports" / "tinyreport" / "latest" / "index.html"
    text = index.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), (
        "the page must not load anything from outside"
    )
    dom = chromium("--dump-dom", index.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") >= 5  # 2 tasks, ranks, failures, provenance
    assert dom.stdout.count("<svg") >= 6  # 2 learning curves, 4 Pareto plots
    assert "Pareto" in dom.stdout and 'id="ci-errorbar' in dom.stdout  # two seeds: 95 % CI bars
    # two tasks give the Nemenyi test no power: no CD diagram, and the page says why
    assert "Critical difference (Nemenyi" not in dom.stdout
    assert "No critical-difference diagram" in dom.stdout and "only 2 tasks" in dom.stdout
    assert "digits: test accuracy ↑" in dom.stdout and "adding: test mse ↓" in dom.stdout
    assert console_messages(dom.stderr) == [], console_messages(dom.stderr)
    # layout: the verdict first, then the tables; no page overflow sideways at 1,024 or 1,440 px
    for width in (1024, 1440):
        facts = layout(_copy(index, tmp_path), width)
        assert_fits(facts, width)
        assert isinstance(facts["h2"], list) and facts["h2"][:2] == ["Verdict", "Results per task"], facts
    verdict = dom.stdout[dom.stdout.index('id="verdict"') : dom.stdout.index("Results per task")]
    assert "Best: " in verdict and "mean ± 95 % CI" in verdict and "(n=2)" in verdict
    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1024,2400", index.as_uri())
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    artifacts = REPO / "reports" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "report-e2e.png")


def _copy(page: Path, folder: Path) -> Path:
    """A copy of ``page`` to probe (the probe writes a script into a sibling file)."""
    out = folder / "index.html"
    shutil.copy(page, out)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_console_error_detection_works(tmp_path: Path) -> None:
    """The check above can fail: a page with a script error shows up in Chromium's log."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    done = chromium("--dump-dom", page.as_uri())
    assert any("undefinedFunction" in m for m in console_messages(done.stderr)), done.stderr[-2000:]


def test_report_from_mlflow_matches_the_results_file(suite_run: Path, tmp_path: Path) -> None:
    parent = _records(suite_run)[-1].parent_run_id
    assert parent is not None
    out = tmp_path / "from-mlflow"
    # from another folder: no results file there, so the records must come from the MLflow store
    done = _harness(
        tmp_path,
        "report",
        parent,
        "--tracking-uri",
        f"sqlite:///{suite_run / 'mlflow.db'}",
        "--out",
        str(out),
    )
    assert (
        "8 runs" in done.stdout
    )  # MLflow has the finished runs (skipped cells are only in the results file)
    markdown = (out / parent / "report.md").read_text()
    from_file = (suite_run / "reports" / "tinyreport" / "latest" / "report.md").read_text()
    table = re.compile(r"^\| (gru|rnn) \|.*$", re.MULTILINE)
    assert (
        table.findall(markdown)
        and [m.group(0) for m in table.finditer(markdown)][:4]
        == [m.group(0) for m in table.finditer(from_file)][:4]
    )
    assert "harness run suite.yaml --executor local" in markdown


def test_compare_flags_an_injected_regression_in_real_records(suite_run: Path, tmp_path: Path) -> None:
    records = _records(suite_run)

    # With two seeds a side, Welch's test (Holm over 4 cells) needs a shift of ~50 seed spreads:
    # inject one far outside the spread of adding × rnn (mse, lower is better).
    def injected(r: RunRecord) -> bool:
        return r.finished and r.spec.task == "adding" and r.spec.architecture == "rnn"

    cell = [r.metrics["test_mse"] for r in records if injected(r)]
    assert len(cell) == 2
    shift = 100 * (max(cell) - min(cell)) + 1.0

    def rewrite(path: Path, change: float) -> Path:
        """The records as another invocation would record them: every metric × (1 + 1e-4) (noise
        far inside the seed spread), plus ``change`` on the injected cell."""
        with path.open("w") as handle:
            for r in records:
                metrics = {k: v * (1 + 1e-4) for k, v in r.metrics.items()}
                if injected(r):
                    metrics["test_mse"] += change
                r = r.model_copy(update={"metrics": metrics, "parent_run_id": "another-invocation"})
                handle.write(json.dumps(r.to_json()) + "\n")
        return path

    worse = rewrite(tmp_path / "worse.jsonl", shift)
    noise = rewrite(tmp_path / "noise.jsonl", 0.0)
    same = _harness(suite_run, "compare", "results/tinyreport.jsonl", str(noise), check=False)
    assert same.returncode == 0 and "0 regressed" in same.stdout, same.stdout + same.stderr
    flagged = _harness(suite_run, "compare", "results/tinyreport.jsonl", str(worse), check=False)
    assert flagged.returncode == 1, flagged.stdout + flagged.stderr
    assert re.search(r"adding .* rnn .* mse .* regressed", flagged.stdout)
    assert "1 regressed" in flagged.stdout


def test_report_of_a_suite_file_reads_its_results_file(suite_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "by-suite"
    done = _harness(suite_run, "report", "suite.yaml", "--out", str(out))
    assert "12 runs" in done.stdout, done.stdout
    markdown = (out / "latest" / "report.md").read_text()
    assert "## digits" in markdown and "## adding" in markdown and "suite hash" in markdown
