"""``CreditStore`` in portable SQL: allowances, the atomic reservation, audited changes."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
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
    Job,
    MemberAdmission,
    NewJob,
    QueueRounds,
    Reservation,
)
from storage.sql.common import (
    _ENSURE_GUILD_SQL,
    UNFINISHED_TERM,
    Clock,
    LeaseClock,
    _audit,
    _credits_text,
    _dt,
    _job,
    _limit,
    _req_dt,
    _ts,
    _write_audit,
    allowance_sql,
    indexed_by,
    reserve_sql,
    role_params,
)
from storage.sql.database import Database, Engine, LockKey, Program, Row, Transaction, drive
from storage.sql.guilds import read_guild


def _admission_sql(engine: Engine) -> str:
    """The member's side of an admission, and the queue's rounds, in one statement.

    Every part is a seek into an index whose cost does not grow with the settled history
    (``tests/storage/test_query_plans.py``): the member's latest request steps back from
    the end of ``jobs_user_period``; the queued count, the oldest queued job and the
    member's unfinished rounds read the member's live jobs (the partial index
    ``jobs_member_unfinished``); the guild's lowest unfinished round reads its unfinished
    rows; its highest round is the last entry of ``jobs_guild_round``. The indexes are
    named on SQLite (see ``indexed_by``).
    """
    period = indexed_by(engine, "jobs_user_period")
    member = indexed_by(engine, "jobs_member_unfinished")
    unfinished = indexed_by(engine, "jobs_guild_state_round")
    rounds = indexed_by(engine, "jobs_guild_round")
    return f"""
    SELECT
        (SELECT MAX(created_at) FROM jobs{period}
          WHERE guild_id = :guild_id AND user_id = :user_id
            AND state <> 'refunded') AS last_request_at,
        (SELECT COUNT(*) FROM jobs{member}
          WHERE guild_id = :guild_id AND user_id = :user_id
            AND state = 'queued' AND {UNFINISHED_TERM}) AS queued,
        (SELECT id FROM jobs{member}
          WHERE guild_id = :guild_id AND user_id = :user_id
            AND state = 'queued' AND {UNFINISHED_TERM}
          ORDER BY created_at, id LIMIT 1) AS oldest_queued_id,
        (SELECT MIN(queue_round) FROM jobs{unfinished}
          WHERE guild_id = :guild_id AND {UNFINISHED_TERM}) AS lowest_unfinished,
        (SELECT MAX(queue_round) FROM jobs{rounds} WHERE guild_id = :guild_id) AS highest,
        (SELECT MAX(queue_round) FROM jobs{member}
          WHERE guild_id = :guild_id AND user_id = :user_id
            AND {UNFINISHED_TERM}) AS member_unfinished
