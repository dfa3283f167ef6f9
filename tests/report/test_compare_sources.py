"""`harness compare` selects each side by its invocation, whatever the source (real tiny runs).

Three invocations of one toy suite (`tests.fault_plugin`, 3 seeds, `--executor local`): a
baseline, a seeded regression (a learning rate too small to learn anything) and a noise-only
change (the same settings with other seeds). They are compared as separate results files and
as invocations (parent run ids) of one results file holding all three.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from harness.cli import main
from harness.records import RunRecord
from harness.tracking.results import ResultsFile
from tests.helpers import make_record, write_suite

SUITE: dict[str, Any] = {
    "name": "cmp",
    "seeds": [0, 1, 2],
    "tasks": [{"name": "fault", "params": {"num_train": 256}}],
    "architectures": [{"name": "instant"}],
    "trainer": {"max_epochs": 4, "batch_size": 32, "lr": 0.05},
    "measure": {"latency": False, "flops": False, "memory": False},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {},
    "after": {"trainer": {**SUITE["trainer"], "lr": 1e-6}},  # learns nothing: a regression
    "noise": {"seeds": [3, 4, 5]},  # same settings, other seeds: noise only
}


@dataclass
class Runs:
    root: Path
    #: variant -> its own results file
    files: dict[str, Path]
    #: variant -> parent run id of its invocation
    parents: dict[str, str]
    #: one results file holding all three invocations
    combined: Path


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from harness.plugins import clear_cache

    root = tmp_path_factory.mktemp("compare-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HARNESS_PLUGINS", "tests.fault_plugin")
        mp.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
        mp.setenv("HARNESS_CACHE_DIR", str(root / "cache"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("COLUMNS", "250")
        clear_cache()
        files, parents = {}, {}
        combined = root / "all.jsonl"
        for name, change in VARIANTS.items():
            suite = write_suite(root, {**SUITE, **change}, name=f"{name}.yaml")
            files[name] = root / f"{name}.jsonl"
            done = _cli("run", str(suite), "--executor", "local", "--results", str(files[name]))
            assert done.exit_code == 0, done.output
            records = ResultsFile(files[name]).read()
            assert len(records) == 3 and all(r.finished for r in records), records
            parents[name] = str(records[0].parent_run_id)
            with combined.open("a", encoding="utf-8") as handle:
                handle.write(files[name].read_text(encoding="utf-8"))
        yield Runs(root, files, parents, combined)
    clear_cache()


@pytest.fixture()
def in_runs(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Runs:
    monkeypatch.chdir(runs.root)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return runs


def test_two_results_files_exit_1_on_a_regression_and_0_on_noise(in_runs: Runs) -> None:
    files = {name: str(path) for name, path in in_runs.files.items()}
    regressed = _cli("compare", files["before"], files["after"])
    assert regressed.exit_code == 1, regressed.output
    assert "1 regressed" in regressed.output and "(3)" in regressed.output
    noise = _cli("compare", files["before"], files["noise"])
    assert noise.exit_code == 0, noise.output
    assert "0 regressed" in noise.output


def test_invocations_of_one_results_file_are_compared_with_each_other(in_runs: Runs) -> None:
    """Defect: with --results both sides got the newest records, so B was compared with itself."""
    combined, parents = str(in_runs.combined), in_runs.parents
    regressed = _cli("compare", "--results", combined, parents["before"], parents["after"])
    assert regressed.exit_code == 1, regressed.output
    assert f"A {parents['before']} → B {parents['after']}" in regressed.output
    assert "1 regressed" in regressed.output
    noise = _cli("compare", "--results", combined, parents["before"], parents["noise"])
    assert noise.exit_code == 0 and "0 regressed" in noise.output, noise.output
    # the other way round the "regression" is an improvement: the sides are really distinct
    improved = _cli("compare", "--results", combined, parents["after"], parents["before"])
    assert improved.exit_code == 0 and "1 improved" in improved.output, improved.output


def test_a_side_without_records_or_without_a_shared_cell_is_bad_input(in_runs: Runs, tmp_path: Path) -> None:
    combined, parents = str(in_runs.combined), in_runs.parents
    unknown = "0" * 32
    missing = _cli("compare", "--results", combined, parents["before"], unknown)
    assert missing.exit_code == 2, missing.output
    assert unknown in missing.output and parents["before"] in missing.output  # names what the file holds
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    nothing = _cli("compare", str(in_runs.files["before"]), str(empty))
    assert nothing.exit_code == 2 and "No records" in nothing.output, nothing.output
    same = _cli("compare", "--results", combined, parents["before"], parents["before"])
    assert same.exit_code == 2 and "same runs" in same.output, same.output
    other = tmp_path / "other.jsonl"
    for record in ResultsFile(in_runs.files["before"]).read():
        record.spec = record.spec.model_copy(
            update={"task_label": "elsewhere", "run_id": record.run_id + "x"}
        )
        ResultsFile(other).append(record)
    disjoint = _cli("compare", str(in_runs.files["before"]), str(other))
    assert disjoint.exit_code == 2 and "no cell in common" in disjoint.output, disjoint.output


def _paired(invocation: str, shift: float, seeds: list[int]) -> list[RunRecord]:
    """Seeds far apart from each other, each moved by the same ``shift`` in B."""
    rng = random.Random(7)
    out = []
    for seed in seeds:
        value = 0.80 + 0.03 * seed + shift + rng.gauss(0, 0.001)
        out.append(
            make_record(
                "digits",
                "gru",
                seed,
                value,
                run_id=f"{invocation}-{seed}",
                suite="s",
                parent_run_id=invocation,
            )
        )
    return out


def test_paired_compare_pairs_seeds_and_detects_a_shift_welch_misses(tmp_path: Path) -> None:
    path = tmp_path / "paired.jsonl"
    results = ResultsFile(path)
    for record in [*_paired("a" * 32, 0.0, [0, 1, 2, 3]), *_paired("b" * 32, -0.01, [0, 1, 2, 3])]:
        results.append(record)
    welch = _cli("compare", "--results", str(path), "a" * 32, "b" * 32)
    assert welch.exit_code == 0 and "0 regressed" in welch.output, welch.output
    paired = _cli("compare", "--paired", "--results", str(path), "a" * 32, "b" * 32)
    assert paired.exit_code == 1 and "1 regressed" in paired.output, paired.output
    assert "paired t" in paired.output and "4 pairs" in paired.output
    other_seeds = tmp_path / "other_seeds.jsonl"
    for record in _paired("c" * 32, -0.01, [10, 11, 12]):
        ResultsFile(other_seeds).append(record)
    for record in _paired("a" * 32, 0.0, [0, 1, 2, 3]):
        ResultsFile(tmp_path / "a.jsonl").append(record)
    unpaired = _cli("compare", "--paired", str(tmp_path / "a.jsonl"), str(other_seeds))
    assert unpaired.exit_code == 2 and "no seed in common" in unpaired.output, unpaired.output
