"""A long settled history, written in one statement: the store a bot has after months.

``seed_settled`` inserts ``count`` delivered and refunded jobs (one in ten refunded, its
requester told) spread over ``guilds`` guilds and their members, created over the
``days`` before ``now``; the jobs older than ``erased_after_days`` already had their
personal data erased by retention, as they would have. It is one ``INSERT ... SELECT``
over a recursive counter, in SQL both engines run, so a million rows take seconds, not
a million round trips. The query-plan test and ``python -m bench`` build on it.
"""

from __future__ import annotations

from datetime import datetime

from storage.sql.database import Database

SEED_NONCE_PREFIX = "seed-"
"""Every seeded job's delivery nonce starts with this (nonces are unique)."""

_SEED_SQL = """
INSERT INTO jobs (
    guild_id, channel_id, user_id, interaction_id, mode, prompt, duration, aspect_ratio,
    quality, sound, cost, task_id, state, attempts, delivery_nonce, result_url,
    delivered_message_id, last_error, created_at, updated_at, submitted_at, completed_at,
    delivered_at, refunded_at, notified_at, erased_at, queue_round)
WITH RECURSIVE n (i) AS (
    SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count
), seeded AS (
    SELECT i,
           :first_guild + (i % :guilds) AS guild_id,
           :first_user + ((i / :guilds) % :members) AS user_id,
           :now - :span + (i * :span / (:count + 1)) AS at,
           CASE WHEN i % 10 = 0 THEN 'refunded' ELSE 'delivered' END AS state
    FROM n
)
SELECT
    guild_id, guild_id + 1, user_id, i, 'text-to-video',
    CASE WHEN at < :erased_before THEN '' ELSE 'a horse galloping on a beach' END,
    5, '16:9', 'std', 0, 1, 'seed-task-' || i, state, 3, :prefix || i,
    CASE WHEN state = 'delivered' AND at >= :erased_before
         THEN 'https://cdn.example/seed.mp4' END,
    CASE WHEN state = 'delivered' THEN i END,
    CASE WHEN state = 'refunded' THEN 'seeded failure' END,
    at, at + 60, at + 1, CASE WHEN state = 'delivered' THEN at + 50 END,
    CASE WHEN state = 'delivered' THEN at + 60 END,
    CASE WHEN state = 'refunded' THEN at + 60 END,
    CASE WHEN state = 'refunded' THEN at + 61 END,
    CASE WHEN at < :erased_before THEN at + 86400 END,
    i / :guilds
FROM seeded
"""


async def seed_settled(
    db: Database,
    count: int,
    *,
    now: datetime,
    guilds: int = 20,
    members: int = 500,
    days: float = 120.0,
    erased_after_days: float = 30.0,
    first_guild: int = 900_000_000_000_000_000,
    first_user: int = 800_000_000_000_000_000,
) -> int:
    """Insert ``count`` settled jobs (see the module docstring); return how many."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    moment = now.timestamp()
    return await db.execute(
        _SEED_SQL,
        {
            "count": count,
            "guilds": guilds,
            "members": members,
            "first_guild": first_guild,
            "first_user": first_user,
            "now": moment,
            "span": days * 86400.0,
            "erased_before": moment - erased_after_days * 86400.0,
            "prefix": SEED_NONCE_PREFIX,
        },
    )