"""  # noqa: S608 - only index names and a constant term are formatted in


def member_lock(guild_id: int, user_id: int) -> LockKey:
    """The lock a reservation holds across its check-and-insert (one statement).

    Reservations of one member therefore run one after another on every engine (on
    PostgreSQL an advisory lock; SQLite's single writer already serialises them), while
    other members' go on in parallel. ``reset_usage`` runs in an unkeyed transaction, which
    excludes every keyed one, so a member's job ids grow in the order they commit as far as
    the reset can see: its "jobs after id N" marker never misses a job that commits late
    (with sequences, a lower id may commit after a higher one, but not around the reset).
    """
    return ("member", guild_id, user_id)



# (table, key column) of a per-member and a per-role allowance: constants, never user input.
_USER_ALLOWANCE = ("user_allowances", "user_id")
_ROLE_ALLOWANCE = ("role_allowances", "role_id")


async def _replace_allowance(
    tx: Transaction,
    where: tuple[str, str],
    guild_id: int,
    key: int,
    credits: int | None,
    now: float,
) -> int | None:
    """Set (or with ``None`` delete) one allowance row inside ``tx``; return the old credits."""
    table, column = where
    match = f"FROM {table} WHERE guild_id = ? AND {column} = ?"
    old = await tx.fetch_one(f"SELECT credits {match}", (guild_id, key))
    if credits is None:
        await tx.execute(f"DELETE {match}", (guild_id, key))
    else:
        await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
        await tx.execute(
            f"""INSERT INTO {table} (guild_id, {column}, credits, updated_at)
                VALUES (?, ?, ?, ?)
                ON CONFLICT (guild_id, {column})
                DO UPDATE SET credits = excluded.credits, updated_at = excluded.updated_at""",  # noqa: S608
            (guild_id, key, credits, now),
        )
    return None if old is None else int(old["credits"])


class SQLCreditStore(LeaseClock):
    """``CreditStore`` on either engine: usage is derived from the job ledger, never cached.

    The hold on a just-accepted job is a lease, so its end is read by the lease clock
    (the database's, see ``LeaseClock``) like every other lease.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        period: Period,
        cost_table: CostTable,
        default_credits: int,
        database_clock: Clock | None = None,
    ) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock
        self._db_clock = database_clock
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
        """Charge the user and create the job (reserved, or queued) atomically.

        Returns ``None``, changing nothing, if the user's remaining credits in the current
        period are below the job's cost.
        """
        row = await self._db.fetch_one(
            reserve_sql(new_job.role_ids, self._db.engine, self._at()[0]),
            self._reserve_params(new_job),
            lock=member_lock(new_job.guild_id, new_job.user_id),
        )
        return None if row is None else _job(row)

    def _reserve_params(self, new_job: NewJob) -> dict[str, Any]:
        now = self._clock()
        start, end = period_bounds(now, self._period)
        _, roles = role_params(new_job.role_ids)
        return {
            **roles,
            "state": "queued" if new_job.queued else "reserved",
            "queue_round": new_job.queue_round,
            **self._at()[1],
            "held_by": new_job.held_by,
            # No hold: NULL, so the lease's end is NULL too.
            "hold_seconds": None if new_job.held_by is None else float(new_job.hold_seconds),
            "guild_id": new_job.guild_id,
            "channel_id": new_job.channel_id,
            "user_id": new_job.user_id,
            "interaction_id": new_job.interaction_id,
            "mode": new_job.mode,
            "prompt": new_job.prompt,
            "image_url": new_job.image_url,
            "last_frame_url": new_job.last_frame_url,
            "reply_to_message_id": new_job.reply_to_message_id,
            "sandbox": int(new_job.sandbox),
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

    async def admission(self, guild_id: int, user_id: int) -> MemberAdmission:
        """What admitting a request of the member would be decided from, now (a read)."""
        return await drive(self._read_admission(guild_id, user_id), self._db)

    async def admit_and_reserve(
        self,
        guild_id: int,
        user_id: int,
        role_ids: Sequence[int],
        decide: Callable[[MemberAdmission], NewJob],
    ) -> Reservation:
        """Admit and charge a request in ONE transaction, under the member's lock.

        Reads the guild's rules, the member's latest request and queued jobs and the
        queue's rounds; ``decide`` (plain Python, no I/O) refuses by raising, which
        changes nothing and propagates, or returns the job to create; then the job is
        reserved as ``reserve`` would. So a cool-down, a queue limit and the credits are
        checked atomically with the charge: two requests of one member at once cannot both
        pass a check the first one's job would fail. ``role_ids`` are the member's roles
        (for the balance of a refusal); ``decide``'s job must be the member's.
        """

        def program() -> Program[Reservation]:
            admission = yield from self._read_admission(guild_id, user_id)
            new_job = decide(admission)
            if (new_job.guild_id, new_job.user_id) != (guild_id, user_id):
                raise ValueError("admit_and_reserve: the job must be the admitted member's")
            rows = yield (
                reserve_sql(new_job.role_ids, self._db.engine, self._at()[0]),
                self._reserve_params(new_job),
            )
            if rows:
                return Reservation(job=_job(rows[0]))
            params = self._allowance_params(guild_id, user_id, role_ids)
            balance = yield (allowance_sql(role_ids, self._db.engine), params)
            return Reservation(
                job=None, balance=self._balance(guild_id, user_id, balance[0], params)
            )

        return await self._db.run(program, lock=member_lock(guild_id, user_id))

    def _read_admission(self, guild_id: int, user_id: int) -> Program[MemberAdmission]:
        guild = yield from read_guild(guild_id)
        rows = yield (
            _admission_sql(self._db.engine),
            {"guild_id": guild_id, "user_id": user_id},
        )
        row = rows[0]  # a SELECT without FROM always yields one row
        return MemberAdmission(
            guild=guild,
            last_request_at=_dt(row["last_request_at"]),
            queued=int(row["queued"]),
            oldest_queued_id=row["oldest_queued_id"],
            rounds=QueueRounds(
                row["lowest_unfinished"], row["highest"], row["member_unfinished"]
            ),
        )

    def _allowance_params(
        self, guild_id: int, user_id: int, role_ids: Sequence[int] = ()
    ) -> dict[str, Any]:
        start, end = period_bounds(self._clock(), self._period)
        _, roles = role_params(role_ids)
        return {
            **roles,
            "guild_id": guild_id,
            "user_id": user_id,
            "period_start": _ts(start),
            "period_end": _ts(end),
        }

    def _balance(
        self, guild_id: int, user_id: int, row: Row, params: Mapping[str, Any]
    ) -> Balance:
        """The balance a row of ``allowance_sql`` read with ``params`` says (the same period)."""
        role_id = None
        if row["user_credits"] is not None:
            allowance, source = int(row["user_credits"]), AllowanceSource.USER
        elif row["role_credits"] is not None:
            allowance, source = int(row["role_credits"]), AllowanceSource.ROLE
            role_id = row["role_id"]
        elif row["guild_credits"] is not None:
            allowance, source = int(row["guild_credits"]), AllowanceSource.GUILD
        else:
            allowance, source = self._default_credits, AllowanceSource.DEFAULT
        used = int(row["used"])
        start, end = _req_dt(params["period_start"]), _req_dt(params["period_end"])
        return Balance(
            guild_id=guild_id,
            user_id=user_id,
            allowance=allowance,
            used=used,
            remaining=max(0, allowance - used),
            period_start=start,
            resets_at=end,
            source=source,
            role_id=role_id,
        )

    async def balance(self, guild_id: int, user_id: int, role_ids: Sequence[int] = ()) -> Balance:
        """Allowance, used and remaining credits, and when the allowance resets.

        ``role_ids`` are the member's roles: the highest allowance among them applies
        when the member has no override of their own.
        """
        params = self._allowance_params(guild_id, user_id, role_ids)
        row = await self._db.fetch_one(allowance_sql(role_ids, self._db.engine), params)
        assert row is not None  # a SELECT without FROM always yields one row
        return self._balance(guild_id, user_id, row, params)

    async def set_user_allowance(
        self, guild_id: int, user_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) a user's per-period override; audited."""
        if credits is not None:
            validate_credits(credits)
        now = self._now()
        async with self._db.transaction() as tx:
            old = await _replace_allowance(tx, _USER_ALLOWANCE, guild_id, user_id, credits, now)
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                user_id,
                AuditAction.SET_USER_ALLOWANCE,
                _credits_text(old),
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
            row = await tx.fetch_one(
                allowance_sql((), self._db.engine), self._allowance_params(guild_id, user_id)
            )
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

    async def set_role_allowance(
        self, guild_id: int, role_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` remove) the allowance of members holding a role; audited."""
        if credits is not None:
            validate_credits(credits)
        now = self._now()
        async with self._db.transaction() as tx:
            old = await _replace_allowance(tx, _ROLE_ALLOWANCE, guild_id, role_id, credits, now)
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                None,
                AuditAction.SET_ROLE_ALLOWANCE,
                _credits_text(old),
                _credits_text(credits),
                target_role_id=role_id,
            )

    async def role_allowances(self, guild_id: int) -> dict[int, int]:
        """Every role allowance of the guild: role id -> credits per period."""
        rows = await self._db.fetch_all(
            "SELECT role_id, credits FROM role_allowances WHERE guild_id = ? ORDER BY role_id",
            (guild_id,),
        )
        return {row["role_id"]: row["credits"] for row in rows}

    async def list_audit(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The guild's latest moderator changes (credits and settings), newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, _limit(limit)),
        )
        return [_audit(row) for row in rows]

    def _now(self) -> float:
        return _ts(self._clock())
