"""Credits: the atomic reservation, refunds, periods, allowance precedence, audit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage import (
    AllowanceSource,
    AuditAction,
    CostTable,
    JobState,
    Period,
    SQLiteStore,
    open_store,
    period_bounds,
)
from tests.storage.conftest import DEFAULT_CREDITS
from tests.storage.helpers import (
    GUILD,
    MODERATOR,
    OTHER_GUILD,
    OTHER_USER,
    USER,
    FakeClock,
    job_in_state,
    new_job,
    race_processes,
    reserve,
)

REPO = Path(__file__).parents[2]


# --- pure rules ---------------------------------------------------------------------


def test_default_cost_table() -> None:
    """5 s std = 1 credit; 10 s doubles it; pro doubles it."""
    table = CostTable()
    assert table.cost(5, "std") == 1
    assert table.cost(10, "std") == 2
    assert table.cost(5, "pro") == 2
    assert table.cost(10, "pro") == 4
    assert table.cost(3, "std") == 1  # a started unit counts


def test_cost_table_is_configurable_and_strict() -> None:
    """Custom tables apply; unknown qualities and bad values are refused."""
    table = CostTable(unit_credits=3, unit_seconds=10, quality_multipliers={"std": 1, "pro": 5})
    assert table.cost(10, "std") == 3
    assert table.cost(20, "pro") == 30
    with pytest.raises(ValueError, match="unknown quality"):
        table.cost(5, "ultra")
    with pytest.raises(ValueError, match="duration"):
        table.cost(0, "std")
    with pytest.raises(ValueError):
        CostTable(unit_credits=0)
    with pytest.raises(ValueError):
        CostTable(quality_multipliers={"std": 0})


@pytest.mark.parametrize(
    ("period", "moment", "start", "end"),
    [
        (Period.DAILY, datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC),
         datetime(2025, 3, 14, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC)),
        (Period.WEEKLY, datetime(2025, 3, 16, 8, tzinfo=UTC),  # a Sunday
         datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 17, tzinfo=UTC)),
        (Period.MONTHLY, datetime(2025, 12, 31, 8, tzinfo=UTC),
         datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_period_bounds(period: Period, moment: datetime, start: datetime, end: datetime) -> None:
    """Periods start at 00:00 UTC (weeks on Monday, months on the 1st)."""
    assert period_bounds(moment, period) == (start, end)


def test_period_bounds_convert_other_timezones_and_refuse_naive() -> None:
    """A local time is placed in its UTC day; a naive time is an error, not a guess."""
    tokyo = datetime(2025, 3, 15, 5, 0, tzinfo=timezone(timedelta(hours=9)))
    assert period_bounds(tokyo)[0] == datetime(2025, 3, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        period_bounds(datetime(2025, 3, 15))


# --- reservations ---------------------------------------------------------------------


async def test_fifty_concurrent_reservations_never_overspend(
    db_path: Path, clock: FakeClock
) -> None:
    """A user with 2 credits who fires 50 requests at once gets exactly two."""
    store = await open_store(db_path, default_daily_credits=2, clock=clock)
    try:
        results = await asyncio.gather(*(store.credits.reserve(new_job()) for _ in range(50)))
        granted = [job for job in results if job is not None]
        assert len(granted) == 2
        balance = await store.credits.balance(GUILD, USER)
        assert (balance.used, balance.remaining) == (2, 0)
        assert len(await store.jobs.recent_jobs(GUILD, USER, limit=100)) == 2
    finally:
        await store.close()


async def test_reservations_fit_by_cost(store: SQLiteStore) -> None:
    """A 4-credit job is refused with 3 left, but a 1-credit job still fits."""
    await reserve(store, duration=10, quality="pro")  # 4
    await reserve(store, duration=10)  # 2
    await reserve(store)  # 1 -> 7 used, 3 left
    assert await store.credits.reserve(new_job(duration=10, quality="pro")) is None
    assert (await store.credits.balance(GUILD, USER)).remaining == 3
    await reserve(store, duration=15)  # 3
    assert await store.credits.reserve(new_job()) is None
    assert (await store.credits.balance(GUILD, USER)).remaining == 0


async def test_two_connections_racing_never_overspend(db_path: Path, clock: FakeClock) -> None:
    """Two connections to one file, 50 requests each at once: the allowance holds."""
    first = await open_store(db_path, default_daily_credits=7, clock=clock)
    second = await open_store(db_path, default_daily_credits=7, clock=clock)
    try:
        results = await asyncio.gather(
            *(store.credits.reserve(new_job()) for _ in range(50) for store in (first, second))
        )
        assert sum(job is not None for job in results) == 7
        assert (await first.credits.balance(GUILD, USER)).used == 7
    finally:
        await first.close()
        await second.close()


async def test_separate_processes_racing_never_overspend(db_path: Path) -> None:
    """4 OS processes x 50 concurrent reservations against 7 credits: exactly 7 granted."""
    first = await open_store(db_path, default_daily_credits=7)
    await first.close()
    script = textwrap.dedent(
        """
        import asyncio, sys
        from storage import open_store
        from tests.storage.helpers import new_job, wait_until

        async def main() -> None:
            store = await open_store(sys.argv[1], default_daily_credits=7)
            try:
                await wait_until(float(sys.argv[2]), store)
                results = await asyncio.gather(
                    *(store.credits.reserve(new_job()) for _ in range(50))
                )
                print(sum(job is not None for job in results))
            finally:
                await store.close()

        asyncio.run(main())
        """
    )
    outputs = await race_processes(script, db_path, 4)
    assert sum(int(out) for out in outputs) == 7
    store = await open_store(db_path, default_daily_credits=7)
    try:
        assert (await store.credits.balance(GUILD, USER)).used == 7
        assert len(await store.jobs.recent_jobs(GUILD, USER, limit=100)) == 7
    finally:
        await store.close()


async def test_reset_racing_reservations_across_processes_keeps_the_books(
    db_path: Path,
) -> None:
    """A reset amid 4 processes' reservations: every job counts before it or after it.

    Whatever the reset saw as used (its audit's old value) stops counting; every job it
    did not see still counts. So after the race, used = granted - seen, and neither side of
    the reset ever exceeded the allowance.
    """
    first = await open_store(db_path, default_daily_credits=7)
    await first.close()
    script = textwrap.dedent(
        """
        import asyncio, sys
        from storage import open_store
        from tests.storage.helpers import GUILD, MODERATOR, USER, new_job, wait_until

        async def main() -> None:
            store = await open_store(sys.argv[1], default_daily_credits=7)
            try:
                await wait_until(float(sys.argv[2]), store)
                calls = [store.credits.reserve(new_job()) for _ in range(50)]
                if sys.argv[3] == "0":
                    calls.insert(20, store.credits.reset_usage(GUILD, USER, MODERATOR))
                results = await asyncio.gather(*calls)
                print(sum(job is not None for job in results if not hasattr(job, "action")))
            finally:
                await store.close()

        asyncio.run(main())
        """
    )
    outputs = await race_processes(script, db_path, 4)
    granted = sum(int(out) for out in outputs)
    store = await open_store(db_path, default_daily_credits=7)
    try:
        (reset,) = await store.credits.list_audit(GUILD)
        assert reset.action is AuditAction.RESET_USAGE
        seen = int(reset.old_value or "0")
        used = (await store.credits.balance(GUILD, USER)).used
        assert used == granted - seen
        assert seen <= 7 and used <= 7
        assert len(await store.jobs.recent_jobs(GUILD, USER, limit=100)) == granted
    finally:
        await store.close()


async def test_crash_without_close_loses_nothing(db_path: Path) -> None:
    """A process killed mid-lifecycle leaves its committed jobs for the next start."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from datetime import UTC, datetime
        from storage import open_store
        from tests.storage.helpers import new_job

        async def main() -> None:
            store = await open_store(sys.argv[1], default_daily_credits=5)
            job = await store.credits.reserve(new_job())
            await store.jobs.mark_submitted(job.id, "task-crash", datetime.now(UTC))
            await store.credits.reserve(new_job())
            os._exit(1)  # no close, no checkpoint: a crash

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path)], env=env, capture_output=True, check=False
    )
    assert done.returncode == 1, done.stderr.decode()
    store = await open_store(db_path, default_daily_credits=5)
    try:
        resumed = await store.jobs.resumable_jobs()
        assert [(j.state, j.task_id) for j in resumed] == [
            (JobState.SUBMITTED, "task-crash"),
            (JobState.RESERVED, None),
        ]
        assert (await store.credits.balance(GUILD, USER)).used == 2
    finally:
        await store.close()


