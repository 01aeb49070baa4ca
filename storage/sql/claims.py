"""Claims: background work on a job is taken by one process at a time, under a lease.

Every piece of background work on a job (a poll, a failure notice, a reservation being
submitted, a delivery) is *claimed* before it is done: one guarded ``UPDATE`` writes the
claimant's process id into ``lease_owner`` and an end time into ``lease_until`` (a
delivery's end time stays in ``delivering_until``). A lease is **live** while its end
time has not passed *and* its owner is live (a ``processes`` row seen within the
claimant's liveness window). Work is **free** when it has no live lease, and a claimant
may always re-take its own. So a process that dies frees its work as soon as it is no
longer live (or, on its own host, as soon as its pid is gone: ``core.processes`` forgets
it), long before its leases would run out.

On PostgreSQL a batch claim locks its rows with ``FOR UPDATE SKIP LOCKED``: two
processes claiming at the same moment take disjoint batches instead of queueing on each
other's rows. On SQLite (one writer) the same statement without the locking clause is
already atomic. Either way the ``WHERE`` clause is re-checked on the row being changed,
so two claimants never both win one job.

Every state transition of a job ends its generic lease (``lease_owner``/``lease_until``
back to ``NULL``), so the next piece of work (the next poll, the notice) is free to be
claimed by whichever process gets to it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.models import Claimant, Job
from storage.sql.common import Clock, _dt, _job, _limit, _ts, indexed_by
from storage.sql.database import Database

LIVE_OWNERS = "SELECT id FROM processes WHERE last_seen > :live_after"
"""The ids of the live processes (a sub-select; needs ``:live_after``)."""

VOID_LEASE = f"""(lease_owner IS NULL OR lease_until IS NULL OR lease_until <= :now
    OR lease_owner NOT IN ({LIVE_OWNERS}))"""
"""The job's generic lease is void: none, run out, or its owner is not live."""

FREE_FOR_OWNER = f"(lease_owner = :owner OR {VOID_LEASE})"
"""The claimant may take the job: the lease is its own, or void."""


def _ids(job_ids: Sequence[int]) -> tuple[str, dict[str, int]]:
    names = [f"id_{index}" for index in range(len(job_ids))]
    return ", ".join(f":{name}" for name in names), dict(zip(names, job_ids, strict=True))


