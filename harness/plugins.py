"""The plugin manager: loads entry points of group ``harness`` into a Registry.

Built-ins come first (they are entry points of the ``harness`` distribution
itself), then third-party distributions, then modules named in
``HARNESS_PLUGINS``. A plugin that fails to import, or whose registration
hook raises, or that registers a malformed component, becomes a recorded
warning; the other plugins keep working. A plugin may declare the hook API
versions it supports (module attribute ``HARNESS_API = ">=1,<2"``); one whose
range excludes :data:`harness.hookspecs.HOOK_API_VERSION` is refused.

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
from collections.abc import Callable, Iterable
from functools import lru_cache, partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError, suggest
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


def _candidates() -> Iterable[tuple[str, Provenance, Callable[[], object]]]:
    disabled = _disabled()
    disabled_dists = {_normalize(name) for name in disabled}
    for ep in _sorted_entry_points():
        dist = _dist_name(ep)
        if ep.name in disabled or _normalize(dist) in disabled_dists or ("*" in disabled and dist != _SELF):
            continue
        version = ep.dist.version if ep.dist is not None else "unknown"
        yield ep.name, Provenance(ep.name, dist, version), ep.load
    for module in os.environ.get("HARNESS_PLUGINS", "").split(","):
        module = module.strip()
        if module and module not in disabled:
            yield module, Provenance(module, "HARNESS_PLUGINS", "-"), partial(importlib.import_module, module)


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
    """Add a plugin's registrations, all or nothing: a malformed component or a duplicate
    name makes the plugin fail (with the reason) and register nothing."""
    for kind, objs in found.items():
        for obj in objs:
            problem = malformed(kind, obj)
            if problem:
                info.error = f"register_{kind} registered a malformed {_SINGULAR[kind]}: {problem}"
                return
    for kind, objs in found.items():
        namespace = registry.namespace(kind)
        own: dict[str, Any] = {}  # name -> component, within this plugin
        for obj in objs:
            if own.setdefault(obj.name, obj) is not obj:
                info.error = (
                    f"register_{kind} registered two different {kind} named `{obj.name}`; rename one of them."
                )
                return
            conflict = namespace.conflict(obj.name, obj, prov)
            if conflict:
                info.error = conflict
                registry.conflicts.append(conflict)
                return
    for kind, objs in found.items():
        for obj in objs:
            registry.namespace(kind).add(obj, prov)
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
    for name, prov, load in _candidates():
        info = PluginInfo(name=name, distribution=prov.distribution, version=prov.version)
        registry.plugins.append(info)
        if name in provenance:
            other = provenance[name]
            raise PluginError(
                f"Two plugins are both named `{name}`: one from {other.distribution} {other.version}, "
                f"one from {prov.distribution} {prov.version}. Rename the entry point in one of them "
                f"(group `{GROUP}` in its pyproject.toml) or uninstall one."
            )
        plugin: object = None
        try:
            plugin = load()
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


def get_registry(strict: bool = True) -> Registry:
    """The registry for this process (rebuilt when the plugin env switches change).

    ``strict``: raise :class:`PluginError` when two plugins registered the same name
    (``harness plugins`` passes False to show every plugin first).
    """
    key = (os.environ.get("HARNESS_DISABLE_PLUGINS", ""), os.environ.get("HARNESS_PLUGINS", ""))
    registry = _cached(key)
    if strict:
        registry.check()
    return registry


def clear_cache() -> None:
    """Forget loaded registries (after installing or removing a plugin)."""
    _cached.cache_clear()
    importlib.invalidate_caches()