# --- refunds and periods ----------------------------------------------------------------


async def test_double_refund_refunds_once(store: SQLiteStore) -> None:
    """The second refund of a job returns False and gives nothing back."""
    job = await job_in_state(store, JobState.FAILED, duration=10)
    await reserve(store)
    assert (await store.credits.balance(GUILD, USER)).used == 3
    assert await store.jobs.refund(job.id)
    assert (await store.credits.balance(GUILD, USER)).used == 1
    assert not await store.jobs.refund(job.id)
    assert not await store.jobs.fail_and_refund(job.id, "again", expected=JobState.COMPLETED)
    assert (await store.credits.balance(GUILD, USER)).used == 1


async def test_concurrent_refunds_refund_once(store: SQLiteStore) -> None:
    """Twenty refunds of the same expired job at once: one succeeds."""
    job = await job_in_state(store, JobState.EXPIRED)
    results = await asyncio.gather(*(store.jobs.refund(job.id) for _ in range(20)))
    assert results.count(True) == 1
    assert (await store.credits.balance(GUILD, USER)).used == 0


async def test_charge_stands_until_refunded(store: SQLiteStore) -> None:
    """Submitted, completed, delivered, failed and expired jobs all keep their charge."""
    for state in (
        JobState.SUBMITTED,
        JobState.COMPLETED,
        JobState.DELIVERED,
        JobState.FAILED,
        JobState.EXPIRED,
    ):
        await job_in_state(store, state)
    assert (await store.credits.balance(GUILD, USER)).used == 5


