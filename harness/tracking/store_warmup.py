"""A new sqlite MLflow store, created by a second process while the driver imports what its runs
need.

Creating an MLflow sqlite store runs some 60 schema migrations (about 1,100 disk syncs): 1.4 s
on a 2-core CPU, plus 0.8 s for the second process to import MLflow. A first ``harness run`` in a
folder (the quick start) pays it before anything trains. :class:`StoreWarmup` starts that work in
a second process under a temporary name beside the store, the driver imports torch and Lightning
meanwhile (``--executor local``; see :meth:`harness.runner._run_locked`), then moves the finished
file into place (``os.link``: a store that appeared meanwhile is never replaced) and opens it as
usual. Whatever goes wrong in the second process (it fails, it is slow, the machine has one core
busy) costs nothing but the overlap: the driver then creates the store itself, with the same
checks and errors as without a warm-up.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

SQLITE = "sqlite:///"

#: how long the driver waits for the second process before creating the store itself
WAIT_S = 60.0


class StoreWarmup:
    """The second process creating the store at ``path`` (see the module doc)."""

    def __init__(self, path: Path, process: subprocess.Popen[bytes], scratch: Path) -> None:
        self.path, self.process, self.scratch = path, process, scratch

    @classmethod
    def start(cls, uri: str) -> StoreWarmup | None:
        """Start creating the sqlite store of ``uri`` (an absolute ``sqlite:///`` URI, as
        :func:`harness.tracking.mlflow_store.resolve_uri` makes it) when it does not exist yet;
        None for any other store, or when its folder cannot be written."""
        if not uri.startswith(SQLITE):
            return None
        path = Path(uri[len(SQLITE) :])
        if not path.is_absolute() or path.exists() or not os.access(path.parent, os.W_OK):
            return None
        scratch = path.with_name(f".{path.name}.new-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.tracking.store_warmup", str(scratch)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(path, process, scratch)

    def finish(self, timeout: float = WAIT_S) -> bool:
        """Wait for the second process and move its store into place; True when it did."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        if code != 0 or not self.scratch.exists():
            return False
        try:
            os.link(self.scratch, self.path)  # never replaces a store that appeared meanwhile
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Stop the second process if it still runs, and remove its temporary files."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for leftover in (self.scratch, self.scratch.with_name(self.scratch.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def create(path: str) -> None:
    """Create the store at ``path`` as the driver's first connection would (tables, migrations,
    the Default experiment, with the artifact root of this working directory)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"{SQLITE}{path}").search_experiments(max_results=1)


if __name__ == "__main__":
    create(sys.argv[1])
