"""/stats rules, free of Discord: the period asked for and the estimated service bill."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.i18n import _
from core.settings import BotSettings
from storage.credits import ensure_utc
from storage.models import GuildStats
from storage.store import Store

DEFAULT_DAYS = 7
MAX_DAYS = 90


@dataclass(frozen=True)
class StatsReport:
    """A guild's figures for a period and what the video service likely charged for it."""

    stats: GuildStats
    days: int
    estimated_service_credits: int
    priced_seconds: int


def period(days: int, now: datetime) -> tuple[datetime, datetime]:
    """The last ``days`` UTC days, today included: from a midnight ``days - 1`` days ago to now."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(_("Days must be between 1 and {max}.", max=MAX_DAYS))
    now = ensure_utc(now)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days - 1), now


def estimate_service_credits(stats: GuildStats, settings: BotSettings) -> int:
    """Seconds of video the service made, times its price per second (quality, sound)."""
    return sum(
        seconds * settings.service_price(quality, sound)
        for (quality, sound), seconds in stats.seconds_made.items()
    )


async def guild_report(
    store: Store, settings: BotSettings, guild_id: int, days: int, now: datetime
) -> StatsReport:
    """Everything /stats shows for the guild's last ``days`` days."""
    since, until = period(days, now)
    stats = await store.jobs.guild_stats(guild_id, since, until)
    return StatsReport(
        stats=stats,
        days=days,
        estimated_service_credits=estimate_service_credits(stats, settings),
        priced_seconds=sum(stats.seconds_made.values()),
    )
