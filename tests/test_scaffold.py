"""`harness plugin new`: the generated projects, the errors, and one newcomer's path end to end.

The end-to-end test (slow, Ray) generates an architecture plugin, pip-installs it into this
interpreter's environment (uninstalled at teardown), runs the project's own tests, runs
`harness plugins check` on it, and runs its example suite on Ray with the results in MLflow.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.scaffold import KINDS, create_plugin, names, render_files
from tests.helpers import mlflow_runs

HOOK = {
    "architecture": "register_architectures",
    "task": "register_tasks",
    "metric": "register_metrics",
    "reporter": "register_reporters",
}
KIT = {
    "architecture": "check_architecture",
    "task": "check_task",
    "metric": "check_metric",
    "reporter": "check_reporter",
}


def _forget(module: str) -> None:
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        del sys.modules[name]


@pytest.mark.parametrize("kind", KINDS)
def test_new_writes_an_installable_project_for_each_kind(
    kind: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    result = cli("plugin", "new", "my-thing", "--kind", kind, "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    root = tmp_path / "harness-my-thing"
    module = "harness_my_thing"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    expected = {
        ".gitignore",
        "README.md",
        "pyproject.toml",
        f"{module}/__init__.py",
        "suites/example.yaml",
        "tests/conftest.py",
        "tests/test_conformance.py",
    }
    assert expected <= set(files), files
    assert (f"{module}/_network.py" in files) == (kind == "architecture")
    # the CLI says where it wrote and what to do next
    assert f"to {root}" in result.output
    for step in (
        "pip install -e .",
        "pytest",
        "harness plugins check harness-my-thing",
        "harness run suites/example.yaml",
    ):
        assert step in result.output

    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "harness-my-thing"
    assert project["project"]["entry-points"]["harness"] == {"my-thing": module}
    assert any(dep.startswith("harness") for dep in project["project"]["dependencies"])
    assert project["tool"]["setuptools"]["packages"] == [module]

    code = (root / module / "__init__.py").read_text()
    assert "@hookimpl" in code and f"def {HOOK[kind]}(register" in code
    assert '"my_thing"' in code  # the registered name: snake case
    # the hook API range it was written for (reporters read typed RunRecords, API 1.1)
    assert (f'HARNESS_API = ">={"1.1" if kind == "reporter" else "1"},<2"') in code
    tests = (root / "tests" / "test_conformance.py").read_text()
    assert f"from harness.testing import assert_conforms, {KIT[kind]}" in tests
    assert 'pytest_plugins = ["harness.testing"]' in (root / "tests" / "conftest.py").read_text()
    for path in root.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), f"unfilled placeholder in {path}"
            if path.suffix == ".py":
                compile(path.read_text(), str(path), "exec")

    suite = yaml.safe_load((root / "suites" / "example.yaml").read_text())
    assert "my_thing" in yaml.safe_dump(suite)
    readme = (root / "README.md").read_text()
    assert "pip install -e ." in readme and "harness plugins check harness-my-thing" in readme
    assert (root / "suites" / "example.yaml").read_text().strip() in readme  # the suite snippet


@pytest.mark.parametrize("kind", KINDS)
def test_example_suite_plans_with_the_generated_plugin(
    kind: str, tmp_path: Path, clean_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated module loads as a plugin and its example suite plans runnable cells."""
    from harness.matrix import build_plan
    from harness.plugins import clear_cache, get_registry
    from harness.suite import load_suite

    root = create_plugin(f"plan_{kind}", kind, tmp_path)
    module = f"harness_plan_{kind}"
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("HARNESS_PLUGINS", module)
    _forget(module)
    clear_cache()
    try:
        registry = get_registry()
        info = next(p for p in registry.plugins if p.name == module)
        assert info.error is None, info.error
        assert info.registered == {f"{kind}s": [f"plan_{kind}"]}
        plan = build_plan(load_suite(root / "suites" / "example.yaml"), registry)
        assert plan.runnable and not plan.skipped
        if kind in ("architecture", "task"):
            assert any(f"plan_{kind}" in (c.arch_label, c.task_label) for c in plan.runnable)
        # importing the plugin did not import torch (the parent process may have; check a fresh one)
        code = f"import sys, {module}; assert 'torch' not in sys.modules"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    finally:
        _forget(module)


