"""The plan: tasks × architecture grid points × seeds, stable run ids, labels, per-architecture
trainer settings, located errors, skip reasons and `--only` filtering (harness.matrix)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import InputSpec, Params, Task, TaskInfo, __version__
from harness.errors import HarnessError, SuiteError, UnknownNameError
from harness.matrix import Plan, build_plan
from harness.plugins import get_registry
from harness.records import PluginRef, RunSpec
from harness.registry import Provenance, Registry
from harness.settings import EarlyStopping, ResourcesSpec
from harness.suite import load_suite

SUITES = Path(__file__).parent / "suites"
QUICKSTART = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"
BAD_PLAN = sorted((SUITES / "bad_plan").glob("*.yaml"))
BUILTIN_ARCHS = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]

GRID_SUITE = """\
name: grid
seeds: 3
tasks:
  - name: digits
  - name: adding
    params: {length: 10}
architectures:
  - name: gru
    grid:
      hidden_size: [8, 16]
      num_layers: [1, 2]
  - name: lstm
    params: {hidden_size: 8}
trainer:
  lr: 0.003
  batch_size: 32
"""


@pytest.fixture(autouse=True)
def _no_plugin_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's HARNESS_PLUGINS / HARNESS_DISABLE_PLUGINS must not change the registry used here."""
    for name in ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.removeprefix("# expect:").strip() for line in lines if line.startswith("# expect:")]


def plan_of(tmp_path: Path, text: str, registry: Registry | None = None, name: str = "suite.yaml") -> Plan:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return build_plan(load_suite(path), registry or get_registry())


def plan_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(HarnessError) as info:
        plan_of(tmp_path, text)
    return str(info.value)


def ids(plan: Plan) -> list[str]:
    return [c.run_id for c in plan.cells]


# --- expansion ----------------------------------------------------------------------------------


def test_quickstart_plan() -> None:
    plan = build_plan(load_suite(QUICKSTART), get_registry())
    assert len(plan.cells) == 12 and len(plan.runnable) == 12 and plan.skipped == []
    assert {(c.task, c.architecture) for c in plan.cells} == {
        (t, a) for t in ("digits", "adding") for a in BUILTIN_ARCHS
    }


