"""Credit reservation throughput against bare single-row UPDATEs on the same connection.

A pair is what every request costs the store: `credits.reserve` (the atomic check-and-
charge that creates the job) and `jobs.mark_submitted` (recording the task id). The
baseline is the cheapest write SQLite can do on the same connection, so the ratio says
how much of the database's write capacity the credit logic keeps.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from storage.models import NewJob
from storage.sqlite import SQLiteStore, open_store

GUILD = 1
CHANNEL = 2
MODERATOR = 3


@dataclass(frozen=True)
class CreditRun:
    """Pairs per second, against bare UPDATEs per second, and whether anyone overspent."""

    pairs_per_second: float
    updates_per_second: float
    pairs: int
    overspent: int


def _new_job(user_id: int) -> NewJob:
    return NewJob(
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=user_id,
        mode="text-to-video",
        prompt="bench horse",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=False,
    )


async def _pair(store: SQLiteStore, user_id: int, number: int) -> bool:
    job = await store.credits.reserve(_new_job(user_id))
    if job is None:
        return False
    await store.jobs.mark_submitted(job.id, f"bench-{user_id}-{number}", datetime.now(UTC))
    return True


BASELINE_UPDATES = 200


async def _bare_updates(store: SQLiteStore, count: int = BASELINE_UPDATES) -> float:
    """Sequential autocommit single-row UPDATEs per second (after a short warm-up)."""
    db = store.database
    await db.execute(
        "CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
    )
    await db.execute("INSERT OR IGNORE INTO bench_counter (id, n) VALUES (1, 0)")
    for _ in range(count // 10):
        await db.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
    started = time.perf_counter()
    for _ in range(count):
        await db.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
    return count / (time.perf_counter() - started)


TRIALS = 5
"""Each side is measured this many times, interleaved, and the medians compared: on a
shared machine fsync times wander, and interleaving exposes both sides to the same."""


async def many_members(path: Path, members: int, rounds: int) -> CreditRun:
    """`members` members each reserve and commit `rounds` times, all at once."""
    store = await open_store(path, default_daily_credits=rounds * TRIALS)
    try:

        async def member(user_id: int, trial: int) -> int:
            won = 0
            for n in range(rounds):
                won += await _pair(store, user_id, trial * rounds + n)
            return won

        updates: list[float] = []
        pairs: list[float] = []
        total = 0
        for trial in range(TRIALS):
            updates.append(await _bare_updates(store))
            started = time.perf_counter()
            done = await asyncio.gather(*(member(100 + m, trial) for m in range(members)))
            pairs.append(sum(done) / (time.perf_counter() - started))
            total += sum(done)
        overspent = 0
        for m in range(members):
            balance = await store.credits.balance(GUILD, 100 + m)
            overspent += max(0, -balance.remaining) + max(0, balance.used - balance.allowance)
        return CreditRun(median(pairs), median(updates), total, overspent)
    finally:
        await store.close()


async def one_member_racing(path: Path, allowance: int, attempts: int) -> CreditRun:
    """One member fires `attempts` reservations at once with credits for `allowance`."""
    updates: list[float] = []
    pairs: list[float] = []
    total = overspent = 0
    for trial in range(TRIALS):
        store = await open_store(
            path.with_name(f"{path.stem}-{trial}{path.suffix}"), default_daily_credits=allowance
        )
        try:
            updates.append(await _bare_updates(store))
            started = time.perf_counter()
            done = await asyncio.gather(*(_pair(store, 7, n) for n in range(attempts)))
            elapsed = time.perf_counter() - started
            won = sum(done)
            balance = await store.credits.balance(GUILD, 7)
            overspent += max(0, won - allowance) + max(0, -balance.remaining)
            pairs.append(won / elapsed)
            total += won
        finally:
            await store.close()
    return CreditRun(median(pairs), median(updates), total, overspent)
