"""Bad input is refused up front (issue 17, defects 9, 11, 12 and 15): exit 2, one message naming
the place and the fix, no traceback, nothing run or recorded — and bounded work on the way there
(YAML alias bombs, deep nesting, huge files, long values quoted in messages)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessError
from harness.settings import parse_seconds
from tests.helpers import tiny_suite, write_suite

if TYPE_CHECKING:
    from click.testing import Result

MINIMAL = """\
name: minimal
tasks: [{name: digits}]
architectures: [{name: gru}]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory with a private data cache (outside it) and no tracking URI."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    for name in (
        "MLFLOW_TRACKING_URI",
        "HARNESS_PLUGINS",
        "HARNESS_DISABLE_PLUGINS",
        "HARNESS_MAX_SUITE_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    yield work


def invoke(*args: str) -> Result:
    from click.testing import CliRunner

    from harness.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def assert_refused(result: Result, *fragments: str, limit: int = 2000) -> str:
    """Exit 2 through the HarnessError path (no exception escaped), every fragment in the message,
    and a message of bounded length."""
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, output[:3000]
    assert "Traceback" not in output
    assert output.startswith("Error: "), output[:3000]
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} missing from: {output[:3000]}"
    assert len(output) < limit, f"{len(output)} characters: {output[:3000]}"
    return output


def write(directory: Path, text: str, name: str = "suite.yaml") -> str:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def assert_nothing_recorded(workdir: Path, *allowed: str) -> None:
    assert sorted(os.listdir(workdir)) == sorted(allowed)


# --- defect 12: YAML alias bombs, deep nesting, long values in messages ---------------------------


