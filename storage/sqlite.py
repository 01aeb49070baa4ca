"""The SQLite implementation of ``storage.store.Store``.

Why the write pattern is safe under concurrent writers
------------------------------------------------------
Two kinds of concurrency meet here: coroutines of one bot sharing one connection, and
separate connections (a second process, a restarted bot whose old process is still
exiting, a maintenance script) sharing the file.

1. **Every change that must not happen twice is one guarded statement.** A transition is
   ``UPDATE jobs SET state = 'delivered' ... WHERE id = ? AND state = 'completed'``; a
   reservation is ``INSERT INTO jobs ... SELECT ... WHERE allowance - used >= cost``. A
   single write statement runs inside SQLite's write lock from its first read to its
   commit, so the check and the change cannot be separated by another writer: the
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
delivery is: ``claim_delivery`` (a lease only one poster can hold), post, then
``mark_delivered``. Only a crash between posting and ``mark_delivered`` can leave a posted
but undelivered job; its lease then runs out and the job comes back from
``deliverable_jobs``. Each job carries a unique ``delivery_nonce`` (at most 25 characters,
the limit of a Discord message nonce): the bot sends it as the message nonce (with
``enforce_nonce``) or as a marker in the message, and before posting a job it claimed
again it looks for a recent message carrying that nonce and, if there is one, only calls
``mark_delivered``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.credits import (
    Period,
    ensure_utc,
    period_bounds,
    validate_credits,
)
from storage.database import Database, Row, Transaction
from storage.models import (
    AllowanceSource,
    AuditAction,
    AuditEntry,
    Balance,
    CostTable,
    GuildSettings,
    Job,
    JobState,
    NewJob,
    UsageSummary,
    UserUsage,
)

Clock = Callable[[], datetime]

MAX_BLOCKED_WORD_LENGTH = 100
"""Longest blocked word or phrase a moderator may add."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


def _ts(moment: datetime) -> float:
    return ensure_utc(moment).timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _req_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _job(row: Row) -> Job:
    return Job(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        interaction_id=row["interaction_id"],
        progress_message_id=row["progress_message_id"],
        mode=row["mode"],
        prompt=row["prompt"],
        image_url=row["image_url"],
        duration=row["duration"],
        aspect_ratio=row["aspect_ratio"],
        quality=row["quality"],
        sound=bool(row["sound"]),
        cost=row["cost"],
        task_id=row["task_id"],
        state=JobState(row["state"]),
        attempts=row["attempts"],
        next_poll_at=_dt(row["next_poll_at"]),
        delivering_until=_dt(row["delivering_until"]),
        delivery_nonce=row["delivery_nonce"],
        result_url=row["result_url"],
        delivered_message_id=row["delivered_message_id"],
        last_error=row["last_error"],
        created_at=_req_dt(row["created_at"]),
        updated_at=_req_dt(row["updated_at"]),
        submitted_at=_dt(row["submitted_at"]),
        completed_at=_dt(row["completed_at"]),
        delivered_at=_dt(row["delivered_at"]),
        refunded_at=_dt(row["refunded_at"]),
        notified_at=_dt(row["notified_at"]),
    )


def _audit(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        moderator_id=row["moderator_id"],
        target_user_id=row["target_user_id"],
        action=AuditAction(row["action"]),
        old_value=row["old_value"],
        new_value=row["new_value"],
        created_at=_req_dt(row["created_at"]),
    )


def _limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return limit


def _credits_text(credits: int | None) -> str | None:
    return None if credits is None else str(credits)


def _normalise_word(word: str) -> str:
    normalised = " ".join(word.split()).lower()
    if not normalised:
        raise ValueError("a blocked word cannot be empty")
    if len(normalised) > MAX_BLOCKED_WORD_LENGTH:
        raise ValueError(f"a blocked word can be at most {MAX_BLOCKED_WORD_LENGTH} characters long")
    return normalised


# The user's allowance: per-user override, else guild default, else the bot setting.
# Its source is reported alongside so balances can say where the number comes from.
_ALLOWANCE_SQL = """
    SELECT
        (SELECT credits FROM user_allowances
          WHERE guild_id = :guild_id AND user_id = :user_id) AS user_credits,
        (SELECT default_credits FROM guild_settings
          WHERE guild_id = :guild_id) AS guild_credits,
        (SELECT COALESCE(SUM(cost), 0) FROM jobs
          WHERE guild_id = :guild_id AND user_id = :user_id
            AND created_at >= :period_start AND created_at < :period_end
            AND state <> 'refunded'
            AND id > (SELECT COALESCE(MAX(after_job_id), 0) FROM usage_resets
                       WHERE guild_id = :guild_id AND user_id = :user_id)) AS used
"""

