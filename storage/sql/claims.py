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
from storage.sql.common import Clock, LeaseClock, _dt, _job, _limit, _ts, indexed_by
from storage.sql.database import Database


def live_owners(now: str) -> str:
    """A sub-select of the ids of the live processes (needs ``:live_within``); ``now`` is
    the lease clock's SQL (``LeaseClock._at``)."""
    return f"SELECT id FROM processes WHERE last_seen > {now} - :live_within"  # noqa: S608


def void_lease(now: str) -> str:
    """The job's generic lease is void: none, run out, or its owner is not live."""
    return f"""(lease_owner IS NULL OR lease_until IS NULL OR lease_until <= {now}
    OR lease_owner NOT IN ({live_owners(now)}))"""


def free_for_owner(now: str) -> str:
    """The claimant may take the job: the lease is its own, or void (needs ``:owner``)."""
    return f"(lease_owner = :owner OR {void_lease(now)})"


def held_by_owner(now: str) -> str:
    """The claimant still holds the job's lease: the fence every act it records passes.

    Only the owner is compared: a lease that ran out but that nobody took over is still
    the claimant's (nothing else acted on the job), while any takeover writes its own
    owner (a claim) or clears it (a state change), so a stalled process's late act is
    refused in the statement that would record it. ``now`` is unused; it keeps the
    signature of the other lease predicates.
    """
    del now
    return "lease_owner = :owner"


def _ids(job_ids: Sequence[int]) -> tuple[str, dict[str, int]]:
    names = [f"id_{index}" for index in range(len(job_ids))]
    return ", ".join(f":{name}" for name in names), dict(zip(names, job_ids, strict=True))


