"""Fixtures for the storage tests: each test runs on both engines, with a movable clock.

``engine`` is parametrised over SQLite and PostgreSQL, so every test that uses ``db_path``
or ``store`` runs twice (``test_x[sqlite]``, ``test_x[postgres]``). A module that only
concerns one engine overrides ``engine``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import SQLStore, open_store
from tests.storage.helpers import FakeClock

DEFAULT_CREDITS = 10
ENGINES = ("sqlite", "postgres")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The database engine the test runs on."""
    return str(request.param)


@pytest.fixture
def db_path(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    """Where a fresh database lives: a SQLite path (folder not yet created) or a PG URL."""
    if engine == "sqlite":
        return tmp_path / "data" / "happyhorse.sqlite3"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at ``helpers.START``."""
    return FakeClock()


@pytest.fixture
async def store(db_path: str | Path, clock: FakeClock) -> AsyncIterator[SQLStore]:
    """An open store on a fresh database, closed after the test."""
    opened = await open_store(
        db_path, default_daily_credits=DEFAULT_CREDITS, clock=clock, database_clock=clock
    )
    try:
        yield opened
    finally:
        await opened.close()