# Check and charge in one statement: see the module docstring.
_RESERVE_SQL = """
    INSERT INTO jobs (
        guild_id, channel_id, user_id, interaction_id, mode, prompt, image_url,
        duration, aspect_ratio, quality, sound, cost, state, attempts, delivery_nonce,
        created_at, updated_at)
    SELECT
        :guild_id, :channel_id, :user_id, :interaction_id, :mode, :prompt, :image_url,
        :duration, :aspect_ratio, :quality, :sound, :cost, 'reserved', 0, :nonce,
        :now, :now
    WHERE
        COALESCE(
            (SELECT credits FROM user_allowances
              WHERE guild_id = :guild_id AND user_id = :user_id),
            (SELECT default_credits FROM guild_settings WHERE guild_id = :guild_id),
            :default_credits)
        - (SELECT COALESCE(SUM(cost), 0) FROM jobs
            WHERE guild_id = :guild_id AND user_id = :user_id
              AND created_at >= :period_start AND created_at < :period_end
              AND state <> 'refunded'
              AND id > (SELECT COALESCE(MAX(after_job_id), 0) FROM usage_resets
                         WHERE guild_id = :guild_id AND user_id = :user_id))
        >= :cost
    RETURNING *
"""

_ENSURE_GUILD_SQL = (
    "INSERT INTO guild_settings (guild_id, default_credits, updated_at) VALUES (?, NULL, ?)"
    " ON CONFLICT (guild_id) DO NOTHING"
)

_AUDIT_SQL = """
    INSERT INTO audit_log
        (guild_id, moderator_id, target_user_id, action, old_value, new_value, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    RETURNING *
"""


async def _write_audit(
    tx: Transaction,
    now: float,
    guild_id: int,
    moderator_id: int,
    target_user_id: int | None,
    action: AuditAction,
    old_value: str | None,
    new_value: str | None,
) -> AuditEntry:
    row = await tx.fetch_one(
        _AUDIT_SQL,
        (guild_id, moderator_id, target_user_id, action.value, old_value, new_value, now),
    )
    assert row is not None  # INSERT ... RETURNING always yields the inserted row
    return _audit(row)


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
        """submitted -> completed, recording the video URL."""
        return await self._update(
            """UPDATE jobs SET state = 'completed', result_url = :url, next_poll_at = NULL,
                   completed_at = :now, updated_at = :now
               WHERE id = :id AND state = 'submitted'""",
            {"id": job_id, "url": result_url},
        )

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


