"""harness: a benchmark harness and plugin registry for sequence models.

The public API for plugin authors is re-exported here and loaded lazily, so
``import harness`` (and ``harness --help``) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "hookimpl": "harness.hookspecs",
    "HOOK_API_VERSION": "harness.hookspecs",
    "Architecture": "harness.interfaces",
    "Task": "harness.interfaces",
    "TaskInfo": "harness.interfaces",
    "InputSpec": "harness.interfaces",
    "EncoderOutput": "harness.interfaces",
    "DataConfig": "harness.interfaces",
    "MetricSpec": "harness.interfaces",
    "Reporter": "harness.interfaces",
    "Params": "harness.interfaces",
    "CAPABILITIES": "harness.interfaces",
    "HarnessError": "harness.errors",
    "RunFailure": "harness.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
