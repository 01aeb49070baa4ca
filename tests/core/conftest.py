"""Fixtures for the Discord-free job rules: a real store (SQLite and PostgreSQL) and sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.jobs import JobService
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.settings import ClientSettings
from storage import SQLStore, open_store


class Clock:
    """A clock the tests move by hand (shared by the store and the job service)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(processing_after=0.05, complete_after=0.1)) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Each job-rule test runs on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "bot.sqlite3"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
async def store(database: str | Path, clock: Clock) -> AsyncIterator[SQLStore]:
    store = await open_store(
        database, default_daily_credits=4, clock=clock, database_clock=clock
    )
    yield store
    await store.close()


@pytest.fixture
def settings(sandbox: SandboxServer) -> BotSettings:
    client = ClientSettings(
        api_key="test-key-123456",
        base_url=sandbox.base_url,
        timeout_seconds=2.0,
        status_rate_per_second=100.0,
        backoff_base_seconds=0.01,
        retry_cap_seconds=0.05,
        max_retries=1,
    )
    return BotSettings(
        discord_token="discord-token-abcdef",
        client=client,
        poll_first_delay_seconds=1.0,
        poll_interval_seconds=2.0,
        poll_max_interval_seconds=8.0,
        job_deadline_seconds=600.0,
    )


@pytest.fixture
async def service(
    settings: BotSettings, store: SQLStore, clock: Clock
) -> AsyncIterator[JobService]:
    async with HappyHorseClient(settings.client) as client:
        yield JobService(store, client, settings, clock=clock)


def with_deadline(settings: BotSettings, seconds: float) -> BotSettings:
    return settings.model_copy(update={"job_deadline_seconds": seconds})
