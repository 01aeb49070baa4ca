"""``SubmitGateStore`` in portable SQL: the 402 pause and the 429 hold, one row for all.

Every process reads and changes the same ``submit_gate`` row, so a 402 seen by one
process pauses every other, and a restart keeps the pause and its backoff. Each change is
one statement whose ``WHERE``/``CASE`` decides from the row as it is, so two processes
answering at once cannot lose each other's change (the backoff doubles once per 402).
"""

from __future__ import annotations

from storage.models import GateState
from storage.sql.common import Clock, _dt, _ts
from storage.sql.database import Database, Row

_COLUMNS = "out_of_credits, not_before, backoff"


def _state(row: Row | None) -> GateState:
    if row is None:
        return GateState()
    return GateState(
        out_of_credits=bool(row["out_of_credits"]),
        not_before=_dt(row["not_before"]),
        backoff_seconds=row["backoff"],
    )


class SQLSubmitGateStore:
    """``SubmitGateStore`` on either engine (migration sqlite 0008 / postgres 0007)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock

    def _now(self) -> float:
        return _ts(self._clock())

    async def read(self) -> GateState:
        """The gate as it is now."""
        return _state(
            await self._db.fetch_one(f"SELECT {_COLUMNS} FROM submit_gate WHERE id = 1")  # noqa: S608
        )

    async def pause_out_of_credits(self, first_seconds: float, max_seconds: float) -> GateState:
        """A 402: pause (or stay paused) for the current backoff, and double it up to the
        cap for the next 402. The first 402 of a pause waits ``first_seconds``."""
        row = await self._db.fetch_one(
            f"""UPDATE submit_gate SET
                   not_before = :now + CASE WHEN out_of_credits = 1 AND backoff IS NOT NULL
                                            THEN backoff ELSE :first END,
                   backoff = CASE
                       WHEN 2 * (CASE WHEN out_of_credits = 1 AND backoff IS NOT NULL
                                      THEN backoff ELSE :first END) > :cap THEN :cap
                       ELSE 2 * (CASE WHEN out_of_credits = 1 AND backoff IS NOT NULL
                                      THEN backoff ELSE :first END) END,
                   out_of_credits = 1, updated_at = :now
               WHERE id = 1
               RETURNING {_COLUMNS}""",  # noqa: S608 - constant text only
            {"now": self._now(), "first": first_seconds, "cap": max(max_seconds, first_seconds)},
        )
        return _state(row)

    async def hold(self, seconds: float) -> GateState:
        """A 429: no submit for ``seconds``; a shorter hold never shortens a longer one."""
        row = await self._db.fetch_one(
            f"""UPDATE submit_gate SET
                   not_before = CASE WHEN not_before IS NULL OR not_before < :until
                                     THEN :until ELSE not_before END,
                   updated_at = :now
               WHERE id = 1
               RETURNING {_COLUMNS}""",  # noqa: S608 - constant text only
            {"now": self._now(), "until": self._now() + seconds},
        )
        return _state(row)

    async def claim_probe(self, lease_seconds: float) -> bool:
        """While paused for a 402 and the backoff is over: take the one probe (push
        ``not_before`` by ``lease_seconds``, so no other process probes meanwhile).
        ``False`` if another process took it, or the gate is not due."""
        changed = await self._db.execute(
            """UPDATE submit_gate SET not_before = :now + :lease, updated_at = :now
               WHERE id = 1 AND out_of_credits = 1
                 AND (not_before IS NULL OR not_before <= :now)""",
            {"now": self._now(), "lease": lease_seconds},
        )
        return changed == 1

    async def open(self) -> bool:
        """The API accepted a job: lift any pause or hold. ``True`` if a 402 pause ended
        here (once: the process that lifts it says so)."""
        clear = """UPDATE submit_gate SET out_of_credits = 0, not_before = NULL, backoff = NULL,
                       updated_at = :now WHERE id = 1 AND """
        now = {"now": self._now()}
        if await self._db.execute(clear + "out_of_credits = 1", now) == 1:
            return True
        await self._db.execute(clear + "not_before IS NOT NULL", now)
        return False