def alias_bomb(levels: int = 8) -> str:
    """The issue's 475-byte bomb: each anchor a list of ten references to the previous one."""
    lines = ["name: bomb", "tasks: [{name: digits}]", "architectures:", "  - name: gru", "    params:"]
    lines.append("      a0: &a0 [1,1,1,1,1,1,1,1,1,1]")
    for i in range(1, levels):
        lines.append(f"      a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"    grid: {{hidden_size: [*a{levels - 1}, *a{levels - 1}]}}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_while_loading(workdir: Path) -> None:
    suite = write(workdir, alias_bomb())
    assert len(alias_bomb()) < 550
    for command in ("validate", "run"):
        args = [command, suite] + (["--executor", "local"] if command == "run" else [])
        assert_refused(invoke(*args), "alias", "`architectures[0].params.a4[", "(line 10)")
    assert_nothing_recorded(workdir, "suite.yaml")


def test_aliases_within_the_bound_still_load(workdir: Path) -> None:
    """Anchors and merge keys as people use them (a shared trainer block) are fine."""
    text = """\
name: anchors
tasks: [{name: digits}]
architectures:
  - name: gru
    trainer: &fast {lr: 0.01, batch_size: 32}
  - name: lstm
    trainer: *fast
  - name: rnn
    trainer: {<<: *fast, lr: 0.02}
"""
    result = invoke("validate", write(workdir, text))
    assert result.exit_code == 0, result.output


def test_deep_nesting_is_refused(workdir: Path) -> None:
    depth = 20_000
    suite = write(workdir, MINIMAL + "description: " + "[" * depth + "]" * depth + "\n")
    assert_refused(invoke("validate", suite), "nests", "line 4", "deep")


def test_long_values_are_shortened_in_messages(workdir: Path) -> None:
    """A value quoted in a message is cut to a few hundred characters, whatever its size."""
    long_list = "[" + ", ".join(str(i) for i in range(5000)) + "]"
    text = MINIMAL.replace(
        "[{name: gru}]", f"[{{name: gru, grid: {{hidden_size: [{long_list}, {long_list}]}}}}]"
    )
    output = assert_refused(invoke("validate", write(workdir, text)), "appears twice", "...]", limit=1000)
    assert "4999" not in output
    long_name = "x" * 5000 + " y"
    output = assert_refused(
        invoke("validate", write(workdir, MINIMAL.replace("minimal", long_name))), "`name`"
    )
    assert "…" in output


def test_quote_caps_any_value() -> None:
    from harness.errors import quote

    assert quote("abc") == "'abc'"
    assert len(quote("x" * 10_000)) <= 200 and quote("x" * 10_000).endswith("…")
    nested: Any = [1]
    for _ in range(50):
        nested = [nested, nested]  # 2**50 leaves when expanded: quote must not expand it
    assert len(quote(nested)) <= 200


# --- defect 11: size limits -------------------------------------------------------------------------


def test_huge_suite_file_is_refused_before_reading(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL + "description: " + "x" * 2_000_000 + "\n"
    suite = write(workdir, text)
    assert_refused(invoke("validate", suite), "2,000,", "HARNESS_MAX_SUITE_BYTES")
    assert_refused(invoke("run", suite, "--executor", "local"), "HARNESS_MAX_SUITE_BYTES")
    monkeypatch.setenv("HARNESS_MAX_SUITE_BYTES", "3000000")  # let it through: then the description cap
    assert_refused(invoke("validate", suite), "`description` (line 4)", "at most 10000 characters")
    assert_nothing_recorded(workdir, "suite.yaml")


def test_long_description_is_refused(workdir: Path) -> None:
    suite = write(workdir, MINIMAL + "description: " + "x" * 20_000 + "\n")
    assert_refused(invoke("validate", suite), "`description` (line 4)", "at most 10000 characters")
    ok = write(workdir, MINIMAL + "description: " + "x" * 5_000 + "\n", "ok.yaml")
    assert invoke("validate", ok).exit_code == 0


# --- defect 9: values that would fail every run -----------------------------------------------------


def test_double_precision_is_refused(workdir: Path) -> None:
    suite = write(workdir, MINIMAL + "trainer: {precision: 64-true}\n")
    assert_refused(
        invoke("validate", suite), "`trainer.precision` (line 4)", "32-true", "16-mixed", "bf16-mixed"
    )


@pytest.mark.parametrize(
    ("arch", "params", "where"),
    [
        ("gru", "params: {hidden_size: 1.0e+11}", "architectures[0].params.hidden_size"),
        ("gru", "params: {hidden_size: 100000000000}", "architectures[0].params.hidden_size"),
        ("lstm", "grid: {hidden_size: [8, 100000000000]}", "architectures[0].grid.hidden_size[1]"),
        ("lstm", "params: {num_layers: 1000000}", "architectures[0].params.num_layers"),
        ("gru", "params: {embedding_size: 10000000}", "architectures[0].params.embedding_size"),
        ("transformer", "params: {d_model: 100000000, num_heads: 1}", "architectures[0].params.d_model"),
        ("transformer", "params: {dim_feedforward: 100000000}", "architectures[0].params.dim_feedforward"),
        ("cnn_rnn", "params: {conv_channels: 100000000}", "architectures[0].params.conv_channels"),
        ("cnn_rnn", "params: {kernel_size: 100001}", "architectures[0].params.kernel_size"),
    ],
)
def test_absurd_sizes_are_refused(workdir: Path, arch: str, params: str, where: str) -> None:
    text = f"name: sizes\ntasks: [{{name: digits}}]\narchitectures:\n  - name: {arch}\n    {params}\n"
    assert_refused(invoke("validate", write(workdir, text)), f"`{where}` (line 5)", "less than or equal to")


# --- defect 15: names, output folders, caches, booleans, times, CPUs --------------------------------


def test_long_suite_name_is_refused(workdir: Path) -> None:
    suite = write(workdir, MINIMAL.replace("minimal", "n" * 300))
    assert_refused(invoke("validate", suite), "`name` (line 1)", "at most 100 characters")
    assert_refused(invoke("run", suite, "--executor", "local"), "`name` (line 1)")
    assert_nothing_recorded(workdir, "suite.yaml")


def run_tiny(workdir: Path, *args: str, **extra: Any) -> Result:
    suite = write_suite(workdir, tiny_suite(tasks=["digits"], **extra))
    return invoke("run", str(suite), "--executor", "local", *args)


def test_unwritable_results_file_is_refused_before_running(workdir: Path) -> None:
    assert_refused(run_tiny(workdir, "--results", "/proc/x.jsonl"), "--results", "/proc/x.jsonl")
    assert_nothing_recorded(workdir, "suite.yaml")


def test_unwritable_results_in_the_suite_is_refused(workdir: Path) -> None:
    result = run_tiny(workdir, tracking={"results": "/proc/x.jsonl"})
    assert_refused(result, "`tracking.results`", "/proc/x.jsonl")
    assert_nothing_recorded(workdir, "suite.yaml")


def test_results_path_that_is_a_folder_is_refused(workdir: Path) -> None:
    (workdir / "taken").mkdir()  # (click refuses a folder given as --results itself)
    assert_refused(run_tiny(workdir, tracking={"results": "taken"}), "`tracking.results`", "is a folder")
    assert_nothing_recorded(workdir, "suite.yaml", "taken")


def test_unwritable_report_dir_is_refused_before_running(workdir: Path) -> None:
    assert_refused(run_tiny(workdir, "--report-dir", "/proc/x"), "--report-dir", "/proc/x")
    assert_nothing_recorded(workdir, "suite.yaml")


def test_report_dir_that_is_a_file_is_refused(workdir: Path) -> None:
    (workdir / "reports").write_text("not a folder", encoding="utf-8")
    assert_refused(run_tiny(workdir), "reports/tiny", "not a folder")
    assert_nothing_recorded(workdir, "suite.yaml", "reports")


def test_cache_dir_that_is_a_file_is_refused(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = workdir.parent / "cache-file"
    cache.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    assert_refused(run_tiny(workdir), "HARNESS_CACHE_DIR", str(cache))
    assert_nothing_recorded(workdir, "suite.yaml")


def test_preflight_leaves_no_trace(tmp_path: Path) -> None:
    """The checks create missing folders to test-write them, then remove what they created."""
    from harness.preflight import check_outputs

    check_outputs(tmp_path / "a" / "b" / "r.jsonl", tmp_path / "c" / "d", tmp_path / "e" / "f")
    assert os.listdir(tmp_path) == []
    (tmp_path / "r.jsonl").write_text("{}\n", encoding="utf-8")  # an existing results file is kept
    check_outputs(tmp_path / "r.jsonl", tmp_path, None)
    assert os.listdir(tmp_path) == ["r.jsonl"] and (tmp_path / "r.jsonl").read_text() == "{}\n"
    with pytest.raises(HarnessError) as info:
        check_outputs(tmp_path / "r.jsonl" / "x.jsonl", tmp_path, None)
    assert info.value.exit_code == 2 and "r.jsonl" in str(info.value)


@pytest.mark.parametrize(
    "setting",
    [
        "trainer: {max_epochs: true}",
        "trainer: {batch_size: false}",
        "trainer: {max_steps: true}",
        "trainer: {lr: true}",
        "trainer: {max_time: true}",
        "trainer: {early_stopping: {patience: true}}",
        "trainer: {tbptt: {k1: true}}",
        "resources: {cpus: true}",
        "resources: {gpus: true}",
        "resources: {workers: true}",
        "execution: {max_retries: true}",
        "measure: {rounds: true}",
    ],
)
def test_booleans_are_not_numbers(workdir: Path, setting: str) -> None:
    section, rest = setting.split(": ", 1)
    key = rest.strip("{}").split(":")[0]
    where = f"{section}.{key}" if not rest.count("{") > 1 else f"{section}.{key}."
    output = assert_refused(
        invoke("validate", write(workdir, MINIMAL + setting + "\n")), f"`{where}", "boolean"
    )
    assert "(line 4)" in output


@pytest.mark.parametrize("value", ['"00:99:99"', '"00:60:00"', '"00:00:60"', '"99:99"', '"1:00:75"'])
def test_out_of_range_clock_times_are_refused(workdir: Path, value: str) -> None:
    suite = write(workdir, MINIMAL + f"trainer: {{max_time: {value}}}\n")
    assert_refused(invoke("validate", suite), "`trainer.max_time` (line 4)", "0 to 59")
    deadline = write(workdir, MINIMAL + f"execution: {{deadline: {value}}}\n", "deadline.yaml")
    assert_refused(invoke("validate", deadline), "`execution.deadline` (line 4)", "0 to 59")


def test_clock_times_in_range_still_parse() -> None:
    assert parse_seconds("100:59:59", "max_time") == 100 * 3600 + 59 * 60 + 59
    assert parse_seconds("59:59", "max_time") == 59 * 60 + 59
    assert parse_seconds("00:00:01", "max_time") == 1.0


def test_tiny_cpu_requests_are_refused(workdir: Path) -> None:
    suite = write(workdir, MINIMAL + "resources: {cpus: 0.001}\n")
    assert_refused(invoke("validate", suite), "`resources.cpus` (line 4)", "minimum of 0.1")
    ok = write(workdir, MINIMAL, "ok.yaml")
    for command in ("validate", "run"):
        args = [command, ok, "--cpus", "0.001"] + (["--executor", "local"] if command == "run" else [])
        assert_refused(invoke(*args), "--cpus: 0.001 CPUs per run", "minimum of 0.1")
    assert (
        invoke("validate", write(workdir, MINIMAL + "resources: {cpus: 0.1}\n", "tenth.yaml")).exit_code == 0
    )
    assert_nothing_recorded(workdir, "suite.yaml", "ok.yaml", "tenth.yaml")