class SQLiteCreditStore:
    """``CreditStore`` on SQLite: usage is derived from the job ledger, never cached."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        period: Period,
        cost_table: CostTable,
        default_credits: int,
    ) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock
        self._period = period
        self._cost_table = cost_table
        self._default_credits = validate_credits(default_credits, what="default credits")

    @property
    def cost_table(self) -> CostTable:
        """What generations cost."""
        return self._cost_table

    @property
    def period(self) -> Period:
        """How often allowances reset."""
        return self._period

    def cost(self, duration: int, quality: str) -> int:
        """Credits a generation of ``duration`` seconds at ``quality`` costs."""
        return self._cost_table.cost(duration, quality)

    async def reserve(self, new_job: NewJob) -> Job | None:
        """Charge the user and create the job (state reserved) atomically.

        Returns ``None``, changing nothing, if the user's remaining credits in the current
        period are below the job's cost.
        """
        now = self._clock()
        start, end = period_bounds(now, self._period)
        row = await self._db.fetch_one(
            _RESERVE_SQL,
            {
                "guild_id": new_job.guild_id,
                "channel_id": new_job.channel_id,
                "user_id": new_job.user_id,
                "interaction_id": new_job.interaction_id,
                "mode": new_job.mode,
                "prompt": new_job.prompt,
                "image_url": new_job.image_url,
                "duration": new_job.duration,
                "aspect_ratio": new_job.aspect_ratio,
                "quality": new_job.quality,
                "sound": int(new_job.sound),
                "cost": self.cost(new_job.duration, new_job.quality),
                "nonce": secrets.token_hex(12),
                "now": _ts(now),
                "period_start": _ts(start),
                "period_end": _ts(end),
                "default_credits": self._default_credits,
            },
        )
        return None if row is None else _job(row)

    def _allowance_params(self, guild_id: int, user_id: int) -> dict[str, Any]:
        start, end = period_bounds(self._clock(), self._period)
        return {
            "guild_id": guild_id,
            "user_id": user_id,
            "period_start": _ts(start),
            "period_end": _ts(end),
        }

    def _balance(self, guild_id: int, user_id: int, row: Row) -> Balance:
        if row["user_credits"] is not None:
            allowance, source = int(row["user_credits"]), AllowanceSource.USER
        elif row["guild_credits"] is not None:
            allowance, source = int(row["guild_credits"]), AllowanceSource.GUILD
        else:
            allowance, source = self._default_credits, AllowanceSource.DEFAULT
        used = int(row["used"])
        start, end = period_bounds(self._clock(), self._period)
        return Balance(
            guild_id=guild_id,
            user_id=user_id,
            allowance=allowance,
            used=used,
            remaining=max(0, allowance - used),
            period_start=start,
            resets_at=end,
            source=source,
        )

    async def balance(self, guild_id: int, user_id: int) -> Balance:
        """Allowance, used and remaining credits, and when the allowance resets."""
        row = await self._db.fetch_one(_ALLOWANCE_SQL, self._allowance_params(guild_id, user_id))
        assert row is not None  # a SELECT without FROM always yields one row
        return self._balance(guild_id, user_id, row)

    async def set_user_allowance(
        self, guild_id: int, user_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) a user's per-period override; audited."""
        if credits is not None:
            validate_credits(credits)
        now = self._now()
        async with self._db.transaction() as tx:
            old = await tx.fetch_one(
                "SELECT credits FROM user_allowances WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            )
            if credits is None:
                await tx.execute(
                    "DELETE FROM user_allowances WHERE guild_id = ? AND user_id = ?",
                    (guild_id, user_id),
                )
            else:
                await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
                await tx.execute(
                    """INSERT INTO user_allowances (guild_id, user_id, credits, updated_at)
                       VALUES (?, ?, ?, ?)
                       ON CONFLICT (guild_id, user_id)
                       DO UPDATE SET credits = excluded.credits,
                                     updated_at = excluded.updated_at""",
                    (guild_id, user_id, credits, now),
                )
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                user_id,
                AuditAction.SET_USER_ALLOWANCE,
                None if old is None else str(old["credits"]),
                _credits_text(credits),
            )

    async def set_guild_default(
        self, guild_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) the guild's default allowance; audited."""
        if credits is not None:
            validate_credits(credits)
        now = self._now()
        async with self._db.transaction() as tx:
            old = await tx.fetch_one(
                "SELECT default_credits FROM guild_settings WHERE guild_id = ?", (guild_id,)
            )
            await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
            await tx.execute(
                "UPDATE guild_settings SET default_credits = ?, updated_at = ? WHERE guild_id = ?",
                (credits, now, guild_id),
            )
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                None,
                AuditAction.SET_GUILD_DEFAULT,
                None if old is None else _credits_text(old["default_credits"]),
                _credits_text(credits),
            )

    async def reset_usage(self, guild_id: int, user_id: int, moderator_id: int) -> AuditEntry:
        """Give the user their full allowance back for the current period; audited.

        Jobs reserved so far stop counting against the user (a later refund of one of
        them therefore gives nothing extra back); jobs reserved afterwards count again.
        """
        now = self._now()
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(_ALLOWANCE_SQL, self._allowance_params(guild_id, user_id))
            assert row is not None  # a SELECT without FROM always yields one row
            await tx.execute(
                """INSERT INTO usage_resets
                       (guild_id, user_id, after_job_id, moderator_id, created_at)
                   SELECT ?, ?, COALESCE(MAX(id), 0), ?, ? FROM jobs
                   WHERE guild_id = ? AND user_id = ?""",
                (guild_id, user_id, moderator_id, now, guild_id, user_id),
            )
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                user_id,
                AuditAction.RESET_USAGE,
                str(row["used"]),
                "0",
            )

    async def list_audit(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The guild's latest moderator changes (credits and settings), newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, _limit(limit)),
        )
        return [_audit(row) for row in rows]

    def _now(self) -> float:
        return _ts(self._clock())


