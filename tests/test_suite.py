"""The suite file format: valid suites parse with their defaults; malformed ones fail with the
YAML path, the line and a fix (harness.suite.load_suite, harness.yamlsrc)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from harness.errors import HarnessError, SuiteError
from harness.suite import EarlyStopping, Suite, load_suite

SUITES = Path(__file__).parent / "suites"
QUICKSTART = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"
BAD_LOAD = sorted((SUITES / "bad_load").glob("*.yaml"))

MINIMAL = """\
name: minimal
tasks:
  - name: digits
architectures:
  - name: gru
"""


def expectations(path: Path) -> list[str]:
    """The ``# expect:`` fragments a fixture's error message must contain."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.removeprefix("# expect:").strip() for line in lines if line.startswith("# expect:")]


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Suite:
    return load_suite(write(tmp_path, text))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SuiteError) as info:
        load_text(tmp_path, text)
    return str(info.value)


# --- malformed suites: every fixture under tests/suites/bad_load -------------------------------


def test_every_bad_load_fixture_declares_what_it_expects() -> None:
    assert len(BAD_LOAD) >= 20
    for path in BAD_LOAD:
        assert expectations(path), f"{path.name} has no `# expect:` line"


@pytest.mark.parametrize("path", BAD_LOAD, ids=[p.stem for p in BAD_LOAD])
def test_malformed_suite_names_location_and_fix(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the python-tag fixture would `touch pwned` here if it ran
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message  # which file
    for fragment in expectations(path):
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert "Traceback" not in message
    assert len(message) < 800, f"message too long ({len(message)} chars): {message}"
    assert os.listdir(tmp_path) == []


def test_suite_errors_are_harness_errors_with_exit_code_2() -> None:
    assert issubclass(SuiteError, HarnessError)
    assert SuiteError("x").exit_code == 2


def test_messages_name_path_line_and_suggestion(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "trainer:\n  max_epoch: 3\n")
    assert "`trainer.max_epoch` (line 7)" in message
    assert "Did you mean `max_epochs`" in message


def test_misspelled_required_key_is_reported_once_as_a_typo(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: t\ntask:\n  - name: digits\narchitectures:\n  - name: gru\n")
    assert "`task` (line 2): unknown key `task`. Did you mean `tasks`?" in message
    assert "is missing" not in message  # the typo message already says what to do


def test_missing_required_key_without_typo(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: t\narchitectures:\n  - name: gru\n")
    assert "required key `tasks` is missing" in message


def test_many_errors_are_capped(tmp_path: Path) -> None:
    keys = "".join(f"extra{i}: 1\n" for i in range(12))
    message = error_of(tmp_path, MINIMAL + keys)
    assert message.count("unknown key") == 5
    assert "more errors" in message


# --- file-level failures ------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist") as info:
        load_suite(tmp_path / "nope.yaml")
    assert "suites/quickstart.yaml" in str(info.value)


def test_directory_is_not_a_suite(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="is not a file"):
        load_suite(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SuiteError, match="is empty"):
        load_suite(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"name: \xff\xfe\x00bad\n")
    with pytest.raises(SuiteError, match="UTF-8"):
        load_suite(path)


@pytest.mark.parametrize("value", ["123", "just a string", "[1, 2]"])
def test_top_level_must_be_a_mapping(tmp_path: Path, value: str) -> None:
    message = error_of(tmp_path, value + "\n")
    assert "the top level must be a mapping" in message
    assert "(line 1)" in message


# --- plain data only ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        '!!python/object/apply:os.system ["touch pwned"]',
        "!!python/name:os.system",
        '!!python/object/new:subprocess.Popen [["touch", "pwned"]]',
        "!custom 3",
    ],
)
def test_object_building_tags_are_refused_without_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, MINIMAL + f"description: {value}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "`description` (line 6)" in str(info.value)
    assert "Remove the tag" in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_tag_in_a_nested_value_is_located(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, MINIMAL.replace("- name: gru", "- name: gru\n    params: {hidden_size: !!python/int 8}")
    )
    assert "`architectures[0].params.hidden_size` (line 6)" in message


def test_standard_tags_are_plain_data(tmp_path: Path) -> None:
    suite = load_text(tmp_path, MINIMAL + "description: !!str 42\nseeds: !!seq [1, 2]\n")
    assert suite.spec.description == "42"
    assert suite.spec.seeds == [1, 2]


def test_duplicate_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "name: again\n")
    assert "key `name` appears twice (lines 1 and 6)" in message
    assert "Keep one of them" in message


def test_duplicate_keys_nested(tmp_path: Path) -> None:
    text = MINIMAL.replace("- name: gru", "- name: gru\n    params: {hidden_size: 8, hidden_size: 16}")
    assert "`architectures[0].params.hidden_size` appears twice" in error_of(tmp_path, text)


