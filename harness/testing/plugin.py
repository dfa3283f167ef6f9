"""Conformance checks of everything an installed plugin registers (``harness plugins check``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from harness.testing._common import CheckResult
from harness.testing.architecture import check_architecture
from harness.testing.components import check_metric, check_reporter
from harness.testing.task import check_task


def _normalize(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _entry_point_modules() -> dict[str, str]:
    from importlib.metadata import entry_points

    from harness.plugins import GROUP

    return {ep.name: ep.module for ep in entry_points(group=GROUP)}


def _matches(info: Any, target: str, modules: Mapping[str, str]) -> bool:
    module = info.name if info.distribution == "HARNESS_PLUGINS" else modules.get(info.name, "")
    return (
        info.name == target
        or _normalize(info.distribution) == _normalize(target)
        or bool(module)
        and (module == target or module.startswith(target + "."))
    )


_CHECKS: dict[str, Callable[[Any], list[CheckResult]]] = {
    "architectures": lambda obj: check_architecture(obj),
    "tasks": lambda obj: check_task(obj),
    "metrics": lambda obj: check_metric(obj),
    "reporters": lambda obj: check_reporter(obj),
}


def check_plugin(target: str, kinds: Iterable[str] | None = None) -> list[CheckResult]:
    """Run the checks of every component that the plugin(s) ``target`` registered.

    ``target`` is a distribution name (``harness-example-plugin``), a plugin module
    (``harness_example_plugin``, or a package holding plugin modules) or an entry-point name.
    ``kinds`` limits the checks to some kinds (``architectures``, ``tasks``, ...). Tasks are
    checked with their default params. A plugin that failed to load gives one failed result.
    Raises :class:`harness.errors.UnknownNameError` when no installed plugin matches.
    """
    from harness.errors import UnknownNameError, suggest
    from harness.plugins import get_registry
    from harness.registry import KINDS

    registry = get_registry(strict=False)
    modules = _entry_point_modules()
    found = [info for info in registry.plugins if _matches(info, target, modules)]
    if not found:
        names = sorted(
            {p.distribution for p in registry.plugins}
            | {p.name for p in registry.plugins}
            | {modules.get(p.name, p.name).split(".")[0] for p in registry.plugins}
        )
        installed = ", ".join(
            f"{p.name} ({p.distribution}: {modules.get(p.name, p.name)})" for p in registry.plugins
        )
        raise UnknownNameError(
            f"No installed plugin matches `{target}`. {suggest(target, names)}Installed plugins: "
            f"{installed or 'none'}. Give a distribution name, a module or an entry-point name "
            f"(see `harness plugins`); install the plugin or name its module in HARNESS_PLUGINS."
        )
    wanted = set(kinds) if kinds else set(KINDS)
    results: list[CheckResult] = []
    for info in found:
        if info.error:
            results.append(CheckResult(f"plugin {info.name}", "loads", False, info.error))
            continue
        if not info.registered:
            results.append(
                CheckResult(
                    f"plugin {info.name}",
                    "registers components",
                    False,
                    "the plugin registers nothing: implement a register_* hook",
                )
            )
        for kind in KINDS:
            if kind not in wanted:
                continue
            for name in info.registered.get(kind, []):
                results += _CHECKS[kind](registry.namespace(kind).get(name).obj)
    return results
