"""What the moderator log channel reports, free of Discord: one `LogEvent` per happening.

Callers build an event with one of the functions below and hand it to the bot's log sink,
`bot.modlog.post(guild_id, event)`, which posts it (as a compact embed, never pinging
anyone) in the guild's log channel if it has one. Posting never blocks or fails the caller.

Titles, field names and texts are `core.i18n.Message`s: English as a ``str`` (logs, tests),
said in the server's language when the sink posts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.i18n import Message, _
from core.wording import code, credits_text, kind_label, quote, settings_line
from storage.models import AuditAction, AuditEntry, Job

PROMPT_SHOWN = 300


MEMBER = _("Member")
MODERATOR = _("Moderator")


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
    """(name, value) pairs; either may be a `Message`, said in the reader's language."""
    link: str | None = None


def job_accepted(job: Job, card_url: str | None) -> LogEvent:
    """A member's request was accepted and sent to the video service."""
    return LogEvent(
        kind=LogKind.ACCEPTED,
        title=_("Video #{job} accepted", job=job.id),
        text=quote(job.prompt, PROMPT_SHOWN) if job.prompt else _("(no prompt)"),
        fields=(
            (MEMBER, f"<@{job.user_id}>"),
            (_("Type"), kind_label(job)),
            (_("Settings"), settings_line(job)),
            (_("Cost"), credits_text(job.cost)),
        ),
        link=card_url,
    )


def job_failed(job: Job, reason: str | None = None) -> LogEvent:
    """A job failed (or could not be posted) and its credits were refunded."""
    why = (reason or job.last_error or "").strip()
    return LogEvent(
        kind=LogKind.FAILED,
        title=_(
            "Video #{job} failed, {credits} refunded", job=job.id, credits=credits_text(job.cost)
        ),
        text=quote(why, PROMPT_SHOWN) if why else _("unknown reason"),
        fields=((MEMBER, f"<@{job.user_id}>"), (_("Settings"), settings_line(job))),
    )


def job_refunded(job: Job, moderator_id: int) -> LogEvent:
    """A moderator refunded a job by hand (/job → Refund)."""
    return LogEvent(
        kind=LogKind.REFUNDED,
        title=_("Video #{job} refunded by a moderator", job=job.id),
        fields=(
            (MODERATOR, f"<@{moderator_id}>"),
            (MEMBER, f"<@{job.user_id}>"),
            (_("Credits"), credits_text(job.cost)),
        ),
    )


def job_cancelled(job: Job, by_user_id: int, *, refunded: bool = True) -> LogEvent:
    """A job was cancelled (by its requester or a moderator)."""
    return LogEvent(
        kind=LogKind.CANCELLED,
        title=(
            _(
                "Video #{job} cancelled, {credits} refunded",
                job=job.id,
                credits=credits_text(job.cost),
            )
            if refunded
            else _("Video #{job} cancelled", job=job.id)
        ),
        fields=((_("By"), f"<@{by_user_id}>"), (MEMBER, f"<@{job.user_id}>")),
    )


_ACTION_TITLES: dict[AuditAction, Message] = {
    AuditAction.SET_USER_ALLOWANCE: _("Member allowance set"),
    AuditAction.SET_GUILD_DEFAULT: _("Server default allowance set"),
    AuditAction.RESET_USAGE: _("Member credits reset"),
    AuditAction.ADD_ALLOWED_CHANNEL: _("Channel allowed"),
    AuditAction.REMOVE_ALLOWED_CHANNEL: _("Channel removed from the allowed list"),
    AuditAction.ADD_BLOCKED_WORD: _("Word blocked"),
    AuditAction.REMOVE_BLOCKED_WORD: _("Word unblocked"),
    AuditAction.CLEAR_SETTINGS: _("Settings cleared"),
    AuditAction.SET_LOG_CHANNEL: _("Log channel set"),
    AuditAction.REFUND_JOB: _("Job refunded"),
    AuditAction.SET_ROLE_ALLOWANCE: _("Role allowance set"),
    AuditAction.SET_LIMITS: _("Queue limits set"),
    AuditAction.ERASE_MEMBER_DATA: _("Member data erased on request"),
    AuditAction.SET_LANGUAGE: _("Language set"),
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
            return _("off") if action is AuditAction.SET_LOG_CHANNEL else "—"
        if action in _CHANNEL_ACTIONS and value.isdigit():
            return f"<#{value}>"
        return code(value, 200)

    fields: list[tuple[str, str]] = [(MODERATOR, f"<@{moderator_id}>")]
    if target_user_id is not None:
        fields.append((MEMBER, f"<@{target_user_id}>"))
    if target_role_id is not None:
        fields.append((_("Role"), f"<@&{target_role_id}>"))
    if action is not AuditAction.RESET_USAGE:
        fields.append(
            (_("Change"), _("{old} → {new}", old=shown(old_value), new=shown(new_value)))
        )
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