def test_counts_are_tasks_times_grid_points_times_seeds(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    assert len(plan.cells) == 2 * (2 * 2 + 1) * 3
    assert len(set(ids(plan))) == len(plan.cells)
    assert {c.seed for c in plan.cells} == {0, 1, 2}
    gru = [c for c in plan.cells if c.architecture == "gru"]
    assert len(gru) == 2 * 4 * 3
    points = {(c.arch_params["hidden_size"], c.arch_params["num_layers"]) for c in gru}
    assert points == {(8, 1), (8, 2), (16, 1), (16, 2)}


def test_order_is_task_then_architecture_then_grid_then_seed(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    first = [(c.task, c.arch_label, c.seed) for c in plan.cells[:4]]
    assert first == [
        ("digits", "gru[hidden_size=8,num_layers=1]", 0),
        ("digits", "gru[hidden_size=8,num_layers=1]", 1),
        ("digits", "gru[hidden_size=8,num_layers=1]", 2),
        ("digits", "gru[hidden_size=8,num_layers=2]", 0),
    ]
    assert plan.cells[-1].task == "adding" and plan.cells[-1].arch_label == "lstm"


def test_labels_for_grid_points_and_custom_labels(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        name: labels
        tasks:
          - name: adding
            label: add10
            params: {length: 10}
        architectures:
          - name: gru
            label: small-gru
            grid: {hidden_size: [8, 16]}
          - name: lstm
        """,
    )
    assert [c.arch_label for c in plan.cells] == [
        "small-gru[hidden_size=8]",
        "small-gru[hidden_size=16]",
        "lstm",
    ]
    assert {c.task_label for c in plan.cells} == {"add10"}
    assert plan.cells[0].label == "add10 × small-gru[hidden_size=8] · seed 0"
    assert plan.cells[0].grid == {"hidden_size": 8}
    assert plan.cells[2].grid == {}


def test_task_grid(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        name: task-grid
        tasks:
          - name: adding
            grid: {length: [10, 20, 40]}
        architectures: [{name: gru}]
        """,
    )
    assert [c.task_params["length"] for c in plan.cells] == [10, 20, 40]
    assert [c.task_label for c in plan.cells] == [
        "adding[length=10]",
        "adding[length=20]",
        "adding[length=40]",
    ]
    assert plan.cells[0].grid == {"task.length": 10}


def test_params_are_resolved_with_defaults(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    lstm = next(c for c in plan.cells if c.architecture == "lstm")
    assert lstm.arch_params == {
        "hidden_size": 8,
        "num_layers": 1,
        "dropout": 0.0,
        "embedding_size": None,
        "forget_bias": 1.0,
    }
    adding = next(c for c in plan.cells if c.task == "adding")
    assert adding.task_params["length"] == 10 and adding.task_params["num_train"] == 5000


def test_metrics_and_primary_metric(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        name: metrics
        tasks:
          - name: digits
          - name: adding
            metrics: [mae]
        architectures: [{name: gru}]
        """,
    )
    digits, adding = plan.cells
    assert digits.metrics == ("accuracy", "precision", "recall", "f1", "auroc")
    assert (digits.primary_metric, digits.direction) == ("accuracy", "max")
    assert adding.metrics == ("mse", "mae")  # the primary metric is always measured
    assert (adding.primary_metric, adding.direction) == ("mse", "min")


def test_a_cell_is_a_run_spec_that_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    spec = plan.cells[0]
    assert isinstance(spec, RunSpec)
    data = json.loads(spec.model_dump_json())  # plain JSON data: what a worker is sent
    assert RunSpec.model_validate(data) == spec
    assert data["resources"] == {"cpus": 1.0, "gpus": 0.0, "workers": 1}
    assert spec.resources == ResourcesSpec() and spec.provenance.harness == __version__
    assert spec.provenance.task_plugin.pin == spec.provenance.arch_plugin.pin == f"harness=={__version__}"
    assert spec.provenance.data_version and spec.skip_reason is None and spec.cache_dir is None


# --- run ids ------------------------------------------------------------------------------------


def test_run_ids_are_stable(tmp_path: Path) -> None:
    first = plan_of(tmp_path, GRID_SUITE, name="a.yaml")
    again = plan_of(tmp_path, GRID_SUITE, name="b.yaml")  # another file, same content
    assert ids(first) == ids(again)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids(first))


def test_run_ids_are_stable_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(GRID_SUITE, encoding="utf-8")
    code = (
        "import json, sys; from harness.matrix import build_plan; from harness.plugins import get_registry; "
        "from harness.suite import load_suite; "
        "print(json.dumps([c.run_id for c in build_plan(load_suite(sys.argv[1]), get_registry()).cells]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout) == ids(build_plan(load_suite(path), get_registry()))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("params: {hidden_size: 8}", "params: {hidden_size: 9}"),  # a parameter
        ("params: {length: 10}", "params: {length: 11}"),  # a task parameter
        ("  batch_size: 32", "  batch_size: 16"),  # a trainer setting
        ("  lr: 0.003", "  lr: 0.004"),
    ],
)
def test_changing_what_a_run_does_changes_its_id(tmp_path: Path, old: str, new: str) -> None:
    assert old in GRID_SUITE
    before = set(ids(plan_of(tmp_path, GRID_SUITE, name="a.yaml")))
    after = set(ids(plan_of(tmp_path, GRID_SUITE.replace(old, new), name="b.yaml")))
    assert before != after


def test_seed_is_part_of_the_id_and_adding_seeds_keeps_old_ids(tmp_path: Path) -> None:
    one = plan_of(tmp_path, GRID_SUITE.replace("seeds: 3", "seeds: [0]"), name="a.yaml")
    other = plan_of(tmp_path, GRID_SUITE.replace("seeds: 3", "seeds: [1]"), name="b.yaml")
    three = plan_of(tmp_path, GRID_SUITE, name="c.yaml")
    assert set(ids(one)).isdisjoint(ids(other))
    assert set(ids(one)) | set(ids(other)) <= set(ids(three))  # resume finds the finished seeds


def test_display_only_fields_do_not_change_ids(tmp_path: Path) -> None:
    base = plan_of(tmp_path, GRID_SUITE, name="a.yaml")
    relabelled = plan_of(
        tmp_path,
        GRID_SUITE.replace("name: grid", "name: grid\ndescription: same runs").replace(
            "  - name: lstm", "  - name: lstm\n    label: the-lstm"
        ),
        name="b.yaml",
    )
    assert ids(base) == ids(relabelled)


def test_explicit_default_equals_omitted(tmp_path: Path) -> None:
    a = plan_of(tmp_path, "name: s\ntasks: [{name: digits}]\narchitectures: [{name: gru}]\n", name="a.yaml")
    b = plan_of(
        tmp_path,
        "name: s\ntasks: [{name: digits}]\narchitectures: [{name: gru, params: {hidden_size: 64}}]\n",
        name="b.yaml",
    )
    assert ids(a) == ids(b)


# --- trainer settings per architecture and trainer grid axes ------------------------------------


def test_trainer_override_per_architecture_entry(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        name: overrides
        tasks: [{name: digits}]
        architectures:
          - name: gru
          - name: lstm
            trainer: {lr: 0.01, optimizer: sgd, momentum: 0.9}
        trainer: {lr: 0.003, batch_size: 32, early_stopping: true, max_time: "00:01:00"}
        """,
    )
    gru, lstm = plan.cells
    assert (gru.trainer.lr, gru.trainer.optimizer) == (0.003, "adam")
    assert (lstm.trainer.lr, lstm.trainer.optimizer, lstm.trainer.momentum) == (0.01, "sgd", 0.9)
    for cell in plan.cells:  # the rest is inherited from the suite's trainer
        assert cell.trainer.batch_size == 32 and cell.trainer.max_time == 60.0
        assert cell.trainer.early_stopping == EarlyStopping(patience=5, min_delta=0.0, monitor=None)
        assert cell.trainer.max_epochs == 10


def test_trainer_grid_axes(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        name: lr-sweep
        tasks: [{name: digits}]
        architectures:
          - name: gru
            trainer: {lr: 0.5, batch_size: 16}
            grid:
              trainer.lr: [0.1, 0.01]
              hidden_size: [8]
        trainer: {lr: 0.003}
        """,
    )
    assert [c.trainer.lr for c in plan.cells] == [0.1, 0.01]  # grid > entry > suite
    assert {c.trainer.batch_size for c in plan.cells} == {16}
    assert [c.arch_label for c in plan.cells] == [
        "gru[trainer.lr=0.1,hidden_size=8]",
        "gru[trainer.lr=0.01,hidden_size=8]",
    ]
    assert all("lr" not in c.arch_params for c in plan.cells)
    assert plan.cells[0].grid == {"trainer.lr": 0.1, "hidden_size": 8}
    assert len(set(ids(plan))) == 2


# --- errors: every fixture under tests/suites/bad_plan ------------------------------------------


def test_every_bad_plan_fixture_declares_what_it_expects() -> None:
    assert len(BAD_PLAN) >= 12
    for path in BAD_PLAN:
        assert expectations(path), f"{path.name} has no `# expect:` line"


@pytest.mark.parametrize("path", BAD_PLAN, ids=[p.stem for p in BAD_PLAN])
def test_plan_errors_name_location_and_fix(path: Path) -> None:
    suite = load_suite(path)  # the file itself is well-formed
    with pytest.raises(HarnessError) as info:
        build_plan(suite, get_registry())
    message = str(info.value)
    assert str(path) in message
    for fragment in expectations(path):
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert len(message) < 800, message


def test_unknown_architecture_suggests_and_lists(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        plan_of(tmp_path, "name: s\ntasks: [{name: digits}]\narchitectures:\n  - name: lstn\n")
    message = str(info.value)
    assert "Unknown architecture `lstn`" in message
    assert "`architectures[0].name` (line 4)" in message
    assert "Did you mean `lstm`?" in message
    for name in BUILTIN_ARCHS:
        assert name in message.split("Installed architectures:")[1]


def test_unknown_name_without_close_match(tmp_path: Path) -> None:
    message = plan_error(tmp_path, "name: s\ntasks: [{name: zzzzzz}]\narchitectures: [{name: gru}]\n")
    assert "Unknown task `zzzzzz`" in message and "Did you mean" not in message
    assert "Installed tasks:" in message and "digits" in message


def test_params_error_at_params_key(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        """\
        name: s
        tasks: [{name: digits}]
        architectures:
          - name: gru
            params:
              num_layers: 2
              hidden_size: 0
        """,
    )
    assert "`architectures[0].params.hidden_size` (line 7)" in message


def test_params_error_at_grid_entry(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        """\
        name: s
        tasks: [{name: digits}]
        architectures:
          - name: gru
            grid:
              hidden_size:
                - 16
                - 0
        """,
    )
    assert "`architectures[0].grid.hidden_size[1]` (line 8)" in message
    assert "greater than 0" in message


def test_grid_combination_error_is_located_at_params(tmp_path: Path) -> None:
    """A model-level rule broken by a grid point (heads must divide d_model)."""
    message = plan_error(
        tmp_path,
        """\
        name: s
        tasks: [{name: digits}]
        architectures:
          - name: transformer
            params: {d_model: 32}
            grid: {num_heads: [4, 3]}
        """,
    )
    assert "`architectures[0].params` (line 5)" in message
    assert "d_model (32) must be divisible by num_heads (3)" in message


def test_unknown_grid_key_suggests(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        "name: s\ntasks: [{name: digits}]\narchitectures:\n  - name: gru\n    grid: {trainer.lrr: [0.1]}\n",
    )
    assert "`architectures[0].grid['trainer.lrr']` (line 5)" in message
    assert "Did you mean `trainer.lr`" in message


def test_task_grid_cannot_sweep_trainer_settings(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        "name: s\ntasks:\n  - name: digits\n    grid: {trainer.lr: [0.1]}\narchitectures: [{name: gru}]\n",
    )
    assert "`tasks[0].grid['trainer.lr']` (line 4)" in message


def test_metric_not_applicable_to_task_kind(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        "name: s\ntasks:\n  - name: digits\n    metrics: [accuracy, mse]\narchitectures: [{name: gru}]\n",
    )
    assert "`tasks[0].metrics[1]` (line 4)" in message
    assert "metric `mse` does not apply to classification tasks" in message


def test_duplicate_cells(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as info:
        plan_of(
            tmp_path,
            """\
            name: s
            tasks: [{name: digits}]
            architectures:
              - name: gru
                label: first
              - name: gru
                label: second
            """,
        )
    message = str(info.value)
    assert "`architectures[1]` (line 6)" in message
    assert "same run as `architectures[0]` (line 4)" in message
    assert "first" in message and "second" in message


def test_per_architecture_accelerator_gpu_needs_gpus(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        "name: s\ntasks: [{name: digits}]\narchitectures:\n"
        "  - name: gru\n    grid: {trainer.accelerator: [cpu, gpu]}\n",
    )
    assert "`architectures[0].grid['trainer.accelerator'][1]` (line 5)" in message
    assert "Set resources.gpus" in message


# --- skip reasons (a task that requires a capability) -------------------------------------------


class CausalEcho(Task):
    """A tiny task that only causal encoders may run (it never trains here)."""

    name = "causal_echo"
    description = "test task requiring a causal encoder"
    Params: ClassVar[type[Params]] = Params

    def info(self) -> TaskInfo:
        return TaskInfo(
            input=InputSpec("continuous", 2, max_length=10),
            output_kind="regression",
            output_size=1,
            loss="mean squared error",
            metrics=("mse",),
            primary_metric="mse",
            direction="min",
            requires=frozenset({"causal"}),
        )


@pytest.fixture(scope="module")
def causal_registry() -> Registry:
    """The built-in architectures and metrics plus one task from a test plugin."""
    builtins = get_registry()
    registry = Registry()
    for kind in ("architectures", "metrics"):
        for entry in builtins.namespace(kind):
            registry.namespace(kind).add(entry.obj, entry.provenance)
    registry.tasks.add(CausalEcho, Provenance("test_causal", "tests", "0"))
    return registry


CAUSAL_SUITE = """\
name: causal
seeds: 2
tasks: [{name: causal_echo}]
architectures:
  - name: lstm
  - name: birnn
  - name: transformer
  - name: transformer
    label: causal-transformer
    params: {causal: true}
  - name: cnn_rnn
    grid: {causal: [false, true]}
"""


def test_skip_reasons(tmp_path: Path, causal_registry: Registry) -> None:
    plan = plan_of(tmp_path, CAUSAL_SUITE, causal_registry)
    assert len(plan.cells) == 6 * 2
    by_label = {c.arch_label: c for c in plan.cells if c.seed == 0}
    assert by_label["lstm"].skip_reason is None
    assert by_label["causal-transformer"].skip_reason is None
    assert by_label["cnn_rnn[causal=True]"].skip_reason is None
    birnn = by_label["birnn"].skip_reason
    assert birnn is not None and "`birnn` lacks causal" in birnn and "bidirectional" in birnn
    assert by_label["transformer"].skip_reason is not None
    assert by_label["cnn_rnn[causal=False]"].skip_reason is not None
    assert len(plan.runnable) == 3 * 2 and len(plan.skipped) == 3 * 2
    assert {c.run_id for c in plan.runnable}.isdisjoint(c.run_id for c in plan.skipped)
    # the plan records which distribution registered each name (the test plugin's task here)
    assert {c.provenance.task_plugin for c in plan.cells} == {PluginRef(distribution="tests", version="0")}


def test_filtering_keeps_skip_reasons(tmp_path: Path, causal_registry: Registry) -> None:
    plan = plan_of(tmp_path, CAUSAL_SUITE, causal_registry).filtered({"arch": {"birnn", "lstm"}})
    assert {c.architecture for c in plan.cells} == {"birnn", "lstm"}
    assert [c.architecture for c in plan.skipped] == ["birnn", "birnn"]


# --- --only filtering ---------------------------------------------------------------------------


def test_filtered_by_task_and_architecture(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    only_lstm = plan.filtered({"arch": {"lstm"}})
    assert {c.architecture for c in only_lstm.cells} == {"lstm"} and len(only_lstm.cells) == 2 * 3
    both = plan.filtered({"task": {"adding"}, "arch": {"gru", "lstm"}})
    assert {c.task for c in both.cells} == {"adding"} and len(both.cells) == 5 * 3
    assert len(plan.cells) == 30  # filtering returns a new plan
    assert plan.filtered({}).cells == plan.cells
    assert only_lstm.suite is plan.suite


def test_filtered_by_label(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    point = plan.filtered({"arch": {"gru[hidden_size=16,num_layers=2]"}})
    assert len(point.cells) == 2 * 3
    assert {c.arch_params["hidden_size"] for c in point.cells} == {16}


@pytest.mark.parametrize(
    ("only", "fragment"),
    [
        ({"arch": {"lstn"}}, "Did you mean `lstm`"),
        ({"arch": {"lstm", "gruu"}}, "Did you mean `gru`"),  # one typo among good names still fails
        ({"task": {"addng"}}, "Did you mean `adding`"),
        ({"arch": {"transformer"}}, "Architectures in this suite: gru, lstm"),
    ],
)
def test_filter_name_matching_nothing(tmp_path: Path, only: dict[str, set[str]], fragment: str) -> None:
    plan = plan_of(tmp_path, GRID_SUITE)
    with pytest.raises(SuiteError) as info:
        plan.filtered(only)
    assert "matches no cell" in str(info.value)
    assert fragment in str(info.value)


def test_early_stopping_monitor_must_be_a_logged_validation_metric(tmp_path: Path) -> None:
    message = plan_error(
        tmp_path,
        """\
        name: s
        tasks: [{name: digits}]
        architectures:
          - name: gru
            trainer:
              early_stopping: {patience: 2, monitor: val_acuracy}
        """,
    )
    assert "`architectures[0].trainer.early_stopping.monitor` (line 6)" in message
    assert "Did you mean `val_accuracy`" in message and "val_loss" in message


def test_early_stopping_monitor_on_a_logged_metric_is_accepted(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        name: s
        tasks: [{name: adding}]
        architectures: [{name: gru}]
        trainer: {early_stopping: {monitor: val_mae}}
        """,
    )
    early_stopping = plan.cells[0].trainer.early_stopping
    assert early_stopping is not None and early_stopping.monitor == "val_mae"


def test_off_by_default_settings_stay_out_of_run_ids(tmp_path: Path) -> None:
    """tbptt, target and workers enter a run's identity only when set (so old results still resume)."""
    base = ids(plan_of(tmp_path, GRID_SUITE, name="base.yaml"))
    with_tbptt = GRID_SUITE + "  tbptt: {k1: 5}\n"
    assert set(ids(plan_of(tmp_path, with_tbptt, name="tbptt.yaml"))).isdisjoint(base)
    with_workers = GRID_SUITE.replace("seeds:", "resources: {workers: 2}\nseeds:", 1)
    assert set(ids(plan_of(tmp_path, with_workers, name="workers.yaml"))).isdisjoint(base)
    explicit_off = GRID_SUITE.replace("seeds:", "resources: {workers: 1}\nseeds:", 1) + "  tbptt: null\n"
    assert ids(plan_of(tmp_path, explicit_off, name="off.yaml")) == base


def test_tbptt_k2_cannot_exceed_k1(tmp_path: Path) -> None:
    bad = GRID_SUITE + "  tbptt: {k1: 5, k2: 8}\n"
    with pytest.raises(SuiteError, match="k2"):
        plan_of(tmp_path, bad, name="bad.yaml")


def test_unknown_reporter_is_refused_with_its_place(tmp_path: Path) -> None:
    bad = GRID_SUITE.replace("seeds:", "reporters: [markdwn]\nseeds:", 1)
    with pytest.raises(Exception, match=r"reporters\[0\].*markdown"):
        plan_of(tmp_path, bad, name="bad.yaml")


def test_tbptt_skips_architectures_that_cannot_carry_state(tmp_path: Path) -> None:
    text = """\
name: tb
tasks:
  - name: adding
    params: {length: 10}
architectures:
  - name: lstm
  - name: transformer
  - name: birnn
trainer:
  tbptt: {k1: 5}
"""
    plan = plan_of(tmp_path, text)
    reasons = {c.architecture: c.skip_reason for c in plan.cells}
    assert reasons["lstm"] is None
    assert "truncated BPTT" in (reasons["transformer"] or "") and "truncated BPTT" in (reasons["birnn"] or "")


def test_a_plan_past_the_cell_limit_is_refused_before_it_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """Issue 17, defect 7: a 1,000-value grid × 1,000 seeds (10⁶ cells) is refused at once, naming
    the count and the override; HARNESS_MAX_CELLS lets a plan that large through on purpose."""
    from tests.helpers import tiny_suite, write_suite

    monkeypatch.delenv("HARNESS_MAX_CELLS", raising=False)
    huge = tiny_suite(tasks=["digits"], seeds=1000)
    huge["architectures"] = [{"name": "gru", "grid": {"hidden_size": list(range(1, 1001))}}]
    refused = cli("validate", str(write_suite(tmp_path, huge, "huge.yaml")))
    assert refused.exit_code == 2, refused.output
    assert "expands to 1,000,000 cells" in refused.output and "HARNESS_MAX_CELLS=1000000" in refused.output

    small = tiny_suite(tasks=["digits", "adding"], archs=["gru", "lstm"], seeds=3)  # 12 cells
    path = write_suite(tmp_path, small, "small.yaml")
    monkeypatch.setenv("HARNESS_MAX_CELLS", "11")
    assert cli("validate", str(path)).exit_code == 2
    monkeypatch.setenv("HARNESS_MAX_CELLS", "12")
    assert cli("validate", str(path)).exit_code == 0
