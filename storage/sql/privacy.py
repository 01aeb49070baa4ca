"""``PrivacyStore`` in portable SQL: a member's data, read out or erased, in one guild.

``erase_member`` is one transaction. Every job of the member loses what they typed or
uploaded and every link (prompt, image and result URLs, the task id, the card and post
message ids, the interaction id, the error text) and is marked erased. Jobs that still
count against the member's allowance this credit period keep the member's id until the
period ends (``forget_user_at``; ``forget_due`` clears it then), so erasing does not
hand back credits already used; every other job becomes nobody's at once
(``ERASED_USER_ID``). The member's allowance override and usage resets are deleted, and
audit entries about them name nobody. What remains are anonymous rows, so /stats totals
stay right. The erasure itself is audited, with counts only.

Unfinished jobs are not touched: the caller cancels and refunds them first
(``core.privacy``), and ``MemberErasure.unfinished`` says if any appeared meanwhile.
"""

from __future__ import annotations

from datetime import datetime

from storage.credits import Period, period_bounds
from storage.models import (
    ERASED_USER_ID,
    TERMINAL_STATES,
    AuditAction,
    AuditEntry,
    Job,
    MemberErasure,
)
from storage.sql.common import Clock, _audit, _job, _ts, _write_audit
from storage.sql.database import Database

_SETTLED = tuple(sorted(state.value for state in TERMINAL_STATES))
_ERASE_CONTENT = """
    prompt = '', image_url = NULL, last_frame_url = NULL, result_url = NULL,
    task_id = NULL, progress_message_id = NULL, delivered_message_id = NULL,
    interaction_id = NULL, last_error = NULL, erased_at = :now, updated_at = :now
"""


class SQLPrivacyStore:
    """``PrivacyStore`` on either engine."""

    def __init__(self, db: Database, clock: Clock, period: Period) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock
        self._period = period

    async def member_jobs(self, guild_id: int, user_id: int) -> list[Job]:
        """Every job of the member in the guild, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? ORDER BY id",
            (guild_id, user_id),
        )
        return [_job(row) for row in rows]

    async def member_audit(self, guild_id: int, user_id: int) -> list[AuditEntry]:
        """Audit entries about the member, oldest first.

        Not the changes a moderator made to others: those are about other members.
        """
        rows = await self._db.fetch_all(
            "SELECT * FROM audit_log WHERE guild_id = ? AND target_user_id = ? ORDER BY id",
            (guild_id, user_id),
        )
        return [_audit(row) for row in rows]

    async def member_allowance(self, guild_id: int, user_id: int) -> int | None:
        """The member's own allowance (set by a moderator), if any."""
        row = await self._db.fetch_one(
            "SELECT credits FROM user_allowances WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        return None if row is None else int(row["credits"])

    async def erase_member(self, guild_id: int, user_id: int, by_user_id: int) -> MemberErasure:
        """Erase the member's data in the guild (see the module docstring); audited."""
        now_dt = self._clock()
        now = _ts(now_dt)
        start, end = period_bounds(now_dt, self._period)
        member = {"guild_id": guild_id, "user_id": user_id, "now": now}
        settled = {"s0": _SETTLED[0], "s1": _SETTLED[1]}
        async with self._db.transaction() as tx:
            unfinished_row = await tx.fetch_one(
                """SELECT COUNT(*) AS n FROM jobs WHERE guild_id = :guild_id
                   AND user_id = :user_id AND state NOT IN (:s0, :s1)""",
                {**member, **settled},
            )
            reset_row = await tx.fetch_one(
                """SELECT COALESCE(MAX(after_job_id), 0) AS after FROM usage_resets
                   WHERE guild_id = :guild_id AND user_id = :user_id""",
                member,
            )
            assert unfinished_row is not None and reset_row is not None
            # What still counts against the allowance (the same rule as storage.sql.common's
            # used_sql): this period's unrefunded jobs after the last usage reset.
            counted = """guild_id = :guild_id AND user_id = :user_id
                AND created_at >= :period_start AND created_at < :period_end
                AND state <> 'refunded' AND id > :after"""
            window = {
                **member,
                "period_start": _ts(start),
                "period_end": _ts(end),
                "after": int(reset_row["after"]),
            }
            still_counted = await tx.execute(
                f"UPDATE jobs SET {_ERASE_CONTENT}, forget_user_at = :period_end"  # noqa: S608
                f" WHERE {counted} AND state IN (:s0, :s1)",
                {**window, **settled},
            )
            anonymised = await tx.execute(
                f"UPDATE jobs SET {_ERASE_CONTENT}, user_id = {ERASED_USER_ID:d},"  # noqa: S608
                " forget_user_at = NULL"
                " WHERE guild_id = :guild_id AND user_id = :user_id AND state IN (:s0, :s1)"
                f" AND NOT ({counted})",
                {**window, **settled},
            )
            allowance = await tx.execute(
                "DELETE FROM user_allowances WHERE guild_id = :guild_id AND user_id = :user_id",
                member,
            )
            resets = await tx.execute(
                "DELETE FROM usage_resets WHERE guild_id = :guild_id AND user_id = :user_id",
                member,
            )
            audits = await tx.execute(
                "UPDATE audit_log SET target_user_id = NULL"
                " WHERE guild_id = :guild_id AND target_user_id = :user_id",
                member,
            )
            erased = still_counted + anonymised
            entry = await _write_audit(
                tx,
                now,
                guild_id,
                by_user_id,
                user_id,
                AuditAction.ERASE_MEMBER_DATA,
                None,
                f"{erased} jobs erased; own allowance removed: {'yes' if allowance else 'no'}",
            )
        return MemberErasure(
            jobs_erased=erased,
            jobs_still_counted=still_counted,
            allowance_removed=allowance > 0,
            usage_resets_removed=resets,
            audit_entries_anonymised=audits,
            unfinished=int(unfinished_row["n"]),
            audit=entry,
        )

    async def forget_due(self, now: datetime | None = None) -> int:
        """Erased members' jobs whose credit period ended become nobody's; return how many."""
        moment = _ts(self._clock() if now is None else now)
        return await self._db.execute(
            f"UPDATE jobs SET user_id = {ERASED_USER_ID:d}, forget_user_at = NULL,"  # noqa: S608
            " updated_at = :now WHERE forget_user_at IS NOT NULL AND forget_user_at <= :now",
            {"now": moment},
        )