async def test_period_rollover_resets_usage(store: SQLiteStore, clock: FakeClock) -> None:
    """At 00:00 UTC the allowance is whole again; yesterday's jobs no longer count."""
    clock.now = datetime(2025, 3, 14, 23, 59, 30, tzinfo=UTC)
    for _ in range(DEFAULT_CREDITS):
        await reserve(store)
    assert await store.credits.reserve(new_job()) is None
    balance = await store.credits.balance(GUILD, USER)
    assert balance.remaining == 0
    assert balance.resets_at == datetime(2025, 3, 15, tzinfo=UTC)

    clock.now = datetime(2025, 3, 15, 0, 0, tzinfo=UTC)
    balance = await store.credits.balance(GUILD, USER)
    assert (balance.used, balance.remaining) == (0, DEFAULT_CREDITS)
    assert balance.period_start == datetime(2025, 3, 15, tzinfo=UTC)
    assert balance.resets_at == datetime(2025, 3, 16, tzinfo=UTC)
    assert await store.credits.reserve(new_job()) is not None


async def test_refund_after_rollover_does_not_touch_the_new_period(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """A job reserved yesterday and refunded today frees nothing in today's allowance."""
    job = await job_in_state(store, JobState.SUBMITTED)
    clock.advance(days=1)
    for _ in range(DEFAULT_CREDITS):
        await reserve(store)
    assert await store.jobs.mark_expired(job.id, "late")
    assert await store.jobs.refund(job.id)
    assert await store.credits.reserve(new_job()) is None


async def test_weekly_period(db_path: Path, clock: FakeClock) -> None:
    """With a weekly period the allowance lasts until Monday 00:00 UTC."""
    store = await open_store(db_path, default_daily_credits=1, clock=clock, period=Period.WEEKLY)
    try:
        assert store.credits.period is Period.WEEKLY
        await reserve(store)  # Friday 2025-03-14
        clock.advance(days=2)  # Sunday
        assert await store.credits.reserve(new_job()) is None
        balance = await store.credits.balance(GUILD, USER)
        assert balance.resets_at == datetime(2025, 3, 17, tzinfo=UTC)
        clock.advance(days=1)  # Monday
        assert await store.credits.reserve(new_job()) is not None
    finally:
        await store.close()


async def test_usage_is_per_guild_and_per_user(db_path: Path, clock: FakeClock) -> None:
    """Spending in one guild, or by another user, does not touch a user's balance."""
    store = await open_store(db_path, default_daily_credits=1, clock=clock)
    try:
        await reserve(store)
        assert await store.credits.reserve(new_job()) is None
        await reserve(store, guild_id=OTHER_GUILD)
        await reserve(store, user_id=OTHER_USER)
    finally:
        await store.close()


# --- allowances, moderators, audit ----------------------------------------------------


async def test_allowance_precedence(store: SQLiteStore) -> None:
    """Per-user override beats the guild default, which beats the bot setting."""
    balance = await store.credits.balance(GUILD, USER)
    assert (balance.allowance, balance.source, balance.override) == (
        DEFAULT_CREDITS,
        AllowanceSource.DEFAULT,
        False,
    )
    await store.credits.set_guild_default(GUILD, 3, MODERATOR)
    balance = await store.credits.balance(GUILD, USER)
    assert (balance.allowance, balance.source) == (3, AllowanceSource.GUILD)
    assert (await store.guilds.get(GUILD)).default_credits == 3

    await store.credits.set_user_allowance(GUILD, USER, 25, MODERATOR)
    balance = await store.credits.balance(GUILD, USER)
    assert (balance.allowance, balance.source, balance.override) == (
        25,
        AllowanceSource.USER,
        True,
    )
    assert (await store.credits.balance(GUILD, OTHER_USER)).allowance == 3
    assert (await store.credits.balance(OTHER_GUILD, USER)).allowance == DEFAULT_CREDITS

    await store.credits.set_user_allowance(GUILD, USER, None, MODERATOR)
    assert (await store.credits.balance(GUILD, USER)).allowance == 3
    await store.credits.set_guild_default(GUILD, None, MODERATOR)
    assert (await store.credits.balance(GUILD, USER)).allowance == DEFAULT_CREDITS


async def test_reserve_uses_the_effective_allowance(store: SQLiteStore) -> None:
    """A zero override blocks the user; raising it lets them generate again."""
    await store.credits.set_user_allowance(GUILD, USER, 0, MODERATOR)
    assert await store.credits.reserve(new_job()) is None
    await store.credits.set_user_allowance(GUILD, USER, 1, MODERATOR)
    assert await store.credits.reserve(new_job()) is not None
    assert await store.credits.reserve(new_job()) is None


async def test_lowering_an_allowance_below_usage_leaves_zero(store: SQLiteStore) -> None:
    """Remaining never goes negative."""
    for _ in range(4):
        await reserve(store)
    await store.credits.set_user_allowance(GUILD, USER, 2, MODERATOR)
    balance = await store.credits.balance(GUILD, USER)
    assert (balance.used, balance.remaining) == (4, 0)


async def test_reset_usage_gives_the_full_allowance_back(store: SQLiteStore) -> None:
    """After a reset the user has the full allowance; old jobs' refunds give nothing extra."""
    for _ in range(DEFAULT_CREDITS - 1):
        await reserve(store)
    pending = await job_in_state(store, JobState.SUBMITTED)
    assert await store.credits.reserve(new_job()) is None
    entry = await store.credits.reset_usage(GUILD, USER, MODERATOR)
    assert (entry.action, entry.old_value, entry.new_value) == (
        AuditAction.RESET_USAGE,
        str(DEFAULT_CREDITS),
        "0",
    )
    assert (await store.credits.balance(GUILD, USER)).remaining == DEFAULT_CREDITS
    assert await store.jobs.fail_and_refund(pending.id, "api down", expected=JobState.SUBMITTED)
    assert (await store.credits.balance(GUILD, USER)).remaining == DEFAULT_CREDITS
    await reserve(store)
    assert (await store.credits.balance(GUILD, USER)).used == 1


async def test_moderator_changes_are_audited(store: SQLiteStore, clock: FakeClock) -> None:
    """Who, whom, old value, new value and when, newest first."""
    await store.credits.set_user_allowance(GUILD, USER, 20, MODERATOR)
    clock.advance(seconds=1)
    await store.credits.set_user_allowance(GUILD, USER, 30, MODERATOR + 1)
    clock.advance(seconds=1)
    await store.credits.set_guild_default(GUILD, 5, MODERATOR)
    clock.advance(seconds=1)
    await store.credits.set_user_allowance(GUILD, USER, None, MODERATOR)
    await store.credits.set_guild_default(OTHER_GUILD, 9, MODERATOR)

    log = await store.credits.list_audit(GUILD)
    assert [
        (e.action, e.moderator_id, e.target_user_id, e.old_value, e.new_value) for e in log
    ] == [
        (AuditAction.SET_USER_ALLOWANCE, MODERATOR, USER, "30", None),
        (AuditAction.SET_GUILD_DEFAULT, MODERATOR, None, None, "5"),
        (AuditAction.SET_USER_ALLOWANCE, MODERATOR + 1, USER, "20", "30"),
        (AuditAction.SET_USER_ALLOWANCE, MODERATOR, USER, None, "20"),
    ]
    assert log[0].created_at == clock.now
    assert log[-1].created_at == clock.now - timedelta(seconds=3)
    assert len(await store.credits.list_audit(GUILD, limit=2)) == 2
    assert all(e.guild_id == GUILD for e in log)


@pytest.mark.parametrize("bad", [-1, 1_000_001, 2.5, True, "5"])
async def test_invalid_credit_values_are_refused(store: SQLiteStore, bad: object) -> None:
    """Credits must be a whole number from 0 to 1,000,000; nothing is written otherwise."""
    with pytest.raises(ValueError, match="credits"):
        await store.credits.set_user_allowance(GUILD, USER, bad, MODERATOR)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="credits"):
        await store.credits.set_guild_default(GUILD, bad, MODERATOR)  # type: ignore[arg-type]
    assert await store.credits.list_audit(GUILD) == []


