"""Credit reservation throughput against bare single-row UPDATEs on the same connection.

A pair is what every request costs the store: `credits.reserve` (the atomic check-and-
charge that creates the job) and `jobs.mark_submitted` (recording the task id). The
baseline is the cheapest write SQLite can do on the same connection, issued the same way
(as many at once as the pairs run at once, so both sides get the same group commits:
see `storage.sqlite.database`), so the ratio says how much of the database's write
capacity the credit logic keeps. Each pair is two writes and a bare UPDATE one, so 50 %
would mean the credit logic costs nothing beyond its two statements.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
    serial_updates_per_second: float = 0.0
    """Bare UPDATEs issued one after another (each its own commit), for comparison with
    earlier runs, whose baseline this was; the pairs run at once and share commits."""


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


async def _prepare_counter(store: SQLiteStore) -> None:
    db = store.database
    await db.execute(
        "CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
    )
    await db.execute("INSERT OR IGNORE INTO bench_counter (id, n) VALUES (1, 0)")


async def _bare_updates(store: SQLiteStore, count: int, *, at_once: bool = True) -> float:
    """Seconds taken by `count` single-row UPDATEs issued at once (like the pairs are), or
    one after another."""
    started = time.perf_counter()
    if not at_once:
        for _ in range(count):
            await store.database.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
        return time.perf_counter() - started
    await asyncio.gather(
        *(
            store.database.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
            for _ in range(count)
        )
    )
    return time.perf_counter() - started


async def crowd_and_racer(
    path: Path, *, members: int, rounds: int, allowance: int, attempts: int
) -> tuple[CreditRun, CreditRun]:
    """Both credit figures on one store, each round interleaving the baseline with the work.

    A round times `members` bare UPDATEs, then `members` members reserving and committing
    once each at the same moment; then `attempts` bare UPDATEs, then one fresh member with
    `allowance` credits firing `attempts` reservations at once. Interleaving in small rounds
    exposes both sides to the same (shared, noisy) machine.
    """
    store = await open_store(path, default_daily_credits=rounds)
    try:
        await _prepare_counter(store)
        await _bare_updates(store, 20)  # warm-up
        crowd_updates = crowd_update_time = crowd_time = 0.0
        racer_update_time = racer_time = 0.0
        crowd_pairs = racer_pairs = racer_overspent = 0
        serial_time = 0.0
        for trial in range(rounds):
            serial_time += await _bare_updates(store, members, at_once=False)
            crowd_update_time += await _bare_updates(store, members)
            crowd_updates += members
            started = time.perf_counter()
            done = await asyncio.gather(*(_pair(store, 100 + m, trial) for m in range(members)))
            crowd_time += time.perf_counter() - started
            crowd_pairs += sum(done)

            racer = 10_000 + trial
            await store.credits.set_user_allowance(GUILD, racer, allowance, MODERATOR)
            racer_update_time += await _bare_updates(store, attempts)
            started = time.perf_counter()
            done = await asyncio.gather(*(_pair(store, racer, n) for n in range(attempts)))
            racer_time += time.perf_counter() - started
            won = sum(done)
            racer_pairs += won
            balance = await store.credits.balance(GUILD, racer)
            racer_overspent += max(0, won - allowance) + max(0, -balance.remaining)
        crowd_overspent = 0
        for m in range(members):
            balance = await store.credits.balance(GUILD, 100 + m)
            crowd_overspent += max(0, -balance.remaining) + max(0, balance.used - balance.allowance)
        crowd = CreditRun(
            crowd_pairs / crowd_time,
            crowd_updates / crowd_update_time,
            crowd_pairs,
            crowd_overspent,
            rounds * members / serial_time,
        )
        racing = CreditRun(
            racer_pairs / racer_time,
            rounds * attempts / racer_update_time,
            racer_pairs,
            racer_overspent,
            rounds * members / serial_time,
        )
        return crowd, racing
    finally:
        await store.close()
