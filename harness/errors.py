"""The single error family of harness.

Every error a user can cause (bad suite, unknown name, broken plugin, infeasible
resources) is a :class:`HarnessError`. The CLI prints its message without a
traceback and exits with code 2.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

#: the most characters of a user's value an error message quotes (a long value is cut, with "…")
QUOTE_LIMIT = 200


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


class ServiceUnreachable(HarnessError):
    """A service the suite needs (the Ray cluster, a local Ray instance, the MLflow tracking
    server) cannot be reached, did not answer in time or died: exit code 2, like bad input."""


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name`` (``default`` when unset);
    anything else is a :class:`HarnessError` naming the variable (a time limit users can set)."""
    import math
    import os

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise HarnessError(f"{name}={raw!r}: give a positive number of seconds (default {default:g}).")
    return value


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


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text``, cut to at most ``limit`` characters with a closing "…" when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_repr(limit: int) -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel = 4
    bounded.maxlist = bounded.maxtuple = bounded.maxset = bounded.maxdict = 12
    # longer than ``limit``, so that :func:`shorten` makes the cut (one "…", at the end)
    bounded.maxstring = bounded.maxother = bounded.maxlong = limit + 10
    return bounded


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """The repr of a user's value for an error message, at most ``limit`` characters.

    The repr is built bounded (a few levels, a dozen items each), so a huge or deeply shared
    value (a YAML alias bomb) costs no more to quote than a small one.
    """
    return shorten(_bounded_repr(limit).repr(value), limit)
