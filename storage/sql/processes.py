"""``ProcessStore`` in portable SQL: the registry of running bot processes.

Every process registers at start-up under an id naming its host and pid (see
``core.processes``), beats while it runs and forgets itself when it stops. A process is
*live* while its ``last_seen`` is within the liveness window; the leases of a process
that is not live are void (see ``storage.sql.claims``), and the status budget is shared
among the live ones.
"""

from __future__ import annotations

from storage.models import ProcessInfo
from storage.sql.common import Clock, _req_dt, _ts
from storage.sql.database import Database, Row

_BEAT_SQL = """
    INSERT INTO processes (id, started, last_seen) VALUES (:id, :now, :now)
    ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen
"""


def _process(row: Row) -> ProcessInfo:
    return ProcessInfo(
        id=row["id"], started=_req_dt(row["started"]), last_seen=_req_dt(row["last_seen"])
    )


class SQLProcessStore:
    """``ProcessStore`` on either engine."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock

    def _now(self) -> float:
        return _ts(self._clock())

    async def beat(self, process_id: str) -> None:
        """Register the process, or record that it is still alive (an upsert)."""
        await self._db.execute(_BEAT_SQL, {"id": process_id, "now": self._now()})

    async def live(self, within_seconds: float) -> list[ProcessInfo]:
        """Processes seen within the last ``within_seconds``, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM processes WHERE last_seen > :after ORDER BY started, id",
            {"after": self._now() - within_seconds},
        )
        return [_process(row) for row in rows]

    async def all(self) -> list[ProcessInfo]:
        """Every registered process, live or not, oldest first."""
        rows = await self._db.fetch_all("SELECT * FROM processes ORDER BY started, id")
        return [_process(row) for row in rows]

    async def forget(self, process_id: str) -> bool:
        """Remove a process (it stopped, or is known dead): its leases become void at once."""
        return await self._db.execute("DELETE FROM processes WHERE id = ?", (process_id,)) == 1

    async def forget_silent(self, older_than_seconds: float) -> int:
        """Remove processes not seen for ``older_than_seconds``; return how many."""
        return await self._db.execute(
            "DELETE FROM processes WHERE last_seen <= ?", (self._now() - older_than_seconds,)
        )
