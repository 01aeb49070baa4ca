"""The PostgreSQL engine: ``PostgresDatabase`` under the shared ``storage.sql`` stores.

Use it when several bot processes (on one machine or many) share one database; SQLite
allows one process per file. Select it with ``DATABASE_URL=postgresql://...``.

Why reservations cannot overspend across processes
--------------------------------------------------
PostgreSQL runs READ COMMITTED: two concurrent ``INSERT ... SELECT ... WHERE allowance -
used >= cost`` statements would each see the balance before the other's charge and both
insert. The reservation therefore runs in a transaction that first takes
``pg_advisory_xact_lock`` on a hash of ``("member", guild, user)``. The second reservation
of the same member waits for the first to commit, and its statement then starts with a
snapshot that includes the first charge. Members do not wait for each other.

Guarded transitions (``UPDATE ... WHERE id = :id AND state = 'completed'``) need no lock:
when two transactions update the same row, the second waits for the first, re-checks its
``WHERE`` against the committed row, finds the state changed, and changes nothing.
"""

from __future__ import annotations

from storage.credits import Period, validate_credits
from storage.models import CostTable
from storage.postgres.database import (
    DEFAULT_POOL_SIZE,
    PostgresDatabase,
    describe,
    translate,
)
from storage.sql import Clock, SQLStore


async def open_store(
    url: str,
    *,
    default_daily_credits: int,
    cost_table: CostTable | None = None,
    clock: Clock | None = None,
    period: Period = Period.DAILY,
    database_clock: Clock | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> SQLStore:
    """Connect to (and migrate) the PostgreSQL database at ``url`` as a ``Store``.

    The other arguments are as for ``storage.sqlite.open_store``; ``pool_size`` caps the
    connections this process opens.
    """
    validate_credits(default_daily_credits, what="default credits")
    db = await PostgresDatabase.open(url, pool_size=pool_size)
    try:
        return SQLStore(
            db,
            default_daily_credits=default_daily_credits,
            cost_table=cost_table,
            clock=clock,
            period=period,
            database_clock=database_clock,
        )
    except BaseException:
        await db.close()
        raise


__all__ = [
    "DEFAULT_POOL_SIZE",
    "PostgresDatabase",
    "describe",
    "open_store",
    "translate",
]