class SQLJobClaims:
    """The claiming half of ``SQLJobStore`` (mixed into it)."""

    _db: Database
    _clock: Clock

    def _claim_params(self, claimant: Claimant, now: float | None = None) -> dict[str, Any]:
        moment = _ts(self._clock()) if now is None else now
        return {
            "now": moment,
            "owner": claimant.process_id,
            "live_after": moment - claimant.live_within,
        }

    def _skip_locked(self) -> str:
        """The row-locking clause of a batch claim's sub-select (PostgreSQL only)."""
        return " FOR UPDATE SKIP LOCKED" if self._db.engine == "postgres" else ""

    def _by_id(self) -> str:
        """Hint for an ``UPDATE ... WHERE id IN (sub-select) AND ...``: change the rows by id.

        SQLite, without statistics, may prefer an index on another term of the ``WHERE``
        (``state``), reading every job in that state; ``NOT INDEXED`` leaves it only the
        rowid. PostgreSQL plans from statistics and needs no hint.
        """
        return " NOT INDEXED" if self._db.engine == "sqlite" else ""

    def _ids_from(self, select: str) -> str:
        """``id IN (select)`` for an ``UPDATE`` of the rows a sub-select chose, by id.

        On PostgreSQL the sub-select becomes an array computed once (``= ANY (ARRAY(...))``):
        with ``IN`` the planner may join it to a sequential scan of ``jobs`` (it cannot know
        that the sub-select's ``LIMIT`` will find few rows); with an array it looks the ids
        up in the primary key. SQLite looks them up by rowid (with ``_by_id``).
        """
        if self._db.engine == "postgres":
            return f"id = ANY (ARRAY({select}))"
        return f"id IN ({select})"

    # -- polls ------------------------------------------------------------------------

    async def poll_candidates(
        self, claimant: Claimant, now: datetime | None = None, limit: int = 50
    ) -> list[Job]:
        """Due submitted jobs nobody holds a live lease on, fair between guilds.

        Round-robin by guild: every guild's earliest due job comes before any guild's
        second (``ROW_NUMBER() OVER (PARTITION BY guild_id ...)``), so one guild with a
        huge backlog cannot fill the batch. Nothing is claimed yet (see ``claim_polls``).
        """
        params = self._claim_params(claimant, None if now is None else _ts(now))
        rows = await self._db.fetch_all(
            f"""SELECT * FROM (
                   SELECT jobs.*, ROW_NUMBER() OVER (
                       PARTITION BY guild_id ORDER BY next_poll_at, id) AS turn
                   FROM jobs
                   WHERE state = 'submitted' AND next_poll_at <= :now AND {VOID_LEASE}
               ) AS due
               ORDER BY turn, next_poll_at, id LIMIT :limit""",  # noqa: S608 - constant
            {**params, "limit": _limit(limit)},
        )
        return [_job(row) for row in rows]

    async def claim_polls(
        self,
        job_ids: Sequence[int],
        claimant: Claimant,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> list[Job]:
        """Lease these jobs' next poll to the claimant; return those it won, in order.

        A job is won if it is still submitted, due, and nobody (the claimant included:
        its poll is in flight) holds a live lease on it; another process's claim of the
        same moment makes it skip the job, never wait for it.
        """
        if not job_ids:
            return []
        _positive(lease_seconds)
        marks, ids = _ids(job_ids)
        params = self._claim_params(claimant, None if now is None else _ts(now))
        guard = f"state = 'submitted' AND next_poll_at <= :now AND {VOID_LEASE}"
        rows = await self._db.fetch_all(
            f"""UPDATE jobs SET lease_owner = :owner, lease_until = :until
               WHERE id IN (SELECT id FROM jobs WHERE id IN ({marks}) AND {guard}
                            {self._skip_locked()})
                 AND {guard}
               RETURNING *""",  # noqa: S608 - placeholders and constant text only
            {**params, **ids, "until": params["now"] + lease_seconds},
        )
        won = {row["id"]: _job(row) for row in rows}
        return [won[job_id] for job_id in job_ids if job_id in won]

    async def next_free_poll_at(self, claimant: Claimant) -> datetime | None:
        """The earliest poll time of a submitted job nobody holds a live lease on."""
        row = await self._db.fetch_one(
            f"""SELECT MIN(next_poll_at) AS at FROM jobs
               WHERE state = 'submitted' AND {VOID_LEASE}""",  # noqa: S608 - constant
            self._claim_params(claimant),
        )
        return None if row is None else _dt(row["at"])

    # -- failure notices -------------------------------------------------------------

    async def claim_notices(
        self, claimant: Claimant, within_seconds: float, lease_seconds: float, limit: int = 50
    ) -> list[Job]:
        """Lease untold refunds (refunded within the window) to the claimant, oldest first."""
        _positive(lease_seconds)
        params = self._claim_params(claimant)
        guard = f"state = 'refunded' AND notified_at IS NULL AND {FREE_FOR_OWNER}"
        # The untold refunds are found through their partial index (jobs_unnotified), and
        # the chosen ones changed by id: without the hints SQLite reads every refund ever
        # made through the state index, in the sub-select and again in the UPDATE.
        unnotified = indexed_by(self._db.engine, "jobs_unnotified")
        chosen = f"""SELECT id FROM jobs{unnotified} WHERE {guard} AND refunded_at >= :since
                     ORDER BY refunded_at, id LIMIT :limit{self._skip_locked()}"""  # noqa: S608
        rows = await self._db.fetch_all(
            f"""UPDATE jobs{self._by_id()} SET lease_owner = :owner, lease_until = :until
               WHERE {self._ids_from(chosen)} AND {guard}
               RETURNING *""",  # noqa: S608 - constant text only
            {
                **params,
                "until": params["now"] + lease_seconds,
                "since": params["now"] - within_seconds,
                "limit": _limit(limit),
            },
        )
        return sorted((_job(row) for row in rows), key=lambda j: (j.refunded_at, j.id))

    async def claim_notice(self, job_id: int, claimant: Claimant, lease_seconds: float) -> bool:
        """Lease one untold refund's notice to the claimant; ``False`` if someone else has it."""
        _positive(lease_seconds)
        params = self._claim_params(claimant)
        changed = await self._db.execute(
            f"""UPDATE jobs SET lease_owner = :owner, lease_until = :until
               WHERE id = :id AND state = 'refunded' AND notified_at IS NULL
                 AND {FREE_FOR_OWNER}""",  # noqa: S608 - constant text only
            {**params, "id": job_id, "until": params["now"] + lease_seconds},
        )
        return changed == 1

    # -- recovery ----------------------------------------------------------------------

    async def stale_reserved(
        self, older_than_seconds: float, claimant: Claimant | None = None
    ) -> list[Job]:
        """Reserved jobs unchanged for longer than this whose lease is void.

        A crash fell between reserve and submit. Measured from the last change, not
        creation: a job that waited in the queue is reserved only when it is taken out of
        it. A reservation leased to a live process (being submitted right now) is never
        returned, whatever its age, until its lease runs out.
        """
        params = self._claim_params(claimant or _ANYONE)
        return [
            _job(row)
            for row in await self._db.fetch_all(
                f"""SELECT * FROM jobs WHERE state = 'reserved' AND updated_at < :cutoff
                      AND {VOID_LEASE} ORDER BY id""",  # noqa: S608 - constant text only
                {**params, "cutoff": params["now"] - older_than_seconds},
            )
        ]

    async def refund_stale_reserved(self, job_id: int, error: str, claimant: Claimant) -> bool:
        """reserved -> refunded, only while the reservation's lease is void (see above)."""
        changed = await self._db.execute(
            f"""UPDATE jobs SET state = 'refunded', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, refunded_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'reserved' AND {VOID_LEASE}""",  # noqa: S608
            {**self._claim_params(claimant), "id": job_id, "error": error},
        )
        return changed == 1

    async def end_stale_leases(self, claimant: Claimant | None = None) -> int:
        """End every live delivery lease whose owner is not live; return how many.

        The owner died, maybe after posting. The lease is ended, not cleared, so
        ``delivering_until`` still tells the next poster to look for a message already
        posted before it posts again. A live process's lease (the claimant's own
        included) is never ended.
        """
        params = self._claim_params(claimant or _ANYONE)
        return await self._db.execute(
            f"""UPDATE jobs SET delivering_until = :now, updated_at = :now
               WHERE state = 'completed' AND delivering_until > :now
                 AND (lease_owner IS NULL OR (lease_owner <> :owner
                      AND lease_owner NOT IN ({LIVE_OWNERS})))""",  # noqa: S608 - constant
            params,
        )


def _positive(lease_seconds: float) -> None:
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")


_ANYONE = Claimant(process_id="")
"""A claimant that owns nothing: for recovery by callers that hold no leases."""
