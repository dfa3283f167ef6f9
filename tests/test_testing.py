"""The conformance kit (harness/testing.py) and `harness plugins check`.

Every built-in component passes the checks; deliberately broken plugins (written with the
``make_plugin`` fixture) each fail the check that names their fault, and only that one where
the fault cannot show anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

# harness_cli, harness_registry, register_plugin and suite_file are the kit's fixtures, imported to
# be used at the end (a plugin's conftest.py writes pytest_plugins = ["harness.testing"] instead)
from harness.pytest_plugin import harness_cli, harness_registry, register_plugin, suite_file  # noqa: F401
from harness.testing import (
    CheckResult,
    assert_conforms,
    check_architecture,
    check_metric,
    check_plugin,
    check_reporter,
    check_task,
)

if TYPE_CHECKING:
    from click.testing import Result

    from harness.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[1]
MakePlugin = Callable[..., str]
Cli = Callable[..., "Result"]


def _builtins(kind: str) -> dict[str, Any]:
    from harness_builtins import architectures, metrics, reporters, tasks

    found: list[Any] = []
    module = {"architectures": architectures, "tasks": tasks, "metrics": metrics, "reporters": reporters}[
        kind
    ]
    getattr(module, f"register_{kind}")(register=found.append)
    return {obj.name: obj for obj in found}


def _smoke_params() -> dict[str, dict[str, Any]]:
    suite = yaml.safe_load((REPO_ROOT / "suites" / "smoke.yaml").read_text(encoding="utf-8"))
    params = {entry["name"]: dict(entry.get("params") or {}) for entry in suite["tasks"]}
    params["adding"] = {"length": 12, "num_train": 64, "num_val": 32, "num_test": 32}
    return params


ARCHITECTURES = _builtins("architectures")
TASKS = _builtins("tasks")
METRICS = _builtins("metrics")
REPORTERS = _builtins("reporters")
SMOKE = _smoke_params()
ARCH_CASES = [(name, {}) for name in ARCHITECTURES] + [
    ("transformer", {"causal": True}),
    ("cnn_rnn", {"causal": True, "kernel_size": 5}),
    ("birnn", {"cell": "lstm"}),
]


def _failed(results: list[CheckResult]) -> dict[str, str]:
    return {r.check: r.detail for r in results if not r.passed}


# -- the built-ins conform ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), ARCH_CASES, ids=[f"{n}{p or ''}" for n, p in ARCH_CASES])
def test_builtin_architectures_conform(name: str, params: dict[str, Any]) -> None:
    results = check_architecture(ARCHITECTURES[name], params)
    assert_conforms(results)
    checks = {r.check for r in results}
    assert {
        "output shape",
        "padding invariance",
        "determinism",
        "training step",
        "pickling",
        "parameter count",
    } <= checks
    if ARCHITECTURES[name].trainable:
        assert {"decoder output shape", "decoder causality", "decoder padding invariance"} <= checks
    else:
        skipped = [r for r in results if r.check == "training step"]
        assert skipped[0].passed and skipped[0].detail.startswith("skipped: closed-form baseline")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_builtin_tasks_conform(name: str, tmp_path: Path) -> None:
    results = check_task(TASKS[name], SMOKE.get(name), cache_dir=tmp_path)
    assert_conforms(results)
    if not any(r.detail.startswith("skipped: unavailable") for r in results):
        assert {"data shapes", "splits disjoint", "deterministic", "metrics on a dummy prediction"} <= {
            r.check for r in results
        }


def test_builtin_metrics_and_reporters_conform() -> None:
    for spec in METRICS.values():
        results = check_metric(spec)
        assert_conforms(results)
        assert len(results) == 1 + len(spec.output_kinds)
    for reporter in REPORTERS.values():
        assert_conforms(check_reporter(reporter))


def test_example_plugin_conforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tests" / "example_plugin" / "src"))
    from harness_example_plugin import MeanPool

    assert_conforms(check_architecture(MeanPool))
    assert_conforms(check_architecture(MeanPool, {"hidden_size": 3}))


# -- broken plugins fail for the right reason ---------------------------------------------------

ENCODER = """
import random
import torch
from torch import nn
from harness import Architecture, EncoderOutput, hookimpl
from harness.nn import InputLayer, masked_mean, zero_padding

