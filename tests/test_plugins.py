"""The plugin manager (harness/plugins.py): broken plugins, env switches, an installed plugin.

The first part loads throw-away modules through ``HARNESS_PLUGINS`` (see ``make_plugin`` in
conftest.py). The last part pip-installs the example third-party distribution under
``tests/example_plugin`` into this interpreter's environment for the duration of the module,
and drives it through the CLI exactly as a user would, down to a tiny training run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import harness
from harness.errors import PluginError
from harness.plugins import clear_cache, get_registry
from harness.registry import PluginInfo, Provenance, Registry
from harness.tracking.results import ResultsFile
from tests.helpers import make_record

if TYPE_CHECKING:
    from click.testing import Result

EXAMPLE_SOURCE = Path(__file__).resolve().parent / "example_plugin"
EXAMPLE_DIST = "harness-example-plugin"
EXAMPLE_MODULE = "harness_example_plugin"
EXAMPLE_ENTRY_POINT = "example"
BUILTIN_ARCHITECTURES = {"rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"}

MakePlugin = Callable[..., str]
Cli = Callable[..., "Result"]


def _plugin(registry: Registry, name: str) -> PluginInfo:
    matches = [info for info in registry.plugins if info.name == name]
    assert matches, f"plugin {name!r} not in {[p.name for p in registry.plugins]}"
    return matches[0]


def _assert_builtins_work(registry: Registry) -> None:
    assert BUILTIN_ARCHITECTURES <= {entry.name for entry in registry.architectures}
    assert registry.architectures.get("lstm").provenance.plugin == "builtin_architectures"
    assert {"digits", "adding"} <= {entry.name for entry in registry.tasks}
    assert "accuracy" in registry.metrics
    assert len(registry.reporters) >= 2
    for builtin in ("builtin_architectures", "builtin_tasks", "builtin_metrics", "builtin_reporters"):
        assert _plugin(registry, builtin).error is None


def _assert_clean_exit(result: Result, code: int) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code:
        assert isinstance(result.exception, SystemExit), result.exception


ARCH_SOURCE = """
    from harness import Architecture, hookimpl

    class {cls}(Architecture):
        name = "{name}"
        description = "registered by a test module"

    @hookimpl
    def register_architectures(register):
        register({cls})
