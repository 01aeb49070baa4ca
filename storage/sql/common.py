"""Shared pieces of the SQL stores: row mapping, time conversion and shared SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from storage.credits import (
    ensure_utc,
)
from storage.models import (
    AuditAction,
    AuditEntry,
    Job,
    JobState,
)
from storage.sql.database import Database, Engine, Row, Transaction

Clock = Callable[[], datetime]

SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""SQLite's own clock in UNIX epoch seconds (millisecond precision; ``unixepoch('subsec')``
needs SQLite 3.42)."""
POSTGRES_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
"""PostgreSQL's own clock in UNIX epoch seconds (the moment the statement reads it)."""


def database_now(engine: Engine) -> str:
    """SQL for the database server's current time, as stored: epoch seconds (a float).

    Leases and liveness are measured by this one clock, never by a process's own: every
    process sharing the database then agrees on when a lease ends and who is live, however
    far their clocks drift apart.
    """
    return POSTGRES_NOW if engine == "postgres" else SQLITE_NOW


class LeaseClock:
    """The clock that leases and heartbeats are read and written with (mixed into stores).

    ``_db_clock`` is ``None`` in production: the time is the database's own, read inside
    the statement (``database_now``). Tests that move time pass a stand-in clock; it is
    then bound as ``:db_now``, standing for the database's clock of every store that
    shares it.
    """

    _db: Database
    _db_clock: Clock | None

    def _at(self) -> tuple[str, dict[str, float]]:
        """The SQL for "now" by the lease clock, and the parameters it needs."""
        if self._db_clock is None:
            return database_now(self._db.engine), {}
        return ":db_now", {"db_now": _ts(self._db_clock())}

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
        last_frame_url=row["last_frame_url"],
        message_deleted_at=_dt(row["message_deleted_at"]),
        redelivered_at=_dt(row["redelivered_at"]),
        refunded_by=row["refunded_by"],
        erased_at=_dt(row["erased_at"]),
        sandbox=bool(row["sandbox"]),
        cancelled_by=row["cancelled_by"],
        queue_round=row["queue_round"],
        last_pending_at=_dt(row["last_pending_at"]),
        lease_owner=row["lease_owner"],
        lease_until=_dt(row["lease_until"]),
        upload_limit=row["upload_limit"],
        reply_to_message_id=row["reply_to_message_id"],
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
        target_role_id=row["target_role_id"],
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


MAX_ROLES = 250
"""Most roles a member can hold (Discord's limit); more are ignored."""


def _role_placeholders(role_ids: Sequence[int]) -> tuple[str, dict[str, int]]:
    """`:role_0, :role_1, ...` for the distinct roles (at most `MAX_ROLES`), and their values."""
    roles = list(dict.fromkeys(role_ids))[:MAX_ROLES]
    names = [f"role_{index}" for index in range(len(roles))]
    return ", ".join(f":{name}" for name in names), dict(zip(names, roles, strict=True))


def role_params(role_ids: Sequence[int]) -> tuple[str, dict[str, int]]:
    """The SQL for "the highest allowance among these roles" and its named parameters.

    One placeholder per role keeps the statement parameterised; no roles gives ``NULL``.
    """
    placeholders, params = _role_placeholders(role_ids)
    if not params:
        return "NULL", {}
    sql = (
        "(SELECT MAX(credits) FROM role_allowances"  # noqa: S608 - only placeholders
        f" WHERE guild_id = :guild_id AND role_id IN ({placeholders}))"
    )
    return sql, params


def role_source_sql(role_ids: Sequence[int]) -> str:
    """SQL for the role giving the highest allowance among ``role_ids`` (lowest id on ties),
    with the same placeholders as ``role_params``."""
    placeholders, params = _role_placeholders(role_ids)
    if not params:
        return "NULL"
    return (
        "(SELECT role_id FROM role_allowances"  # noqa: S608 - only placeholders
        f" WHERE guild_id = :guild_id AND role_id IN ({placeholders})"
        " ORDER BY credits DESC, role_id LIMIT 1)"
    )


UNFINISHED_TERM = "state IN ('queued', 'reserved', 'submitted')"
"""The WHERE term of the partial index ``jobs_member_unfinished`` (a member's live jobs).

SQLite uses a partial index only when the query repeats its WHERE term word for word, so
a query reading that index adds this term to its own narrower one."""


