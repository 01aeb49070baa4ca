"""Data retention, free of Discord: what members typed or uploaded is not kept for ever.

Prompts, image URLs and result URLs of settled jobs (delivered or refunded) older than
`RETENTION_DAYS` are erased; the rows stay, so accounting and /stats are unaffected.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.credits import ensure_utc
from storage.store import Store

RETENTION_INTERVAL_SECONDS = 24 * 3600.0
"""How often the erase runs (daily)."""


def retention_cutoff(retention_days: int, now: datetime) -> datetime | None:
    """Jobs created before this moment are erased; ``None`` when retention is off (0 days)."""
    if retention_days < 0:
        raise ValueError(f"retention_days must be 0 or more, got {retention_days}")
    if retention_days == 0:
        return None
    return ensure_utc(now) - timedelta(days=retention_days)


async def erase_expired(store: Store, retention_days: int, now: datetime) -> int:
    """Erase the personal data of settled jobs past the retention period; return how many."""
    cutoff = retention_cutoff(retention_days, now)
    if cutoff is None:
        return 0
    return await store.jobs.erase_settled_before(cutoff)
