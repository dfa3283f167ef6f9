"""The registry (harness/registry.py): provenance, lookups with suggestions, sorted namespaces."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import harness
from harness.errors import PluginError, UnknownNameError
from harness.plugins import get_registry
from harness.registry import KINDS, Namespace, PluginInfo, Provenance, Registry, malformed

BUILTINS = {
    "architectures": (
        "builtin_architectures",
        {"rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer", "naive", "seasonal_naive", "arima"},
    ),
    "tasks": (
        "builtin_tasks",
        {
            "adding",
            "copy_memory",
            "digits",
            "forecasting",
            "language_model",
            "mnist1d",
            "moving_digits",
            "number_translation",
            "scan",
            "sentiment",
            "seq_mnist",
            "speech_digits",
            "spoken_digits",
            "ucr",
        },
    ),
    "metrics": (
        "builtin_metrics",
        {
            "accuracy",
            "precision",
            "recall",
            "f1",
            "auroc",
            "mse",
            "mae",
            "rmse",
            "smape",
            "mase",
            "exact_match",
            "token_accuracy",
            "bleu",
            "wer",
            "cer",
            "ser",
            "cross_entropy",
            "bits_per_char",
            "perplexity",
            "digit_accuracy",
            "direction_accuracy",
        },
    ),
    "reporters": ("builtin_reporters", {"html", "markdown", "csv"}),
}
ALPHA = Provenance("alpha_plugin", "alpha-dist", "1.0")
BETA = Provenance("beta_plugin", "beta-dist", "2.3")


@dataclass(frozen=True)
class Thing:
    """A stand-in component: anything with a ``name`` can be registered."""

    name: str


def _namespace(*names: str, kind: str = "architectures") -> Namespace:
    namespace = Namespace(kind)
    for name in names:
        namespace.add(Thing(name), ALPHA)
    return namespace


# --- built-ins through the real plugin manager -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_provenance(builtins_only: None, kind: str) -> None:
    plugin, names = BUILTINS[kind]
    namespace = get_registry().namespace(kind)

    assert {entry.name for entry in namespace} == names
    for entry in namespace:
        assert entry.provenance == Provenance(plugin, "harness", harness.__version__)
        assert str(entry.provenance) == f"{plugin} (harness {harness.__version__})"
        assert namespace.get(entry.name) is entry


def test_builtin_plugin_infos(builtins_only: None) -> None:
    registry = get_registry()

    infos = {info.name: info for info in registry.plugins}
    assert set(infos) == {plugin for plugin, _ in BUILTINS.values()}
    for kind, (plugin, names) in BUILTINS.items():
        info = infos[plugin]
        assert (info.distribution, info.version, info.error) == ("harness", harness.__version__, None)
        assert set(info.registered[kind]) == names
    assert registry.warnings == []


def test_builtin_descriptions(builtins_only: None) -> None:
    registry = get_registry()

    assert "LSTM" in registry.architectures.get("lstm").description
    assert registry.metrics.get("accuracy").description  # a MetricSpec, not a class
    assert registry.tasks.get("digits").description


def test_unknown_builtin_name_suggests_and_lists(builtins_only: None) -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_registry().architectures.get("lstn", where="architectures[2].name")

    message = str(caught.value)
    assert "Unknown architecture `lstn` at architectures[2].name." in message
    assert "Did you mean `lstm`" in message
    assert (
        "Installed architectures: arima, birnn, cnn_rnn, gru, lstm, naive, rnn, seasonal_naive, transformer."
        in message
    )
    assert "harness list architectures" in message


def test_unknown_task_suggestion(builtins_only: None) -> None:
    with pytest.raises(
        UnknownNameError, match=r"Did you mean `digits`\?.*Installed tasks: adding, copy_memory, digits"
    ):
        get_registry().tasks.get("digit")


def test_builtin_namespaces_iterate_sorted(builtins_only: None) -> None:
    registry = get_registry()
    for kind in KINDS:
        names = [entry.name for entry in registry.namespace(kind)]
        assert names == sorted(names)


# --- Namespace and Registry on their own ----------------------------------------------------


def test_namespace_iterates_sorted_by_name() -> None:
    namespace = _namespace("zeta", "alpha", "mid", "Beta", "alpha_2")

    assert [entry.name for entry in namespace] == ["Beta", "alpha", "alpha_2", "mid", "zeta"]
    assert len(namespace) == 5
    assert "mid" in namespace and "nope" not in namespace


def test_unknown_name_without_close_match() -> None:
    namespace = _namespace("rnn", "gru")

    with pytest.raises(UnknownNameError) as caught:
        namespace.get("transformer")

    message = str(caught.value)
    assert "Did you mean" not in message
    assert "Installed architectures: gru, rnn." in message
    assert "install the plugin that provides `transformer`" in message


def test_unknown_name_in_empty_namespace() -> None:
    with pytest.raises(UnknownNameError, match="Installed reporters: none"):
        Namespace("reporters").get("html")


def test_duplicate_names_both_plugins() -> None:
    namespace = _namespace("pool")

    with pytest.raises(PluginError) as caught:
        namespace.add(Thing("pool"), BETA)

    message = str(caught.value)
    assert "Duplicate architecture name `pool`" in message
    assert "alpha_plugin (alpha-dist 1.0)" in message and "beta_plugin (beta-dist 2.3)" in message
    assert namespace.get("pool").provenance == ALPHA  # the first registration stays


def test_same_object_from_another_plugin_is_a_duplicate() -> None:
    thing = Thing("pool")
    namespace = Namespace("tasks")
    namespace.add(thing, ALPHA)

    namespace.add(thing, ALPHA)  # the same plugin, the same object: harmless
    assert namespace.get("pool").provenance == ALPHA
    with pytest.raises(PluginError, match="Duplicate task name `pool`"):
        namespace.add(thing, BETA)


@pytest.mark.parametrize("bad", [object(), Thing(""), Thing(None)])  # type: ignore[arg-type]
def test_registration_without_a_name(bad: object) -> None:
    expected = r"alpha_plugin \(alpha-dist 1.0\) registered a metric without a `name`"
    with pytest.raises(PluginError, match=expected):
        Namespace("metrics").add(bad, ALPHA)


def test_registry_unknown_kind() -> None:
    expected = r"Did you mean `architectures`\?.*Choose one of: architectures, tasks"
    with pytest.raises(UnknownNameError, match=expected):
        Registry().namespace("architecture")


def test_registry_warnings_list_failed_plugins() -> None:
    broken = PluginInfo("broken", "bad-dist", "0.1", error="boom")
    registry = Registry(plugins=[PluginInfo("ok", "d", "1"), broken])

    assert registry.warnings == ["plugin `broken` (bad-dist) failed to load: boom"]


# --- malformed components, conflicts and refusals --------------------------------------------


def test_namespace_conflict_names_both_without_raising() -> None:
    namespace = _namespace("pool")

    message = namespace.conflict("pool", Thing("pool"), BETA)

    assert message is not None and "Duplicate architecture name `pool`" in message
    assert "alpha_plugin (alpha-dist 1.0)" in message and "HARNESS_DISABLE_PLUGINS=beta_plugin" in message
    assert namespace.conflict("other", Thing("other"), BETA) is None
    assert namespace.conflict("pool", namespace.get("pool").obj, ALPHA) is None  # same object, same plugin


def test_a_refused_name_is_contested_and_named_with_both_plugins() -> None:
    """The later plugin's registration is refused; looking the name up names both plugins and the
    fix (a suite using it fails); the other names of the namespace are untouched."""
    namespace = _namespace("pool", "other")

    conflict = namespace.refuse("pool", BETA)

    assert (conflict.kind, conflict.name, conflict.kept, conflict.refused) == (
        "architectures",
        "pool",
        ALPHA,
        BETA,
    )
    assert namespace.entries["pool"].provenance == ALPHA and namespace.contested == {"pool": [conflict]}
    assert namespace.get("other").provenance == ALPHA
    with pytest.raises(PluginError) as caught:
        namespace.get("pool", where="suite.yaml:4 (architectures[0].name)")
    message = str(caught.value)
    assert "architecture `pool` at suite.yaml:4 (architectures[0].name)" in message
    assert "alpha_plugin (alpha-dist 1.0)" in message and "beta_plugin (beta-dist 2.3)" in message
    assert (
        "HARNESS_DISABLE_PLUGINS=beta_plugin" in message and "HARNESS_DISABLE_PLUGINS=alpha_plugin" in message
    )
    assert "pool" in namespace and [e.name for e in namespace] == ["other", "pool"]  # listed, not usable


def test_registry_conflicts_are_warnings_and_check_raises_them() -> None:
    registry = Registry()
    registry.check()  # nothing to report
    registry.architectures.add(Thing("pool"), ALPHA)  # type: ignore[arg-type]
    beta = PluginInfo("beta_plugin", "beta-dist", "2.3")
    beta.conflicts.append(registry.architectures.refuse("pool", BETA))
    registry.plugins = [PluginInfo("alpha_plugin", "alpha-dist", "1.0"), beta]

    assert beta.status == "conflict" and registry.conflicts == beta.conflicts
    (warning,) = registry.warnings
    assert warning.startswith("plugin `beta_plugin` (beta-dist) registers the architecture name `pool`")
    assert "alpha_plugin (alpha-dist 1.0)" in warning and "HARNESS_DISABLE_PLUGINS=beta_plugin" in warning
    with pytest.raises(PluginError, match="`pool`"):
        registry.check()


def test_registry_warnings_say_refused() -> None:
    refused = PluginInfo("future", "future-dist", "3.0", error="needs API >=2", refused=True)

    assert Registry(plugins=[refused]).warnings == [
        "plugin `future` (future-dist) was refused: needs API >=2"
    ]
    assert (refused.status, PluginInfo("ok", "d", "1").status) == ("refused", "ok")
    assert PluginInfo("broken", "d", "1", error="boom").status == "failed"


def _builtin_examples() -> dict[str, object]:
    registry = get_registry()
    return {kind: next(iter(registry.namespace(kind))).obj for kind in KINDS}


def test_builtins_are_well_formed(builtins_only: None) -> None:
    registry = get_registry()
    for kind in KINDS:
        for entry in registry.namespace(kind):
            assert malformed(kind, entry.obj) is None, (kind, entry.name)


def test_builtin_params_come_from_the_type_argument(builtins_only: None) -> None:
    """Every built-in component names its params model as the base's type argument
    (``class LSTM(Architecture[LSTMParams])``): that sets ``Params``, and instances hold one."""
    import typing

    registry = get_registry()
    for kind in ("architectures", "tasks", "reporters"):
        for entry in registry.namespace(kind):
            cls = entry.obj
            declared = [
                arg
                for klass in cls.__mro__
                for base in klass.__dict__.get("__orig_bases__", ())
                for arg in typing.get_args(base)
                if isinstance(arg, type) and issubclass(arg, harness.Params)
            ]
            assert declared, f"{kind} `{entry.name}` ({cls.__qualname__}) has no params type argument"
            assert cls.Params is declared[0], (entry.name, cls.Params, declared[0])
            assert type(cls().params) is cls.Params


def test_namespaces_are_typed_by_kind(builtins_only: None) -> None:
    registry = get_registry()
    assert registry.namespace("architectures") is registry.architectures
    assert isinstance(registry.metrics.get("accuracy").obj, harness.MetricSpec)
    assert issubclass(registry.tasks.get("digits").obj, harness.Task)


def test_malformed_reasons(builtins_only: None) -> None:
    from pydantic import BaseModel

    examples = _builtin_examples()
    arch = examples["architectures"]
    spec = examples["metrics"]

    class Plain(BaseModel):
        size: int = 1

    class NoParams(harness.Architecture):
        name = "no_params"
        Params = Plain  # type: ignore[assignment]

    class Nameless(harness.Task):
        pass

    up = harness.MetricSpec("m", lambda info: None, direction="up")  # type: ignore[arg-type]
    one_kind = harness.MetricSpec("m", lambda info: None, output_kinds="regression")  # type: ignore[arg-type]
    cases = {
        ("architectures", examples["tasks"]): "is not a subclass of harness.Architecture",
        ("tasks", Nameless): "task class test_malformed_reasons.<locals>.Nameless has no `name`",
        ("architectures", NoParams): "architecture `no_params`: `Params` is",
        ("reporters", arch): "is not a subclass of harness.Reporter",
        ("metrics", arch): "is not a harness.MetricSpec",
        ("metrics", up): "has direction 'up'",
        ("metrics", harness.MetricSpec("m", "nope")): "not a callable factory",  # type: ignore[arg-type]
        ("metrics", one_kind): "output_kinds",
        ("metrics", harness.MetricSpec("", lambda info: None)): "has no name",
    }
    for (kind, obj), reason in cases.items():
        problem = malformed(kind, obj)
        assert problem is not None and reason in problem, (kind, obj, problem)
    assert malformed("metrics", spec) is None
