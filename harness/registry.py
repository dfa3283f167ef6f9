"""Name → component, with provenance (which plugin and version registered it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from harness.errors import PluginError, UnknownNameError, suggest

if TYPE_CHECKING:  # annotations only: the registry does not import the contracts at load time
    from harness.interfaces import Architecture, MetricSpec, Reporter, Task

KINDS = ("architectures", "tasks", "metrics", "reporters")
_SINGULAR = {"architectures": "architecture", "tasks": "task", "metrics": "metric", "reporters": "reporter"}


@dataclass(frozen=True)
class Provenance:
    """Who registered a name: the plugin (entry point) and its distribution."""

    plugin: str
    distribution: str
    version: str
    #: where the plugin's Python source lives, when its version alone does not identify its code
    #: (an editable or local-directory install, a ``HARNESS_PLUGINS`` module): the folders or
    #: files whose ``.py`` files :func:`harness.provenance.source_digest` hashes into the run id.
    #: Empty for a wheel install (the version is the identity). Not part of equality.
    source: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.plugin} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Conflict:
    """Two plugins registered one name: the later plugin's registration was refused.

    The name stays with the plugin loaded first (``kept``: built-ins, then installed
    distributions in alphabetical order, then ``HARNESS_PLUGINS`` modules in the order listed),
    but a suite that uses it is refused (:meth:`Namespace.get`): which code it means is ambiguous.
    """

    kind: str
    name: str
    kept: Provenance
    refused: Provenance

    @property
    def singular(self) -> str:
        """``architecture``, ``task``, ... (the kind of the contested name)."""
        return _SINGULAR[self.kind]

    @property
    def fix(self) -> str:
        return (
            f"set HARNESS_DISABLE_PLUGINS={self.refused.plugin} (or HARNESS_DISABLE_PLUGINS="
            f"{self.kept.plugin} to use the other one), uninstall one of them, or rename one"
        )

    @property
    def warning(self) -> str:
        return (
            f"plugin `{self.refused.plugin}` ({self.refused.distribution}) registers the "
            f"{self.singular} name `{self.name}` that plugin {self.kept} registered first; "
            f"its `{self.name}` is refused and its other names work. Suites that use `{self.name}` "
            f"are refused until one plugin provides it: {self.fix}."
        )


#: what a namespace holds: a component class (architectures, tasks, reporters) or a MetricSpec
T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the object (a class, or a MetricSpec) and who registered it."""

    name: str
    obj: T
    provenance: Provenance

    @property
    def description(self) -> str:
        line = getattr(self.obj, "summary_line", None)
        return line() if callable(line) else ""


@dataclass
class Namespace(Generic[T]):
    """The registered names of one kind (architectures, tasks, ...)."""

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)
    #: names registered by more than one plugin: name -> the refused registrations
    contested: dict[str, list[Conflict]] = field(default_factory=dict)

    def conflict(self, name: str, obj: T, provenance: Provenance) -> str | None:
        """Why ``obj`` cannot be added under ``name`` (a duplicate naming both plugins), or ``None``."""
        existing = self.entries.get(name)
        if existing is None or (existing.obj is obj and existing.provenance == provenance):
            return None  # the same plugin registering the same object twice is harmless
        return (
            f"Duplicate {_SINGULAR[self.kind]} name `{name}`: registered by plugin "
            f"{existing.provenance} and by plugin {provenance}. Uninstall one of them, "
            f"rename one, or disable one with HARNESS_DISABLE_PLUGINS={provenance.plugin}."
        )

    def add(self, obj: T, provenance: Provenance) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"Plugin {provenance} registered a {_SINGULAR[self.kind]} without a `name` "
                f"({obj!r}). Give the class a string attribute `name`."
            )
        problem = self.conflict(name, obj, provenance)
        if problem:
            raise PluginError(problem)
        self.entries.setdefault(name, Entry(name, obj, provenance))

    def refuse(self, name: str, provenance: Provenance) -> Conflict:
        """Record that ``provenance`` also registered ``name`` (already taken): it is not added,
        and :meth:`get` refuses the name from now on."""
        conflict = Conflict(self.kind, name, self.entries[name].provenance, provenance)
        self.contested.setdefault(name, []).append(conflict)
        return conflict

    def get(self, name: str, where: str = "") -> Entry[T]:
        place = f" at {where}" if where else ""
        if name in self.contested:
            conflicts = self.contested[name]
            others = " and by ".join(f"plugin {c.refused}" for c in conflicts)
            raise PluginError(
                f"The {_SINGULAR[self.kind]} `{name}`{place} is registered by two plugins: by plugin "
                f"{conflicts[0].kept} and by {others}, so which one this suite means is ambiguous. "
                f"To use it, {conflicts[0].fix}."
            )
        try:
            return self.entries[name]
        except KeyError:
            pass
        installed = ", ".join(sorted(self.entries)) or "none"
        raise UnknownNameError(
            f"Unknown {_SINGULAR[self.kind]} `{name}`{place}. {suggest(name, self.entries)}"
            f"Installed {self.kind}: {installed}. Run `harness list {self.kind}` to see them, "
            f"or install the plugin that provides `{name}`."
        )

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self.entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin."""

    name: str
    distribution: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    #: True when the plugin loaded but was refused (an incompatible hook API range)
    refused: bool = False
    #: its names refused because another plugin registered them first (the rest work)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``refused``, ``failed``, ``conflict`` (loaded; some names refused) or ``ok``."""
        if self.error:
            return "refused" if self.refused else "failed"
        return "conflict" if self.conflicts else "ok"


