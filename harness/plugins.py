"""The plugin manager: loads entry points of group ``harness`` into a Registry.

Built-ins come first (they are entry points of the ``harness`` distribution
itself), then third-party distributions, then modules named in
``HARNESS_PLUGINS``. A plugin that fails to import, or whose registration
hook raises, or that registers a malformed component, becomes a recorded
warning; the other plugins keep working. A plugin may declare the hook API
versions it supports (module attribute ``HARNESS_API = ">=1,<2"``); one whose
range excludes :data:`harness.hookspecs.HOOK_API_VERSION` is refused.

Two plugins that register one name: the name stays with the plugin loaded first (the load order
above; installed distributions in alphabetical order, ``HARNESS_PLUGINS`` modules in the order
listed), the later plugin's registration of that name is refused with a warning, its other names
and every other plugin keep working, and only a suite that uses the contested name is refused
(see :class:`harness.registry.Conflict`).

A plugin whose code can change without a new version (installed editable or from a local
directory, or named in ``HARNESS_PLUGINS``) gets the folders of its source in its
:class:`~harness.registry.Provenance` (``source``); the planner hashes them into the run ids.

Environment switches:
- ``HARNESS_DISABLE_PLUGINS``: comma-separated plugin (entry-point) or
  distribution names to skip (distribution names compare in PEP 503 form);
  ``*`` skips every installed third-party plugin (modules named in
  ``HARNESS_PLUGINS`` still load: they were asked for explicitly).
- ``HARNESS_PLUGINS``: comma-separated importable modules to load as extra
  plugins (handy for a plugin under development that is not installed).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import lru_cache, partial
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import suggest
from harness.provenance import installed_from_source, source_digest
from harness.registry import _SINGULAR, KINDS, PluginInfo, Provenance, Registry, malformed

GROUP = "harness"
_SELF = "harness"


def _disabled() -> set[str]:
    raw = os.environ.get("HARNESS_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _normalize(distribution: str) -> str:
    """PEP 503 form of a distribution name: ``Harness_Example.Plugin`` -> ``harness-example-plugin``."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _sorted_entry_points() -> list[EntryPoint]:
    eps = list(entry_points(group=GROUP))
    return sorted(eps, key=lambda ep: (_dist_name(ep) != _SELF, _dist_name(ep), ep.name))


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "unknown"


#: a candidate plugin: its name, provenance, how to load it, and the module whose source
#: identifies it (None: its version does)
Candidate = tuple[str, Provenance, Callable[[], object], str | None]


def _candidates() -> Iterable[Candidate]:
    disabled = _disabled()
    disabled_dists = {_normalize(name) for name in disabled}
    for ep in _sorted_entry_points():
        dist = _dist_name(ep)
        if ep.name in disabled or _normalize(dist) in disabled_dists or ("*" in disabled and dist != _SELF):
            continue
        version = ep.dist.version if ep.dist is not None else "unknown"
        source: str | None = None
        if ep.dist is not None and installed_from_source(ep.dist):
            # a built-in: its own package (harness_builtins.tasks), not all of harness_builtins;
            # a third-party plugin: the top-level package holding its entry point
            source = ep.module if dist == _SELF else ep.module.partition(".")[0]
        yield ep.name, Provenance(ep.name, dist, version), ep.load, source
    for module in os.environ.get("HARNESS_PLUGINS", "").split(","):
        module = module.strip()
        if module and module not in disabled:
            load = partial(importlib.import_module, module)
            yield module, Provenance(module, "HARNESS_PLUGINS", "-"), load, module


