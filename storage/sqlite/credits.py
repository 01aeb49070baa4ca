"""``CreditStore`` on SQLite: allowances, the atomic reservation, audited changes."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from storage.credits import (
    Period,
    period_bounds,
    validate_credits,
)
from storage.models import (
    AllowanceSource,
    AuditAction,
    AuditEntry,
    Balance,
    CostTable,
    GuildSettings,
    Job,
    NewJob,
    Reservation,
)
from storage.sqlite.common import (
    _ALLOWANCE_SQL,
    _ENSURE_GUILD_SQL,
    _RESERVE_SQL,
    Clock,
    _audit,
    _credits_text,
    _job,
    _limit,
    _read_guild_sync,
    _ts,
    _write_audit,
)
from storage.sqlite.database import Database, Row


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
        row = await self._db.fetch_one(_RESERVE_SQL, self._reserve_params(new_job))
        return None if row is None else _job(row)

    async def reserve_in_guild(
        self, guild_id: int, build: Callable[[GuildSettings], NewJob]
    ) -> Reservation:
        """Read the guild's settings, let ``build`` check the request against them, and
        reserve the job it returns, all in one transaction.

        ``build`` runs inside the transaction and must not block; an exception from it
        (a refusal) rolls back and propagates, changing nothing. When credits are short,
        ``Reservation.job`` is ``None`` and ``Reservation.balance`` says why.
        """

        def reserve(
            conn: sqlite3.Connection,
        ) -> tuple[GuildSettings, NewJob, Row | None, Row | None]:
            # Runs inside one transaction of the database's batch (see `run_sync`).
            guild = _read_guild_sync(conn, guild_id)
            new_job = build(guild)
            rows = conn.execute(_RESERVE_SQL, self._reserve_params(new_job)).fetchall()
            balance = None
            if not rows:
                params = self._allowance_params(new_job.guild_id, new_job.user_id)
                balance = conn.execute(_ALLOWANCE_SQL, params).fetchone()
            return guild, new_job, (rows[0] if rows else None), balance

        # One trip to the database thread (see `Database.run_sync`): hundreds of commands
        # arriving together otherwise queue for one event-loop round trip per statement.
        guild, new_job, row, balance_row = await self._db.run_sync(reserve)
        if row is not None:
            return Reservation(guild=guild, job=_job(row))
        assert balance_row is not None  # a SELECT without FROM always yields one row
        balance = self._balance(new_job.guild_id, new_job.user_id, balance_row)
        return Reservation(guild=guild, job=None, balance=balance)

    def _reserve_params(self, new_job: NewJob) -> dict[str, Any]:
        now = self._clock()
        start, end = period_bounds(now, self._period)
        return {
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
        }

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
