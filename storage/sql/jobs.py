"""``JobStore`` in portable SQL: the job ledger, every transition one guarded ``UPDATE``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from storage.credits import (
    Period,
    period_bounds,
)
from storage.models import (
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
)
from storage.sql.claims import SQLJobClaims
from storage.sql.common import (
    UNFINISHED_TERM,
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
_RECORD_COMPLETION_SQL = """
    INSERT INTO completion_times
        (job_id, mode, quality, duration, sound, lower_seconds, upper_seconds, recorded_at)
    SELECT id, mode, quality, duration, sound,
           COALESCE(last_pending_at, submitted_at) - submitted_at,
           completed_at - submitted_at, completed_at
    FROM jobs WHERE id = :id AND submitted_at IS NOT NULL AND completed_at >= submitted_at
    ON CONFLICT (job_id) DO NOTHING
"""


class SQLJobStore(SQLJobClaims):
    """``JobStore`` on either engine: every transition is one guarded ``UPDATE``."""

    def __init__(self, db: Database, clock: Clock, period: Period) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock
        self._period = period

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

    async def mark_submitted(self, job_id: int, task_id: str, next_poll_at: datetime) -> bool:
        """reserved -> submitted, recording the API task id and the first poll time."""
        return await self._update(
            """UPDATE jobs SET state = 'submitted', task_id = :task_id,
                   next_poll_at = :next_poll_at, submitted_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'reserved'""",
            {"id": job_id, "task_id": task_id, "next_poll_at": _ts(next_poll_at)},
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

    async def mark_delivered(self, job_id: int, message_id: int) -> bool:
        """completed -> delivered, recording the posted message and dropping the lease."""
        return await self._update(
            """UPDATE jobs SET state = 'delivered', delivered_message_id = :message_id,
                   delivering_until = NULL, delivered_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'completed'""",
            {"id": job_id, "message_id": message_id},
        )

    async def mark_failed(self, job_id: int, error: str) -> bool:
        """reserved | submitted | completed -> failed (still charged until refunded)."""
        return await self._update(
            """UPDATE jobs SET state = 'failed', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, updated_at = :now, lease_owner = NULL,
                   lease_until = NULL
               WHERE id = :id AND state IN ('reserved', 'submitted', 'completed')""",
            {"id": job_id, "error": error},
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

    async def fail_and_refund(self, job_id: int, error: str) -> bool:
        """queued | reserved | submitted | completed -> refunded in one step, with ``error``."""
        return await self._update(
            """UPDATE jobs SET state = 'refunded', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, refunded_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state IN ('queued', 'reserved', 'submitted', 'completed')""",
            {"id": job_id, "error": error},
        )

    async def schedule_poll(self, job_id: int, next_poll_at: datetime) -> bool:
        """Set the next poll time of a submitted job and count one more attempt."""
        return await self._update(
            """UPDATE jobs SET next_poll_at = :next_poll_at, attempts = attempts + 1,
                   updated_at = :now, lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'submitted'""",
            {"id": job_id, "next_poll_at": _ts(next_poll_at)},
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

    async def claim_delivery(
        self, job_id: int, lease_seconds: float, claimant: Claimant | None = None
    ) -> bool:
        """Lease a completed job for posting; ``False`` if another poster holds a live lease.

        Claim, post, then ``mark_delivered``. A crash after posting but before
        ``mark_delivered`` leaves a lease that runs out; whoever claims the job next must
        look for a message carrying ``Job.delivery_nonce`` before posting again.
        """
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        return await self._update(
            """UPDATE jobs SET delivering_until = :now + :lease, updated_at = :now,
                   lease_owner = :owner, lease_until = NULL
               WHERE id = :id AND state = 'completed'
                 AND (delivering_until IS NULL OR delivering_until <= :now)""",
            {
                "id": job_id,
                "lease": float(lease_seconds),
                "owner": None if claimant is None else claimant.process_id,
            },
        )

    async def release_delivery(self, job_id: int) -> bool:
        """Give up a delivery lease early (posting failed; let the loop retry)."""
        return await self._update(
            """UPDATE jobs SET delivering_until = NULL, updated_at = :now
               WHERE id = :id AND state = 'completed' AND delivering_until IS NOT NULL""",
            {"id": job_id},
        )

    async def end_delivery(self, job_id: int) -> bool:
        """End a delivery lease now but leave it visible: a post may exist (see protocol)."""
        return await self._update(
            """UPDATE jobs SET delivering_until = :now, updated_at = :now
               WHERE id = :id AND state = 'completed' AND delivering_until > :now""",
            {"id": job_id},
        )

    async def mark_notified(self, job_id: int) -> bool:
        """Record that the requester of a refunded job was told; ``False`` if already so."""
        return await self._update(
            """UPDATE jobs SET notified_at = :now, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'refunded' AND notified_at IS NULL""",
            {"id": job_id},
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

    async def deliverable_jobs(self, limit: int = 50) -> list[Job]:
        """Completed jobs nobody holds a live delivery lease on, oldest first."""
        return await self._jobs(
            """SELECT * FROM jobs WHERE state = 'completed'
                 AND (delivering_until IS NULL OR delivering_until <= ?)
               ORDER BY completed_at, id LIMIT ?""",
            (self._now(), _limit(limit)),
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
    ) -> bool:
        """queued -> reserved, only while the member and the server are under their limits.

        A limit of 0 means none. The counts and the change are one statement, run under
        the guild's running-slots lock (a no-op on SQLite, whose single writer already
        serialises it; on PostgreSQL, READ COMMITTED would let two claims count the same
        slot free), so two dispatchers, even in two processes, cannot both fill the last slot.
        With a ``claimant`` the reservation is leased to it for ``lease_seconds``: no
        other process's recovery refunds it while it is being submitted.
        """
        owner = None if claimant is None else claimant.process_id
        until = None if lease_seconds is None or owner is None else self._now() + lease_seconds
        if guild_id is None:
            row = await self._db.fetch_one("SELECT guild_id FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            guild_id = row["guild_id"]
        # The counts read only running jobs (of the member, of the guild), never the history.
        member = indexed_by(self._db.engine, "jobs_member_unfinished")
        server = indexed_by(self._db.engine, "jobs_guild_state_round")
        changed = await self._db.execute(
            f"""UPDATE jobs SET state = 'reserved', updated_at = :now, lease_owner = :owner,
                   lease_until = :until
               WHERE id = :id AND state = 'queued'
                 AND (:member_running = 0 OR (
                     SELECT COUNT(*) FROM jobs AS other{member}
                      WHERE other.guild_id = jobs.guild_id AND other.user_id = jobs.user_id
                        AND other.state IN ('reserved', 'submitted')
                        AND other.{UNFINISHED_TERM}) < :member_running)
                 AND (:server_running = 0 OR (
                     SELECT COUNT(*) FROM jobs AS other{server}
                      WHERE other.guild_id = jobs.guild_id
                        AND other.state IN ('reserved', 'submitted')) < :server_running)""",  # noqa: S608 - index names
            {
                "id": job_id,
                "now": self._now(),
                "member_running": member_running,
                "server_running": server_running,
                "owner": owner,
                "until": until,
            },
            lock=("running", guild_id),
        )
        return changed == 1

    async def requeue(self, job_id: int, error: str) -> bool:
        """reserved -> queued: the API could not take the job yet (429, 402); still charged."""
        return await self._update(
            """UPDATE jobs SET state = 'queued', last_error = :error, updated_at = :now,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = :id AND state = 'reserved'""",
            {"id": job_id, "error": error},
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
                 AND state <> 'refunded'
               GROUP BY user_id ORDER BY credits DESC, user_id LIMIT :top""",
            {**params, "top": _limit(top)},
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

    async def claim_redelivery(self, job_id: int) -> bool:
        """Claim a job's one "Deliver again": delivered with its message deleted, or completed.

        ``False`` if it was claimed before, has no result URL any more, or is not eligible.
        """
        return await self._update(
            """UPDATE jobs SET redelivered_at = :now, updated_at = :now
               WHERE id = :id AND redelivered_at IS NULL AND result_url IS NOT NULL
                 AND ((state = 'delivered' AND message_deleted_at IS NOT NULL)
                      OR state = 'completed')""",
            {"id": job_id},
        )

    async def record_redelivery(self, job_id: int, message_id: int) -> bool:
        """Point a delivered job at the message "Deliver again" posted."""
        return await self._update(
            """UPDATE jobs SET delivered_message_id = :message_id, message_deleted_at = NULL,
                   updated_at = :now
               WHERE id = :id AND state = 'delivered' AND redelivered_at IS NOT NULL""",
            {"id": job_id, "message_id": message_id},
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
               {where} AND delivered_at IS NOT NULL
               GROUP BY user_id ORDER BY videos DESC, user_id LIMIT :top""",  # noqa: S608
            {**params, "top": _limit(top)},
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
        deliveries = await self._db.fetch_one(
            """SELECT COUNT(*) AS n, MIN(completed_at) AS oldest FROM jobs
               WHERE state = 'completed'
                 AND (delivering_until IS NULL OR delivering_until <= ?)""",
            (moment,),
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
