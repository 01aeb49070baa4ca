"""Store methods behind the log channel, /stats, /job, Delete and retention."""

from __future__ import annotations

import secrets
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from storage import AuditAction, CostTable, JobState, SQLiteStore, open_store
from tests.storage.conftest import DEFAULT_CREDITS
from tests.storage.helpers import (
    CHANNEL,
    GUILD,
    MODERATOR,
    OTHER_GUILD,
    OTHER_USER,
    POSTER,
    START,
    USER,
    FakeClock,
    job_in_state,
)


def test_cost_scales_with_seconds() -> None:
    """5 s std is 1 credit; cost is proportional to seconds, rounded up; pro doubles it."""
    table = CostTable()
    assert [table.cost(s, "std") for s in (3, 5, 7, 10, 15)] == [1, 1, 2, 2, 3]
    assert [table.cost(s, "pro") for s in (3, 5, 8, 10, 15)] == [2, 2, 4, 4, 6]
    assert CostTable(unit_credits=2).cost(7, "std") == 3


async def test_log_channel_is_set_cleared_and_audited(store: SQLiteStore) -> None:
    """The log channel is stored per guild; each change is an audit row with old and new."""
    first = await store.guilds.set_log_channel(GUILD, 42, MODERATOR)
    assert (await store.guilds.get(GUILD)).log_channel_id == 42
    assert (first.action, first.old_value, first.new_value) == (
        AuditAction.SET_LOG_CHANNEL,
        None,
        "42",
    )
    second = await store.guilds.set_log_channel(GUILD, None, MODERATOR)
    assert (second.old_value, second.new_value) == ("42", None)
    assert (await store.guilds.get(GUILD)).log_channel_id is None
    assert (await store.guilds.get(OTHER_GUILD)).log_channel_id is None


async def test_moderator_refund_happens_once_and_returns_credits(store: SQLiteStore) -> None:
    """A delivered job can be refunded by a moderator, once, audited, credits returned."""
    job = await job_in_state(store, JobState.DELIVERED, duration=10)
    assert (await store.credits.balance(GUILD, USER)).used == 2
    entry = await store.jobs.moderator_refund(job.id, MODERATOR)
    assert entry is not None and entry.action is AuditAction.REFUND_JOB
    assert entry.target_user_id == USER and entry.moderator_id == MODERATOR
    assert await store.jobs.moderator_refund(job.id, MODERATOR) is None
    refunded = await store.jobs.get_job(job.id)
    assert refunded is not None and refunded.state is JobState.REFUNDED
    assert refunded.refunded_by == MODERATOR and refunded.notified_at is not None
    assert (await store.credits.balance(GUILD, USER)).used == 0
    assert await store.jobs.moderator_refund(999_999, MODERATOR) is None


async def test_deleted_message_and_deliver_again_once(store: SQLiteStore) -> None:
    """Deliver again needs a deleted message (or a completed job) and is used up once, by
    a recorded post: a redelivery that failed (lease given back) leaves it available."""
    await store.processes.beat(POSTER.process_id)
    job = await job_in_state(store, JobState.DELIVERED)
    assert not await store.jobs.claim_delivery(job.id, 60, POSTER), "its message still exists"
    assert not await store.jobs.mark_message_deleted(job.id, 12345), "not its message"
    assert await store.jobs.mark_message_deleted(job.id, 999)
    assert not await store.jobs.mark_message_deleted(job.id, 999)
    assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert not await store.jobs.claim_delivery(job.id, 60, POSTER), "being posted"
    assert await store.jobs.release_delivery(job.id, POSTER)  # the post failed
    failed = await store.jobs.get_job(job.id)
    assert failed is not None and failed.redelivered_at is None
    assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert await store.jobs.record_redelivery(job.id, 1000, POSTER)
    again = await store.jobs.get_job(job.id)
    assert again is not None and again.redelivered_at is not None
    assert again.delivered_message_id == 1000 and again.message_deleted_at is None
    assert await store.jobs.mark_message_deleted(job.id, 1000)
    assert not await store.jobs.claim_delivery(job.id, 60, POSTER), "used up"
    completed = await job_in_state(store, JobState.COMPLETED)
    assert await store.jobs.claim_delivery(completed.id, 60, POSTER)
    submitted = await job_in_state(store, JobState.SUBMITTED)
    assert not await store.jobs.claim_delivery(submitted.id, 60, POSTER)


