"""``JobStore`` in portable SQL: the job ledger, every transition one guarded ``UPDATE``."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from storage.credits import (
    Period,
    period_bounds,
)
from storage.models import (
    ERASED_USER_ID,
    UNFINISHED_STATES,
    AuditAction,
    AuditEntry,
    Backlog,
    Claimant,
    CompletionTime,
    DayOutcomes,
    GuildStats,
    Job,
    JobState,
    MemberVideos,
    UsageSummary,
    UserUsage,
    WaitingMember,
)
from storage.sql.claims import _NOBODY, SQLJobClaims, free_for_owner, void_lease
from storage.sql.common import (
    Clock,
    _dt,
    _job,
    _limit,
    _req_dt,
    _ts,
    _write_audit,
    indexed_by,
)
from storage.sql.database import Database

# The completion is bracketed by the last "pending" answer (or the submission) and now.
_MEMBERS_PER_QUERY = 200
"""Members whose queues one ``member_queues`` statement reads (bound parameters stay few)."""
_ALL_QUEUED = 2**62
"""``member_queues``' count for "every queued job of the member"."""


_RECORD_COMPLETION_SQL = """
    INSERT INTO completion_times
        (job_id, mode, quality, duration, sound, lower_seconds, upper_seconds, recorded_at)
    SELECT id, mode, quality, duration, sound,
           COALESCE(last_pending_at, submitted_at) - submitted_at,
           completed_at - submitted_at, completed_at
    FROM jobs WHERE id = :id AND submitted_at IS NOT NULL AND completed_at >= submitted_at
    ON CONFLICT (job_id) DO NOTHING
"""


def _expected(
    expected: JobState | Collection[JobState], allowed: Collection[JobState]
) -> tuple[dict[str, str], str]:
    """The bound parameters and placeholders of a transition's ``state IN (...)`` guard.

    Refuses a state the transition may not start from, so a caller cannot widen a guard.
    """
    states = [expected] if isinstance(expected, JobState) else sorted(expected)
    if not states or any(state not in allowed for state in states):
        raise ValueError(f"this transition cannot start from {states}")
    params = {f"expected_{index}": state.value for index, state in enumerate(states)}
    return params, ", ".join(f":{name}" for name in params)