class Encoder(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.input = InputLayer(spec, 8)
        self.output_size = 8
        {init}

    def forward(self, x, lengths):
        sequence = zero_padding(torch.tanh(self.input(x)), lengths)
        summary = masked_mean(sequence, lengths)
        {forward}
        return EncoderOutput(sequence, summary)

class Broken(Architecture):
    name = "broken"
    def build_encoder(self, input):
        return Encoder(input)

@hookimpl
def register_architectures(register):
    register(Broken)
"""

BROKEN_ARCHITECTURES = {
    # (init line, forward line, the checks that fail, a phrase of the failure's detail)
    "wrong_shape": (
        "pass",
        "summary = torch.cat([summary, summary[:, :1]], dim=1)",
        {"output shape"},
        "`summary` has shape (3, 9), expected (3, 8)",
    ),
    "padding_leak": (
        "pass",
        "summary = torch.tanh(self.input(x)).mean(dim=1)",  # pools over padded steps too
        {"padding invariance"},
        "changes its summary; padding leaks in",
    ),
    "unseeded_build": (
        "nn.init.constant_(self.input.layer.weight, random.SystemRandom().random())",
        "pass",
        {"determinism"},
        "two encoders built after seeding 3 give different",
    ),
    "random_forward": (
        "pass",
        "summary = summary + torch.rand(summary.shape)",
        {"determinism", "padding invariance", "pickling"},
        "the same encoder in eval mode",
    ),
    "lambda": ("self.act = lambda t: t", "pass", {"pickling"}, "cannot be pickled"),
    "generator": ("self.counter = (i for i in range(3))", "pass", {"pickling"}, "generator"),
}


@pytest.mark.parametrize("fault", list(BROKEN_ARCHITECTURES))
def test_broken_architectures_fail_the_right_check(fault: str, make_plugin: MakePlugin) -> None:
    init, forward, expected, phrase = BROKEN_ARCHITECTURES[fault]
    module = make_plugin(f"broken_{fault}", ENCODER.replace("{init}", init).replace("{forward}", forward))
    results = check_plugin(module)
    failed = _failed(results)
    assert set(failed) == expected, results
    check = "determinism" if "determinism" in expected else next(iter(expected))
    assert phrase in failed[check]
    assert all(r.component == "architecture broken" for r in results)
    with pytest.raises(AssertionError, match=f"{len(expected)} of {len(results)} conformance checks failed"):
        assert_conforms(results)


OVERLAPPING_TASK = '''
import numpy as np
from harness import InputSpec, Task, TaskInfo, hookimpl

class Overlapping(Task):
    """Validation examples are copied from the training split (a leak)."""
    name = "overlapping"

    def info(self):
        return TaskInfo(InputSpec("continuous", 3, max_length=6), "classification", 2, "cross-entropy",
                        ("accuracy",), "accuracy", "max")

    def arrays(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(96, 6, 3)).astype(np.float32)
        y = rng.integers(0, 2, size=96)
        return {"train_x": x[:64], "train_y": y[:64], "val_x": x[{val}], "val_y": y[{val}],
                "test_x": x[80:], "test_y": y[80:]}

    def datamodule(self, config):
        from harness.data import arrays_datamodule
        return arrays_datamodule(self.arrays, config)

@hookimpl
def register_tasks(register):
    register(Overlapping)
'''


def test_overlapping_splits_fail(make_plugin: MakePlugin) -> None:
    module = make_plugin("overlapping_task", OVERLAPPING_TASK.replace("{val}", "48:80"))
    failed = _failed(check_plugin(module))
    assert set(failed) == {"splits disjoint"}
    assert "16 example(s) of the val split also appear in train" in failed["splits disjoint"]


def test_disjoint_version_of_the_task_passes(make_plugin: MakePlugin) -> None:
    module = make_plugin("disjoint_task", OVERLAPPING_TASK.replace("{val}", "64:80"))
    results = check_plugin(module)
    assert_conforms(results)
    assert {r.component for r in results} == {"task overlapping"}


def test_wrong_task_shapes_fail(make_plugin: MakePlugin) -> None:
    source = OVERLAPPING_TASK.replace("{val}", "64:80").replace(
        'InputSpec("continuous", 3,', 'InputSpec("continuous", 4,'
    )
    failed = _failed(check_plugin(make_plugin("wrong_size_task", source)))
    assert "data shapes" in failed and "continuous input of size 4" in failed["data shapes"]


def test_plugin_that_fails_to_load_is_one_failed_result(make_plugin: MakePlugin) -> None:
    module = make_plugin("crashing_plugin", "raise RuntimeError('broken at import')\n")
    results = check_plugin(module)
    assert results == [CheckResult(f"plugin {module}", "loads", False, "RuntimeError: broken at import")]


def test_unknown_plugin_lists_the_installed_ones(clean_plugins: None) -> None:
    from harness.errors import HarnessError

    with pytest.raises(
        HarnessError, match=r"No installed plugin matches `harnes_builtins`.*Did you mean"
    ) as info:
        check_plugin("harnes_builtins")
    assert "builtin_architectures" in str(info.value) and info.value.exit_code == 2


def test_check_plugin_matches_modules_and_kinds(clean_plugins: None) -> None:
    results = check_plugin("harness_builtins.reporters")
    assert {r.component for r in results} == {"reporter html", "reporter markdown", "reporter csv"}
    assert all(r.passed for r in results)
    assert {r.component for r in check_plugin("harness", kinds=["reporters"])} == {
        "reporter html",
        "reporter markdown",
        "reporter csv",
    }


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_check_builtins_passes(builtins_only: None, cli: Cli) -> None:
    result = cli(
        "plugins", "check", "harness", "--kind", "architectures", "--kind", "metrics", "--kind", "reporters"
    )
    assert result.exit_code == 0, result.output
    assert "architecture transformer" in result.output and "metric bleu" in result.output
    assert "FAIL" not in result.output and " 0 failed." in result.output


def test_cli_check_broken_plugin_exits_1(make_plugin: MakePlugin, cli: Cli) -> None:
    init, forward, _, _ = BROKEN_ARCHITECTURES["padding_leak"]
    module = make_plugin("broken_cli", ENCODER.replace("{init}", init).replace("{forward}", forward))
    result = cli("plugins", "check", module)
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if "padding invariance" in line)
    assert "FAIL" in row and "architecture broken" in row
    assert "1 failed." in result.output


def test_cli_check_unknown_plugin_exits_2(clean_plugins: None, cli: Cli) -> None:
    result = cli("plugins", "check", "no-such-plugin")
    assert result.exit_code == 2, result.output
    assert (
        "No installed plugin matches `no-such-plugin`" in result.output and "builtin_tasks" in result.output
    )
    assert "Traceback" not in result.output


def test_cli_plugins_still_lists(clean_plugins: None, cli: Cli) -> None:
    result = cli("plugins")
    assert result.exit_code == 0, result.output
    assert "builtin_architectures" in result.output


# -- the pytest fixtures ------------------------------------------------------------------------


def test_register_plugin_fixture(
    register_plugin: Callable[..., Registry],  # noqa: F811 - the kit's fixtures, imported above
    harness_registry: Registry,  # noqa: F811
) -> None:
    import types

    import harness

    class Plain(harness.Reporter):
        name = "plain_test_reporter"

        def render(self, results: Any) -> str:
            return f"{len(results)} results\n"

    @harness.hookimpl
    def register_reporters(register: Callable[[Any], None]) -> None:
        register(Plain)

    assert "plain_test_reporter" not in harness_registry.reporters
    registry = register_plugin(types.SimpleNamespace(register_reporters=register_reporters))
    assert registry.reporters.get("plain_test_reporter").obj is Plain
    assert_conforms(check_reporter(Plain))


def test_suite_file_and_harness_cli_fixtures(
    suite_file: Callable[..., Path],  # noqa: F811 - the kit's fixtures, imported above
    harness_cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = suite_file(
        {
            "name": "fixture",
            "seeds": [0],
            "tasks": [{"name": "digits"}],
            "architectures": [{"name": "gru"}],
            "trainer": {"max_epochs": 1},
        }
    )
    assert path.parent == tmp_path
    result = harness_cli("validate", path)
    assert result.exit_code == 0, result.output
    assert "Suite is valid" in result.output
    assert Path.cwd() == tmp_path


def test_inputs_an_architecture_refuses_are_not_built(make_plugin: MakePlugin) -> None:
    source = (
        ENCODER.replace("{init}", "assert spec.kind == 'continuous'")
        .replace("{forward}", "pass")
        .replace(
            """    name = "broken"
""",
            """    name = "broken"
    def incompatibility(self, info):
        return "continuous inputs only" if info.input.kind == "tokens" else super().incompatibility(info)
""",
        )
    )
    results = check_plugin(make_plugin("continuous_only", source))
    assert_conforms(results)
    build = next(r for r in results if r.check == "build")
    assert build.detail.startswith("2 input kinds") and "continuous inputs only" in build.detail
