"""Storage for the community controls: role allowances, limits, the queue's guarded steps,
and the 0005 migration over a database holding jobs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import (
    AllowanceSource,
    AuditAction,
    GuildLimits,
    Job,
    JobState,
    MemberAdmission,
    NewJob,
    SQLiteStore,
    open_store,
)
from storage.sqlite.database import Database, load_migrations
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
    reserve,
)

BOOSTER, ARTIST, PLAIN = 901, 902, 903


# -- allowance resolution: override > highest role > server default > setting ---------------


async def test_allowance_without_anything_set_is_the_setting(store: SQLiteStore) -> None:
    balance = await store.credits.balance(GUILD, USER, [BOOSTER, PLAIN])
    assert (balance.allowance, balance.source, balance.role_id) == (
        DEFAULT_CREDITS,
        AllowanceSource.DEFAULT,
        None,
    )


async def test_server_default_beats_the_setting(store: SQLiteStore) -> None:
    await store.credits.set_guild_default(GUILD, 4, MODERATOR)
    balance = await store.credits.balance(GUILD, USER, [PLAIN])
    assert (balance.allowance, balance.source) == (4, AllowanceSource.GUILD)


async def test_highest_role_beats_the_server_default(store: SQLiteStore) -> None:
    await store.credits.set_guild_default(GUILD, 4, MODERATOR)
    await store.credits.set_role_allowance(GUILD, BOOSTER, 20, MODERATOR)
    await store.credits.set_role_allowance(GUILD, ARTIST, 7, MODERATOR)
    balance = await store.credits.balance(GUILD, USER, [ARTIST, BOOSTER, PLAIN])
    assert (balance.allowance, balance.source, balance.role_id) == (
        20,
        AllowanceSource.ROLE,
        BOOSTER,
    )
    # A role allowance lower than the server default still applies to its holders.
    only_artist = await store.credits.balance(GUILD, USER, [ARTIST])
    assert (only_artist.allowance, only_artist.role_id) == (7, ARTIST)
    # Members without such a role get the server default.
    assert (await store.credits.balance(GUILD, OTHER_USER, [PLAIN])).allowance == 4


async def test_member_override_beats_every_role(store: SQLiteStore) -> None:
    await store.credits.set_role_allowance(GUILD, BOOSTER, 20, MODERATOR)
    await store.credits.set_user_allowance(GUILD, USER, 2, MODERATOR)
    balance = await store.credits.balance(GUILD, USER, [BOOSTER])
    assert (balance.allowance, balance.source) == (2, AllowanceSource.USER)


async def test_role_allowances_are_per_guild(store: SQLiteStore) -> None:
    await store.credits.set_role_allowance(GUILD, BOOSTER, 20, MODERATOR)
    assert (await store.credits.balance(OTHER_GUILD, USER, [BOOSTER])).allowance == (
        DEFAULT_CREDITS
    )


async def test_reserve_honours_the_role_allowance_atomically(store: SQLiteStore) -> None:
    """A Booster (3 credits) can reserve three 1-credit jobs and not a fourth, even at once."""
    await store.credits.set_guild_default(GUILD, 1, MODERATOR)
    await store.credits.set_role_allowance(GUILD, BOOSTER, 3, MODERATOR)
    jobs = await asyncio.gather(*(reserve_or_none(store, (BOOSTER,)) for _ in range(6)))
    assert sum(job is not None for job in jobs) == 3
    assert await reserve_or_none(store, ()) is None  # without the role: 1 credit, all used


async def reserve_or_none(store: SQLiteStore, roles: tuple[int, ...]) -> Job | None:
    return await store.credits.reserve(new_job(role_ids=roles))


async def test_role_allowance_changes_are_audited_and_removable(store: SQLiteStore) -> None:
    first = await store.credits.set_role_allowance(GUILD, BOOSTER, 20, MODERATOR)
    second = await store.credits.set_role_allowance(GUILD, BOOSTER, 25, MODERATOR)
    removed = await store.credits.set_role_allowance(GUILD, BOOSTER, None, MODERATOR)
    assert [(e.old_value, e.new_value) for e in (first, second, removed)] == [
        (None, "20"),
        ("20", "25"),
        ("25", None),
    ]
    audit = await store.credits.list_audit(GUILD)
    assert [e.action for e in audit[:3]] == [AuditAction.SET_ROLE_ALLOWANCE] * 3
    assert {e.target_role_id for e in audit[:3]} == {BOOSTER}
    assert await store.credits.role_allowances(GUILD) == {}
    with pytest.raises(ValueError):
        await store.credits.set_role_allowance(GUILD, BOOSTER, -1, MODERATOR)


# -- limits ------------------------------------------------------------------------------------


async def test_limits_default_to_none_and_are_audited(store: SQLiteStore) -> None:
    assert (await store.guilds.get(GUILD)).limits == GuildLimits()
    entry = await store.guilds.set_limits(
        GUILD, GuildLimits(member_running=1, cooldown_seconds=60), MODERATOR
    )
    assert (await store.guilds.get(GUILD)).limits == GuildLimits(
        member_running=1, cooldown_seconds=60
    )
    assert entry.action is AuditAction.SET_LIMITS
    assert entry.new_value is not None and "member_running=1" in entry.new_value
    with pytest.raises(ValueError):
        await store.guilds.set_limits(GUILD, GuildLimits(cooldown_seconds=10**6), MODERATOR)


# -- the queue's guarded steps -----------------------------------------------------------------


async def test_claim_respects_member_and_server_limits(store: SQLiteStore) -> None:
    a1 = await reserve(store, queued=True)
    a2 = await reserve(store, queued=True)
    b1 = await reserve(store, queued=True, user_id=OTHER_USER)
    assert await store.jobs.claim_queued(a1.id, member_running=1, server_running=2)
    assert not await store.jobs.claim_queued(a2.id, member_running=1, server_running=2)
    assert await store.jobs.claim_queued(b1.id, member_running=1, server_running=2)
    assert await store.jobs.running_counts() == {(GUILD, USER): 1, (GUILD, OTHER_USER): 1}


async def test_racing_claims_never_exceed_the_server_limit(store: SQLiteStore) -> None:
    jobs = [await reserve(store, queued=True) for _ in range(8)]
    results = await asyncio.gather(
        *(store.jobs.claim_queued(job.id, server_running=3) for job in jobs)
    )
    assert results.count(True) == 3


async def test_queued_jobs_hold_credits_and_cancel_returns_them_once(
    store: SQLiteStore,
) -> None:
    job = await reserve(store, queued=True, duration=10)
    assert (await store.credits.balance(GUILD, USER)).used == 2
    assert await store.jobs.cancel_queued(job.id, MODERATOR)
    assert not await store.jobs.cancel_queued(job.id, MODERATOR)
    assert not await store.jobs.fail_and_refund(job.id, "late", expected=JobState.QUEUED)
    after = await store.jobs.get_job(job.id)
    assert after is not None and after.state is JobState.REFUNDED
    assert after.cancelled_by == MODERATOR and after.notified_at is not None
    assert (await store.credits.balance(GUILD, USER)).used == 0


async def test_requeue_keeps_the_charge(store: SQLiteStore) -> None:
    job = await reserve(store, queued=True)
    assert await store.jobs.claim_queued(job.id)
    assert await store.jobs.requeue(job.id, "submit: 429")
    again = await store.jobs.get_job(job.id)
    assert again is not None and again.state is JobState.QUEUED
    assert (await store.credits.balance(GUILD, USER)).used == 1


async def test_stale_reserved_counts_from_the_claim_not_the_request(
    store: SQLiteStore, clock: FakeClock
) -> None:
    job = await reserve(store, queued=True)
    clock.advance(seconds=600)
    assert await store.jobs.claim_queued(job.id)
    assert await store.jobs.stale_reserved(300) == []
    clock.advance(seconds=301)
    assert [j.id for j in await store.jobs.stale_reserved(300)] == [job.id]


async def test_last_request_is_the_members_latest_job(store: SQLiteStore, clock: FakeClock) -> None:
    assert await store.jobs.last_request_at(GUILD, USER) is None
    job = await job_in_state(store, JobState.SUBMITTED)
    clock.advance(seconds=42)
    assert await store.jobs.mark_completed(job.id, "https://x/v.mp4")
    assert await store.jobs.last_request_at(GUILD, USER) == job.created_at


# -- the migration -----------------------------------------------------------------------------


async def test_migration_keeps_existing_jobs_and_ids(tmp_path: Path, clock: FakeClock) -> None:
    """A database at version 2 with jobs is rebuilt: rows, ids and the id sequence survive."""
    path = tmp_path / "old.sqlite3"
    old = await Database.open(path, migrations=load_migrations()[:2])
    await old.execute(
        """INSERT INTO jobs (guild_id, channel_id, user_id, mode, prompt, duration, aspect_ratio,
               quality, sound, cost, state, delivery_nonce, created_at, updated_at)
           VALUES (1, 2, 3, 'text-to-video', 'p', 5, '16:9', 'std', 1, 1, 'submitted', 'n1',
                   0, 0)"""
    )
    await old.close()
    store = await open_store(path, default_daily_credits=DEFAULT_CREDITS, clock=clock)
    try:
        kept = await store.jobs.get_job(1)
        assert kept is not None and kept.state is JobState.SUBMITTED and kept.cancelled_by is None
        fresh = await reserve(store, queued=True)
        assert fresh.id == 2 and fresh.state is JobState.QUEUED
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"jobs_due", "jobs_unnotified", "jobs_state_created"} <= indexes


# -- admission and reservation in one transaction ------------------------------------------


class _CoolingDown(Exception):
    """The test's stand-in for a cool-down refusal."""