class SQLJobStore(SQLJobClaims):
    """``JobStore`` on either engine: every transition is one guarded ``UPDATE``."""

    def __init__(
        self, db: Database, clock: Clock, period: Period, db_clock: Clock | None = None
    ) -> None:
        """Use ``open_store`` rather than building this directly (``db_clock``: see
        ``LeaseClock``)."""
        self._db = db
        self._clock = clock
        self._period = period
        self._db_clock = db_clock

    def _now(self) -> float:
        return _ts(self._clock())

    async def _update(self, sql: str, params: Mapping[str, Any]) -> bool:
        return await self._db.execute(sql, {"now": self._now(), **params}) == 1

    async def _jobs(self, sql: str, params: Mapping[str, Any] | tuple[Any, ...]) -> list[Job]:
        return [_job(row) for row in await self._db.fetch_all(sql, params)]

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id, or ``None``."""
        row = await self._db.fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def mark_submitted(
        self,
        job_id: int,
        task_id: str,
        next_poll_at: datetime,
        *,
        claimant: Claimant | None = None,
    ) -> bool:
        """reserved -> submitted, recording the API task id and the first poll time.

        With a ``claimant`` (the process that took the job out of the queue) the record
        is fenced: refused once the reservation is no longer its own (another process
        found it stale and refunded it while this one stalled).
        """
        fence = "" if claimant is None else " AND lease_owner = :owner"
        return await self._update(
            f"""UPDATE jobs SET state = 'submitted', task_id = :task_id,
                   next_poll_at = :next_poll_at, submitted_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'reserved'{fence}""",  # noqa: S608 - constant
            {
                "id": job_id,
                "task_id": task_id,
                "next_poll_at": _ts(next_poll_at),
                "owner": None if claimant is None else claimant.process_id,
            },
        )

    async def mark_completed(self, job_id: int, result_url: str) -> bool:
        """submitted -> completed, recording the video URL and how long the job took."""
        params = {"id": job_id, "url": result_url, "now": self._now()}
        async with self._db.transaction(lock=("job", job_id)) as tx:
            if (
                await tx.execute(
                    """UPDATE jobs SET state = 'completed', result_url = :url,
                           next_poll_at = NULL, completed_at = :now, updated_at = :now,
                           lease_owner = NULL, lease_until = NULL
                       WHERE id = :id AND state = 'submitted'""",
                    params,
                )
                != 1
            ):
                return False
            await tx.execute(_RECORD_COMPLETION_SQL, params)
            return True

    async def mark_pending(self, job_id: int, next_poll_at: datetime) -> bool:
        """The API says the submitted job is unfinished: remember when, set the next poll."""
        return await self._update(
            """UPDATE jobs SET last_pending_at = :now, next_poll_at = :next_poll_at,
                   attempts = attempts + 1, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'submitted'""",
            {"id": job_id, "next_poll_at": _ts(next_poll_at)},
        )

    async def completion_times(self, limit: int) -> list[CompletionTime]:
        """The most recent recorded completion times, newest first, at most ``limit``."""
        rows = await self._db.fetch_all(
            """SELECT mode, quality, duration, sound, lower_seconds, upper_seconds, recorded_at
               FROM completion_times ORDER BY recorded_at DESC, job_id DESC LIMIT :limit""",
            {"limit": _limit(limit)},
        )
        return [
            CompletionTime(
                mode=row["mode"],
                quality=row["quality"],
                duration=row["duration"],
                sound=bool(row["sound"]),
                lower_seconds=row["lower_seconds"],
                upper_seconds=row["upper_seconds"],
                recorded_at=_req_dt(row["recorded_at"]),
            )
            for row in rows
        ]

    async def mark_failed(
        self, job_id: int, error: str, *, expected: JobState | Collection[JobState]
    ) -> bool:
        """``expected`` -> failed (reserved, submitted or completed; still charged until
        refunded). The caller names the state(s) it means; any other leaves the job alone."""
        states, marks = _expected(
            expected, {JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED}
        )
        return await self._update(
            f"""UPDATE jobs SET state = 'failed', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, updated_at = :now, lease_owner = NULL,
                   lease_until = NULL
               WHERE id = :id AND state IN ({marks})""",  # noqa: S608 - placeholders only
            {"id": job_id, "error": error, **states},
        )

    async def mark_expired(self, job_id: int, error: str) -> bool:
        """submitted -> expired: the polling deadline passed (still charged until refunded)."""
        return await self._update(
            """UPDATE jobs SET state = 'expired', last_error = :error, next_poll_at = NULL,
                   updated_at = :now, lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'submitted'""",
            {"id": job_id, "error": error},
        )

    async def refund(self, job_id: int) -> bool:
        """failed | expired -> refunded. The second refund of a job returns ``False``."""
        return await self._update(
            """UPDATE jobs SET state = 'refunded', refunded_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state IN ('failed', 'expired')""",
            {"id": job_id},
        )

    async def fail_and_refund(
        self,
        job_id: int,
        error: str,
        *,
        expected: JobState | Collection[JobState],
        claimant: Claimant | None = None,
    ) -> bool:
        """``expected`` -> refunded in one step, recording ``error``.

        ``expected`` is the state (or states) the caller knows the job is in: queued (the
        acknowledgement failed), reserved (the submit failed), submitted (the API failed
        it) or completed (undeliverable). A job that moved on meanwhile (another process
        started, delivered or refunded it) is left alone and ``False`` returned. With a
        ``claimant`` (refunding its own reservation) the refund is fenced too: refused once
        the job is no longer leased to it.
        """
        states, marks = _expected(
            expected,
            {JobState.QUEUED, JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED},
        )
        fence = "" if claimant is None else " AND lease_owner = :owner"
        return await self._update(
            f"""UPDATE jobs SET state = 'refunded', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, refunded_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state IN ({marks}){fence}""",  # noqa: S608 - placeholders only
            {
                "id": job_id,
                "error": error,
                "owner": None if claimant is None else claimant.process_id,
                **states,
            },
        )

    async def schedule_poll(
        self, job_id: int, next_poll_at: datetime, error: str | None = None
    ) -> bool:
        """Set the next poll time of a submitted job and count one more attempt; with
        ``error``, record why the last status call gave no answer (``last_error``)."""
        return await self._update(
            """UPDATE jobs SET next_poll_at = :next_poll_at, attempts = attempts + 1,
                   last_error = COALESCE(:error, last_error),
                   updated_at = :now, lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'submitted'""",
            {"id": job_id, "next_poll_at": _ts(next_poll_at), "error": error},
        )

    async def set_progress_message(
        self, job_id: int, message_id: int, *, channel_id: int | None = None
    ) -> bool:
        """Remember the message showing progress (and its channel, if it moved)."""
        return await self._update(
            """UPDATE jobs SET progress_message_id = :message_id,
                   channel_id = COALESCE(:channel_id, channel_id), updated_at = :now
               WHERE id = :id""",
            {"id": job_id, "message_id": message_id, "channel_id": channel_id},
        )

    async def set_upload_limit(self, job_id: int, limit_bytes: int) -> bool:
        """Record the guild's upload limit (bytes) where the request arrived, for delivery."""
        return await self._update(
            "UPDATE jobs SET upload_limit = :limit, updated_at = :now WHERE id = :id",
            {"id": job_id, "limit": int(limit_bytes)},
        )

    async def record_error(self, job_id: int, error: str) -> bool:
        """Store the last (transient) error without changing the state."""
        return await self._update(
            "UPDATE jobs SET last_error = :error, updated_at = :now WHERE id = :id",
            {"id": job_id, "error": error},
        )

    async def mark_notified(self, job_id: int, claimant: Claimant | None = None) -> bool:
        """Record that the requester of a refunded job was told; ``False`` if already so.

        With a ``claimant`` (the holder of the notice's lease) the record is fenced:
        refused once another process took the notice over.
        """
        fence = "" if claimant is None else " AND lease_owner = :owner"
        return await self._update(
            f"""UPDATE jobs SET notified_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'refunded' AND notified_at IS NULL{fence}""",  # noqa: S608
            {"id": job_id, "owner": None if claimant is None else claimant.process_id},
        )

    async def unnotified_refunds(self, within_seconds: float, limit: int = 50) -> list[Job]:
        """Refunded jobs whose requester was not told yet, refunded within the window."""
        return await self._jobs(
            """SELECT * FROM jobs WHERE state = 'refunded' AND notified_at IS NULL
                 AND refunded_at >= ? ORDER BY refunded_at, id LIMIT ?""",
            (self._now() - within_seconds, _limit(limit)),
        )

    async def due_jobs(self, now: datetime | None = None, limit: int = 50) -> list[Job]:
        """Submitted jobs whose poll time has come, earliest first, at most ``limit``."""
        moment = self._now() if now is None else _ts(now)
        return await self._jobs(
            """SELECT * FROM jobs WHERE state = 'submitted' AND next_poll_at <= ?
               ORDER BY next_poll_at, id LIMIT ?""",
            (moment, _limit(limit)),
        )

    async def resumable_jobs(self) -> list[Job]:
        """Every unfinished job (not delivered, not refunded), for start-up recovery."""
        # Named states, not NOT IN (the settled ones): a list of states is a lookup in the
        # state index, a NOT IN reads the whole table.
        states = [state.value for state in UNFINISHED_STATES]
        marks = ", ".join("?" for _ in states)
        return await self._jobs(
            f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id",  # noqa: S608 - placeholders
            tuple(states),
        )

    # -- the queue -------------------------------------------------------------------

    async def claim_queued(
        self,
        job_id: int,
        *,
        member_running: int = 0,
        server_running: int = 0,
        claimant: Claimant | None = None,
        lease_seconds: float | None = None,
        guild_id: int | None = None,
        take_held: bool = True,
    ) -> bool:
        """queued -> reserved, only while the member and the server are under their limits.

        A limit of 0 means none. The limits are checked against the running counts
        (``queue_members``/``queue_guilds``, kept by triggers) in the statement that makes
        the change, run under the guild's running-slots lock (a no-op on SQLite, whose
        single writer already serialises it; on PostgreSQL, READ COMMITTED would let two
        claims count the same slot free), so two dispatchers, even in two processes,
        cannot both fill the last slot. With a ``claimant`` the reservation is leased to it
        for ``lease_seconds``: no other process's recovery refunds it while it is being
        submitted.

        A just-accepted job is *held* for its own request (its lease names the process
        that accepted it, see ``NewJob.held_by``): with ``take_held`` (the request
        starting its job) the claimant may take a job held by itself or by nobody live;
        without it (a dispatcher) only a job nobody live holds.
        """
        owner = None if claimant is None else claimant.process_id
        at, claim = self._claim_params(claimant or _NOBODY)
        until = "NULL" if lease_seconds is None or owner is None else f"{at} + :lease"
        if guild_id is None:
            row = await self._db.fetch_one("SELECT guild_id FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            guild_id = row["guild_id"]
        free = free_for_owner(at) if take_held and claimant is not None else void_lease(at)
        changed = await self._db.execute(
            f"""UPDATE jobs SET state = 'reserved', updated_at = :now, lease_owner = :new_owner,
                   lease_until = {until}
               WHERE id = :id AND state = 'queued' AND {free}
                 AND (:member_running = 0 OR COALESCE((
                     SELECT running FROM queue_members AS m
                      WHERE m.guild_id = jobs.guild_id AND m.user_id = jobs.user_id), 0)
                     < :member_running)
                 AND (:server_running = 0 OR COALESCE((
                     SELECT running FROM queue_guilds AS g
                      WHERE g.guild_id = jobs.guild_id), 0) < :server_running)""",  # noqa: S608
            {
                **claim,
                "id": job_id,
                "member_running": member_running,
                "server_running": server_running,
                "new_owner": owner,
                "lease": float(lease_seconds or 0.0),
            },
            lock=("running", guild_id),
        )
        return changed == 1

    async def release_hold(self, job_id: int, claimant: Claimant) -> bool:
        """End the claimant's hold on its just-accepted, still queued job: its request
        left it in the queue, so any dispatcher may start it from now on."""
        return await self._update(
            """UPDATE jobs SET lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'queued' AND lease_owner = :owner""",
            {"id": job_id, "owner": claimant.process_id},
        )

    async def hold_reservation(
        self, job_id: int, claimant: Claimant, lease_seconds: float
    ) -> Job | None:
        """Renew the claimant's lease on a reserved job it is about to submit; return it.

        ``None`` when the job is no longer reserved, or another live process holds it
        (refunded by expiry or recovery, or taken elsewhere): it must not be sent.
        """
        at, params = self._claim_params(claimant)
        row = await self._db.fetch_one(
            f"""UPDATE jobs SET lease_owner = :owner, lease_until = {at} + :lease,
                   updated_at = :now
               WHERE id = :id AND state = 'reserved' AND {free_for_owner(at)}
               RETURNING *""",  # noqa: S608 - constant text only
            {**params, "id": job_id, "lease": float(lease_seconds)},
        )
        return None if row is None else _job(row)

    async def expire_queued(
        self, created_before: datetime, error: str, *, limit: int = 500
    ) -> list[Job]:
        """queued -> refunded for the jobs still queued that arrived before the cut-off
        (at most ``limit``, oldest first; the next call takes the rest).

        Only ``queued`` jobs: one another process has just started (reserved) is not
        touched. One guarded statement per job, so no statement holds the running-count
        rows of several members while waiting for a job row (which, with another
        process's claim, could deadlock on PostgreSQL). The requester is told through
        the failure-notice outbox.
        """
        overdue = await self._db.fetch_all(
            """SELECT id FROM jobs WHERE state = 'queued' AND created_at < :before
               ORDER BY created_at, id LIMIT :limit""",
            {"before": _ts(created_before), "limit": _limit(limit)},
        )
        expired: list[Job] = []
        for row in overdue:
            refunded = await self._db.fetch_one(
                """UPDATE jobs SET state = 'refunded', last_error = :error, refunded_at = :now,
                       updated_at = :now, lease_owner = NULL, lease_until = NULL
                   WHERE id = :id AND state = 'queued'
                   RETURNING *""",
                {"now": self._now(), "id": row["id"], "error": error},
            )
            if refunded is not None:
                expired.append(_job(refunded))
        return expired

    async def waiting_members(
        self,
        *,
        member_running: int,
        server_running: int,
        guild_id: int | None = None,
        user_id: int | None = None,
    ) -> list[WaitingMember]:
        """Members with queued jobs who may start one now: their guild and they are under
        their running limits (of one guild, or of all).

        Read from the counts the triggers keep (``queue_guilds``, ``queue_members``),
        through their partial indexes on ``queued > 0``: only guilds with jobs waiting
        are visited, and members only in guilds with a free slot, so the work follows
        what can start, not the length of the queue. ``member_running`` and
        ``server_running`` are the defaults for guilds that set none (0: no limit).
        ``user_id`` (with ``guild_id``) asks about that one member.
        """
        if user_id is not None and guild_id is None:
            raise ValueError("user_id needs guild_id")
        waiting = " INDEXED BY queue_guilds_waiting" if self._db.engine == "sqlite" else ""
        members = " INDEXED BY queue_members_waiting" if self._db.engine == "sqlite" else ""
        # One guild (the acknowledgement path): its row by the index, not every waiting one.
        one_guild = "" if guild_id is None else " AND g.guild_id = :guild_id"
        one_member = "" if user_id is None else " AND m.user_id = :user_id"
        rows = await self._db.fetch_all(
            f"""SELECT g.guild_id, m.user_id, m.running AS member_busy,
                       g.running AS guild_busy,
                       COALESCE(s.member_running, :member_running) AS member_limit,
                       COALESCE(s.server_running, :server_running) AS server_limit
               FROM queue_guilds AS g{waiting}
               LEFT JOIN guild_settings AS s ON s.guild_id = g.guild_id
               CROSS JOIN queue_members AS m{members}
               WHERE g.queued > 0{one_guild}
                 AND (COALESCE(s.server_running, :server_running) = 0
                      OR g.running < COALESCE(s.server_running, :server_running))
                 AND m.guild_id = g.guild_id AND m.queued > 0{one_member}
                 AND (COALESCE(s.member_running, :member_running) = 0
                      OR m.running < COALESCE(s.member_running, :member_running))
               ORDER BY g.guild_id, m.user_id""",  # noqa: S608 - index names only
            {
                "member_running": member_running,
                "server_running": server_running,
                **({} if guild_id is None else {"guild_id": guild_id}),
                **({} if user_id is None else {"user_id": user_id}),
            },
        )
        return [
            WaitingMember(
                guild_id=row["guild_id"],
                user_id=row["user_id"],
                running=row["member_busy"],
                guild_running=row["guild_busy"],
                member_limit=row["member_limit"],
                server_limit=row["server_limit"],
            )
            for row in rows
        ]

    async def member_queues(
        self,
        members: Sequence[tuple[int, int]],
        *,
        first: Sequence[int | None] | None = None,
        fair_limit: int | None = None,
    ) -> list[Job]:
        """The queued jobs of these (guild, member) pairs, each member's through the
        ``jobs_member_queue`` index (never the whole queue): of member ``i`` only the
        first ``first[i]`` in the fair order (``None``: all), and of them all only the first
        ``fair_limit`` in the fair order (``None``: all; with more members than one
        statement reads, the first of each statement's: a superset of the first of all).

        The dispatcher asks for no more than could start now, so the rows read (and
        turned into jobs) follow the free running slots, not the length of the queue.
        """
        if first is not None and len(first) != len(members):
            raise ValueError("first must give one count per member")
        index = " INDEXED BY jobs_member_queue" if self._db.engine == "sqlite" else ""
        limit = "" if fair_limit is None else " LIMIT :fair_limit"
        found: list[Job] = []
        for start in range(0, len(members), _MEMBERS_PER_QUERY):
            chunk = members[start : start + _MEMBERS_PER_QUERY]
            params: dict[str, int] = {} if fair_limit is None else {"fair_limit": fair_limit}
            values = []
            for number, (guild_id, user_id) in enumerate(chunk):
                count = None if first is None else first[start + number]
                params[f"g{number}"], params[f"u{number}"] = guild_id, user_id
                params[f"n{number}"] = _ALL_QUEUED if count is None else max(count, 0)
                values.append(f"(:g{number}, :u{number}, CAST(:n{number} AS BIGINT))")
            found += await self._jobs(
                f"""WITH wanted (guild_id, user_id, how_many) AS (VALUES {", ".join(values)})
                   SELECT * FROM (
                       SELECT jobs.*, wanted.how_many, ROW_NUMBER() OVER (
                           PARTITION BY jobs.guild_id, jobs.user_id
                           ORDER BY COALESCE(jobs.queue_round, 0), jobs.created_at, jobs.id
                       ) AS nth
                       FROM wanted CROSS JOIN jobs{index}
                       WHERE jobs.guild_id = wanted.guild_id
                         AND jobs.user_id = wanted.user_id AND jobs.state = 'queued'
                   ) AS queue
                   WHERE queue.nth <= queue.how_many
                   ORDER BY COALESCE(queue.queue_round, 0), queue.created_at, queue.id{limit}""",  # noqa: S608 - placeholders only
                params,
            )
        return found

    async def requeue(
        self, job_id: int, error: str, *, claimant: Claimant | None = None
    ) -> bool:
        """reserved -> queued: the API could not take the job yet (429, 402); still charged.

        With a ``claimant`` it is fenced like ``mark_submitted``.
        """
        fence = "" if claimant is None else " AND lease_owner = :owner"
        return await self._update(
            f"""UPDATE jobs SET state = 'queued', last_error = :error, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'reserved'{fence}""",  # noqa: S608 - constant
            {
                "id": job_id,
                "error": error,
                "owner": None if claimant is None else claimant.process_id,
            },
        )

    async def cancel_queued(self, job_id: int, cancelled_by: int) -> bool:
        """queued -> refunded, recording who cancelled; the requester needs no notice."""
        return await self._update(
            """UPDATE jobs SET state = 'refunded', cancelled_by = :by,
                   last_error = 'cancelled before it started', refunded_at = :now,
                   notified_at = :now, updated_at = :now, lease_owner = NULL,
                   lease_until = NULL
               WHERE id = :id AND state = 'queued'""",
            {"id": job_id, "by": cancelled_by},
        )

    async def queued_jobs(self, guild_id: int | None = None, limit: int = 1000) -> list[Job]:
        """Queued jobs (of one guild, or all), oldest first, at most ``limit``."""
        if guild_id is None:
            return await self._jobs(
                "SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT ?",
                (_limit(limit),),
            )
        return await self._jobs(
            """SELECT * FROM jobs WHERE state = 'queued' AND guild_id = ?
               ORDER BY created_at, id LIMIT ?""",
            (guild_id, _limit(limit)),
        )

    async def running_counts(self, guild_id: int | None = None) -> dict[tuple[int, int], int]:
        """Jobs holding a slot (reserved or submitted) per (guild, member)."""
        sql = (
            "SELECT guild_id, user_id, COUNT(*) AS n FROM jobs"
            " WHERE state IN ('reserved', 'submitted')"
        )
        params: tuple[Any, ...] = ()
        if guild_id is not None:
            # The guild's running jobs only (SQLite would otherwise walk its history).
            sql = sql.replace(
                "FROM jobs", "FROM jobs" + indexed_by(self._db.engine, "jobs_guild_state_round")
            )
            sql += " AND guild_id = ?"
            params = (guild_id,)
        rows = await self._db.fetch_all(sql + " GROUP BY guild_id, user_id", params)
        return {(row["guild_id"], row["user_id"]): row["n"] for row in rows}

    async def last_request_at(self, guild_id: int, user_id: int) -> datetime | None:
        """When the member's latest request that was not refunded was accepted, if any."""
        row = await self._db.fetch_one(
            """SELECT MAX(created_at) AS at FROM jobs
               WHERE guild_id = ? AND user_id = ? AND state <> 'refunded'""",
            (guild_id, user_id),
        )
        return None if row is None else _dt(row["at"])

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        """A user's latest jobs in a guild, newest first."""
        return await self._jobs(
            """SELECT * FROM jobs WHERE guild_id = ? AND user_id = ?
               ORDER BY created_at DESC, id DESC LIMIT ?""",
            (guild_id, user_id, _limit(limit)),
        )

    async def usage_summary(
        self, guild_id: int, at: datetime | None = None, *, top: int = 5
    ) -> UsageSummary:
        """Jobs by state, credits spent and top users of the period containing ``at``."""
        start, end = period_bounds(self._clock() if at is None else at, self._period)
        params = {"guild_id": guild_id, "start": _ts(start), "end": _ts(end)}
        by_state = await self._db.fetch_all(
            "SELECT state, COUNT(*) AS n, SUM(cost) AS credits FROM jobs"
            " WHERE guild_id = :guild_id AND created_at >= :start AND created_at < :end"
            " GROUP BY state",
            params,
        )
        users = await self._db.fetch_all(
            """SELECT user_id, SUM(cost) AS credits, COUNT(*) AS n FROM jobs
               WHERE guild_id = :guild_id AND created_at >= :start AND created_at < :end
                 AND state <> 'refunded' AND user_id <> :erased
               GROUP BY user_id ORDER BY credits DESC, user_id LIMIT :top""",
            {**params, "top": _limit(top), "erased": ERASED_USER_ID},
        )
        return UsageSummary(
            guild_id=guild_id,
            period_start=start,
            period_end=end,
            jobs_by_state={JobState(row["state"]): row["n"] for row in by_state},
            credits_spent=sum(
                row["credits"] for row in by_state if row["state"] != JobState.REFUNDED
            ),
            top_users=tuple(
                UserUsage(user_id=row["user_id"], credits=row["credits"], jobs=row["n"])
                for row in users
            ),
        )

    # -- moderator and operator insight ----------------------------------------------

    async def mark_message_deleted(self, job_id: int, message_id: int) -> bool:
        """Record that the job's delivered message ``message_id`` was deleted."""
        return await self._update(
            """UPDATE jobs SET message_deleted_at = :now, updated_at = :now
               WHERE id = :id AND delivered_message_id = :message_id
                 AND message_deleted_at IS NULL""",
            {"id": job_id, "message_id": message_id},
        )

    async def moderator_refund(self, job_id: int, moderator_id: int) -> AuditEntry | None:
        """Refund any job not refunded yet, by a moderator's decision; audited.

        The requester is marked told (the moderator decided it; no failure notice is due).
        Returns the audit entry, or ``None`` when the job is unknown or already refunded.
        """
        now = self._now()
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT guild_id, user_id, state, cost FROM jobs WHERE id = :id", {"id": job_id}
            )
            if row is None or row["state"] == JobState.REFUNDED.value:
                return None
            changed = await tx.execute(
                """UPDATE jobs SET state = 'refunded', refunded_at = :now,
                       refunded_by = :moderator_id, notified_at = :now, next_poll_at = NULL,
                       delivering_until = NULL, updated_at = :now,
                       lease_owner = NULL, lease_until = NULL,
                       last_error = COALESCE(last_error, 'refunded by a moderator')
                   WHERE id = :id AND state <> 'refunded'""",
                {"id": job_id, "moderator_id": moderator_id, "now": now},
            )
            if changed != 1:
                return None
            return await _write_audit(
                tx,
                now,
                row["guild_id"],
                moderator_id,
                row["user_id"],
                AuditAction.REFUND_JOB,
                f"job #{job_id} {row['state']}",
                f"refunded {row['cost']}",
            )

    async def guild_stats(
        self, guild_id: int, since: datetime, until: datetime, *, top: int = 5
    ) -> GuildStats:
        """Outcomes, credits, top members, busy hours and seconds made in ``[since, until)``.

        Three passes over the ``jobs_guild_stats`` covering index (never the table): one
        grouped by UTC hour, from which days, busy hours and credits are summed here, one
        for the seconds made by quality and sound, one for the top members. ``since``
        should fall on a whole UTC hour (/stats passes a midnight): days count from it.
        """
        params = {"guild_id": guild_id, "since": _ts(since), "until": _ts(until)}
        where = "WHERE guild_id = :guild_id AND created_at >= :since AND created_at < :until"
        hour_rows = await self._db.fetch_all(
            f"""SELECT FLOOR(created_at / 3600) AS hour,
                   SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END) AS made,
                   SUM(CASE WHEN delivered_at IS NULL
                             AND state IN ('failed', 'expired', 'refunded')
                            THEN 1 ELSE 0 END) AS failed,
                   COUNT(*) AS total,
                   SUM(CASE WHEN state = 'refunded' THEN 1 ELSE 0 END) AS refunded,
                   SUM(CASE WHEN state = 'refunded' THEN cost ELSE 0 END) AS credits_refunded,
                   SUM(CASE WHEN state <> 'refunded' THEN cost ELSE 0 END) AS credits_spent
               FROM jobs {where} GROUP BY 1""",  # noqa: S608 - constant text, values bound
            params,
        )
        seconds_rows = await self._db.fetch_all(
            f"""SELECT quality, sound, SUM(duration) AS seconds FROM jobs
               {where} AND completed_at IS NOT NULL AND sandbox = 0
               GROUP BY quality, sound""",  # noqa: S608
            params,
        )
        members = await self._db.fetch_all(
            f"""SELECT user_id, COUNT(*) AS videos, SUM(cost) AS credits FROM jobs
               {where} AND delivered_at IS NOT NULL AND user_id <> :erased
               GROUP BY user_id ORDER BY videos DESC, user_id LIMIT :top""",  # noqa: S608
            {**params, "top": _limit(top), "erased": ERASED_USER_ID},
        )
        day_count = max(1, math.ceil((until - since).total_seconds() / 86400))
        made, failed, total = [0] * day_count, [0] * day_count, [0] * day_count
        by_hour_of_day: dict[int, int] = {}
        seconds: dict[tuple[str, bool], int] = {}
        refunded = credits_spent = credits_refunded = 0
        for row in hour_rows:
            hour = int(row["hour"])
            day = min(day_count - 1, max(0, int((hour * 3600 - _ts(since)) // 86400)))
            made[day] += int(row["made"])
            failed[day] += int(row["failed"])
            total[day] += int(row["total"])
            by_hour_of_day[hour % 24] = by_hour_of_day.get(hour % 24, 0) + int(row["total"])
            refunded += int(row["refunded"])
            credits_spent += int(row["credits_spent"])
            credits_refunded += int(row["credits_refunded"])
        for row in seconds_rows:
            seconds[(str(row["quality"]), bool(row["sound"]))] = int(row["seconds"])
        days = tuple(
            DayOutcomes(
                day=since + timedelta(days=index),
                made=made[index],
                failed=failed[index],
                pending=total[index] - made[index] - failed[index],
            )
            for index in range(day_count)
        )
        busiest = sorted(by_hour_of_day.items(), key=lambda item: (-item[1], item[0]))[:3]
        return GuildStats(
            guild_id=guild_id,
            since=since,
            until=until,
            made=sum(made),
            failed=sum(failed),
            pending=sum(total) - sum(made) - sum(failed),
            refunded=refunded,
            credits_spent=credits_spent,
            credits_refunded=credits_refunded,
            top_members=tuple(
                MemberVideos(user_id=row["user_id"], videos=row["videos"], credits=row["credits"])
                for row in members
            ),
            busiest_hours=tuple(busiest),
            days=days,
            seconds_made=seconds,
        )

    async def erase_settled_before(self, before: datetime, *, batch: int = 500) -> int:
        """Erase prompt, image URLs and result URL of settled jobs created before ``before``.

        The rows stay (for accounting and /stats); only what a member typed or uploaded and
        the video link go. Works in batches so the write lock is never held for long.
        Returns how many jobs were erased.
        """
        erased = 0
        # Only the jobs not erased yet, through their partial index: the state index would
        # walk every settled job before the cut-off, erased ones included, on every run.
        retention = indexed_by(self._db.engine, "jobs_retention")
        chosen = f"""SELECT id FROM jobs{retention}
                     WHERE erased_at IS NULL AND state IN ('delivered', 'refunded')
                       AND created_at < :before
                     ORDER BY created_at LIMIT :batch{self._skip_locked()}"""  # noqa: S608
        while True:
            changed = await self._db.execute(
                f"""UPDATE jobs{self._by_id()} SET prompt = '', image_url = NULL,
                       last_frame_url = NULL, result_url = NULL, erased_at = :now,
                       updated_at = :now
                   WHERE erased_at IS NULL AND {self._ids_from(chosen)}""",  # noqa: S608
                {"now": self._now(), "before": _ts(before), "batch": _limit(batch)},
            )
            erased += changed
            if changed < batch:
                return erased

    async def backlog(self, now: datetime | None = None) -> Backlog:
        """Unfinished jobs by state and the due polls and deliveries, for metrics.

        Every query is bounded to unfinished states, which ``jobs_due (state, ...)``
        finds without reading the delivered and refunded history.
        """
        moment = self._now() if now is None else _ts(now)
        states = [state.value for state in UNFINISHED_STATES]
        marks = ", ".join("?" for _ in states)
        counts = await self._db.fetch_all(
            f"SELECT state, COUNT(*) AS n FROM jobs WHERE state IN ({marks}) GROUP BY state",  # noqa: S608 - placeholders only
            tuple(states),
        )
        polls = await self._db.fetch_one(
            """SELECT COUNT(*) AS n, MIN(next_poll_at) AS oldest FROM jobs
               WHERE state = 'submitted' AND next_poll_at <= ?""",
            (moment,),
        )
        at, clock = self._at()  # lease ends are read by the lease clock
        deliveries = await self._db.fetch_one(
            f"""SELECT COUNT(*) AS n, MIN(completed_at) AS oldest FROM jobs
               WHERE state = 'completed'
                 AND (delivering_until IS NULL OR delivering_until <= {at})""",  # noqa: S608
            clock,
        )
        assert polls is not None and deliveries is not None
        by_state = dict.fromkeys(UNFINISHED_STATES, 0)
        by_state.update({JobState(row["state"]): row["n"] for row in counts})
        return Backlog(
            by_state=by_state,
            due_polls=polls["n"],
            oldest_due_poll=_dt(polls["oldest"]),
            due_deliveries=deliveries["n"],
            oldest_due_delivery=_dt(deliveries["oldest"]),
        )
