"""``SQLStore``: the three shared SQL stores over one database of either engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.credits import (
    Period,
    validate_credits,
)
from storage.models import (
    CostTable,
)
from storage.sql.command_sync import SQLCommandSyncStore
from storage.sql.common import (
    Clock,
    utc_now,
)
from storage.sql.credits import SQLCreditStore
from storage.sql.database import Database
from storage.sql.gate import SQLSubmitGateStore
from storage.sql.guilds import SQLGuildSettingsStore
from storage.sql.jobs import SQLJobStore
from storage.sql.privacy import SQLPrivacyStore
from storage.sql.processes import SQLProcessStore


class SQLStore:
    """``Store`` on one database. Build it with ``await storage.open_store(...)``."""

    def __init__(
        self,
        db: Database,
        *,
        default_daily_credits: int,
        cost_table: CostTable | None = None,
        clock: Clock | None = None,
        period: Period = Period.DAILY,
        database_clock: Clock | None = None,
    ) -> None:
        """Wrap an open ``Database`` (SQLite or PostgreSQL); ``close()`` closes it.

        ``clock`` is this process's clock (the times it records); leases and liveness
        are measured by the database's own clock, read in SQL, unless a test passes a
        stand-in as ``database_clock`` (see ``storage.sql.common.LeaseClock``).
        """
        validate_credits(default_daily_credits, what="default credits")
        clock = clock or utc_now
        self.database = db
        self._jobs = SQLJobStore(db, clock, period, database_clock)
        self._credits = SQLCreditStore(
            db, clock, period, cost_table or CostTable(), default_daily_credits, database_clock
        )
        self._guilds = SQLGuildSettingsStore(db, clock)
        self._processes = SQLProcessStore(db, database_clock)
        self._command_sync = SQLCommandSyncStore(db, clock)
        self._privacy = SQLPrivacyStore(db, clock, period)
        self._gate = SQLSubmitGateStore(db, clock)

    @property
    def jobs(self) -> SQLJobStore:
        """The job ledger."""
        return self._jobs

    @property
    def credits(self) -> SQLCreditStore:
        """Allowances and reservations."""
        return self._credits

    @property
    def guilds(self) -> SQLGuildSettingsStore:
        """Per-guild settings."""
        return self._guilds

    @property
    def processes(self) -> SQLProcessStore:
        """The registry of running bot processes."""
        return self._processes

    @property
    def command_sync(self) -> SQLCommandSyncStore:
        """The hash of the command payload each sync target last got."""
        return self._command_sync

    @property
    def privacy(self) -> SQLPrivacyStore:
        """A member's data: exported or erased on request."""
        return self._privacy

    @property
    def gate(self) -> SQLSubmitGateStore:
        """The submit gate (the 402 pause and 429 hold), shared by every process."""
        return self._gate

    async def ping(self) -> None:
        """Run a trivial query; raise if the database cannot answer (health checks)."""
        await self.database.fetch_one("SELECT 1")

    async def close(self) -> None:
        """Close the database connection(s)."""
        await self.database.close()

    async def __aenter__(self) -> SQLStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


if TYPE_CHECKING:
    from storage.store import Store

    def _implements_store(store: SQLStore) -> Store:
        """Lets mypy prove that ``SQLStore`` satisfies the ``Store`` protocol."""
        return store