async def test_cost_uses_the_configured_table(db_path: Path, clock: FakeClock) -> None:
    """The store charges what its cost table says."""
    table = CostTable(unit_credits=2, unit_seconds=5, quality_multipliers={"std": 1, "pro": 3})
    store = await open_store(db_path, default_daily_credits=100, cost_table=table, clock=clock)
    try:
        assert store.credits.cost(10, "pro") == 12
        job = await reserve(store, duration=10, quality="pro")
        assert job.cost == 12
        assert (await store.credits.balance(GUILD, USER)).used == 12
    finally:
        await store.close()


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_usage_reads_only_the_members_jobs_on_sqlite(store: SQLiteStore) -> None:
    """The reservation's and the balance's usage sum searches the member's index, not the
    guild's whole period: without statistics SQLite would otherwise pick the covering
    /stats index and read every job of the guild on each reservation."""
    from storage.sql.common import SQLITE_NOW, allowance_sql, reserve_sql

    for sql in (reserve_sql((), "sqlite", SQLITE_NOW), allowance_sql((9,), "sqlite")):
        params = {
            "guild_id": GUILD, "user_id": USER, "period_start": 0.0, "period_end": 1.0,
            "role_0": 9, "state": "queued", "queue_round": 0, "channel_id": 1,
            "held_by": None, "hold_seconds": None, "reply_to_message_id": None,
            "interaction_id": None, "mode": "text-to-video", "prompt": "p",
            "image_url": None, "last_frame_url": None, "sandbox": 0, "duration": 5,
            "aspect_ratio": "16:9", "quality": "std", "sound": 0, "cost": 1, "nonce": "n",
            "now": 0.5, "default_credits": 10,
        }  # fmt: skip
        plan = await store.database.fetch_all("EXPLAIN QUERY PLAN " + sql, params)
        searches = [row["detail"] for row in plan if "jobs" in row["detail"]]
        assert searches and all("jobs_user_period" in s for s in searches), searches
