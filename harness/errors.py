"""The single error family of harness.

Every error a user can cause (bad suite, unknown name, broken plugin, infeasible
resources) is a :class:`HarnessError`. The CLI prints its message without a
traceback and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A user-facing error: the message says what, where and how to fix."""

    exit_code = 2


class SuiteError(HarnessError):
    """The suite file is malformed or names something impossible."""


class PluginError(HarnessError):
    """A plugin is broken or two plugins disagree (duplicate names)."""


class UnknownNameError(HarnessError):
    """A name (architecture, task, metric, reporter) is not registered."""


class ResourceError(HarnessError):
    """A resource request that no node of the cluster can satisfy."""


class RunFailure(Exception):
    """A run failed for a reason worth recording (NaN loss, timeout...).

    Not a HarnessError: a failed run is recorded and the suite goes on.
    """


class Diverged(RunFailure):
    """The run trained to the end but its test loss or primary metric is non-finite, or worse
    than the task's ``TaskInfo.divergence_bound``: recorded failed, kind ``diverged``."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a ``did you mean`` fragment (or an empty string)."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = ", ".join(f"`{c}`" for c in close)
    return f"Did you mean {quoted}? "