"""


# --- broken plugins -------------------------------------------------------------------------


def test_import_error_is_a_warning_and_builtins_keep_working(make_plugin: MakePlugin, cli: Cli) -> None:
    module = make_plugin("needs_missing_dep", 'raise ImportError("needs the frobnicate package")')

    registry = get_registry()

    info = _plugin(registry, module)
    assert info.error is not None and "ImportError" in info.error and "frobnicate" in info.error
    assert info.registered == {}
    assert any(module in warning and "frobnicate" in warning for warning in registry.warnings)
    _assert_builtins_work(registry)

    result = cli("plugins")
    _assert_clean_exit(result, 0)
    row = next(line for line in result.output.splitlines() if module in line and "│" in line)
    assert "failed" in row
    assert "builtin_architectures" in result.output
    assert "warning:" in result.output and "frobnicate" in result.output


def test_missing_module_is_a_warning(make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("fine_plugin", ARCH_SOURCE.format(cls="Fine", name="fine_arch"))
    monkeypatch.setenv("HARNESS_PLUGINS", "fine_plugin,no_such_module_anywhere")
    clear_cache()

    registry = get_registry()

    error = _plugin(registry, "no_such_module_anywhere").error
    assert error is not None and "ModuleNotFoundError" in error
    assert registry.architectures.get("fine_arch").provenance.plugin == "fine_plugin"
    _assert_builtins_work(registry)


def test_raising_register_hook_is_a_warning_and_others_are_fine(make_plugin: MakePlugin, cli: Cli) -> None:
    make_plugin("good_plugin", ARCH_SOURCE.format(cls="Good", name="good_arch"))
    bad = make_plugin(
        "raising_plugin",
        """
        from harness import hookimpl

        @hookimpl
        def register_architectures(register):
            raise RuntimeError("model zoo unreachable")
        """,
    )

    registry = get_registry()

    error = _plugin(registry, bad).error
    assert error is not None
    assert "register_architectures" in error and "RuntimeError" in error and "model zoo unreachable" in error
    assert any(bad in warning for warning in registry.warnings)
    assert "good_arch" in registry.architectures
    assert _plugin(registry, "good_plugin").error is None
    _assert_builtins_work(registry)
    _assert_clean_exit(cli("list", "architectures"), 0)


def test_failed_plugin_registers_nothing(make_plugin: MakePlugin) -> None:
    """A plugin whose second hook raises keeps none of what its first hook registered."""
    module = make_plugin(
        "half_broken_plugin",
        """
        from harness import Architecture, hookimpl

        class Half(Architecture):
            name = "half_arch"

        @hookimpl
        def register_architectures(register):
            register(Half)

        @hookimpl
        def register_tasks(register):
            raise ValueError("task data moved")
        """,
    )

    registry = get_registry()

    info = _plugin(registry, module)
    assert info.error is not None and "register_tasks" in info.error
    assert "half_arch" not in registry.architectures
    assert info.registered == {}
    _assert_builtins_work(registry)


def test_misspelled_hook_is_a_warning_naming_the_problem(make_plugin: MakePlugin, cli: Cli) -> None:
    module = make_plugin(
        "typo_plugin",
        """
        from harness import Architecture, hookimpl

        class Typo(Architecture):
            name = "typo_arch"

        @hookimpl
        def register_architecture(register):  # the hook is register_architectures
            register(Typo)
        """,
    )

    registry = get_registry()

    error = _plugin(registry, module).error
    assert error is not None
    assert "register_architecture`" in error  # the misspelled name, quoted as written
    assert "not a harness hook" in error
    assert "Did you mean `register_architectures`" in error
    assert "typo_arch" not in registry.architectures
    _assert_builtins_work(registry)

    result = cli("plugins")
    _assert_clean_exit(result, 0)
    assert "not a harness hook" in result.output


def test_wrong_hook_arguments_are_a_warning(make_plugin: MakePlugin) -> None:
    module = make_plugin(
        "bad_signature_plugin",
        """
        from harness import hookimpl

        @hookimpl
        def register_tasks(registrar):  # the argument must be called `register`
            pass
        """,
    )

    registry = get_registry()

    error = _plugin(registry, module).error
    assert error is not None and "registrar" in error and "register_tasks" in error
    _assert_builtins_work(registry)


def test_duplicate_of_a_builtin_names_both_plugins(make_plugin: MakePlugin, cli: Cli) -> None:
    module = make_plugin("my_lstm_plugin", ARCH_SOURCE.format(cls="MyLSTM", name="lstm"))

    registry = get_registry()  # a conflict breaks nothing by itself

    with pytest.raises(PluginError) as caught:
        registry.architectures.get("lstm", where="suite.yaml:5 (architectures[0].name)")
    message = str(caught.value)
    assert "`lstm` at suite.yaml:5 (architectures[0].name)" in message
    assert f"builtin_architectures (harness {harness.__version__})" in message
    assert f"{module} (HARNESS_PLUGINS -)" in message
    assert f"HARNESS_DISABLE_PLUGINS={module}" in message  # ... and how to fix it
    (warning,) = registry.warnings
    assert "`lstm`" in warning and "builtin_architectures" in warning and module in warning
    assert f"HARNESS_DISABLE_PLUGINS={module}" in warning

    for args in (("list", "architectures"), ("plugins",)):
        result = cli(*args)
        _assert_clean_exit(result, 0)
        assert "warning:" in result.output and f"HARNESS_DISABLE_PLUGINS={module}" in result.output
        assert "builtin_architectures" in result.output and module in result.output


def test_duplicate_between_two_extra_modules_names_both(make_plugin: MakePlugin) -> None:
    first = make_plugin("pool_plugin_a", ARCH_SOURCE.format(cls="PoolA", name="pool"))
    second = make_plugin("pool_plugin_b", ARCH_SOURCE.format(cls="PoolB", name="pool"))

    registry = get_registry()

    assert registry.architectures.entries["pool"].provenance.plugin == first  # the first loaded keeps it
    assert _plugin(registry, second).status == "conflict" and _plugin(registry, second).registered == {}
    with pytest.raises(PluginError) as caught:
        registry.architectures.get("pool")
    assert first in str(caught.value) and second in str(caught.value)
    with pytest.raises(PluginError, match="`pool`"):
        get_registry(strict=True)  # for callers that want no ambiguity at all


def test_disable_skips_an_extra_module(make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    module = make_plugin("dup_lstm_plugin", ARCH_SOURCE.format(cls="DupLSTM", name="lstm"))
    assert [c.refused.plugin for c in get_registry().conflicts] == [module]

    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", module)

    registry = get_registry()  # a new key: no clear_cache() needed
    assert module not in {info.name for info in registry.plugins}
    assert registry.architectures.get("lstm").provenance.plugin == "builtin_architectures"
    assert registry.warnings == [] or all(module not in w for w in registry.warnings)


def test_disable_skips_a_builtin(clean_plugins: None, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "builtin_reporters, builtin_metrics")

    registry = get_registry()

    names = {info.name for info in registry.plugins}
    assert "builtin_reporters" not in names and "builtin_metrics" not in names
    assert len(registry.reporters) == 0 and len(registry.metrics) == 0
    assert "lstm" in registry.architectures
    result = cli("plugins")
    _assert_clean_exit(result, 0)
    assert "builtin_reporters" not in result.output and "builtin_architectures" in result.output


def test_registry_is_cached_per_env_switches(
    make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_plugin("cached_plugin", ARCH_SOURCE.format(cls="Cached", name="cached_arch"))

    first = get_registry()
    assert get_registry() is first
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "cached_plugin")
    assert "cached_arch" not in get_registry().architectures
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS")
    assert get_registry() is first
    clear_cache()
    assert get_registry() is not first


# --- an installed third-party distribution ---------------------------------------------------


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in a fresh process, without the plugin env switches of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS")}
    env["COLUMNS"] = "250"
    command = [sys.executable, *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _forget_example_modules() -> None:
    for name in [m for m in sys.modules if m == EXAMPLE_MODULE or m.startswith(f"{EXAMPLE_MODULE}.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pip-install tests/example_plugin into this interpreter's environment for this module.

    The package is copied to a temporary folder first, so the build (``build/``,
    ``*.egg-info``) happens there and not in the repository. Uninstalled at teardown.
    Yields the distribution name.
    """
    source = tmp_path_factory.mktemp("example_plugin") / "harness-example-plugin"
    shutil.copytree(
        EXAMPLE_SOURCE, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir", str(source))
    _forget_example_modules()
    clear_cache()
    try:
        yield EXAMPLE_DIST
    finally:
        _pip("uninstall", "-y", EXAMPLE_DIST)
        _forget_example_modules()
        clear_cache()


def test_installed_plugin_is_loaded_with_provenance(
    example_plugin: str, clean_plugins: None, cli: Cli
) -> None:
    registry = get_registry()

    info = _plugin(registry, EXAMPLE_ENTRY_POINT)
    assert info.error is None
    assert (info.distribution, info.version) == (example_plugin, "0.1.0")
    assert info.registered == {"architectures": ["mean_pool"]}
    provenance = registry.architectures.get("mean_pool").provenance
    assert provenance == Provenance("example", example_plugin, "0.1.0")
    names = [p.name for p in registry.plugins]
    assert names.index("builtin_tasks") < names.index(EXAMPLE_ENTRY_POINT)  # built-ins load first

    result = cli("plugins")
    _assert_clean_exit(result, 0)
    row = next(line for line in result.output.splitlines() if line.startswith("│ example "))
    assert example_plugin in row and "0.1.0" in row and "mean_pool" in row

    result = cli("list", "architectures")
    _assert_clean_exit(result, 0)
    row = next(line for line in result.output.splitlines() if line.startswith("│ mean_pool "))
    assert f"example ({example_plugin} 0.1.0)" in row
    assert "hidden_size: int = 32" in result.output


@pytest.mark.parametrize("switch", ["example", "harness-example-plugin", "Harness_Example_Plugin", "*"])
def test_installed_plugin_can_be_disabled(
    example_plugin: str, clean_plugins: None, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", switch)

    registry = get_registry()

    assert EXAMPLE_ENTRY_POINT not in {info.name for info in registry.plugins}
    assert "mean_pool" not in registry.architectures
    _assert_builtins_work(registry)


def test_installed_plugin_duplicate_names_both(
    example_plugin: str, make_plugin: MakePlugin, cli: Cli
) -> None:
    module = make_plugin("other_mean_pool", ARCH_SOURCE.format(cls="OtherMeanPool", name="mean_pool"))

    with pytest.raises(PluginError) as caught:
        get_registry().architectures.get("mean_pool")

    message = str(caught.value)
    assert "`mean_pool`" in message
    assert f"example ({example_plugin} 0.1.0)" in message and module in message
    result = cli("list", "architectures")
    _assert_clean_exit(result, 0)
    assert f"example ({example_plugin} 0.1.0)" in result.output and module in result.output
    assert f"contested by {module}" in result.output


def test_installed_plugin_imports_no_torch(example_plugin: str, tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import json, sys
        import {EXAMPLE_MODULE}
        from harness.plugins import get_registry
        registry = get_registry()
        registry.architectures.get("mean_pool").obj({{"hidden_size": 8}})  # params validate torch-free
        print(json.dumps(sorted(m for m in ("torch", "pytorch_lightning", "lightning") if m in sys.modules)))
        """
    )
    done = _python(["-c", code], tmp_path)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_installed_plugin_in_a_fresh_process(example_plugin: str, tmp_path: Path) -> None:
    """The real console script, in a new process, finds the plugin through its entry point."""
    done = _python(["-m", "harness.cli", "plugins"], tmp_path)
    row = next(line for line in done.stdout.splitlines() if line.startswith("│ example "))
    assert example_plugin in row and "mean_pool" in row


def test_mean_pool_is_padding_invariant(example_plugin: str, clean_plugins: None) -> None:
    import torch

    from harness import InputSpec

    architecture = get_registry().architectures.get("mean_pool").obj({"hidden_size": 6})
    for spec in (InputSpec("continuous", 3), InputSpec("tokens", 20)):
        torch.manual_seed(0)
        encoder = architecture.build_encoder(spec)
        assert encoder.output_size == 6
        lengths = torch.tensor([5, 2, 7])
        if spec.kind == "tokens":
            x = torch.randint(1, 20, (3, 7))
            padded = torch.cat([x, torch.randint(1, 20, (3, 4))], dim=1)
        else:
            x = torch.randn(3, 7, 3)
            padded = torch.cat([x, torch.randn(3, 4, 3) * 100], dim=1)
        for row, length in enumerate(lengths.tolist()):  # garbage beyond each length, too
            if spec.kind == "tokens":
                x[row, length:] = 7
            else:
                x[row, length:] = -50.0
        short, long = encoder(x, lengths), encoder(padded, lengths)
        assert short.summary.shape == (3, 6) and long.sequence.shape == (3, 11, 6)
        torch.testing.assert_close(short.summary, long.summary)
        for row, length in enumerate(lengths.tolist()):
            torch.testing.assert_close(short.sequence[row, :length], long.sequence[row, :length])
            alone = encoder(x[row : row + 1, :length], lengths[row : row + 1])
            torch.testing.assert_close(alone.summary[0], short.summary[row])


SUITE = """
name: example-plugin-e2e
description: the third-party mean_pool architecture on digits, end to end
seeds: [0]
tasks:
  - name: digits
architectures:
  - name: mean_pool
    params: {hidden_size: 16}
trainer:
  max_epochs: 2
  batch_size: 128
  lr: 0.01
resources:
  cpus: 1
  gpus: 0
"""


def test_suite_with_installed_plugin_runs_end_to_end(
    example_plugin: str, clean_plugins: None, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # mlflow.db, results/ and reports/ land here
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")

    result = cli("run", str(suite), "--executor", "local")

    _assert_clean_exit(result, 0)
    results = ResultsFile(tmp_path / "results" / "example-plugin-e2e.jsonl")
    records = results.read()
    assert results.unreadable == []
    finished = [r for r in records if r.spec.architecture == "mean_pool" and r.finished]
    assert len(finished) == 1, records
    record = finished[0]
    assert record.spec.task == "digits" and record.spec.arch_params == {"hidden_size": 16}
    assert 0.0 <= record.metrics["test_accuracy"] <= 1.0
    assert record.cost["epochs"] == 2.0
    # the plan names the installed distribution that registered the architecture
    ref = record.spec.provenance.arch_plugin
    assert (ref.distribution, ref.version) == (example_plugin, "0.1.0")
    # installed from a local folder: its source is part of its identity (issue 13)
    assert ref.source is not None and len(ref.source) == 16
    assert (tmp_path / "mlflow.db").exists()


# --- hook API versioning ------------------------------------------------------------------------

VERSIONED_SOURCE = """
    from harness import Architecture, hookimpl

    HARNESS_API = {api!r}

    class Versioned(Architecture):
        name = "versioned_arch"

    @hookimpl
    def register_architectures(register):
        register(Versioned)
"""


def test_hook_api_version_is_public() -> None:
    assert harness.HOOK_API_VERSION == "1.1"
    assert "HOOK_API_VERSION" in harness.__all__


@pytest.mark.parametrize("api", [">=1,<2", ">=1.0", "==1.*", "~=1.0", ""])
def test_plugin_with_a_compatible_api_range_loads(make_plugin: MakePlugin, api: str) -> None:
    module = make_plugin("compatible_plugin", VERSIONED_SOURCE.format(api=api))

    registry = get_registry()

    assert _plugin(registry, module).error is None
    assert registry.architectures.get("versioned_arch").provenance.plugin == module


def test_plugin_for_a_newer_api_is_refused(make_plugin: MakePlugin, cli: Cli) -> None:
    module = make_plugin("future_plugin", VERSIONED_SOURCE.format(api=">=2"))

    registry = get_registry()

    info = _plugin(registry, module)
    assert info.refused and info.registered == {}
    expected = (
        f"plugin {module} supports harness hook API >=2 but this harness has {harness.HOOK_API_VERSION}; "
        f"upgrade harness or install a version of {module} for API 1"
    )
    assert info.error is not None and expected in info.error
    assert "versioned_arch" not in registry.architectures
    assert any(expected in warning and "was refused" in warning for warning in registry.warnings)
    _assert_builtins_work(registry)

    result = cli("plugins")
    _assert_clean_exit(result, 0)
    row = next(line for line in result.output.splitlines() if line.startswith(f"│ {module} "))
    assert "refused" in row
    assert f"supports harness hook API >=2 but this harness has {harness.HOOK_API_VERSION}" in " ".join(
        result.output.split()
    )


def test_plugin_for_an_older_api_is_refused(make_plugin: MakePlugin) -> None:
    module = make_plugin("ancient_plugin", VERSIONED_SOURCE.format(api="<1"))

    info = _plugin(get_registry(), module)

    assert info.refused and info.error is not None
    assert f"supports harness hook API <1 but this harness has {harness.HOOK_API_VERSION}" in info.error
    assert f"install a newer version of {module}, one for API 1" in info.error


@pytest.mark.parametrize("api", ["one point oh", "=>1", 1.0])
def test_malformed_api_range_is_refused(make_plugin: MakePlugin, api: object) -> None:
    module = make_plugin("malformed_api_plugin", VERSIONED_SOURCE.format(api=api))

    registry = get_registry()

    info = _plugin(registry, module)
    assert info.refused and info.registered == {}
    assert info.error is not None and f"declares HARNESS_API = {api!r}" in info.error
    assert "not a version range" in info.error and 'HARNESS_API = ">=1,<2"' in info.error
    assert "versioned_arch" not in registry.architectures
    _assert_builtins_work(registry)


def test_installed_plugin_refusal_names_the_distribution(
    example_plugin: str, clean_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness_example_plugin

    monkeypatch.setattr(harness_example_plugin, "HARNESS_API", ">=2,<3", raising=False)
    clear_cache()

    info = _plugin(get_registry(), EXAMPLE_ENTRY_POINT)

    assert info.refused and "mean_pool" not in get_registry().architectures
    assert info.error is not None and f"install a version of {example_plugin} for API 1" in info.error


# --- isolation: malformed registrations ---------------------------------------------------------

MALFORMED_SOURCE = """
    from pydantic import BaseModel
    from harness import Architecture, MetricSpec, Params, Reporter, Task, hookimpl

    class Good(Architecture):
        name = "good_neighbour_arch"

    {body}

    @hookimpl
    def register_architectures(register):
        register(Good)

    @hookimpl
    def {hook}(register):
        register({registered})
"""

MALFORMED = {
    "not_a_subclass": (
        "class NotArch:\n        name = 'not_arch'",
        "register_architectures",
        "NotArch",
        "is not a subclass of harness.Architecture",
    ),
    "an_instance": (
        "class Inst(Architecture):\n        name = 'inst_arch'",
        "register_architectures",
        "Inst()",
        "an instance of Inst is not a subclass of harness.Architecture",
    ),
    "task_registered_as_architecture": (
        "class WrongKind(Task):\n        name = 'wrong_kind'",
        "register_architectures",
        "WrongKind",
        "is not a subclass of harness.Architecture",
    ),
    "missing_name": (
        "class Nameless(Task):\n        pass",
        "register_tasks",
        "Nameless",
        "task class Nameless has no `name`",
    ),
    "params_not_harness_params": (
        (
            "class P(BaseModel):\n        size: int = 1\n"
            "    class BadParams(Reporter):\n        name = 'bad_params'\n        Params = P"
        ),
        "register_reporters",
        "BadParams",
        "reporter `bad_params`: `Params` is <class",
    ),
    "metric_direction": (
        "spec = MetricSpec('sideways', lambda info: None, 'no direction', direction='up')",
        "register_metrics",
        "spec",
        "metric `sideways` has direction 'up'; use \"max\"",
    ),
    "metric_output_kinds": (
        "spec = MetricSpec('odd', lambda info: None, 'unknown kind', frozenset({'telepathy'}))",
        "register_metrics",
        "spec",
        "metric `odd`: output_kinds",
    ),
    "metric_not_a_spec": (
        "class Accuracyish:\n        name = 'accuracyish'",
        "register_metrics",
        "Accuracyish",
        "is not a harness.MetricSpec",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_registration_fails_only_that_plugin(make_plugin: MakePlugin, cli: Cli, case: str) -> None:
    body, hook, registered, reason = MALFORMED[case]
    module = make_plugin(
        f"malformed_{case}", MALFORMED_SOURCE.format(body=body, hook=hook, registered=registered)
    )

    registry = get_registry()

    info = _plugin(registry, module)
    assert info.error is not None and reason in info.error, info.error
    assert f"{hook} registered a malformed" in info.error
    assert info.registered == {} and "good_neighbour_arch" not in registry.architectures  # all or nothing
    assert any(module in warning and reason in warning for warning in registry.warnings)
    _assert_builtins_work(registry)

    result = cli("plugins")
    _assert_clean_exit(result, 0)
    row = next(line for line in result.output.splitlines() if line.startswith(f"│ {module} "))
    assert "failed" in row
    _assert_clean_exit(cli("list", "architectures"), 0)


def test_two_classes_with_one_name_in_one_plugin_fail_that_plugin(make_plugin: MakePlugin) -> None:
    module = make_plugin(
        "self_colliding_plugin",
        """
        from harness import Architecture, hookimpl

        class A(Architecture):
            name = "twin_arch"

        class B(Architecture):
            name = "twin_arch"

        @hookimpl
        def register_architectures(register):
            register(A)
            register(B)
        """,
    )

    registry = get_registry()  # not a conflict between plugins: no PluginError

    error = _plugin(registry, module).error
    assert error is not None and "two different architectures named `twin_arch`" in error
    assert "twin_arch" not in registry.architectures
    _assert_builtins_work(registry)


def test_plugins_command_shows_a_conflict_without_failing(make_plugin: MakePlugin, cli: Cli) -> None:
    module = make_plugin("lstm_again_plugin", ARCH_SOURCE.format(cls="LSTMAgain", name="lstm"))

    registry = get_registry()  # what `harness plugins` sees
    info = _plugin(registry, module)
    assert info.error is None and info.status == "conflict" and info.registered == {}
    assert registry.architectures.entries["lstm"].provenance.plugin == "builtin_architectures"
    assert [(c.kind, c.name, c.kept.plugin, c.refused.plugin) for c in registry.conflicts] == [
        ("architectures", "lstm", "builtin_architectures", module)
    ]

    result = cli("plugins")
    _assert_clean_exit(result, 0)
    lines = result.output.splitlines()
    assert any(line.startswith("│ builtin_architectures ") and "lstm" in line for line in lines)
    row = next(line for line in lines if line.startswith(f"│ {module} "))
    assert "refused architecture `lstm` (registered first by" in row
    assert "Error" not in result.output


RIVAL_SOURCE = """
    from harness import Architecture, hookimpl

    class RivalLSTM(Architecture):
        name = "lstm"  # taken by the built-ins

    class RivalPool(Architecture):
        name = "rival_pool"

    @hookimpl
    def register_architectures(register):
        register(RivalLSTM)
        register(RivalPool)
"""

CONFLICT_SUITE = """
name: {name}
seeds: [0]
tasks:
  - name: digits
architectures:
  - name: {arch}
trainer:
  max_epochs: 1
resources:
  cpus: 1
  gpus: 0
"""


@pytest.fixture
def rival_distribution(clean_plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed distribution ``harness-rival`` 0.3 (entry point ``rival`` in group ``harness``)
    that registers ``lstm``, a name of the built-ins, and ``rival_pool``: its module and
    ``.dist-info`` laid out as pip installs a wheel, in a folder put on ``sys.path``."""
    site = tmp_path / "site"
    info = site / "harness_rival-0.3.dist-info"
    info.mkdir(parents=True)
    (site / "harness_rival.py").write_text(textwrap.dedent(RIVAL_SOURCE), encoding="utf-8")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: harness-rival\nVersion: 0.3\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text("[harness]\nrival = harness_rival\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    clear_cache()
    yield "harness-rival"
    sys.modules.pop("harness_rival", None)
    clear_cache()


def test_a_conflicting_name_is_refused_and_everything_else_works(
    rival_distribution: str, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, defect 8: one plugin registering a taken name used to break every command."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry = get_registry()

    info = _plugin(registry, "rival")
    assert (info.distribution, info.version, info.status) == (rival_distribution, "0.3", "conflict")
    assert info.registered == {"architectures": ["rival_pool"]}  # its other name works
    assert registry.architectures.get("rival_pool").provenance == Provenance(
        "rival", rival_distribution, "0.3"
    )
    assert registry.architectures.entries["lstm"].provenance.plugin == "builtin_architectures"
    for builtin in ("builtin_architectures", "builtin_tasks", "builtin_metrics", "builtin_reporters"):
        assert _plugin(registry, builtin).status == "ok"
    (warning,) = registry.warnings
    both = (f"builtin_architectures (harness {harness.__version__})", f"`rival` ({rival_distribution})")
    assert all(name in warning for name in both) and "`lstm`" in warning
    assert "HARNESS_DISABLE_PLUGINS=rival" in warning

    for args in (("plugins",), ("list", "architectures"), ("list", "tasks")):
        result = cli(*args)
        _assert_clean_exit(result, 0)
        assert "warning:" in result.output and "HARNESS_DISABLE_PLUGINS=rival" in result.output, args
    plugins_row = next(line for line in cli("plugins").output.splitlines() if line.startswith("│ rival "))
    assert "rival_pool" in plugins_row and "refused architecture `lstm`" in plugins_row

    suites = {}
    for name, arch in (("unrelated", "gru"), ("rival", "rival_pool"), ("contested", "lstm")):
        suites[name] = tmp_path / f"{name}.yaml"
        suites[name].write_text(CONFLICT_SUITE.format(name=name, arch=arch), encoding="utf-8")
    for name in ("unrelated", "rival"):
        result = cli("validate", str(suites[name]))
        _assert_clean_exit(result, 0)
        assert "Suite is valid" in result.output and "warning:" in result.output

    for command in (("validate",), ("run", "--executor", "local")):  # only the suite using `lstm` fails
        result = cli(command[0], str(suites["contested"]), *command[1:])
        _assert_clean_exit(result, 2)
        message = " ".join(result.output.split())
        assert "architecture `lstm` at" in message and "architectures[0].name" in message
        assert f"builtin_architectures (harness {harness.__version__})" in message
        assert f"rival ({rival_distribution} 0.3)" in message and "HARNESS_DISABLE_PLUGINS=rival" in message
    assert not (tmp_path / "results").exists()  # refused before anything ran

    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "rival")  # the fix the messages name
    result = cli("validate", str(suites["contested"]))
    _assert_clean_exit(result, 0)
    assert "warning:" not in result.output


def test_rich_markup_in_an_error_is_printed_as_written(make_plugin: MakePlugin, cli: Cli) -> None:
    module = make_plugin("bracket_plugin", 'raise ImportError("add [project.entry-points.harness] [red]")')

    result = cli("plugins")

    _assert_clean_exit(result, 0)
    assert "[project.entry-points.harness] [red]" in result.output
    assert module in result.output


def test_metrics_and_reporters_from_a_plugin(make_plugin: MakePlugin, cli: Cli) -> None:
    """The metric and reporter hooks, through a plugin, with provenance."""
    module = make_plugin(
        "metric_reporter_plugin",
        """
        from harness import MetricSpec, Reporter, hookimpl

        def _factory(info):
            import torchmetrics
            return torchmetrics.MeanSquaredError()

        class LinesReporter(Reporter):
            name = "lines"
            filename = "lines"

            def render(self, results):
                return "\\n".join(r.run_id for r in results)

        @hookimpl
        def register_metrics(register):
            register(
                MetricSpec(
                    "half_mse", _factory, "mean squared error (test)", frozenset({"regression"}), "min"
                )
            )

        @hookimpl
        def register_reporters(register):
            register(LinesReporter)
        """,
    )

    registry = get_registry()

    info = _plugin(registry, module)
    assert info.error is None
    assert info.registered == {"metrics": ["half_mse"], "reporters": ["lines"]}
    assert registry.metrics.get("half_mse").provenance.plugin == module
    records = [make_record(run_id="a"), make_record(run_id="b")]
    assert registry.reporters.get("lines").obj().render(records) == "a\nb"
    result = cli("list", "metrics")
    _assert_clean_exit(result, 0)
    assert "half_mse" in result.output


# --- disabling built-ins -------------------------------------------------------------------------


def test_disable_builtin_tasks(clean_plugins: None, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "builtin_tasks")

    registry = get_registry()

    assert "builtin_tasks" not in {info.name for info in registry.plugins}
    assert len(registry.tasks) == 0
    assert BUILTIN_ARCHITECTURES <= {entry.name for entry in registry.architectures}
    assert "accuracy" in registry.metrics and registry.warnings == []
    _assert_clean_exit(cli("list", "tasks"), 0)
    result = cli("plugins")
    _assert_clean_exit(result, 0)
    assert "builtin_tasks" not in result.output and "builtin_architectures" in result.output


def test_disable_builtin_tasks_and_replace_them(
    make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third party may ship its own `digits` once the built-in tasks are switched off."""
    module = make_plugin(
        "my_digits_plugin",
        """
        from harness import Task, hookimpl

        class MyDigits(Task):
            name = "digits"

        @hookimpl
        def register_tasks(register):
            register(MyDigits)
        """,
    )
    with pytest.raises(PluginError, match="`digits`"):  # contested while the built-ins are on
        get_registry().tasks.get("digits")

    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "builtin_tasks")

    assert get_registry().tasks.get("digits").provenance.plugin == module


def test_disable_the_harness_distribution_disables_every_builtin(
    clean_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "harness, *")  # `*`: third-party ones, too

    registry = get_registry()

    assert registry.plugins == [] and registry.warnings == []
    assert not [info for info in registry.plugins if info.distribution == "harness"]
    assert all(
        len(registry.namespace(kind)) == 0 for kind in ("architectures", "tasks", "metrics", "reporters")
    )