def _source_roots(module_name: str) -> tuple[str, ...]:
    """The folders (a package) or the file (a module) of the loaded module ``module_name``."""
    module = sys.modules.get(module_name)
    paths = getattr(module, "__path__", None)
    if paths is not None:
        return tuple(sorted(str(Path(p).resolve()) for p in paths))
    file = getattr(module, "__file__", None)
    return (str(Path(file).resolve()),) if isinstance(file, str) else ()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    """The hooks harness defines (those with a spec)."""
    return sorted(name for name, caller in vars(pm.hook).items() if caller.has_spec())


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Names of ``@hookimpl`` functions of ``plugin`` that match no hook (a typo, usually)."""
    known = set(_hook_names(pm))
    unknown: list[str] = []
    for attr in dir(plugin):
        try:
            opts = pm.parse_hookimpl_opts(plugin, attr)
        except Exception:  # an attribute that cannot be inspected is no hook implementation
            continue
        if opts is not None and not opts.get("optionalhook"):
            name = opts.get("specname") or attr
            if name not in known:
                unknown.append(name)
    return sorted(unknown)


def _load_error(pm: pluggy.PluginManager, plugin: object, exc: BaseException) -> str:
    """What went wrong loading ``plugin``, and how to fix it."""
    unknown = _unknown_hooks(pm, plugin) if plugin is not None else []
    if isinstance(exc, pluggy.PluginValidationError) and unknown:
        hooks = _hook_names(pm)
        problems = " ".join(f"`{name}` is not a harness hook. {suggest(name, hooks)}" for name in unknown)
        return f"{problems}Rename the function; the hooks are: {', '.join(hooks)}."
    return _describe(exc)


def _api_problem(plugin: object, name: str, prov: Provenance) -> str | None:
    """Why ``plugin`` is refused for its declared ``HARNESS_API`` range, or ``None``."""
    declared: object = getattr(plugin, "HARNESS_API", None)
    if declared is None:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    current = hookspecs.HOOK_API_VERSION
    example = f'HARNESS_API = ">={current.split(".")[0]},<{int(current.split(".")[0]) + 1}"'
    try:
        if not isinstance(declared, str):
            raise InvalidSpecifier(f"a {type(declared).__name__}, not a string")
        spec = SpecifierSet(declared)
    except InvalidSpecifier as exc:
        return (
            f"plugin {name} declares HARNESS_API = {declared!r}, which is not a version range "
            f"({exc}); write a PEP 440 specifier, e.g. {example}."
        )
    if spec.contains(current, prereleases=True):
        return None
    who = name if prov.distribution in ("HARNESS_PLUGINS", "unknown") else prov.distribution
    major, minor = (int(part) for part in current.split(".")[:2])
    newer = (f"{major}.{minor + 1}", *(f"{m}.0" for m in range(major + 1, major + 10)))
    fix = (
        f"upgrade harness or install a version of {who} for API {major}"
        if any(spec.contains(v, prereleases=True) for v in newer)
        else f"install a newer version of {who}, one for API {major}"
    )
    return f"plugin {name} supports harness hook API {declared} but this harness has {current}; {fix}."


def _admit(registry: Registry, info: PluginInfo, prov: Provenance, found: dict[str, list[Any]]) -> None:
    """Add a plugin's registrations. A malformed component, or two different components of one
    name within the plugin, make it fail (with the reason) and register nothing. A name that an
    earlier plugin registered is refused alone (a :class:`~harness.registry.Conflict`, a
    warning): the plugin's other names are added."""
    for kind, objs in found.items():
        for obj in objs:
            problem = malformed(kind, obj)
            if problem:
                info.error = f"register_{kind} registered a malformed {_SINGULAR[kind]}: {problem}"
                return
    for kind, objs in found.items():
        own: dict[str, Any] = {}  # name -> component, within this plugin
        for obj in objs:
            if own.setdefault(obj.name, obj) is not obj:
                info.error = (
                    f"register_{kind} registered two different {kind} named `{obj.name}`; rename one of them."
                )
                return
    for kind, objs in found.items():
        namespace = registry.namespace(kind)
        for obj in objs:
            if namespace.conflict(obj.name, obj, prov):
                if not any(c.kind == kind and c.name == obj.name for c in info.conflicts):
                    info.conflicts.append(namespace.refuse(obj.name, prov))
                continue
            namespace.add(obj, prov)
            if obj.name not in info.registered.get(kind, []):
                info.registered.setdefault(kind, []).append(obj.name)


def build_registry() -> Registry:
    """Load every enabled plugin and collect what it registers (uncached).

    A plugin's registrations are all-or-nothing: when one of its hooks raises,
    nothing it registered (in any kind) is kept, so a plugin marked as failed
    never half-works.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    infos: dict[str, PluginInfo] = {}
    provenance: dict[str, Provenance] = {}
    for name, prov, load, source in _candidates():
        info = PluginInfo(name=name, distribution=prov.distribution, version=prov.version)
        registry.plugins.append(info)
        if name in provenance:  # pluggy keeps one plugin a name: the first one loaded
            other = provenance[name]
            info.error = (
                f"another plugin is also named `{name}` (from {other.distribution} {other.version}) "
                f"and was loaded first, so this one is not loaded. Rename the entry point in one of "
                f"them (group `{GROUP}` in its pyproject.toml) or uninstall one."
            )
            continue
        plugin: object = None
        try:
            plugin = load()
            if source is not None:
                prov = replace(prov, source=_source_roots(source))
            refusal = _api_problem(plugin, name, prov)
            if refusal:
                info.error, info.refused = refusal, True
                continue
            pm.register(plugin, name=name)
            pm.check_pending()
        except Exception as exc:  # a broken plugin must not take the others down
            if pm.has_plugin(name):
                pm.unregister(name=name)
            info.error = _load_error(pm, plugin, exc)
            continue
        infos[name] = info
        provenance[name] = prov
    # First call every hook, then admit the registrations of the plugins that did not fail,
    # plugin by plugin in load order (built-ins first), whatever order pluggy keeps the hooks
    # in (registration order, or changed by tryfirst/trylast), so that a duplicate name is
    # always reported against the plugin that registered it first.
    collected: dict[str, dict[str, list[Any]]] = {name: {} for name in infos}
    for kind in KINDS:
        for impl in getattr(pm.hook, f"register_{kind}").get_hookimpls():
            info = infos[impl.plugin_name]
            if info.error:
                continue
            found: list[Any] = []
            try:
                impl.function(register=found.append)
            except Exception as exc:
                info.error = f"register_{kind} raised {_describe(exc)}"
                continue
            collected[impl.plugin_name][kind] = found
    for plugin_name, info in infos.items():
        if not info.error:
            _admit(registry, info, provenance[plugin_name], collected[plugin_name])
    return registry


@lru_cache(maxsize=8)
def _cached(key: tuple[str, str]) -> Registry:
    return build_registry()


def get_registry(strict: bool = False) -> Registry:
    """The registry for this process (rebuilt when the plugin env switches change).

    A name that two plugins registered is refused only where it is used (a suite naming it);
    ``strict``: raise :class:`~harness.errors.PluginError` at once when any name is contested.
    """
    key = (os.environ.get("HARNESS_DISABLE_PLUGINS", ""), os.environ.get("HARNESS_PLUGINS", ""))
    registry = _cached(key)
    if strict:
        registry.check()
    return registry


def clear_cache() -> None:
    """Forget loaded registries and plugin source digests (after installing, removing or
    editing a plugin)."""
    _cached.cache_clear()
    source_digest.cache_clear()
    importlib.invalidate_caches()
