"""Parameter budgets (harness.budget): ``budget: {params: N}`` sizes each architecture's declared
width, per task, to the largest one whose real network has at most N parameters."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from pydantic import Field

from harness import Architecture, EncoderOutput, InputSpec, Params, Width
from harness.budget import count_parameters, width_step
from harness.cli import main
from harness.errors import HarnessError
from harness.matrix import Plan, build_plan
from harness.network import build_network, parameter_count
from harness.plugins import get_registry
from harness.records import RunRecord, RunSpec
from harness.registry import Provenance, Registry
from harness.suite import load_suite
from harness.testing import check_architecture

SIZED = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]
BUDGET = 20_000


@pytest.fixture(autouse=True)
def _no_plugin_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


def suite_text(budget: str = f"budget: {{params: {BUDGET}}}", archs: str = "", tasks: str = "") -> str:
    archs = archs or "".join(f"  - name: {name}\n" for name in SIZED)
    tasks = tasks or "  - name: digits\n  - name: adding\n    params: {length: 100}\n"
    return f"name: budget\n{budget}\ntasks:\n{tasks}architectures:\n{archs}"


def plan_of(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return build_plan(load_suite(path), get_registry())


def plan_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(HarnessError) as info:
        plan_of(tmp_path, text)
    return str(info.value)


def cell(plan: Plan, task: str, arch: str) -> RunSpec:
    return next(c for c in plan.cells if c.task_label == task and c.arch_label == arch)


def count_at(spec: RunSpec, **params: Any) -> int:
    """The parameter count of ``spec``'s network with ``params`` changed, built on the CPU."""
    registry = get_registry()
    task = registry.tasks.get(spec.task).obj(spec.task_params)
    arch = registry.architectures.get(spec.architecture).obj({**spec.arch_params, **params})
    return parameter_count(build_network(task, arch))


# -- the search -------------------------------------------------------------------------------------


def test_the_chosen_width_is_the_largest_within_the_budget(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, suite_text())
    assert len(plan.cells) == 12
    for spec in plan.cells:
        sizing = spec.sizing
        assert sizing is not None, spec.label
        width = spec.arch_params[sizing.width]
        cls = get_registry().architectures.get(spec.architecture).obj
        decl = cls.budget_width_spec()
        assert decl is not None and width % width_step(cls, decl, {}) == 0
        # the recorded count is the real one (built on the CPU, not on the meta device)
        assert sizing.params == count_at(spec) <= BUDGET
        wider = {sizing.width: width + sizing.step}
        wider.update({name: max(1, round(r * (width + sizing.step))) for name, r in decl.tied.items()})
        assert count_at(spec, **wider) == sizing.next_params > BUDGET, spec.label
        if spec.architecture != "transformer":  # width steps of 1 land within 10 %
            assert sizing.fraction >= 0.9, spec.label


def test_tied_parameters_follow_the_width_and_the_step_divides_it(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, suite_text())
    transformer = cell(plan, "digits", "transformer").arch_params
    assert transformer["d_model"] % transformer["num_heads"] == 0
    assert transformer["dim_feedforward"] == 2 * transformer["d_model"]
    cnn = cell(plan, "digits", "cnn_rnn").arch_params
    assert cnn["conv_channels"] == cnn["hidden_size"]
    archs = (
        "  - name: transformer\n    params: {num_heads: 3, dim_feedforward: 40}\n"
        "  - name: cnn_rnn\n    params: {conv_channels: 8}\n"
    )
    plan = plan_of(tmp_path, suite_text(archs=archs))
    transformer = cell(plan, "digits", "transformer").arch_params
    assert transformer["d_model"] % 3 == 0 and transformer["dim_feedforward"] == 40  # set: stays
    assert cell(plan, "digits", "transformer").sizing.step == 3  # type: ignore[union-attr]
    assert cell(plan, "digits", "cnn_rnn").arch_params["conv_channels"] == 8


def test_each_task_gets_its_own_width(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, suite_text())
    for arch in ("rnn", "lstm", "gru"):
        digits, adding = cell(plan, "digits", arch), cell(plan, "adding", arch)
        # digits has 8 inputs and 10 classes, adding 2 inputs and one output: more width fits adding
        assert digits.arch_params["hidden_size"] < adding.arch_params["hidden_size"]
        assert digits.run_id != adding.run_id


def test_each_grid_point_is_sized(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, suite_text(archs="  - name: lstm\n    grid: {num_layers: [1, 2]}\n"))
    one = cell(plan, "digits", "lstm[num_layers=1]").arch_params["hidden_size"]
    two = cell(plan, "digits", "lstm[num_layers=2]").arch_params["hidden_size"]
    assert two < one


