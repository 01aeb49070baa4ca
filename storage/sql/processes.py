"""``ProcessStore`` in portable SQL: the registry of running bot processes.

Every process registers at start-up under an id naming its host and pid (see
``core.processes``), beats while it runs and forgets itself when it stops. A process is
*live* while its ``last_seen`` is within the liveness window; the leases of a process
that is not live are void (see ``storage.sql.claims``), and the status budget is shared
among the live ones.
"""

from __future__ import annotations

from datetime import datetime

from storage.models import ProcessInfo
from storage.sql.common import Clock, LeaseClock, _req_dt
from storage.sql.database import Database, Row

_BEAT_SQL = """
    INSERT INTO processes (id, started, last_seen) VALUES (:id, {now}, {now})
    ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen
"""


def _process(row: Row) -> ProcessInfo:
    return ProcessInfo(
        id=row["id"], started=_req_dt(row["started"]), last_seen=_req_dt(row["last_seen"])
    )


class SQLProcessStore(LeaseClock):
    """``ProcessStore`` on either engine.

    Beats and liveness are read by the database's clock (``LeaseClock``), the one every
    process agrees on: a process whose own clock is skewed is still seen as live exactly
    while it beats, and never ends another's leases early.
    """

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        """Use ``open_store`` rather than building this directly; ``clock`` stands for the
        database's clock in tests (``None``: the database's own)."""
        self._db = db
        self._db_clock = clock

    async def beat(self, process_id: str) -> None:
        """Register the process, or record that it is still alive (an upsert)."""
        at, params = self._at()
        await self._db.execute(_BEAT_SQL.format(now=at), {**params, "id": process_id})

    async def live(self, within_seconds: float) -> list[ProcessInfo]:
        """Processes seen within the last ``within_seconds``, oldest first."""
        at, params = self._at()
        rows = await self._db.fetch_all(
            f"""SELECT * FROM processes WHERE last_seen > {at} - :within
               ORDER BY started, id""",  # noqa: S608 - constant text only
            {**params, "within": float(within_seconds)},
        )
        return [_process(row) for row in rows]

    async def now(self) -> datetime:
        """The database's clock now, read in a statement of its own (so after every
        statement this process has already committed)."""
        at, params = self._at()
        row = await self._db.fetch_one(f"SELECT {at} AS now", params)
        assert row is not None
        return _req_dt(row["now"])

    async def all(self) -> list[ProcessInfo]:
        """Every registered process, live or not, oldest first."""
        rows = await self._db.fetch_all("SELECT * FROM processes ORDER BY started, id")
        return [_process(row) for row in rows]

    async def forget(self, process_id: str) -> bool:
        """Remove a process (it stopped, or is known dead): its leases become void at once."""
        return await self._db.execute("DELETE FROM processes WHERE id = ?", (process_id,)) == 1

    async def forget_silent(self, older_than_seconds: float) -> int:
        """Remove processes not seen for ``older_than_seconds``; return how many."""
        at, params = self._at()
        return await self._db.execute(
            f"DELETE FROM processes WHERE last_seen <= {at} - :older",  # noqa: S608 - constant
            {**params, "older": float(older_than_seconds)},
        )
