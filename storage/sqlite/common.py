"""Shared pieces of the SQLite stores: row mapping, time conversion and shared SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from storage.credits import (
    ensure_utc,
)
from storage.models import (
    AuditAction,
    AuditEntry,
    GuildSettings,
    Job,
    JobState,
)
from storage.sqlite.database import Params, Row, Transaction

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
        last_pending_at=_dt(row["last_pending_at"]),
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


class _Reader(Protocol):
    """A ``Database`` or an open ``Transaction``: whatever can run a query."""

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...


_GUILD_SQL = "SELECT default_credits FROM guild_settings WHERE guild_id = ?"
_CHANNELS_SQL = "SELECT channel_id FROM allowed_channels WHERE guild_id = ?"
_WORDS_SQL = "SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word"


def _guild(
    guild_id: int, guild: Row | None, channels: list[Row], words: list[Row]
) -> GuildSettings:
    return GuildSettings(
        guild_id=guild_id,
        default_credits=None if guild is None else guild["default_credits"],
        allowed_channel_ids=frozenset(row["channel_id"] for row in channels),
        blocked_words=tuple(row["word"] for row in words),
    )


async def _read_guild(reader: _Reader, guild_id: int) -> GuildSettings:
    """A guild's settings (defaults if it never configured anything)."""
    return _guild(
        guild_id,
        await reader.fetch_one(_GUILD_SQL, (guild_id,)),
        await reader.fetch_all(_CHANNELS_SQL, (guild_id,)),
        await reader.fetch_all(_WORDS_SQL, (guild_id,)),
    )


def _read_guild_sync(conn: sqlite3.Connection, guild_id: int) -> GuildSettings:
    """`_read_guild` on the database thread (inside `Database.run_sync`)."""
    return _guild(
        guild_id,
        conn.execute(_GUILD_SQL, (guild_id,)).fetchone(),
        conn.execute(_CHANNELS_SQL, (guild_id,)).fetchall(),
        conn.execute(_WORDS_SQL, (guild_id,)).fetchall(),
    )
