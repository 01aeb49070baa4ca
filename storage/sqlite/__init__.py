"""The SQLite engine: its ``Database`` under the shared ``storage.sql`` stores, and ``open_store``.

Why the write pattern is safe under concurrent writers
------------------------------------------------------
Two kinds of concurrency meet here: coroutines of one bot sharing one connection, and
separate connections (a second process, a restarted bot whose old process is still
exiting, a maintenance script) sharing the file.

1. **Every change that must not happen twice is one guarded statement.** A transition is
   ``UPDATE jobs SET state = 'delivered' ... WHERE id = ? AND state = 'completed'``; a
   reservation is ``INSERT INTO jobs ... SELECT ... WHERE allowance - used >= cost`` (a
   statement locked on the member, which PostgreSQL needs and SQLite's single writer
   gives anyway). A single write statement runs inside SQLite's write lock from its first
   read to its commit, so the check and the change cannot be separated by another writer: the
   statement that runs second sees the first one's result, its ``WHERE`` no longer
   matches, and its row count of 0 tells its caller it lost. Two polling loops, a loop
   and a restart, or fifty simultaneous ``/generate`` commands therefore cannot both
   deliver, both refund, or overspend.
2. **Multi-statement changes use ``BEGIN IMMEDIATE``** (moderator changes, which read the
   old value, write the new one and an audit row). ``IMMEDIATE`` takes the write lock
   before the first read, so nothing can change between reading and writing, and a
   deferred transaction's "read, then fail to upgrade to a writer" deadlock cannot occur.
3. **Within one process**, aiosqlite runs the connection's statements one at a time on
   its own thread, and ``Database`` holds an ``asyncio.Lock`` for each statement and for
   the whole of each transaction, so no coroutine's statement can slip into another
   coroutine's open transaction.
4. **Across processes**, SQLite's file lock admits one writer at a time; WAL lets readers
   carry on meanwhile, and the busy timeout makes a second writer wait for the lock
   instead of failing at once.

Nothing is kept only in memory: a crash loses at most the statement in flight, which
SQLite either committed entirely or not at all (``synchronous = FULL``, so a commit is on
disk before the call returns).

Posting a video exactly once
----------------------------
The database cannot make "post to Discord" and "mark delivered" one atomic step, so
delivery is: ``claim_delivery`` (a lease only one poster can hold, naming its process and
ending by the database's clock), post, then ``mark_delivered`` (fenced: only while the
lease is still the poster's). Only a crash or a stall between posting and the record can
leave a posted but undelivered job; its lease then runs out (or its owner stops beating)
and the job comes back from ``deliverable_jobs``. Each job carries a unique
``delivery_nonce`` (at most 25 characters, the limit of a Discord message nonce): the bot
sends it as the message nonce with ``enforce_nonce``, and before posting a job whose
lease ended unrecorded it looks for its recent post in the channel and, if there is one,
only records it (``botkit.posting``).
"""


from __future__ import annotations

from pathlib import Path

from storage.credits import Period, validate_credits
from storage.models import CostTable
from storage.sql import (
    MAX_BLOCKED_WORD_LENGTH,
    Clock,
    SQLCreditStore,
    SQLGuildSettingsStore,
    SQLJobStore,
    SQLStore,
    utc_now,
)
from storage.sqlite.database import Database

SQLiteStore = SQLStore
"""The store class on SQLite (the stores are shared by both engines; kept for callers)."""


async def open_store(
    path: str | Path,
    *,
    default_daily_credits: int,
    cost_table: CostTable | None = None,
    clock: Clock | None = None,
    period: Period = Period.DAILY,
    database_clock: Clock | None = None,
) -> SQLStore:
    """Open (creating and migrating) the SQLite database at ``path`` as a ``Store``.

    ``default_daily_credits`` is each user's allowance per period when neither a
    per-user override nor a guild default applies; ``period`` defaults to a UTC day.
    ``clock`` returns timezone-aware "now" (tests inject one to move time).
    """
    validate_credits(default_daily_credits, what="default credits")
    db = await Database.open(path)
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
    "MAX_BLOCKED_WORD_LENGTH",
    "SQLCreditStore",
    "SQLGuildSettingsStore",
    "SQLJobStore",
    "SQLStore",
    "SQLiteStore",
    "open_store",
    "utc_now",
]