async def test_guild_stats_match_a_seeded_ledger(store: SQLiteStore, clock: FakeClock) -> None:
    """Made, failed, refunded, credits, top members, busy hours, days and seconds."""
    since = START.replace(hour=0) - timedelta(days=2)
    clock.now = since + timedelta(hours=9)  # day 0, 09:00
    await job_in_state(store, JobState.DELIVERED)  # USER: 1 credit
    await job_in_state(store, JobState.DELIVERED, user_id=OTHER_USER, quality="pro")  # 2
    await job_in_state(store, JobState.REFUNDED, duration=10)  # failed, 2 refunded
    clock.now = since + timedelta(days=1, hours=9, minutes=30)  # day 1, 09:30
    await job_in_state(store, JobState.DELIVERED, sound=False)  # USER: 1
    await job_in_state(store, JobState.SUBMITTED)  # pending: 1
    delivered = await job_in_state(store, JobState.DELIVERED, duration=10)  # 2, then refunded
    await store.jobs.moderator_refund(delivered.id, MODERATOR)
    clock.now = since + timedelta(days=2, hours=15)  # day 2, 15:00
    await job_in_state(store, JobState.DELIVERED, guild_id=OTHER_GUILD)  # another guild
    clock.now = since - timedelta(hours=1)  # before the period
    await job_in_state(store, JobState.DELIVERED)

    stats = await store.jobs.guild_stats(GUILD, since, since + timedelta(days=3))
    assert (stats.made, stats.failed, stats.pending, stats.refunded) == (4, 1, 1, 2)
    assert stats.credits_spent == 1 + 2 + 1 + 1
    assert stats.credits_refunded == 2 + 2
    assert [(m.user_id, m.videos) for m in stats.top_members] == [(USER, 3), (OTHER_USER, 1)]
    assert stats.busiest_hours[0] == (9, 6)
    assert [(d.made, d.failed, d.pending) for d in stats.days] == [
        (1 + 1, 1, 0),
        (2, 0, 1),
        (0, 0, 0),
    ]
    assert [d.day for d in stats.days] == [since + timedelta(days=i) for i in range(3)]
    assert stats.seconds_made == {("std", True): 5 + 10, ("pro", True): 5, ("std", False): 5}


async def test_retention_erases_only_old_settled_jobs(store: SQLiteStore, clock: FakeClock) -> None:
    """Prompts and URLs of settled jobs before the cut go; rows, costs and the rest stay."""
    clock.now = START - timedelta(days=100)
    old_delivered = await job_in_state(
        store, JobState.DELIVERED, mode="image-to-video", image_url="https://cdn/a.png"
    )
    old_refunded = await job_in_state(store, JobState.REFUNDED)
    old_pending = await job_in_state(store, JobState.SUBMITTED)
    clock.now = START
    recent = await job_in_state(store, JobState.DELIVERED)
    erased = await store.jobs.erase_settled_before(START - timedelta(days=90), batch=1)
    assert erased == 2
    for job_id in (old_delivered.id, old_refunded.id):
        job = await store.jobs.get_job(job_id)
        assert job is not None and job.erased_at is not None
        assert (job.prompt, job.image_url, job.result_url) == ("", None, None)
        assert job.cost == 1
    for kept in (old_pending, recent):
        job = await store.jobs.get_job(kept.id)
        assert job is not None and job.erased_at is None and job.prompt == kept.prompt
    assert await store.jobs.erase_settled_before(START - timedelta(days=90)) == 0


def _seed_jobs(path: Path, count: int, since: float, days: int) -> None:
    """Insert ``count`` settled jobs of one guild spread over ``days`` (raw, for speed)."""
    conn = sqlite3.connect(path)
    rows = []
    for n in range(count):
        created = since + (n * days * 86400.0) / count
        state = ("delivered", "refunded", "delivered", "failed")[n % 4]
        rows.append(
            (
                GUILD,
                CHANNEL,
                1000 + n % 50,
                "text-to-video",
                "p",
                5 + 5 * (n % 2),
                "16:9",
                ("std", "pro")[n % 3 == 0],
                n % 2,
                1,
                state,
                secrets.token_hex(12),
                created,
                created,
                created + 30 if state == "delivered" else None,
                created + 20 if state == "delivered" else None,
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


async def test_stats_of_100000_jobs_use_the_covering_index(tmp_path: Path) -> None:
    """100,000 jobs in the period: every /stats query reads the covering index only.

    The time is printed (run with -s) for the report; it is not asserted.
    """
    path = tmp_path / "big.sqlite3"
    store = await open_store(path, default_daily_credits=DEFAULT_CREDITS)
    await store.close()
    since = START - timedelta(days=90)
    _seed_jobs(path, 100_000, since.timestamp(), 90)
    store = await open_store(path, default_daily_credits=DEFAULT_CREDITS)
    try:
        started = time.perf_counter()
        stats = await store.jobs.guild_stats(GUILD, since, START)
        elapsed = time.perf_counter() - started
        print(f"\n/stats over 100,000 jobs in 90 days: {elapsed * 1000:.0f} ms")
        assert stats.total_jobs == 100_000
        assert stats.made == 50_000 and stats.refunded == 25_000
        assert len(stats.days) == 90 and len(stats.top_members) == 5
        plan = await store.database.fetch_all(
            "EXPLAIN QUERY PLAN SELECT COUNT(*), SUM(cost) FROM jobs WHERE guild_id = :g"
            " AND created_at >= :s AND created_at < :u AND delivered_at IS NOT NULL"
            " GROUP BY user_id",
            {"g": GUILD, "s": since.timestamp(), "u": START.timestamp()},
        )
        assert any("COVERING INDEX jobs_guild_stats" in str(row[3]) for row in plan), plan
    finally:
        await store.close()


async def test_sandbox_jobs_are_marked_and_left_out_of_service_seconds(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """A job made on the sandbox says so for ever and costs the service nothing."""
    job = await job_in_state(store, JobState.DELIVERED, sandbox=True)
    assert job.sandbox
    plain = await job_in_state(store, JobState.DELIVERED)
    assert not plain.sandbox
    stats = await store.jobs.guild_stats(GUILD, START - timedelta(days=1), START + timedelta(1))
    assert stats.made == 2 and stats.seconds_made == {("std", True): 5}