def indexed_by(engine: Engine, index: str) -> str:
    """`` INDEXED BY index`` on SQLite, nothing on PostgreSQL: the index a statement needs.

    SQLite plans without statistics (the bot never runs ``ANALYZE``), so where several
    indexes match it may pick one that walks the settled history, such as the state index
    for "this member's queued jobs", which reads every queued job of every guild, or the
    guild index, which reads the guild's whole history. Naming the index makes the plan
    fixed (a statement whose index is gone fails at once instead of scanning).
    PostgreSQL plans from its own statistics and needs no hint.
    """
    return f" INDEXED BY {index}" if engine == "sqlite" else ""


def used_sql(engine: Engine) -> str:
    """SQL for the credits a member has used this period (a scalar subquery).

    On SQLite the member's index is named: without statistics (``ANALYZE``) SQLite's
    planner prefers the covering ``jobs_guild_stats`` index, ranged on the guild and the
    period only, and so reads every job the *guild* made this period to sum one member's,
    on every reservation and balance. PostgreSQL plans from its own statistics.
    """
    return f"""(SELECT COALESCE(SUM(cost), 0) FROM jobs{indexed_by(engine, "jobs_user_period")}
          WHERE guild_id = :guild_id AND user_id = :user_id
            AND created_at >= :period_start AND created_at < :period_end
            AND state <> 'refunded'
            AND id > (SELECT COALESCE(MAX(after_job_id), 0) FROM usage_resets
                       WHERE guild_id = :guild_id AND user_id = :user_id))"""  # noqa: S608


def allowance_sql(role_ids: Sequence[int], engine: Engine) -> str:
    """The member's allowance parts and usage: override, best role, guild default, used.

    The allowance is the per-user override, else the highest allowance among the member's
    roles, else the guild default, else the bot setting; each part is reported so a
    balance can say where its number comes from.
    """
    roles, _ = role_params(role_ids)
    return f"""
    SELECT
        (SELECT credits FROM user_allowances
          WHERE guild_id = :guild_id AND user_id = :user_id) AS user_credits,
        {roles} AS role_credits,
        {role_source_sql(role_ids)} AS role_id,
        (SELECT default_credits FROM guild_settings
          WHERE guild_id = :guild_id) AS guild_credits,
        {used_sql(engine)} AS used
"""  # noqa: S608 - only placeholders are formatted in


def reserve_sql(role_ids: Sequence[int], engine: Engine, lease_now: str) -> str:
    """Check and charge in one statement (see the package docstring); ``lease_now`` is the
    lease clock's SQL (``LeaseClock._at``), which a hold on the new job is measured by."""
    roles, _ = role_params(role_ids)
    return f"""
    INSERT INTO jobs (
        guild_id, channel_id, user_id, interaction_id, mode, prompt, image_url,
        duration, aspect_ratio, quality, sound, cost, state, attempts, delivery_nonce,
        created_at, updated_at, last_frame_url, sandbox, queue_round, lease_owner, lease_until,
        reply_to_message_id)
    SELECT
        :guild_id, :channel_id, :user_id, :interaction_id, :mode, :prompt, :image_url,
        :duration, :aspect_ratio, :quality, :sound, :cost, :state, 0, :nonce,
        :now, :now, :last_frame_url, :sandbox, :queue_round, :held_by,
        {lease_now} + :hold_seconds,
        :reply_to_message_id
    WHERE
        COALESCE(
            (SELECT credits FROM user_allowances
              WHERE guild_id = :guild_id AND user_id = :user_id),
            {roles},
            (SELECT default_credits FROM guild_settings WHERE guild_id = :guild_id),
            :default_credits)
        - {used_sql(engine)}
        >= :cost
    RETURNING *
"""  # noqa: S608 - only placeholders are formatted in


_ENSURE_GUILD_SQL = (
    "INSERT INTO guild_settings (guild_id, default_credits, updated_at) VALUES (?, NULL, ?)"
    " ON CONFLICT (guild_id) DO NOTHING"
)

_AUDIT_SQL = """
    INSERT INTO audit_log
        (guild_id, moderator_id, target_user_id, action, old_value, new_value, created_at,
         target_role_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
    *,
    target_role_id: int | None = None,
) -> AuditEntry:
    row = await tx.fetch_one(
        _AUDIT_SQL,
        (
            guild_id,
            moderator_id,
            target_user_id,
            action.value,
            old_value,
            new_value,
            now,
            target_role_id,
        ),
    )
    assert row is not None  # INSERT ... RETURNING always yields the inserted row
    return _audit(row)

