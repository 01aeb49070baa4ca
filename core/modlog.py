"""What the moderator log channel reports, free of Discord: one `LogEvent` per happening.

Callers build an event with one of the functions below and hand it to the bot's log sink,
`bot.modlog.post(guild_id, event)`, which posts it (as a compact embed, never pinging
anyone) in the guild's log channel if it has one. Posting never blocks or fails the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.wording import code, credits_text, kind_label, quote, settings_line
from storage.models import AuditAction, AuditEntry, Job

PROMPT_SHOWN = 300


class LogKind(StrEnum):
    """What happened; the embed's colour and icon follow from it."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    MODERATOR = "moderator"


@dataclass(frozen=True)
class LogEvent:
    """One line of the moderator log: a title, an optional text, short fields, a link."""

    kind: LogKind
    title: str
    text: str = ""
    fields: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    link: str | None = None


def job_accepted(job: Job, card_url: str | None) -> LogEvent:
    """A member's request was accepted and sent to the video service."""
    return LogEvent(
        kind=LogKind.ACCEPTED,
        title=f"Video #{job.id} accepted",
        text=quote(job.prompt or "(no prompt)", PROMPT_SHOWN),
        fields=(
            ("Member", f"<@{job.user_id}>"),
            ("Type", kind_label(job)),
            ("Settings", settings_line(job)),
            ("Cost", credits_text(job.cost)),
        ),
        link=card_url,
    )


def job_failed(job: Job, reason: str | None = None) -> LogEvent:
    """A job failed (or could not be posted) and its credits were refunded."""
    why = (reason or job.last_error or "unknown reason").strip()
    return LogEvent(
        kind=LogKind.FAILED,
        title=f"Video #{job.id} failed, {credits_text(job.cost)} refunded",
        text=quote(why, PROMPT_SHOWN),
        fields=(("Member", f"<@{job.user_id}>"), ("Settings", settings_line(job))),
    )


def job_refunded(job: Job, moderator_id: int) -> LogEvent:
    """A moderator refunded a job by hand (/job → Refund)."""
    return LogEvent(
        kind=LogKind.REFUNDED,
        title=f"Video #{job.id} refunded by a moderator",
        fields=(
            ("Moderator", f"<@{moderator_id}>"),
            ("Member", f"<@{job.user_id}>"),
            ("Credits", credits_text(job.cost)),
        ),
    )


def job_cancelled(job: Job, by_user_id: int, *, refunded: bool = True) -> LogEvent:
    """A job was cancelled (by its requester or a moderator)."""
    return LogEvent(
        kind=LogKind.CANCELLED,
        title=f"Video #{job.id} cancelled"
        + (f", {credits_text(job.cost)} refunded" if refunded else ""),
        fields=(("By", f"<@{by_user_id}>"), ("Member", f"<@{job.user_id}>")),
    )


_ACTION_TITLES = {
    AuditAction.SET_USER_ALLOWANCE: "Member allowance set",
    AuditAction.SET_GUILD_DEFAULT: "Server default allowance set",
    AuditAction.RESET_USAGE: "Member credits reset",
    AuditAction.ADD_ALLOWED_CHANNEL: "Channel allowed",
    AuditAction.REMOVE_ALLOWED_CHANNEL: "Channel removed from the allowed list",
    AuditAction.ADD_BLOCKED_WORD: "Word blocked",
    AuditAction.REMOVE_BLOCKED_WORD: "Word unblocked",
    AuditAction.CLEAR_SETTINGS: "Settings cleared",
    AuditAction.SET_LOG_CHANNEL: "Log channel set",
    AuditAction.REFUND_JOB: "Job refunded",
    AuditAction.SET_ROLE_ALLOWANCE: "Role allowance set",
    AuditAction.SET_LIMITS: "Queue limits set",
    AuditAction.ERASE_MEMBER_DATA: "Member data erased on request",
    AuditAction.SET_LANGUAGE: "Language set",
}
_CHANNEL_ACTIONS = {
    AuditAction.ADD_ALLOWED_CHANNEL,
    AuditAction.REMOVE_ALLOWED_CHANNEL,
    AuditAction.SET_LOG_CHANNEL,
}


def moderator_change(
    moderator_id: int,
    action: AuditAction,
    *,
    target_user_id: int | None = None,
    target_role_id: int | None = None,
    old_value: str | None = None,
    new_value: str | None = None,
) -> LogEvent:
    """A moderator changed a quota or a setting (the same facts the audit log keeps)."""

    def shown(value: str | None) -> str:
        if value is None:
            return "off" if action is AuditAction.SET_LOG_CHANNEL else "—"
        if action in _CHANNEL_ACTIONS and value.isdigit():
            return f"<#{value}>"
        return code(value, 200)

    fields = [("Moderator", f"<@{moderator_id}>")]
    if target_user_id is not None:
        fields.append(("Member", f"<@{target_user_id}>"))
    if target_role_id is not None:
        fields.append(("Role", f"<@&{target_role_id}>"))
    if action is not AuditAction.RESET_USAGE:
        fields.append(("Change", f"{shown(old_value)} → {shown(new_value)}"))
    return LogEvent(
        kind=LogKind.MODERATOR, title=_ACTION_TITLES.get(action, action.value), fields=tuple(fields)
    )


def audit_event(entry: AuditEntry) -> LogEvent:
    """The log line for an audit-log entry."""
    return moderator_change(
        entry.moderator_id,
        entry.action,
        target_user_id=entry.target_user_id,
        target_role_id=entry.target_role_id,
        old_value=entry.old_value,
        new_value=entry.new_value,
    )
