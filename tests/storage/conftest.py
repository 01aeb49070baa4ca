"""Fixtures for the storage tests: a real SQLite file per test and a movable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import SQLiteStore, open_store
from tests.storage.helpers import FakeClock

DEFAULT_CREDITS = 10


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database path inside a folder that does not exist yet."""
    return tmp_path / "data" / "happyhorse.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at ``helpers.START``."""
    return FakeClock()


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    """An open store on a fresh file, closed after the test."""
    opened = await open_store(db_path, default_daily_credits=DEFAULT_CREDITS, clock=clock)
    try:
        yield opened
    finally:
        await opened.close()
