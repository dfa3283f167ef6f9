"""The plugin manager: loads entry points of group ``harness`` into a Registry.

Built-ins come first (they are entry points of the ``harness`` distribution
itself), then third-party distributions, then modules named in
``HARNESS_PLUGINS``. A plugin that fails to import, or whose registration
hook raises, becomes a recorded warning; the other plugins keep working.

Environment switches:
- ``HARNESS_DISABLE_PLUGINS``: comma-separated plugin (entry-point) or
  distribution names to skip; ``*`` skips every third-party plugin.
- ``HARNESS_PLUGINS``: comma-separated importable modules to load as extra
  plugins (handy for a plugin under development that is not installed).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError
from harness.registry import KINDS, PluginInfo, Provenance, Registry

GROUP = "harness"
_SELF = "harness"


def _disabled() -> set[str]:
    raw = os.environ.get("HARNESS_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _sorted_entry_points() -> list[EntryPoint]:
    eps = list(entry_points(group=GROUP))
    return sorted(eps, key=lambda ep: (_dist_name(ep) != _SELF, _dist_name(ep), ep.name))


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "unknown"


def _candidates() -> Iterable[tuple[str, Provenance, Callable[[], Any]]]:
    disabled = _disabled()
    for ep in _sorted_entry_points():
        dist = _dist_name(ep)
        if ep.name in disabled or dist in disabled or ("*" in disabled and dist != _SELF):
            continue
        version = ep.dist.version if ep.dist is not None else "unknown"
        yield ep.name, Provenance(ep.name, dist, version), ep.load
    for module in os.environ.get("HARNESS_PLUGINS", "").split(","):
        module = module.strip()
        if module and module not in disabled:
            yield module, Provenance(module, "HARNESS_PLUGINS", "-"), lambda m=module: importlib.import_module(m)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def build_registry() -> Registry:
    """Load every enabled plugin and collect what it registers (uncached)."""
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
        try:
            plugin = load()
            pm.register(plugin, name=name)
            pm.check_pending()
        except Exception as exc:  # a broken plugin must not take the others down
            if pm.has_plugin(name):
                pm.unregister(name=name)
            info.error = _describe(exc)
            continue
        infos[name] = info
        provenance[name] = prov
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}")
        for impl in reversed(caller.get_hookimpls()):  # pluggy lists them last-registered first
            info = infos[impl.plugin_name]
            if info.error:
                continue
            collected: list[Any] = []
            try:
                impl.function(register=collected.append)
            except Exception as exc:
                info.error = f"register_{kind} raised {_describe(exc)}"
                continue
            namespace = registry.namespace(kind)
            for obj in collected:
                namespace.add(obj, provenance[impl.plugin_name])
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
