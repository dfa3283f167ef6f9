"""Name → component, with provenance (which plugin and version registered it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.errors import PluginError, UnknownNameError, suggest

KINDS = ("architectures", "tasks", "metrics", "reporters")
_SINGULAR = {"architectures": "architecture", "tasks": "task", "metrics": "metric", "reporters": "reporter"}


@dataclass(frozen=True)
class Provenance:
    """Who registered a name: the plugin (entry point) and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.plugin} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    provenance: Provenance

    @property
    def description(self) -> str:
        line = getattr(self.obj, "summary_line", None)
        return line() if callable(line) else ""


@dataclass
class Namespace:
    """The registered names of one kind (architectures, tasks, ...)."""

    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, obj: Any, provenance: Provenance) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"Plugin {provenance} registered a {_SINGULAR[self.kind]} without a `name` "
                f"({obj!r}). Give the class a string attribute `name`."
            )
        existing = self.entries.get(name)
        if existing is not None and existing.obj is obj and existing.provenance == provenance:
            return  # the same plugin registering the same object twice: harmless, keep the first
        if existing is not None:
            raise PluginError(
                f"Duplicate {_SINGULAR[self.kind]} name `{name}`: registered by plugin "
                f"{existing.provenance} and by plugin {provenance}. Uninstall one of them, "
                f"rename one, or disable one with HARNESS_DISABLE_PLUGINS={provenance.plugin}."
            )
        self.entries[name] = Entry(name, obj, provenance)

    def get(self, name: str, where: str = "") -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            pass
        place = f" at {where}" if where else ""
        installed = ", ".join(sorted(self.entries)) or "none"
        raise UnknownNameError(
            f"Unknown {_SINGULAR[self.kind]} `{name}`{place}. {suggest(name, self.entries)}"
            f"Installed {self.kind}: {installed}. Run `harness list {self.kind}` to see them, "
            f"or install the plugin that provides `{name}`."
        )

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[Entry]:
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


@dataclass
class Registry:
    """Everything the installed plugins registered."""

    architectures: Namespace = field(default_factory=lambda: Namespace("architectures"))
    tasks: Namespace = field(default_factory=lambda: Namespace("tasks"))
    metrics: Namespace = field(default_factory=lambda: Namespace("metrics"))
    reporters: Namespace = field(default_factory=lambda: Namespace("reporters"))
    plugins: list[PluginInfo] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [f"plugin `{p.name}` ({p.distribution}) failed to load: {p.error}" for p in self.plugins if p.error]

    def namespace(self, kind: str) -> Namespace:
        if kind not in KINDS:
            raise UnknownNameError(f"Unknown kind `{kind}`. {suggest(kind, KINDS)}Choose one of: {', '.join(KINDS)}.")
        ns: Namespace = getattr(self, kind)
        return ns
