"""``JobStore`` on SQLite: the job ledger, every transition one guarded ``UPDATE``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from storage.credits import (
    Period,
    period_bounds,
)
from storage.models import (
    CompletionTime,
    Job,
    JobState,
    UsageSummary,
    UserUsage,
)
from storage.sqlite.common import (
    Clock,
    _job,
    _limit,
    _req_dt,
    _ts,
)
from storage.sqlite.database import Database

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


class SQLiteJobStore:
    """``JobStore`` on SQLite: every transition is one guarded ``UPDATE``."""

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
                   next_poll_at = :next_poll_at, submitted_at = :now, updated_at = :now
               WHERE id = :id AND state = 'reserved'""",
            {"id": job_id, "task_id": task_id, "next_poll_at": _ts(next_poll_at)},
        )

    async def mark_completed(self, job_id: int, result_url: str) -> bool:
        """submitted -> completed, recording the video URL and how long the job took."""
        params = {"id": job_id, "url": result_url, "now": self._now()}
        async with self._db.transaction() as tx:
            if (
                await tx.execute(
                    """UPDATE jobs SET state = 'completed', result_url = :url,
                           next_poll_at = NULL, completed_at = :now, updated_at = :now
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
                   attempts = attempts + 1, updated_at = :now
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
                   delivering_until = NULL, delivered_at = :now, updated_at = :now
               WHERE id = :id AND state = 'completed'""",
            {"id": job_id, "message_id": message_id},
        )

    async def mark_failed(self, job_id: int, error: str) -> bool:
        """reserved | submitted | completed -> failed (still charged until refunded)."""
        return await self._update(
            """UPDATE jobs SET state = 'failed', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, updated_at = :now
               WHERE id = :id AND state IN ('reserved', 'submitted', 'completed')""",
            {"id": job_id, "error": error},
        )

    async def mark_expired(self, job_id: int, error: str) -> bool:
        """submitted -> expired: the polling deadline passed (still charged until refunded)."""
        return await self._update(
            """UPDATE jobs SET state = 'expired', last_error = :error, next_poll_at = NULL,
                   updated_at = :now
               WHERE id = :id AND state = 'submitted'""",
            {"id": job_id, "error": error},
        )

    async def refund(self, job_id: int) -> bool:
        """failed | expired -> refunded. The second refund of a job returns ``False``."""
        return await self._update(
            """UPDATE jobs SET state = 'refunded', refunded_at = :now, updated_at = :now
               WHERE id = :id AND state IN ('failed', 'expired')""",
            {"id": job_id},
        )

    async def fail_and_refund(self, job_id: int, error: str) -> bool:
        """reserved | submitted | completed -> refunded in one step, recording ``error``."""
        return await self._update(
            """UPDATE jobs SET state = 'refunded', last_error = :error, next_poll_at = NULL,
                   delivering_until = NULL, refunded_at = :now, updated_at = :now
               WHERE id = :id AND state IN ('reserved', 'submitted', 'completed')""",
            {"id": job_id, "error": error},
        )

    async def schedule_poll(self, job_id: int, next_poll_at: datetime) -> bool:
        """Set the next poll time of a submitted job and count one more attempt."""
        return await self._update(
            """UPDATE jobs SET next_poll_at = :next_poll_at, attempts = attempts + 1,
                   updated_at = :now
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

    async def record_error(self, job_id: int, error: str) -> bool:
        """Store the last (transient) error without changing the state."""
        return await self._update(
            "UPDATE jobs SET last_error = :error, updated_at = :now WHERE id = :id",
            {"id": job_id, "error": error},
        )

    async def claim_delivery(self, job_id: int, lease_seconds: float) -> bool:
        """Lease a completed job for posting; ``False`` if another poster holds a live lease.

        Claim, post, then ``mark_delivered``. A crash after posting but before
        ``mark_delivered`` leaves a lease that runs out; whoever claims the job next must
        look for a message carrying ``Job.delivery_nonce`` before posting again.
        """
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        return await self._update(
            """UPDATE jobs SET delivering_until = :now + :lease, updated_at = :now
               WHERE id = :id AND state = 'completed'
                 AND (delivering_until IS NULL OR delivering_until <= :now)""",
            {"id": job_id, "lease": float(lease_seconds)},
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

    async def end_stale_leases(self) -> int:
        """End every live delivery lease now; return how many there were.

        Called once at start-up, when no poster of this process holds a lease yet: any live
        lease belonged to a process that died, maybe after posting. The lease is ended, not
        cleared, so ``delivering_until`` still tells the next poster to look for a message
        already posted before it posts again.
        """
        return await self._db.execute(
            """UPDATE jobs SET delivering_until = :now, updated_at = :now
               WHERE state = 'completed' AND delivering_until > :now""",
            {"now": self._now()},
        )

    async def mark_notified(self, job_id: int) -> bool:
        """Record that the requester of a refunded job was told; ``False`` if already so."""
        return await self._update(
            """UPDATE jobs SET notified_at = :now, updated_at = :now
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
        return await self._jobs(
            "SELECT * FROM jobs WHERE state NOT IN ('delivered', 'refunded') ORDER BY id", ()
        )

    async def stale_reserved(self, older_than_seconds: float) -> list[Job]:
        """Reserved jobs older than this: a crash fell between reserve and submit."""
        return await self._jobs(
            "SELECT * FROM jobs WHERE state = 'reserved' AND created_at < ? ORDER BY id",
            (self._now() - older_than_seconds,),
        )

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
