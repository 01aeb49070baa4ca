"""Per-member and per-server limits and the cool-down: the defaults and the refusals.

Moderators set a guild's limits with `/config limits`; a limit left unset takes the default
here. 0 means "no limit" (and "no cool-down").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import Refusal
from core.i18n import Number, _, ngettext
from storage.models import GuildLimits

DEFAULT_MEMBER_RUNNING = 2
DEFAULT_MEMBER_QUEUED = 3
DEFAULT_SERVER_RUNNING = 10
DEFAULT_COOLDOWN_SECONDS = 0


@dataclass(frozen=True)
class Limits:
    """A guild's effective limits (defaults filled in); 0 means no limit."""

    member_running: int = DEFAULT_MEMBER_RUNNING
    member_queued: int = DEFAULT_MEMBER_QUEUED
    server_running: int = DEFAULT_SERVER_RUNNING
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS

    @classmethod
    def resolve(cls, configured: GuildLimits) -> Limits:
        """The effective limits of a guild: what moderators set, else the defaults."""
        defaults = cls()
        return cls(
            member_running=_pick(configured.member_running, defaults.member_running),
            member_queued=_pick(configured.member_queued, defaults.member_queued),
            server_running=_pick(configured.server_running, defaults.server_running),
            cooldown_seconds=_pick(configured.cooldown_seconds, defaults.cooldown_seconds),
        )


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def cooldown_refusal(
    last_request: datetime | None, cooldown_seconds: int, now: datetime
) -> Refusal | None:
    """The refusal for a request inside the member's cool-down, or ``None`` if it may go."""
    if cooldown_seconds <= 0 or last_request is None:
        return None
    ready = last_request + timedelta(seconds=cooldown_seconds)
    if now >= ready:
        return None
    return Refusal(
        _(
            "This server has a cool-down of {seconds} s between videos. You can ask for "
            "another one <t:{ready}:R>. Nothing was charged.",
            seconds=Number(cooldown_seconds),
            ready=int(ready.timestamp()) + 1,
        ),
        retry_after=(ready - now).total_seconds(),
    )


def queue_full_refusal(queued: int, limit: int, retry_at: datetime, now: datetime) -> Refusal:
    """The refusal for a member who already has ``limit`` videos waiting."""
    return Refusal(
        ngettext(
            "You already have {count} video waiting in the queue, the most this server "
            "allows. Try again <t:{retry}:R>, when one should have started (see /jobs). "
            "Nothing was charged.",
            "You already have {count} videos waiting in the queue, the most this server "
            "allows. Try again <t:{retry}:R>, when one should have started (see /jobs). "
            "Nothing was charged.",
            queued,
            count=queued,
            retry=int(retry_at.timestamp()) + 1,
        ),
        retry_after=max(0.0, (retry_at - now).total_seconds()),
    )
