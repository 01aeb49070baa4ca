"""``CommandSyncStore`` in portable SQL: which command payload each sync target last got.

``sync_if_changed`` makes "compare, sync, remember" one critical section across every
process on the database: on PostgreSQL a transaction under the advisory lock of the key
``("command_sync",)``, on SQLite a ``BEGIN IMMEDIATE`` transaction (SQLite's one write
lock). Processes restarting together therefore sync at most once between them: the
first syncs and stores the hash, the others wait, read it and skip. The hash is stored
only after the sync succeeded, so a failed sync is tried again at the next start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from storage.sql.common import Clock, _ts
from storage.sql.database import Database

LOCK_KEY = ("command_sync",)

_UPSERT_SQL = """
    INSERT INTO command_sync (target, payload_hash, synced_at) VALUES (?, ?, ?)
    ON CONFLICT (target) DO UPDATE
        SET payload_hash = excluded.payload_hash, synced_at = excluded.synced_at
"""


class SQLCommandSyncStore:
    """``CommandSyncStore`` on either engine."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock

    async def stored_hash(self, target: str) -> str | None:
        """The hash of the payload last synced to ``target``, if any."""
        row = await self._db.fetch_one(
            "SELECT payload_hash FROM command_sync WHERE target = ?", (target,)
        )
        return None if row is None else str(row["payload_hash"])

    async def sync_if_changed(
        self, target: str, payload_hash: str, sync: Callable[[], Awaitable[object]]
    ) -> bool:
        """Run ``sync()`` unless ``target`` already has ``payload_hash``; True if it ran.

        Holds the lock described in the module docstring across the comparison, the sync
        and the write, so keep ``sync`` short and bounded (a timeout around it). If
        ``sync`` raises, nothing is stored and the exception propagates.
        """
        async with self._db.transaction(lock=LOCK_KEY) as tx:
            row = await tx.fetch_one(
                "SELECT payload_hash FROM command_sync WHERE target = ?", (target,)
            )
            if row is not None and row["payload_hash"] == payload_hash:
                return False
            await sync()
            await tx.execute(_UPSERT_SQL, (target, payload_hash, _ts(self._clock())))
        return True

    async def forget(self, target: str) -> None:
        """Drop what is known about ``target`` (the next start syncs it again)."""
        await self._db.execute("DELETE FROM command_sync WHERE target = ?", (target,))
