"""One way to open the store: a SQLite path or a ``postgresql://`` URL."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from storage import sqlite
from storage.credits import Period
from storage.models import CostTable
from storage.sql import Clock, SQLStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""URL prefixes that select the PostgreSQL engine."""


def is_postgres_url(location: str | Path) -> bool:
    """True if ``location`` is a PostgreSQL URL rather than a SQLite file path."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


async def open_store(
    location: str | Path,
    *,
    default_daily_credits: int,
    cost_table: CostTable | None = None,
    clock: Clock | None = None,
    period: Period = Period.DAILY,
    database_clock: Clock | None = None,
) -> SQLStore:
    """Open (creating and migrating) the database at ``location`` as a ``Store``.

    Raises ``StoreUnavailableError`` if a PostgreSQL server cannot be reached.

    ``location`` is a ``postgresql://user:password@host:port/database`` URL or a SQLite
    file path (its folder is created). The other arguments are as for
    ``storage.sqlite.open_store``.
    """
    if is_postgres_url(location):
        # Imported here so SQLite-only deployments never load asyncpg.
        from storage import postgres

        return await postgres.open_store(
            str(location),
            default_daily_credits=default_daily_credits,
            cost_table=cost_table,
            clock=clock,
            period=period,
            database_clock=database_clock,
        )
    return await sqlite.open_store(
        location,
        default_daily_credits=default_daily_credits,
        cost_table=cost_table,
        clock=clock,
        period=period,
        database_clock=database_clock,
    )


class StoreSettings(Protocol):
    """The settings ``open_store_from_settings`` reads (``core.settings.BotSettings``)."""

    @property
    def database_url(self) -> str | None:
        """A ``postgresql://`` URL, or ``None`` for SQLite."""
        ...

    @property
    def database_path(self) -> Path:
        """The SQLite file used when there is no URL."""
        ...

    @property
    def default_daily_credits(self) -> int:
        """Each member's allowance per period unless a moderator set one."""
        ...


async def open_store_from_settings(
    settings: StoreSettings, *, cost_table: CostTable | None = None, period: Period = Period.DAILY
) -> SQLStore:
    """Open the store the settings select: ``DATABASE_URL`` if set, else ``DATABASE_PATH``."""
    return await open_store(
        settings.database_url or settings.database_path,
        default_daily_credits=settings.default_daily_credits,
        cost_table=cost_table,
        period=period,
    )