@dataclass
class Registry:
    """Everything the installed plugins registered."""

    architectures: Namespace[type[Architecture[Any]]] = field(
        default_factory=lambda: Namespace("architectures")
    )
    tasks: Namespace[type[Task[Any]]] = field(default_factory=lambda: Namespace("tasks"))
    metrics: Namespace[MetricSpec] = field(default_factory=lambda: Namespace("metrics"))
    reporters: Namespace[type[Reporter[Any]]] = field(default_factory=lambda: Namespace("reporters"))
    plugins: list[PluginInfo] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Conflict]:
        """Names registered by two plugins, in load order (the later registration was refused)."""
        return [c for p in self.plugins for c in p.conflicts]

    @property
    def warnings(self) -> list[str]:
        failed = [
            (
                f"plugin `{p.name}` ({p.distribution}) "
                f"{'was refused' if p.refused else 'failed to load'}: {p.error}"
            )
            for p in self.plugins
            if p.error
        ]
        return failed + [c.warning for c in self.conflicts]

    def check(self) -> None:
        """Raise :class:`PluginError` if two plugins registered the same name.

        Not called by the commands: a conflict refuses only the suites that use the name
        (:meth:`Namespace.get`); this is for callers that want no ambiguity at all.
        """
        if self.conflicts:
            raise PluginError(" ".join(c.warning for c in self.conflicts))

    @overload
    def namespace(self, kind: Literal["architectures"]) -> Namespace[type[Architecture[Any]]]: ...
    @overload
    def namespace(self, kind: Literal["tasks"]) -> Namespace[type[Task[Any]]]: ...
    @overload
    def namespace(self, kind: Literal["metrics"]) -> Namespace[MetricSpec]: ...
    @overload
    def namespace(self, kind: Literal["reporters"]) -> Namespace[type[Reporter[Any]]]: ...
    @overload
    def namespace(self, kind: str) -> Namespace[Any]: ...
    def namespace(self, kind: str) -> Namespace[Any]:
        """The namespace of ``kind`` (one of :data:`KINDS`), typed by kind when it is a literal."""
        if kind not in KINDS:
            raise UnknownNameError(
                f"Unknown kind `{kind}`. {suggest(kind, KINDS)}Choose one of: {', '.join(KINDS)}."
            )
        ns: Namespace[Any] = getattr(self, kind)
        return ns


_BASES = {"architectures": "Architecture", "tasks": "Task", "reporters": "Reporter"}


def malformed(kind: str, obj: Any) -> str | None:
    """Why ``obj`` cannot be registered as a ``kind`` component, or ``None`` if it can.

    Classes must subclass the contract of their kind, have a string ``name`` and a
    ``Params`` that subclasses :class:`harness.Params`; metrics are valid
    :class:`harness.MetricSpec` objects.
    """
    import typing

    from harness import interfaces

    singular = _SINGULAR[kind]
    if kind == "metrics":
        if not isinstance(obj, interfaces.MetricSpec):
            return (
                f"{obj!r} is not a harness.MetricSpec; "
                "register MetricSpec(name, factory, description, output_kinds)."
            )
        if not isinstance(obj.name, str) or not obj.name:
            return f"a MetricSpec has no name ({obj!r}); give it a non-empty string `name`."
        if obj.direction not in ("max", "min"):
            return (
                f'metric `{obj.name}` has direction {obj.direction!r}; use "max" (higher is better) '
                f'or "min" (lower is better).'
            )
        if not callable(obj.factory):
            return (
                f"metric `{obj.name}`: `factory` is {obj.factory!r}, not a callable factory(info) -> Metric."
            )
        known = set(typing.get_args(interfaces.OutputKind))
        kinds = obj.output_kinds
        if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds) or not set(kinds) <= known:
            return (
                f"metric `{obj.name}`: output_kinds {kinds!r} must be a set of output kinds "
                f"({', '.join(sorted(known))})."
            )
        return None
    base = getattr(interfaces, _BASES[kind])
    if not (isinstance(obj, type) and issubclass(obj, base)):
        what = f"an instance of {type(obj).__name__}" if isinstance(obj, base) else repr(obj)
        return (
            f"{what} is not a subclass of harness.{base.__name__}; register the {singular} class "
            f"itself, e.g. register(My{base.__name__})."
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        return (
            f"{singular} class {obj.__qualname__} has no `name`; "
            'give it a string class attribute `name = "..."`.'
        )
    params = getattr(obj, "Params", None)
    if not (isinstance(params, type) and issubclass(params, interfaces.Params)):
        return (
            f"{singular} `{name}`: `Params` is {params!r}, not a subclass of harness.Params; "
            f"write `class MyParams(harness.Params): ...` and set `Params = MyParams`."
        )
    return None
