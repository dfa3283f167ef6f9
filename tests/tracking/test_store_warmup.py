"""A new sqlite MLflow store made by a second process (``harness.tracking.store_warmup``): the same
store the driver would have made, moved into place only when none appeared meanwhile, no
temporary files left behind, and nothing at all for stores that exist or are not sqlite files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from harness.tracking.store_warmup import StoreWarmup, create


def _schema(db: Path) -> tuple[list[tuple[str]], list[tuple[int, str, str]]]:
    with sqlite3.connect(db) as conn:
        version = conn.execute("select version_num from alembic_version").fetchall()
        experiments = conn.execute(
            "select experiment_id, name, artifact_location from experiments"
        ).fetchall()
    return version, experiments


def test_the_second_process_makes_the_store_the_driver_would_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the Default experiment's artifact root follows the working folder
    warm = StoreWarmup.start(f"sqlite:///{tmp_path / 'warm.db'}")
    assert warm is not None
    try:
        assert warm.finish()
    finally:
        warm.close()
    create(str(tmp_path / "direct.db"))
    assert _schema(tmp_path / "warm.db") == _schema(tmp_path / "direct.db")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db" or p.name.startswith(".")) == [
        "direct.db",
        "warm.db",
    ]


def test_a_store_that_appears_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    warm = StoreWarmup.start(f"sqlite:///{path}")
    assert warm is not None
    path.write_bytes(b"someone else's store")
    try:
        assert not warm.finish()
    finally:
        warm.close()
    assert path.read_bytes() == b"someone else's store"
    assert os.listdir(tmp_path) == ["mlflow.db"]


def test_existing_stores_and_other_uris_get_no_second_process(tmp_path: Path) -> None:
    existing = tmp_path / "mlflow.db"
    existing.write_bytes(b"")
    assert StoreWarmup.start(f"sqlite:///{existing}") is None
    assert StoreWarmup.start("http://127.0.0.1:5000") is None
    assert StoreWarmup.start("sqlite:///relative.db") is None
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            assert StoreWarmup.start(f"sqlite:///{locked / 'mlflow.db'}") is None
    finally:
        locked.chmod(0o700)


def test_a_second_process_that_fails_leaves_the_store_to_the_driver(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    warm = StoreWarmup.start(f"sqlite:///{path}")
    assert warm is not None
    warm.process.kill()  # as if it crashed
    try:
        assert not warm.finish()
    finally:
        warm.close()
    assert not path.exists()
    assert os.listdir(tmp_path) == []
