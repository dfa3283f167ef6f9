"""harness: a benchmark harness and plugin registry for sequence models.

The public API for plugin authors is re-exported here and loaded lazily, so
``import harness`` (and ``harness --help``) stays fast. Type checkers see the
explicit imports under ``TYPE_CHECKING`` (the package ships ``py.typed``);
``tests/test_public_api.py`` keeps them, ``__all__`` and ``_EXPORTS`` in step.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at runtime ``__getattr__`` below imports on first use
    from harness.errors import HarnessError, RunFailure
    from harness.hookspecs import HOOK_API_VERSION, hookimpl
    from harness.interfaces import (
        CAPABILITIES,
        Architecture,
        DataConfig,
        EncoderOutput,
        InputSpec,
        MetricSpec,
        Params,
        Reporter,
        Task,
        TaskInfo,
        Width,
    )
    from harness.records import RunRecord, RunSpec

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
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
    "Width": "harness.interfaces",
    "HarnessError": "harness.errors",
    "RunFailure": "harness.errors",
    "RunSpec": "harness.records",
    "RunRecord": "harness.records",
}

# a literal list, so that type checkers know what ``from harness import ...`` re-exports
__all__ = [
    "__version__",
    "hookimpl",
    "HOOK_API_VERSION",
    "Architecture",
    "Task",
    "TaskInfo",
    "InputSpec",
    "EncoderOutput",
    "DataConfig",
    "MetricSpec",
    "Reporter",
    "Params",
    "CAPABILITIES",
    "Width",
    "HarnessError",
    "RunFailure",
    "RunSpec",
    "RunRecord",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
