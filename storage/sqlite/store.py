"""``SQLiteStore``: the three SQLite stores over one database file, and ``open_store``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from storage.credits import (
    Period,
    validate_credits,
)
from storage.models import (
    CostTable,
)
from storage.sqlite.common import (
    Clock,
    utc_now,
)
from storage.sqlite.credits import SQLiteCreditStore
from storage.sqlite.database import Database
from storage.sqlite.guilds import SQLiteGuildSettingsStore
from storage.sqlite.jobs import SQLiteJobStore


class SQLiteStore:
    """``Store`` on one SQLite file. Build it with ``await open_store(path, ...)``."""

    def __init__(
        self,
        db: Database,
        *,
        default_daily_credits: int,
        cost_table: CostTable | None = None,
        clock: Clock | None = None,
        period: Period = Period.DAILY,
    ) -> None:
        """Wrap an open ``Database``; ``close()`` closes it."""
        clock = clock or utc_now
        self.database = db
        self._jobs = SQLiteJobStore(db, clock, period)
        self._credits = SQLiteCreditStore(
            db, clock, period, cost_table or CostTable(), default_daily_credits
        )
        self._guilds = SQLiteGuildSettingsStore(db, clock)

    @property
    def jobs(self) -> SQLiteJobStore:
        """The job ledger."""
        return self._jobs

    @property
    def credits(self) -> SQLiteCreditStore:
        """Allowances and reservations."""
        return self._credits

    @property
    def guilds(self) -> SQLiteGuildSettingsStore:
        """Per-guild settings."""
        return self._guilds

    async def ping(self) -> None:
        """Run a trivial query; raise if the database cannot answer (health checks)."""
        await self.database.fetch_one("SELECT 1")

    async def close(self) -> None:
        """Close the database connection."""
        await self.database.close()

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_store(
    path: str | Path,
    *,
    default_daily_credits: int,
    cost_table: CostTable | None = None,
    clock: Clock | None = None,
    period: Period = Period.DAILY,
) -> SQLiteStore:
    """Open (creating and migrating) the SQLite database at ``path`` as a ``Store``.

    ``default_daily_credits`` is each user's allowance per period when neither a
    per-user override nor a guild default applies; ``period`` defaults to a UTC day.
    ``clock`` returns timezone-aware "now" (tests inject one to move time).
    """
    validate_credits(default_daily_credits, what="default credits")
    db = await Database.open(path)
    try:
        return SQLiteStore(
            db,
            default_daily_credits=default_daily_credits,
            cost_table=cost_table,
            clock=clock,
            period=period,
        )
    except BaseException:
        await db.close()
        raise


if TYPE_CHECKING:
    from storage.store import Store

    def _implements_store(store: SQLiteStore) -> Store:
        """Lets mypy prove that ``SQLiteStore`` satisfies the ``Store`` protocol."""
        return store