def test_a_task_budget_overrides_the_suite_budget(tmp_path: Path) -> None:
    tasks = "  - name: digits\n  - name: adding\n    params: {length: 100}\n    budget: {params: 5000}\n"
    plan = plan_of(tmp_path, suite_text(tasks=tasks, archs="  - name: gru\n"))
    digits, adding = cell(plan, "digits", "gru").sizing, cell(plan, "adding", "gru").sizing
    assert digits is not None and digits.budget == BUDGET and digits.params <= BUDGET
    assert adding is not None and adding.budget == 5000 and 4500 <= adding.params <= 5000
    # a budget on one task only sizes that task's cells
    plan = plan_of(tmp_path, suite_text(budget="", tasks=tasks, archs="  - name: gru\n"))
    assert cell(plan, "digits", "gru").sizing is None
    assert cell(plan, "digits", "gru").arch_params["hidden_size"] == 64
    assert cell(plan, "adding", "gru").sizing is not None


def test_architectures_without_a_width_and_skipped_cells_are_not_sized(tmp_path: Path) -> None:
    archs = "  - name: naive\n  - name: transformer\n  - name: gru\n"
    text = suite_text(archs=archs) + "trainer: {tbptt: {k1: 5, k2: 5}}\n"
    plan = plan_of(tmp_path, text)
    naive, transformer = cell(plan, "digits", "naive"), cell(plan, "digits", "transformer")
    assert naive.skip_reason and naive.sizing is None
    assert transformer.skip_reason and transformer.sizing is None  # tbptt needs a stateful encoder
    assert transformer.arch_params["d_model"] == 64  # its default, as without a budget
    assert cell(plan, "digits", "gru").sizing is not None


def test_counts_are_cached_and_leave_the_random_state_alone(tmp_path: Path) -> None:
    import torch

    registry = get_registry()
    task, arch = (
        registry.tasks.get("digits").obj(),
        registry.architectures.get("lstm").obj({"hidden_size": 7}),
    )
    on_cpu = parameter_count(build_network(task, arch))
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    assert count_parameters(task, arch) == count_parameters(task, arch) == on_cpu
    assert torch.equal(torch.rand(1), expected)


# -- errors -----------------------------------------------------------------------------------------


def test_a_budget_no_width_meets_is_a_plan_time_error(tmp_path: Path) -> None:
    message = plan_error(tmp_path, suite_text(budget="budget: {params: 50}", archs="  - name: lstm\n"))
    assert "`budget.params` (line 2)" in message
    assert "`lstm` on task `digits`" in message and "50 parameters" in message
    smallest = count_at(cell(plan_of(tmp_path, suite_text(budget="")), "digits", "lstm"), hidden_size=1)
    assert f"hidden_size=1) has {smallest:,}" in message
    assert (
        f"at least {smallest:,}" in message and "budget: false" in message and "`architectures[0]`" in message
    )