class SQLiteGuildSettingsStore:
    """``GuildSettingsStore`` on SQLite; each change and its audit row commit together."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if it never configured anything)."""
        guild = await self._db.fetch_one(
            "SELECT default_credits FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        channels = await self._db.fetch_all(
            "SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,)
        )
        words = await self._db.fetch_all(
            "SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word", (guild_id,)
        )
        return GuildSettings(
            guild_id=guild_id,
            default_credits=None if guild is None else guild["default_credits"],
            allowed_channel_ids=frozenset(row["channel_id"] for row in channels),
            blocked_words=tuple(row["word"] for row in words),
        )

    async def _change(
        self,
        guild_id: int,
        moderator_id: int,
        action: AuditAction,
        sql: str,
        params: tuple[Any, ...],
        *,
        old_value: str | None,
        new_value: str | None,
    ) -> bool:
        now = _ts(self._clock())
        async with self._db.transaction() as tx:
            await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
            if await tx.execute(sql, params) == 0:
                return False
            await _write_audit(tx, now, guild_id, moderator_id, None, action, old_value, new_value)
            return True

    async def add_allowed_channel(self, guild_id: int, channel_id: int, moderator_id: int) -> bool:
        """Allow the bot in a channel; ``False`` if it already was."""
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.ADD_ALLOWED_CHANNEL,
            "INSERT INTO allowed_channels (guild_id, channel_id) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            (guild_id, channel_id),
            old_value=None,
            new_value=str(channel_id),
        )

    async def remove_allowed_channel(
        self, guild_id: int, channel_id: int, moderator_id: int
    ) -> bool:
        """Stop allowing a channel; ``False`` if it was not in the list."""
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.REMOVE_ALLOWED_CHANNEL,
            "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
            (guild_id, channel_id),
            old_value=str(channel_id),
            new_value=None,
        )

    async def add_blocked_word(self, guild_id: int, word: str, moderator_id: int) -> bool:
        """Block a word (stored stripped and lower-case); ``False`` if already blocked."""
        word = _normalise_word(word)
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.ADD_BLOCKED_WORD,
            "INSERT INTO blocked_words (guild_id, word) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (guild_id, word),
            old_value=None,
            new_value=word,
        )

    async def remove_blocked_word(self, guild_id: int, word: str, moderator_id: int) -> bool:
        """Unblock a word; ``False`` if it was not blocked."""
        word = _normalise_word(word)
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.REMOVE_BLOCKED_WORD,
            "DELETE FROM blocked_words WHERE guild_id = ? AND word = ?",
            (guild_id, word),
            old_value=word,
            new_value=None,
        )

    async def clear(self, guild_id: int, moderator_id: int) -> bool:
        """Drop all allowed channels and blocked words; ``False`` if there were none."""
        now = _ts(self._clock())
        async with self._db.transaction() as tx:
            channels = await tx.fetch_all(
                "SELECT channel_id FROM allowed_channels WHERE guild_id = ? ORDER BY channel_id",
                (guild_id,),
            )
            words = await tx.fetch_all(
                "SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word", (guild_id,)
            )
            if not channels and not words:
                return False
            await tx.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))
            await tx.execute("DELETE FROM blocked_words WHERE guild_id = ?", (guild_id,))
            old = "channels: {}; words: {}".format(
                ", ".join(str(row["channel_id"]) for row in channels) or "-",
                ", ".join(row["word"] for row in words) or "-",
            )
            await _write_audit(
                tx, now, guild_id, moderator_id, None, AuditAction.CLEAR_SETTINGS, old, None
            )
            return True


class SQLiteStore:
    """``Store`` on one SQLite file. Build it with ``await open_store(path, ...)``."""

    def __init__(
        self,
        db: Database,
        *,
        default_daily_credits: int,
        cost_table: CostTable | None = None,
        clock: Clock | None = None,
        period: Period = Period.DAILY,
    ) -> None:
        """Wrap an open ``Database``; ``close()`` closes it."""
        clock = clock or utc_now
        self.database = db
        self._jobs = SQLiteJobStore(db, clock, period)
        self._credits = SQLiteCreditStore(
            db, clock, period, cost_table or CostTable(), default_daily_credits
        )
        self._guilds = SQLiteGuildSettingsStore(db, clock)

    @property
    def jobs(self) -> SQLiteJobStore:
        """The job ledger."""
        return self._jobs

    @property
    def credits(self) -> SQLiteCreditStore:
        """Allowances and reservations."""
        return self._credits

    @property
    def guilds(self) -> SQLiteGuildSettingsStore:
        """Per-guild settings."""
        return self._guilds

    async def close(self) -> None:
        """Close the database connection."""
        await self.database.close()

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_store(
    path: str | Path,
    *,
    default_daily_credits: int,
    cost_table: CostTable | None = None,
    clock: Clock | None = None,
    period: Period = Period.DAILY,
) -> SQLiteStore:
    """Open (creating and migrating) the SQLite database at ``path`` as a ``Store``.

    ``default_daily_credits`` is each user's allowance per period when neither a
    per-user override nor a guild default applies; ``period`` defaults to a UTC day.
    ``clock`` returns timezone-aware "now" (tests inject one to move time).
    """
    validate_credits(default_daily_credits, what="default credits")
    db = await Database.open(path)
    try:
        return SQLiteStore(
            db,
            default_daily_credits=default_daily_credits,
            cost_table=cost_table,
            clock=clock,
            period=period,
        )
    except BaseException:
        await db.close()
        raise


if TYPE_CHECKING:
    from storage.store import Store

    def _implements_store(store: SQLiteStore) -> Store:
        """Lets mypy prove that ``SQLiteStore`` satisfies the ``Store`` protocol."""
        return store