def _registered(kind: str) -> Any:
    """What the generated ``harness_work_<kind>`` module registers through its hook."""
    found: list[Any] = []
    getattr(importlib.import_module(f"harness_work_{kind}"), HOOK[kind])(found.append)
    assert len(found) == 1
    return found[0]


def test_generated_examples_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples really work (without the conformance kit): padding, data shapes, scores, text."""
    import torch

    from harness import InputSpec, TaskInfo
    from harness.interfaces import DataConfig

    roots = {kind: create_plugin(f"work_{kind}", kind, tmp_path) for kind in KINDS}
    for root in roots.values():
        monkeypatch.syspath_prepend(str(root))
    try:
        arch = _registered("architecture")
        for spec in (
            InputSpec("continuous", 3, variable_length=True),
            InputSpec("tokens", 11, variable_length=True),
        ):
            encoder = arch({"num_layers": 3}).build_encoder(spec).eval()
            torch.manual_seed(0)
            x = torch.randn(3, 12, 3) if spec.kind == "continuous" else torch.randint(1, 11, (3, 12))
            lengths = torch.tensor([12, 5, 1])
            noisy = x.clone()
            for i, n in enumerate(lengths.tolist()):
                noisy[i, n:] = (noisy[i, n:] * 7 + 3) if spec.kind == "continuous" else 4
            out, out2 = encoder(x, lengths), encoder(noisy, lengths)
            assert out.sequence.shape == (3, 12, encoder.output_size) and out.summary.shape == (
                3,
                encoder.output_size,
            )
            assert torch.equal(out.summary, out2.summary)
            for i, n in enumerate(lengths.tolist()):
                assert torch.equal(out.sequence[i, :n], out2.sequence[i, :n])

        task = _registered("task")({"num_train": 40, "num_val": 20, "num_test": 20})
        info = task.info()
        data = task.datamodule(DataConfig(batch_size=8, seed=0, cache_dir=tmp_path / "cache"))
        data.setup("fit")
        batch = next(iter(data.train_dataloader()))
        assert batch["x"].shape[0] == 8 and batch["x"].shape[2] == info.input.size
        assert (
            int(batch["lengths"].max()) <= info.input.max_length and int(batch["y"].max()) < info.output_size
        )

        spec = _registered("metric")
        metric = spec.factory(
            TaskInfo(InputSpec("continuous", 1), "classification", 3, "ce", ("x",), "x", "max")
        )
        target = torch.tensor([0, 1, 2, 2])
        metric.update(torch.nn.functional.one_hot(target, 3).float(), target)
        assert float(metric.compute()) == pytest.approx(1.0)

        from harness import RunRecord

        reporter = _registered("reporter")()
        record = RunRecord.from_json(
            {
                "run_id": "r",
                "task": "digits",
                "architecture": "gru",
                "seed": 0,
                "status": "finished",
                "primary_metric": "accuracy",
                "metrics": {"test_accuracy": 0.875},
            }
        )
        text = reporter.write([record], tmp_path / "reports").read_text()
        assert "digits" in text and "0.875" in text and "1 finished" in text
    finally:
        for kind in KINDS:
            _forget(f"harness_work_{kind}")


@pytest.mark.parametrize("bad", ["My_Conv", "1conv", "my conv", "conv!", "", "my__conv", "conv-", "ünï"])
def test_bad_names_exit_2_with_the_rule(bad: str, tmp_path: Path, cli: Callable[..., Any]) -> None:
    result = cli("plugin", "new", bad, "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "is not valid: use lowercase letters, digits" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_exits_2_and_is_left_alone(tmp_path: Path, cli: Callable[..., Any]) -> None:
    existing = tmp_path / "harness-mine"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = cli("plugin", "new", "mine", "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert f"{existing} already exists" in result.output and "--dir" in result.output
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_a_name_already_registered_exits_2(
    tmp_path: Path, cli: Callable[..., Any], builtins_only: None
) -> None:
    result = cli("plugin", "new", "gru", "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "An architecture named `gru` is already registered by builtin_architectures" in result.output
    assert list(tmp_path.iterdir()) == []
    # the same name is free as another kind
    assert cli("plugin", "new", "gru", "--kind", "metric", "--dir", str(tmp_path)).exit_code == 0


def test_names() -> None:
    plugin = names("harness-fast-conv")  # a `harness-` prefix is not doubled
    assert (plugin.name, plugin.component, plugin.module, plugin.dist, plugin.cls) == (
        "fast-conv",
        "fast_conv",
        "harness_fast_conv",
        "harness-fast-conv",
        "FastConv",
    )
    assert set(render_files("x2", "task")) >= {"harness_x2/__init__.py", "pyproject.toml"}


# --- typed: the generated code names its params model and type-checks ---------------------------

BASE = {
    "architecture": "Architecture[MyThingParams]",
    "task": "Task[MyThingParams]",
    "reporter": "Reporter[Params]",
}


@pytest.mark.parametrize("kind", KINDS)
def test_generated_code_uses_the_typed_api(kind: str) -> None:
    code = render_files("my-thing", kind)["harness_my_thing/__init__.py"]
    assert "p: Any" not in code and "cast(" not in code
    assert "Callable[[Any], None]" not in code  # `register` is typed
    if kind in BASE:
        assert f"({BASE[kind]}):" in code
        assert "    Params = " not in code  # the type argument sets Params


@pytest.mark.slow
def test_generated_projects_pass_mypy_strict(tmp_path: Path) -> None:
    from tests.test_public_api import _mypy

    modules = [create_plugin(f"typed-{kind}", kind, tmp_path) / f"harness_typed_{kind}" for kind in KINDS]
    assert _mypy(tmp_path, "--strict", *(str(m.relative_to(tmp_path)) for m in modules)) == set()


# --- end to end: generate, install, test, check, run on Ray -------------------------------------

E2E = "scaffold_e2e"
E2E_DIST = "harness-scaffold-e2e"


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], check=False, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[Path]:
    """Generate the `scaffold_e2e` architecture plugin and pip-install it (editable); uninstall at
    teardown."""
    from harness.plugins import clear_cache

    root = create_plugin(E2E, "architecture", tmp_path / "src")
    _pip("install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(root))
    clear_cache()
    try:
        yield root
    finally:
        _pip("uninstall", "-y", E2E_DIST)
        _forget(f"harness_{E2E}")
        clear_cache()


def _has_plugins_check() -> bool:
    import click

    from harness.cli import main

    group = main.commands.get("plugins")
    return isinstance(group, click.Group) and "check" in group.commands


@pytest.mark.slow
@pytest.mark.ray
def test_generated_plugin_installs_passes_its_tests_and_checks_and_runs_on_ray(
    installed_plugin: Path, tmp_path: Path
) -> None:
    root = installed_plugin
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS", "MLFLOW_TRACKING_URI", "RAY_ADDRESS")
    }
    env.update(HARNESS_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="250")
    missing: list[str] = []

    def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # 1. the project's own tests (they use the conformance kit)
    if importlib.util.find_spec("harness.testing") is None:
        missing.append(
            "the generated tests were not run: module `harness.testing` (the conformance kit) is missing"
        )
    else:
        done = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert " passed" in done.stdout and "failed" not in done.stdout

    # 2. harness plugins check on the installed distribution
    if not _has_plugins_check():
        missing.append("`harness plugins check` was not run: the command is missing")
    else:
        done = run("-m", "harness.cli", "plugins", "check", E2E_DIST)
        assert done.returncode == 0, done.stdout + done.stderr
        assert E2E in done.stdout

    # 3. its example suite on Ray (tiny settings), recorded in MLflow
    suite = yaml.safe_load((root / "suites" / "example.yaml").read_text())
    suite["trainer"]["max_epochs"] = 1
    suite["architectures"] = [a for a in suite["architectures"] if a["name"] == E2E]  # just the plugin's
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    done = run("-m", "harness.cli", "run", str(path), timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 finished, 0 failed" in done.stdout and "executor `ray`" in done.stdout
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", suite["name"])
    assert len(parents) == 1 and len(children) == 1
    child = children[0]
    assert child.info.status == "FINISHED"
    assert child.data.tags["harness.architecture"] == E2E and child.data.tags["harness.task"] == "digits"
    assert 0.0 <= child.data.metrics["test/accuracy"] <= 1.0
    assert child.data.params["architecture.hidden_size"] == "32"

    if missing:
        pytest.skip("; ".join(missing) + " (the other steps passed)")