def test_the_cli_exits_2_when_no_width_meets_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(suite_text(budget="budget: {params: 30}"), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "suite.yaml"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output
    assert "no width of `rnn` on task `digits`" in result.stderr


def test_an_explicit_width_with_a_budget_is_an_error_naming_both(tmp_path: Path) -> None:
    for archs, where in (
        ("  - name: lstm\n    params: {hidden_size: 32}\n", "architectures[0].params.hidden_size"),
        ("  - name: lstm\n    grid: {hidden_size: [16, 32]}\n", "architectures[0].grid.hidden_size"),
    ):
        message = plan_error(tmp_path, suite_text(archs=archs))
        assert f"`{where}` (line" in message and "(`budget.params`, line 2)" in message
        assert "Remove `hidden_size`" in message and "budget: false" in message


def test_budget_false_keeps_the_entry_as_written(tmp_path: Path) -> None:
    archs = "  - name: lstm\n    params: {hidden_size: 32}\n    budget: false\n  - name: gru\n"
    plan = plan_of(tmp_path, suite_text(archs=archs))
    lstm = cell(plan, "digits", "lstm")
    assert lstm.sizing is None and lstm.arch_params["hidden_size"] == 32
    assert cell(plan, "digits", "gru").sizing is not None


def test_an_unknown_budget_key_is_located(tmp_path: Path) -> None:
    message = plan_error(tmp_path, suite_text(budget="budget: {parameters: 100}"))
    assert "budget.parameters" in message
    assert "budget.params" in plan_error(tmp_path, suite_text(budget="budget: {params: 0}"))


# -- run ids ----------------------------------------------------------------------------------------


def test_without_a_budget_the_plan_is_unchanged(tmp_path: Path) -> None:
    plain = plan_of(tmp_path, suite_text(budget=""))
    assert all(c.sizing is None for c in plain.cells)
    assert all("sizing" not in c.model_dump(exclude_defaults=True) for c in plain.cells)
    # entries the budget leaves alone keep their run ids
    archs = "".join(f"  - name: {name}\n    budget: false\n" for name in SIZED)
    off = plan_of(tmp_path, suite_text(archs=archs))
    assert [c.run_id for c in off.cells] == [c.run_id for c in plain.cells]


def test_the_chosen_width_is_an_ordinary_parameter_of_the_run(tmp_path: Path) -> None:
    sized = cell(plan_of(tmp_path, suite_text(archs="  - name: gru\n")), "digits", "gru")
    width = sized.arch_params["hidden_size"]
    by_hand = plan_of(
        tmp_path, suite_text(budget="", archs=f"  - name: gru\n    params: {{hidden_size: {width}}}\n")
    )
    assert sized.run_id == cell(by_hand, "digits", "gru").run_id  # same network, same run
    record = RunRecord.skipped(sized)
    again = RunRecord.from_json(record.to_json())
    assert again.spec.sizing == sized.sizing and again.spec.sizing is not None


# -- harness validate -------------------------------------------------------------------------------


def test_validate_prints_the_budget_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    archs = "  - name: rnn\n  - name: lstm\n  - name: gru\n  - name: transformer\n  - name: naive\n"
    (tmp_path / "suite.yaml").write_text(suite_text(archs=archs), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "suite.yaml"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "budget: parameter budget" in out
    plan = plan_of(tmp_path, suite_text(archs=archs))
    rows = [line for line in out.splitlines() if "/ 20,000" in line]
    assert len(rows) == 8  # 2 tasks x 4 sized architectures
    for spec in plan.runnable:
        if spec.sizing is None:
            continue
        row = next(r for r in rows if f" {spec.task_label} " in r and f" {spec.arch_label} " in r)
        value = spec.arch_params[spec.sizing.width]
        assert f"{spec.sizing.width} = {value}" in row and f"{spec.sizing.params:,} / 20,000" in row
        assert f"{spec.sizing.fraction:.1%}" in row
        assert ("too coarse" in row) == (spec.sizing.fraction < 0.9)
    assert "not sized" in out or "skipped" in out  # naive: a forecasting baseline, skipped on these


def test_validate_without_a_budget_prints_no_budget_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(suite_text(budget="", archs="  - name: gru\n"), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "suite.yaml"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "parameter budget" not in result.stdout


# -- the conformance kit ----------------------------------------------------------------------------


class _WidthParams(Params):
    hidden: int = Field(4, gt=0, le=64)
    unused: int = Field(4, gt=0)
    ratio: float = 1.0


def _encoder(hidden: int) -> Any:
    import torch
    from torch import nn

    from harness.nn import InputLayer, masked_mean

    class Encoder(nn.Module):
        def __init__(self, spec: InputSpec) -> None:
            super().__init__()
            self.input = InputLayer(spec, hidden)
            self.output_size = hidden

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
            sequence = torch.tanh(self.input(x))
            return EncoderOutput(sequence=sequence, summary=masked_mean(sequence, lengths))

    return Encoder


class _Declared(Architecture[_WidthParams]):
    name = "declared"
    budget_width: ClassVar[str | Width | None] = "hidden"

    def build_encoder(self, input: InputSpec) -> Any:
        return _encoder(self.params.hidden)(input)


def _width_check(cls: type[Architecture[Any]]) -> Any:
    return next(r for r in check_architecture(cls) if r.check == "budget width")


def test_the_conformance_kit_checks_the_width_declaration() -> None:
    good = _width_check(_Declared)
    assert good.passed and "`hidden` (step 1)" in good.detail

    class Missing(_Declared):
        budget_width = "hidden_size"

    class NotInt(_Declared):
        budget_width = Width("hidden", tied={"ratio": 2.0})

    class Flat(_Declared):
        budget_width = "unused"  # an int parameter that does not change the network

    class Steps(_Declared):
        budget_width = Width("hidden", multiple_of="hiddens")

    cases = {
        Missing: "`hidden_size` is not a parameter of _WidthParams",
        NotInt: "`ratio` must be an int parameter",
        Flat: "the parameter count does not grow with `unused`",
        Steps: "`hiddens` is not a parameter",
    }
    for cls, fragment in cases.items():
        result = _width_check(cls)
        assert not result.passed and fragment in result.detail, (cls.__name__, result.detail)


def test_a_bad_width_declaration_fails_the_plan(tmp_path: Path) -> None:
    class Broken(_Declared):
        name = "broken_width"
        budget_width = "hidden_size"

    builtins, registry = get_registry(), Registry()
    for kind in ("architectures", "tasks", "metrics"):
        for entry in builtins.namespace(kind):
            registry.namespace(kind).add(entry.obj, entry.provenance)
    registry.architectures.add(Broken, Provenance("test_width", "test-plugin", "0"))
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text(archs="  - name: broken_width\n"), encoding="utf-8")
    with pytest.raises(HarnessError) as info:
        build_plan(load_suite(path), registry)
    message = str(info.value)
    assert "`broken_width` (test-plugin)" in message and "`hidden_size` is not a parameter" in message
    assert "budget: false" in message