class SQLJobClaims(LeaseClock):
    """The claiming half of ``SQLJobStore`` (mixed into it).

    Lease ends and liveness are read by the lease clock (the database's, see
    ``LeaseClock``); ``:now`` stays this process's clock, for the times it records
    (``updated_at``) and compares with them (``next_poll_at``, ``refunded_at``).
    """

    _db: Database
    _clock: Clock

    def _claim_params(
        self, claimant: Claimant, now: float | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The lease clock's SQL, and the parameters every lease predicate needs."""
        at, clock = self._at()
        moment = _ts(self._clock()) if now is None else now
        return at, {
            **clock,
            "now": moment,
            "owner": claimant.process_id,
            "live_within": float(claimant.live_within),
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
        at, params = self._claim_params(claimant, None if now is None else _ts(now))
        rows = await self._db.fetch_all(
            f"""SELECT * FROM (
                   SELECT jobs.*, ROW_NUMBER() OVER (
                       PARTITION BY guild_id ORDER BY next_poll_at, id) AS turn
                   FROM jobs
                   WHERE state = 'submitted' AND next_poll_at <= :now AND {void_lease(at)}
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
        at, params = self._claim_params(claimant, None if now is None else _ts(now))
        guard = f"state = 'submitted' AND next_poll_at <= :now AND {void_lease(at)}"
        rows = await self._db.fetch_all(
            f"""UPDATE jobs SET lease_owner = :owner, lease_until = {at} + :lease
               WHERE id IN (SELECT id FROM jobs WHERE id IN ({marks}) AND {guard}
                            {self._skip_locked()})
                 AND {guard}
               RETURNING *""",  # noqa: S608 - placeholders and constant text only
            {**params, **ids, "lease": float(lease_seconds)},
        )
        won = {row["id"]: _job(row) for row in rows}
        return [won[job_id] for job_id in job_ids if job_id in won]

    async def next_free_poll_at(self, claimant: Claimant) -> datetime | None:
        """The earliest poll time of a submitted job nobody holds a live lease on."""
        at, params = self._claim_params(claimant)
        row = await self._db.fetch_one(
            f"""SELECT MIN(next_poll_at) AS at FROM jobs
               WHERE state = 'submitted' AND {void_lease(at)}""",  # noqa: S608 - constant
            params,
        )
        return None if row is None else _dt(row["at"])

    # -- failure notices -------------------------------------------------------------

    async def claim_notices(
        self, claimant: Claimant, within_seconds: float, lease_seconds: float, limit: int = 50
    ) -> list[Job]:
        """Lease untold refunds (refunded within the window) to the claimant, oldest first."""
        _positive(lease_seconds)
        at, params = self._claim_params(claimant)
        guard = f"state = 'refunded' AND notified_at IS NULL AND {free_for_owner(at)}"
        # The untold refunds are found through their partial index (jobs_unnotified), and
        # the chosen ones changed by id: without the hints SQLite reads every refund ever
        # made through the state index, in the sub-select and again in the UPDATE.
        unnotified = indexed_by(self._db.engine, "jobs_unnotified")
        chosen = f"""SELECT id FROM jobs{unnotified} WHERE {guard} AND refunded_at >= :since
                     ORDER BY refunded_at, id LIMIT :limit{self._skip_locked()}"""  # noqa: S608
        rows = await self._db.fetch_all(
            f"""UPDATE jobs{self._by_id()} SET lease_owner = :owner, lease_until = {at} + :lease
               WHERE {self._ids_from(chosen)} AND {guard}
               RETURNING *""",  # noqa: S608 - constant text only
            {
                **params,
                "lease": float(lease_seconds),
                "since": params["now"] - within_seconds,
                "limit": _limit(limit),
            },
        )
        return sorted((_job(row) for row in rows), key=lambda j: (j.refunded_at, j.id))

    async def claim_notice(self, job_id: int, claimant: Claimant, lease_seconds: float) -> bool:
        """Lease one untold refund's notice to the claimant; ``False`` if someone else has it."""
        _positive(lease_seconds)
        at, params = self._claim_params(claimant)
        changed = await self._db.execute(
            f"""UPDATE jobs SET lease_owner = :owner, lease_until = {at} + :lease
               WHERE id = :id AND state = 'refunded' AND notified_at IS NULL
                 AND {free_for_owner(at)}""",  # noqa: S608 - constant text only
            {**params, "id": job_id, "lease": float(lease_seconds)},
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
        at, params = self._claim_params(claimant or _ANYONE)
        return [
            _job(row)
            for row in await self._db.fetch_all(
                f"""SELECT * FROM jobs WHERE state = 'reserved' AND updated_at < :cutoff
                      AND {void_lease(at)} ORDER BY id""",  # noqa: S608 - constant text only
                {**params, "cutoff": params["now"] - older_than_seconds},
            )
        ]

    async def refund_stale_reserved(self, job_id: int, error: str, claimant: Claimant) -> bool:
        """reserved -> refunded, only while the reservation's lease is void (see above)."""
        at, params = self._claim_params(claimant)
        changed = await self._db.execute(
            f"""UPDATE jobs SET state = 'refunded', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, refunded_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'reserved' AND {void_lease(at)}""",  # noqa: S608
            {**params, "id": job_id, "error": error},
        )
        return changed == 1

    async def end_stale_leases(self, claimant: Claimant | None = None) -> int:
        """End every live posting lease whose owner is not live; return how many.

        The owner died (or stopped beating), maybe after posting. The lease is ended, not
        cleared, so ``delivering_until`` still tells the next poster to look for a message
        already posted before it posts again. A live process's lease (the claimant's own
        included) is never ended: every poster names itself (``claim_delivery``), and a
        lease with no owner can only be a previous version's.
        """
        at, params = self._claim_params(claimant or _ANYONE)
        # Through the running posting leases only (a partial index), not every delivery.
        posting = indexed_by(self._db.engine, "jobs_posting")
        return await self._db.execute(
            f"""UPDATE jobs{posting} SET delivering_until = {at}, updated_at = :now
               WHERE state IN ('completed', 'delivered') AND delivering_until > {at}
                 AND (lease_owner IS NULL OR (lease_owner <> :owner
                      AND lease_owner NOT IN ({live_owners(at)})))""",  # noqa: S608 - constant
            params,
        )

    # -- posting: a delivery, or a moderator's "Deliver again" ---------------------------

    async def claim_delivery(self, job_id: int, lease_seconds: float, claimant: Claimant) -> bool:
        """Lease a job for posting its video; ``False`` if it is not postable or held.

        Postable: completed (its delivery), or delivered with its message deleted and
        not yet delivered again (a moderator's one "Deliver again"). Held: another lease
        on it is live (not run out by the lease clock, owner live). The claimant's own
        live lease holds too: one process never posts one job twice at once.

        Claim, post, then record (``mark_delivered`` / ``record_redelivery``), fenced by
        this lease. A lease that ended without a record (a crash, a stall, a timeout
        mid-upload) stays visible in ``delivering_until``: the next poster looks for a
        message already posted before it posts again.
        """
        _positive(lease_seconds)
        at, params = self._claim_params(claimant)
        return (
            await self._db.execute(
                f"""UPDATE jobs SET delivering_until = {at} + :lease, updated_at = :now,
                       lease_owner = :owner, lease_until = NULL
                   WHERE id = :id AND result_url IS NOT NULL
                     AND (state = 'completed' OR (state = 'delivered'
                          AND message_deleted_at IS NOT NULL AND redelivered_at IS NULL))
                     AND (delivering_until IS NULL OR delivering_until <= {at}
                          OR lease_owner IS NULL
                          OR lease_owner NOT IN ({live_owners(at)}))""",  # noqa: S608
                {**params, "id": job_id, "lease": float(lease_seconds)},
            )
            == 1
        )

    async def release_delivery(self, job_id: int, claimant: Claimant) -> bool:
        """Give up this claimant's posting lease (nothing was posted; let anyone retry).

        Refused (``False``) once another process took the job over.
        """
        at, params = self._claim_params(claimant)
        del at
        return (
            await self._db.execute(
                f"""UPDATE jobs SET delivering_until = NULL, lease_owner = NULL,
                       updated_at = :now
                   WHERE id = :id AND delivering_until IS NOT NULL
                     AND {held_by_owner("")}""",  # noqa: S608 - constant text only
                {**params, "id": job_id},
            )
            == 1
        )

    async def end_delivery(self, job_id: int, claimant: Claimant) -> bool:
        """End this claimant's posting lease now but leave it visible: a post may exist."""
        at, params = self._claim_params(claimant)
        return (
            await self._db.execute(
                f"""UPDATE jobs SET delivering_until = {at}, updated_at = :now
                   WHERE id = :id AND delivering_until > {at}
                     AND {held_by_owner(at)}""",  # noqa: S608 - constant text only
                {**params, "id": job_id},
            )
            == 1
        )

    async def mark_delivered(self, job_id: int, message_id: int, claimant: Claimant) -> bool:
        """completed -> delivered, recording the posted message, fenced by the lease.

        Recorded only while the claimant still holds the job's posting lease: a poster
        that stalled past its lease while another took over is refused here, in the
        statement that would record its post.
        """
        at, params = self._claim_params(claimant)
        return (
            await self._db.execute(
                f"""UPDATE jobs SET state = 'delivered', delivered_message_id = :message_id,
                       delivering_until = NULL, delivered_at = :now, updated_at = :now,
                       lease_owner = NULL, lease_until = NULL
                   WHERE id = :id AND state = 'completed'
                     AND {held_by_owner(at)}""",  # noqa: S608 - constant text only
                {**params, "id": job_id, "message_id": message_id},
            )
            == 1
        )

    async def record_redelivery(self, job_id: int, message_id: int, claimant: Claimant) -> bool:
        """Record a moderator's "Deliver again": the job's one redelivery, fenced by the lease.

        The redelivery is used up here, once its post exists, never at the claim: a
        redelivery that failed leaves the job eligible.
        """
        at, params = self._claim_params(claimant)
        return (
            await self._db.execute(
                f"""UPDATE jobs SET delivered_message_id = :message_id,
                       message_deleted_at = NULL, redelivered_at = :now,
                       delivering_until = NULL, updated_at = :now,
                       lease_owner = NULL, lease_until = NULL
                   WHERE id = :id AND state = 'delivered' AND redelivered_at IS NULL
                     AND {held_by_owner(at)}""",  # noqa: S608 - constant text only
                {**params, "id": job_id, "message_id": message_id},
            )
            == 1
        )

    async def deliverable_jobs(self, limit: int = 50) -> list[Job]:
        """Completed jobs nobody holds a live posting lease on, oldest first."""
        at, params = self._at()
        return [
            _job(row)
            for row in await self._db.fetch_all(
                f"""SELECT * FROM jobs WHERE state = 'completed'
                     AND (delivering_until IS NULL OR delivering_until <= {at})
                   ORDER BY completed_at, id LIMIT :limit""",  # noqa: S608 - constant
                {**params, "limit": _limit(limit)},
            )
        ]


def _positive(lease_seconds: float) -> None:
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")


_ANYONE = Claimant(process_id="")
"""A claimant that owns nothing: for recovery by callers that hold no leases."""

_NOBODY = _ANYONE
"""The claimant of a claim made on nobody's behalf (no lease is recorded)."""
