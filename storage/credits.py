"""Pure credit rules: credit periods and allowance validation. No SQL, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

MAX_CREDITS = 1_000_000
"""The largest allowance a moderator may set."""


class Period(StrEnum):
    """How often allowances reset. Periods start at 00:00 UTC."""

    DAILY = "daily"
    WEEKLY = "weekly"
    """Weeks start on Monday."""
    MONTHLY = "monthly"


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; naive datetimes are refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
    return moment.astimezone(UTC)


def period_bounds(moment: datetime, period: Period = Period.DAILY) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of the credit period containing ``moment``."""
    moment = ensure_utc(moment)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAILY:
        return midnight, midnight + timedelta(days=1)
    if period is Period.WEEKLY:
        start = midnight - timedelta(days=midnight.weekday())
        return start, start + timedelta(days=7)
    start = midnight.replace(day=1)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start, end


def validate_credits(credits: int, *, what: str = "credits") -> int:
    """Return ``credits`` if it is a whole number from 0 to ``MAX_CREDITS``, else ``ValueError``."""
    if isinstance(credits, bool) or not isinstance(credits, int):
        raise ValueError(f"{what} must be a whole number, got {credits!r}")
    if not 0 <= credits <= MAX_CREDITS:
        raise ValueError(f"{what} must be between 0 and {MAX_CREDITS:,}, got {credits:,}")
    return credits