def test_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    suite = load_text(
        tmp_path,
        """\
        name: anchors
        tasks: [{name: digits}]
        architectures:
          - name: gru
            params: &small {hidden_size: 8, num_layers: 2}
          - name: lstm
            params:
              <<: *small
              num_layers: 1
        """,
    )
    assert suite.spec.architectures[1].params == {"hidden_size": 8, "num_layers": 1}


@pytest.mark.timeout(20)
def test_alias_bomb_is_cheap(tmp_path: Path) -> None:
    """Nested aliases expand exponentially: loading refuses them where the expansion passes
    MAX_ALIAS_NODES, before anything is built (tests/test_input_limits.py has the CLI side)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    message = error_of(tmp_path, "\n".join(lines) + "\n")
    assert "`a5[0]` (line 6): the alias `*a4`" in message and "100,000 values" in message


def test_self_referencing_alias_is_an_error_not_a_crash(tmp_path: Path) -> None:
    error_of(tmp_path, MINIMAL + "description: &loop [*loop]\n")


# --- valid suites and their defaults ------------------------------------------------------------


def test_minimal_suite_defaults(tmp_path: Path) -> None:
    suite = load_text(tmp_path, MINIMAL)
    spec = suite.spec
    assert suite.path == tmp_path / "suite.yaml"
    assert spec.name == "minimal"
    assert spec.description == ""
    assert spec.seeds == [0]
    assert [t.name for t in spec.tasks] == ["digits"]
    assert spec.tasks[0].params == {} and spec.tasks[0].grid == {} and spec.tasks[0].metrics is None
    assert spec.architectures[0].params == {} and spec.architectures[0].trainer == {}
    trainer = spec.trainer
    assert (trainer.max_epochs, trainer.batch_size, trainer.optimizer, trainer.lr) == (10, 64, "adam", 1e-3)
    assert trainer.max_steps is None and trainer.max_time is None and trainer.early_stopping is None
    assert (trainer.precision, trainer.accelerator, trainer.gradient_clip_val) == ("32-true", "auto", None)
    assert (spec.resources.cpus, spec.resources.gpus) == (1.0, 0.0)
    assert (spec.tracking.uri, spec.tracking.experiment, spec.tracking.results) == (None, None, None)


def test_quickstart_parses() -> None:
    spec = load_suite(QUICKSTART).spec
    assert spec.name == "quickstart"
    assert [t.name for t in spec.tasks] == ["digits", "adding"]
    assert [a.name for a in spec.architectures] == ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]
    assert spec.resources.gpus == 0


@pytest.mark.parametrize(("value", "seeds"), [("3", [0, 1, 2]), ("1", [0]), ("[7, 3, 11]", [7, 3, 11])])
def test_seeds_as_count_or_list(tmp_path: Path, value: str, seeds: list[int]) -> None:
    assert load_text(tmp_path, MINIMAL + f"seeds: {value}\n").spec.seeds == seeds


@pytest.mark.parametrize(
    "value", ["0", "-2", "100000", "[]", "[1, 1]", "true", "[a]", "[0.5]", "[-5]", "[4294967296]"]
)
def test_bad_seeds(tmp_path: Path, value: str) -> None:
    message = error_of(tmp_path, MINIMAL + f"seeds: {value}\n")
    assert "`seeds" in message and "(line 6)" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", EarlyStopping()),
        ("false", None),
        ("{patience: 2, monitor: val_loss}", EarlyStopping(patience=2, monitor="val_loss")),
        ("{}", EarlyStopping()),
    ],
)
def test_early_stopping(tmp_path: Path, value: str, expected: EarlyStopping | None) -> None:
    spec = load_text(tmp_path, MINIMAL + f"trainer:\n  early_stopping: {value}\n").spec
    assert spec.trainer.early_stopping == expected
    if expected is not None:
        assert spec.trainer.early_stopping is not None and spec.trainer.early_stopping.patience >= 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [('"01:02:03"', 3723.0), ('"00:05:00"', 300.0), ('"05:00"', 300.0), ("90", 90.0), ("1.5", 1.5)],
)
def test_max_time(tmp_path: Path, value: str, seconds: float) -> None:
    assert load_text(tmp_path, MINIMAL + f"trainer: {{max_time: {value}}}\n").spec.trainer.max_time == seconds


@pytest.mark.parametrize("value", ['"00:00:00"', "0", "-5", '"5 min"', '"1:2:3:4"', ".inf"])
def test_bad_max_time(tmp_path: Path, value: str) -> None:
    message = error_of(tmp_path, MINIMAL + f"trainer:\n  max_time: {value}\n")
    assert "`trainer.max_time` (line 7)" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lr", "-0.1"),
        ("lr", "0"),
        ("lr", ".nan"),
        ("max_epochs", "0"),
        ("batch_size", "0"),
        ("batch_size", "2.5"),
        ("momentum", "1.0"),
        ("weight_decay", "-1"),
        ("optimizer", "adamm"),
        ("precision", "16"),
        ("gradient_clip_val", "0"),
        ("accelerator", "tpu"),
    ],
)
def test_impossible_trainer_values(tmp_path: Path, key: str, value: str) -> None:
    message = error_of(tmp_path, MINIMAL + f"trainer:\n  {key}: {value}\n")
    assert f"`trainer.{key}` (line 7)" in message


def test_literal_choices_are_listed(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "trainer:\n  optimizer: adamm\n")
    assert "'adam'" in message and "'sgd'" in message


@pytest.mark.parametrize("gpus", ["0", "0.5", "1", "2"])
def test_gpu_requests_that_parse(tmp_path: Path, gpus: str) -> None:
    assert load_text(tmp_path, MINIMAL + f"resources: {{gpus: {gpus}}}\n").spec.resources.gpus == float(gpus)


@pytest.mark.parametrize(
    ("gpus", "fragment"), [("1.5", "whole number"), ("-1", "greater than or equal to 0")]
)
def test_bad_gpu_requests(tmp_path: Path, gpus: str, fragment: str) -> None:
    message = error_of(tmp_path, MINIMAL + f"resources:\n  gpus: {gpus}\n")
    assert "`resources.gpus` (line 7)" in message and fragment in message


def test_cpus_must_be_positive(tmp_path: Path) -> None:
    assert "`resources.cpus` (line 6)" in error_of(tmp_path, MINIMAL + "resources: {cpus: 0}\n")


def test_accelerator_gpu_needs_gpus(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "trainer:\n  accelerator: gpu\nresources: {gpus: 0}\n")
    assert "`trainer.accelerator` (line 7)" in message
    assert "Set resources.gpus" in message
    spec = load_text(tmp_path, MINIMAL + "trainer:\n  accelerator: gpu\nresources: {gpus: 1}\n").spec
    assert spec.trainer.accelerator == "gpu"


def test_entries_with_params_grid_label_metrics_and_trainer(tmp_path: Path) -> None:
    spec = load_text(
        tmp_path,
        """\
        name: full
        description: everything an entry can say
        seeds: 2
        tasks:
          - name: adding
            label: add-short
            params: {length: 20}
            metrics: [mse]
        architectures:
          - name: gru
            params: {hidden_size: 16}
            grid:
              num_layers: [1, 2]
              trainer.lr: [0.01, 0.001]
            trainer: {batch_size: 32}
        trainer:
          max_epochs: 3
          early_stopping: true
        resources: {cpus: 2, gpus: 0.5}
        tracking: {uri: "sqlite:///elsewhere.db", experiment: exp, results: out/r.jsonl}
        """,
    ).spec
    task, arch = spec.tasks[0], spec.architectures[0]
    assert (task.label, task.params, task.metrics) == ("add-short", {"length": 20}, ["mse"])
    assert arch.grid == {"num_layers": [1, 2], "trainer.lr": [0.01, 0.001]}
    assert arch.trainer == {"batch_size": 32}
    assert spec.seeds == [0, 1]
    assert spec.tracking.experiment == "exp"
    assert spec.resources.cpus == 2.0


def test_wrong_types_of_entries(tmp_path: Path) -> None:
    assert "Write the entry as a mapping: `- name: digits`" in error_of(
        tmp_path, "name: t\ntasks: [digits]\narchitectures: [{name: gru}]\n"
    )
    assert "`tasks` (line 2)" in error_of(tmp_path, "name: t\ntasks: digits\narchitectures: [{name: gru}]\n")
    message = error_of(tmp_path, MINIMAL.replace("- name: gru", "- name: gru\n    params: [8]"))
    assert "`architectures[0].params` (line 6)" in message
    message = error_of(tmp_path, MINIMAL.replace("- name: gru", "- name: gru\n    grid: {hidden_size: 8}"))
    assert "`architectures[0].grid.hidden_size` (line 6)" in message


def test_empty_lists_of_tasks_or_architectures(tmp_path: Path) -> None:
    assert "`tasks` (line 2)" in error_of(tmp_path, "name: t\ntasks: []\narchitectures: [{name: gru}]\n")
    assert "`architectures` (line 3)" in error_of(
        tmp_path, "name: t\ntasks: [{name: digits}]\narchitectures: []\n"
    )


@pytest.mark.parametrize("grid", ["{hidden_size: []}", "{hidden_size: [8, 8]}"])
def test_bad_grid_axes(tmp_path: Path, grid: str) -> None:
    message = error_of(tmp_path, MINIMAL.replace("- name: gru", f"- name: gru\n    grid: {grid}"))
    assert "`architectures[0].grid.hidden_size` (line 6)" in message
