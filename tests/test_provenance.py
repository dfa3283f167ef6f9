"""Every executed run names what produced it: the plugin distributions and versions that
registered its task and architecture, the task's data version, the harness version and commit —
in the results file, in MLflow's tags and in the report's provenance section.

The architecture comes from a separately pip-installed distribution (tests/example_plugin,
``harness-example-plugin`` 0.1.0, architecture ``mean_pool``), so the names checked are not
harness's own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from harness.plugins import clear_cache
from harness.provenance import git_commit
from harness.tracking.results import ResultsFile

EXAMPLE = Path(__file__).parent / "example_plugin"
DIST = "harness-example-plugin"
SUITE = """\
name: provenance
seeds: 1
tasks:
  - name: digits
architectures:
  - name: mean_pool
trainer: {max_epochs: 1, batch_size: 128}
measure: {latency: false, flops: false}
"""


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pip-install a copy of tests/example_plugin for this module; uninstalled at teardown."""
    source = tmp_path_factory.mktemp("example") / DIST
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir", str(source))
    clear_cache()
    try:
        yield DIST
    finally:
        _pip("uninstall", "-y", DIST)
        for name in [m for m in sys.modules if m.startswith("harness_example_plugin")]:
            del sys.modules[name]
        clear_cache()


def test_plugin_and_data_versions_reach_the_record_mlflow_and_the_report(
    example_plugin: str,
    clean_plugins: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Result],
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (tmp_path / "suite.yaml").write_text(SUITE, encoding="utf-8")

    result = cli("run", "suite.yaml", "--executor", "local")
    assert result.exit_code == 0, result.output

    (record,) = ResultsFile(tmp_path / "results" / "provenance.jsonl").read()
    plan = record.spec.provenance
    assert record.finished
    assert (plan.arch_plugin.distribution, plan.arch_plugin.version) == (DIST, "0.1.0")
    assert plan.task_plugin.distribution == "harness" and plan.data_version == "1"
    assert plan.git_commit == git_commit()
    if (Path(__file__).parents[1] / ".git").exists() and shutil.which("git"):
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        assert plan.git_commit is not None and plan.git_commit.startswith(head)
    assert record.runtime is not None and "torch" in record.runtime.versions

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("provenance")
    (child,) = client.search_runs([experiment.experiment_id], "tags.`harness.run_id` != ''")
    tags = child.data.tags
    assert tags[f"version.{DIST}"] == "0.1.0" and tags["harness.arch_plugin"] == f"{DIST}==0.1.0"
    assert tags["harness.task_plugin"].startswith("harness==") and tags["harness.data_version"] == "1"
    assert tags.get("harness.git_commit") == plan.git_commit
    assert tags["version.torch"] == record.runtime.versions["torch"]

    markdown = (tmp_path / "reports" / "provenance" / "latest" / "report.md").read_text(encoding="utf-8")
    assert f"plugin of architecture `mean_pool` | {DIST}==0.1.0" in markdown
    assert "data version of `digits` | 1" in markdown
    csv_text = (tmp_path / "reports" / "provenance" / "latest" / "results.csv").read_text(encoding="utf-8")
    assert f"{DIST}==0.1.0" in csv_text

    # the MLflow copy of the record is the same run: `harness report` from the store names the plugin too
    report = cli(
        "report",
        child.data.tags["mlflow.parentRunId"],
        "--tracking-uri",
        uri,
        "--out",
        str(tmp_path / "from-mlflow"),
    )
    assert report.exit_code == 0, report.output
    assert f"{DIST}==0.1.0" in (tmp_path / "from-mlflow" / "latest" / "report.md").read_text(encoding="utf-8")
