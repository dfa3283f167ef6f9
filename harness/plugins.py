"""The plugin manager: loads entry points of group ``harness`` into a Registry.

Built-ins come first (they are entry points of the ``harness`` distribution
itself), then third-party distributions, then modules named in
``HARNESS_PLUGINS``. A plugin that fails to import, or whose registration
hook raises, becomes a recorded warning; the other plugins keep working.

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
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError, suggest
from harness.registry import KINDS, PluginInfo, Provenance, Registry

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


def _candidates() -> Iterable[tuple[str, Provenance, Callable[[], Any]]]:
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
            yield module, Provenance(module, "HARNESS_PLUGINS", "-"), lambda m=module: importlib.import_module(m)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    """The hooks harness defines (those with a spec)."""
    return sorted(name for name, caller in vars(pm.hook).items() if caller.has_spec())


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Names of ``@hookimpl`` functions of ``plugin`` that match no hook (a typo, usually)."""
    known = set(_hook_names(pm))
    unknown = []
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


def _load_error(pm: pluggy.PluginManager, plugin: Any, exc: BaseException) -> str:
    """What went wrong loading ``plugin``, and how to fix it."""
    unknown = _unknown_hooks(pm, plugin) if plugin is not None else []
    if isinstance(exc, pluggy.PluginValidationError) and unknown:
        hooks = _hook_names(pm)
        problems = " ".join(f"`{name}` is not a harness hook. {suggest(name, hooks)}" for name in unknown)
        return f"{problems}Rename the function; the hooks are: {', '.join(hooks)}."
    return _describe(exc)


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
        plugin: Any = None
        try:
            plugin = load()
            pm.register(plugin, name=name)
            pm.check_pending()
        except Exception as exc:  # a broken plugin must not take the others down
            if pm.has_plugin(name):
                pm.unregister(name=name)
            info.error = _load_error(pm, plugin, exc)
            continue
        infos[name] = info
        provenance[name] = prov
    # First call every hook, then keep the registrations of the plugins that did not fail.
    # Hooks are called in load order (built-ins first), whatever order pluggy keeps them in
    # (registration order, or changed by tryfirst/trylast), so that a duplicate name is
    # always reported against the plugin that registered it first.
    rank = {name: index for index, name in enumerate(infos)}
    collected: dict[tuple[str, str], list[Any]] = {}
    order: dict[str, list[str]] = {}
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}")
        order[kind] = []
        for impl in sorted(caller.get_hookimpls(), key=lambda impl: rank[impl.plugin_name]):
            info = infos[impl.plugin_name]
            if info.error:
                continue
            found: list[Any] = []
            try:
                impl.function(register=found.append)
            except Exception as exc:
                info.error = f"register_{kind} raised {_describe(exc)}"
                continue
            collected[(kind, impl.plugin_name)] = found
            order[kind].append(impl.plugin_name)
    for kind in KINDS:
        namespace = registry.namespace(kind)
        for plugin_name in order[kind]:
            info = infos[plugin_name]
            if info.error:
                continue
            for obj in collected[(kind, plugin_name)]:
                namespace.add(obj, provenance[plugin_name])
                info.registered.setdefault(kind, []).append(getattr(obj, "name", "?"))
    return registry


@lru_cache(maxsize=8)
def _cached(key: tuple[str, str]) -> Registry:
    return build_registry()


def get_registry() -> Registry:
    """The registry for this process (rebuilt when the plugin env switches change)."""
    key = (os.environ.get("HARNESS_DISABLE_PLUGINS", ""), os.environ.get("HARNESS_PLUGINS", ""))
    return _cached(key)


def clear_cache() -> None:
    """Forget loaded registries (after installing or removing a plugin)."""
    _cached.cache_clear()
    importlib.invalidate_caches()