def _cooldown_rule(seconds: float, clock: FakeClock) -> Callable[[MemberAdmission], NewJob]:
    """A `decide` refusing a member whose latest request is younger than `seconds`."""

    def decide(admission: MemberAdmission) -> NewJob:
        last = admission.last_request_at
        if last is not None and (clock() - last).total_seconds() < seconds:
            raise _CoolingDown
        return new_job(queued=True)

    return decide


async def test_simultaneous_requests_inside_a_cooldown_make_one_job(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """Ten requests of one member at once, with a cool-down: the checks and the charge are
    one transaction under the member's lock, so exactly one passes (on PostgreSQL the ten
    run on separate pooled connections; without the lock several would read "no recent
    request" before any inserted)."""
    decide = _cooldown_rule(60, clock)
    results = await asyncio.gather(
        *(store.credits.admit_and_reserve(GUILD, USER, (), decide) for _ in range(10)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1 and made[0].job is not None
    assert all(isinstance(r, _CoolingDown) for r in results if isinstance(r, BaseException))
    assert len(await store.jobs.recent_jobs(GUILD, USER)) == 1
    clock.advance(seconds=61)
    later = await store.credits.admit_and_reserve(GUILD, USER, (), decide)
    assert later.job is not None


async def test_admission_snapshot_and_refusals_change_nothing(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """`decide` sees the guild's rules and the member's queue; a refusal rolls back, and
    short credits give the balance instead of a job."""
    await store.guilds.set_limits(
        GUILD, GuildLimits(member_queued=2, cooldown_seconds=5), MODERATOR
    )
    first = await reserve(store, queued=True)
    seen: list[MemberAdmission] = []

    def refuse(admission: MemberAdmission) -> NewJob:
        seen.append(admission)
        raise _CoolingDown

    with pytest.raises(_CoolingDown):
        await store.credits.admit_and_reserve(GUILD, USER, (), refuse)
    (admission,) = seen
    assert admission.guild.limits == GuildLimits(member_queued=2, cooldown_seconds=5)
    assert (admission.queued, admission.oldest_queued_id) == (1, first.id)
    assert admission.last_request_at == first.created_at
    assert admission.rounds.member_unfinished == first.queue_round
    assert await store.credits.admission(GUILD, USER) == admission
    assert len(await store.jobs.recent_jobs(GUILD, USER)) == 1

    for _ in range(DEFAULT_CREDITS - 1):
        await reserve(store)
    short = await store.credits.admit_and_reserve(GUILD, USER, (), lambda _: new_job())
    assert short.job is None and short.balance is not None
    assert short.balance.remaining == 0
    assert len(await store.jobs.recent_jobs(GUILD, USER, limit=50)) == DEFAULT_CREDITS


async def test_the_queue_counts_migration_counts_the_jobs_already_there(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A database from before the kept counts (version 7) with queued, running and settled
    jobs: the migration fills the counts from the ledger, and the triggers keep them."""
    path = tmp_path / "old.sqlite3"
    old = await Database.open(path, migrations=load_migrations()[:7])
    for number, (guild, user, state) in enumerate(
        [(1, 3, "queued"), (1, 3, "submitted"), (1, 4, "reserved"), (2, 3, "delivered")]
    ):
        await old.execute(
            """INSERT INTO jobs (guild_id, channel_id, user_id, mode, prompt, duration,
                   aspect_ratio, quality, sound, cost, state, delivery_nonce, created_at,
                   updated_at, queue_round)
               VALUES (?, 2, ?, 'text-to-video', 'p', 5, '16:9', 'std', 1, 1, ?, ?, 0, 0, 0)""",
            (guild, user, state, f"n{number}"),
        )
    await old.close()
    store = await open_store(path, default_daily_credits=DEFAULT_CREDITS, clock=clock)
    try:
        members = await store.jobs.waiting_members(member_running=0, server_running=0)
        assert [(m.guild_id, m.user_id, m.running, m.guild_running) for m in members] == [
            (1, 3, 1, 2)
        ]
        assert await store.jobs.claim_queued(1, member_running=2, server_running=3)
        assert await store.jobs.waiting_members(member_running=0, server_running=0) == []
        assert await store.jobs.running_counts(1) == {(1, 3): 2, (1, 4): 1}
        rows = await store.database.fetch_all(
            "SELECT guild_id, queued, running FROM queue_guilds ORDER BY guild_id"
        )
        assert [(r["guild_id"], r["queued"], r["running"]) for r in rows] == [(1, 0, 3)]
    finally:
        await store.close()
