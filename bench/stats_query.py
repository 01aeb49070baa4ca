"""Benchmark: /stats over a busy server, with and without the covering index.

The claim it measures: migration 0004's `jobs_guild_stats` index lets /stats answer for
100,000 jobs in the period in well under a second, because every figure is read from the
index alone. The baseline is the same database with that index dropped (the older
`jobs_guild_period` index still finds the rows, but each must then be read from the table).
Both runs use the same file in the same process; only the ratio matters.

Run: .venv/bin/python -m bench.stats_query [--jobs 100000] [--days 90] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.sqlite import open_store

GUILD = 111_111_111_111_111_111


def seed(path: Path, jobs: int, since: float, days: int, other_guilds: int = 0) -> None:
    """Insert `jobs` jobs of one guild spread evenly over `days` days, interleaved with
    `other_guilds` times as many jobs of other guilds (as on a bot in many servers)."""
    conn = sqlite3.connect(path)
    rows = []
    total = jobs * (1 + other_guilds)
    for n in range(total):
        created = since + (n * days * 86400.0) / total
        ours, k = divmod(n, 1 + other_guilds)  # k == 0: our guild's job number `ours`
        guild = GUILD + k
        state = ("delivered", "refunded", "delivered", "failed")[ours % 4]
        made = state == "delivered"
        rows.append(
            (
                guild,
                1,
                1000 + n % 200,
                "text-to-video",
                "a horse " * 8,
                5 + 5 * (n % 2),
                "16:9",
                ("std", "pro")[n % 3 == 0],
                n % 2,
                1,
                state,
                secrets.token_hex(12),
                created,
                created,
                created + 30 if made else None,
                created + 20 if made else None,
            )
        )
    conn.executemany(
        """INSERT INTO jobs (guild_id, channel_id, user_id, mode, prompt, duration,
               aspect_ratio, quality, sound, cost, state, delivery_nonce, created_at,
               updated_at, delivered_at, completed_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def time_stats(path: Path, since: datetime, until: datetime, runs: int) -> float:
    """Median seconds of one `guild_stats` call over `runs` runs."""
    store = await open_store(path, default_daily_credits=10)
    try:
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            stats = await store.jobs.guild_stats(GUILD, since, until)
            timings.append(time.perf_counter() - started)
        assert stats.total_jobs > 0
        return statistics.median(timings)
    finally:
        await store.close()


async def main() -> None:
    """Seed, time with the index, drop it, time again, print both and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--other-guilds", type=int, default=3, help="other guilds' jobs per job of ours"
    )
    args = parser.parse_args()
    until = datetime.now(UTC)
    since = until - timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        store = await open_store(path, default_daily_credits=10)
        await store.close()
        seed(path, args.jobs, since.timestamp(), args.days, args.other_guilds)
        indexed = await time_stats(path, since, until, args.runs)
        conn = sqlite3.connect(path)
        conn.execute("DROP INDEX jobs_guild_stats")
        conn.commit()
        conn.close()
        baseline = await time_stats(path, since, until, args.runs)
    print(
        f"/stats over {args.jobs:,} jobs in {args.days} days, among "
        f"{args.jobs * (1 + args.other_guilds):,} in the database (median of {args.runs} runs)"
    )
    print(f"  with jobs_guild_stats (covering): {indexed * 1000:8.1f} ms")
    print(f"  without it (jobs_guild_period):   {baseline * 1000:8.1f} ms")
    print(f"  ratio: {baseline / indexed:.1f}x faster with the covering index")


if __name__ == "__main__":
    asyncio.run(main())
