"""The job ledger: guarded transitions, delivery leases, polling queries, restart recovery."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from storage import ALLOWED_TRANSITIONS, JobState, JobStore, SQLiteStore, open_store
from storage.models import Claimant
from tests.storage.conftest import DEFAULT_CREDITS
from tests.storage.helpers import (
    CHANNEL,
    GUILD,
    OTHER_USER,
    POSTER,
    START,
    USER,
    FakeClock,
    deliver,
    job_in_state,
    race_processes,
    reserve,
)

Action = Callable[[JobStore, int], Awaitable[bool]]

# Every state-changing method, the state it moves a job to, and how to call it.
METHODS: dict[str, tuple[JobState, Action]] = {
    "mark_submitted": (JobState.SUBMITTED, lambda j, i: j.mark_submitted(i, "task", START)),
    "mark_completed": (JobState.COMPLETED, lambda j, i: j.mark_completed(i, "https://x/v.mp4")),
    "mark_delivered": (JobState.DELIVERED, lambda j, i: deliver(j, i, 1)),
    **{
        f"mark_failed({expected.value})": (
            JobState.FAILED,
            lambda j, i, expected=expected: j.mark_failed(i, "err", expected=expected),
        )
        for expected in (JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED)
    },
    "mark_expired": (JobState.EXPIRED, lambda j, i: j.mark_expired(i, "late")),
    "refund": (JobState.REFUNDED, lambda j, i: j.refund(i)),
    **{
        f"fail_and_refund({expected.value})": (
            JobState.REFUNDED,
            lambda j, i, expected=expected: j.fail_and_refund(i, "err", expected=expected),
        )
        for expected in (
            JobState.QUEUED,
            JobState.RESERVED,
            JobState.SUBMITTED,
            JobState.COMPLETED,
        )
    },
    "claim_queued": (JobState.RESERVED, lambda j, i: j.claim_queued(i)),
    "requeue": (JobState.QUEUED, lambda j, i: j.requeue(i, "429")),
    "cancel_queued": (JobState.REFUNDED, lambda j, i: j.cancel_queued(i, 42)),
}


def allowed(method: str, source: JobState) -> bool:
    """Whether the state machine lets ``method`` act on a job in ``source``.

    The shortcuts that could start from several states act only from the one the
    caller names (``fail_and_refund(reserved)`` never refunds a submitted job).
    """
    if method.startswith(("fail_and_refund(", "mark_failed(")):
        return method.endswith(f"({source.value})")
    if method == "cancel_queued":
        return source is JobState.QUEUED
    if method == "refund":  # queued -> refunded is only taken by cancel or fail_and_refund
        return source in {JobState.FAILED, JobState.EXPIRED}
    return METHODS[method][0] in ALLOWED_TRANSITIONS[source]


@pytest.mark.parametrize("source", list(JobState))
@pytest.mark.parametrize("method", list(METHODS))
async def test_transition_table(store: SQLiteStore, source: JobState, method: str) -> None:
    """Allowed transitions succeed; every other one returns False and changes nothing."""
    job = await job_in_state(store, source)
    target, action = METHODS[method]
    changed = await action(store.jobs, job.id)
    after = await store.jobs.get_job(job.id)
    assert after is not None
    assert changed is allowed(method, source)
    if changed:
        assert after.state is target
    else:
        assert after == job
    assert await kept_counts(store) == await ledger_counts(store)


async def kept_counts(store: SQLiteStore) -> dict[str, set[tuple[int, ...]]]:
    """The queued and running counts the triggers keep, per member and per guild."""
    db = store.database
    members = await db.fetch_all("SELECT guild_id, user_id, queued, running FROM queue_members")
    guilds = await db.fetch_all("SELECT guild_id, queued, running FROM queue_guilds")
    return {
        "members": {
            (row["guild_id"], row["user_id"], row["queued"], row["running"])
            for row in members
            if row["queued"] or row["running"]
        },
        "guilds": {
            (row["guild_id"], row["queued"], row["running"])
            for row in guilds
            if row["queued"] or row["running"]
        },
    }


async def ledger_counts(store: SQLiteStore) -> dict[str, set[tuple[int, ...]]]:
    """The same counts, counted from the job ledger."""
    members: dict[tuple[int, int], list[int]] = {}
    guilds: dict[int, list[int]] = {}
    for state, column in ((JobState.QUEUED, 0), (JobState.RESERVED, 1), (JobState.SUBMITTED, 1)):
        rows = await store.database.fetch_all(
            "SELECT guild_id, user_id, COUNT(*) AS n FROM jobs WHERE state = ?"
            " GROUP BY guild_id, user_id",
            (state.value,),
        )
        for row in rows:
            members.setdefault((row["guild_id"], row["user_id"]), [0, 0])[column] += row["n"]
            guilds.setdefault(row["guild_id"], [0, 0])[column] += row["n"]
    return {
        "members": {(g, u, q, r) for (g, u), (q, r) in members.items()},
        "guilds": {(g, q, r) for g, (q, r) in guilds.items()},
    }


async def test_guarded_transition_applied_twice_succeeds_once(store: SQLiteStore) -> None:
    """The second identical transition is refused and leaves the first one's result."""
    job = await job_in_state(store, JobState.COMPLETED)
    assert await deliver(store.jobs, job.id, 100)
    assert not await deliver(store.jobs, job.id, 200)
    after = await store.jobs.get_job(job.id)
    assert after is not None and after.delivered_message_id == 100


async def test_racing_transitions_have_one_winner(store: SQLiteStore) -> None:
    """Twenty concurrent deliver and fail attempts on one job: exactly one wins."""
    job = await job_in_state(store, JobState.COMPLETED)
    assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    results = await asyncio.gather(
        *(store.jobs.mark_delivered(job.id, n, POSTER) for n in range(10)),
        *(
            store.jobs.fail_and_refund(job.id, f"e{n}", expected=JobState.COMPLETED)
            for n in range(10)
        ),
    )
    assert results.count(True) == 1


async def test_guarded_transition_raced_by_processes_succeeds_once(db_path: Path) -> None:
    """4 OS processes x 10 concurrent deliver/refund attempts on one job: one wins."""
    store = await open_store(db_path, default_daily_credits=DEFAULT_CREDITS)
    try:
        job = await job_in_state(store, JobState.COMPLETED)
        assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    finally:
        await store.close()
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from storage import open_store
        from storage.models import JobState
        from tests.storage.helpers import POSTER, wait_until

        COMPLETED = JobState.COMPLETED

        async def main() -> None:
            store = await open_store(sys.argv[1], default_daily_credits=1)
            try:
                await wait_until(float(sys.argv[2]), store)
                me = int(sys.argv[3])
                results = await asyncio.gather(
                    *(store.jobs.mark_delivered({job.id}, 1000 + me, POSTER) for _ in range(5)),
                    *(
                        store.jobs.fail_and_refund({job.id}, f"p{{me}}", expected=COMPLETED)
                        for _ in range(5)
                    ),
                )
                print(sum(results))
            finally:
                await store.close()

        asyncio.run(main())
        """
    )
    outputs = await race_processes(script, db_path, 4)
    assert sum(int(out) for out in outputs) == 1
    store = await open_store(db_path, default_daily_credits=DEFAULT_CREDITS)
    try:
        after = await store.jobs.get_job(job.id)
        assert after is not None
        if after.state is JobState.DELIVERED:
            assert after.delivered_message_id in {1000, 1001, 1002, 1003}
            assert after.refunded_at is None
        else:
            assert after.state is JobState.REFUNDED
            assert after.delivered_message_id is None
    finally:
        await store.close()


async def test_transitions_on_a_missing_job_return_false(store: SQLiteStore) -> None:
    """A job id that does not exist is never 'changed'."""
    for _, action in METHODS.values():
        assert not await action(store.jobs, 12345)
    assert not await store.jobs.schedule_poll(12345, START)
    assert not await store.jobs.claim_delivery(12345, 10, POSTER)
    assert await store.jobs.get_job(12345) is None


async def test_schedule_poll_counts_attempts_only_while_submitted(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """schedule_poll moves next_poll_at and counts attempts, but only for submitted jobs."""
    job = await job_in_state(store, JobState.SUBMITTED)
    later = clock.now + timedelta(seconds=30)
    assert await store.jobs.schedule_poll(job.id, later)
    assert await store.jobs.schedule_poll(job.id, later + timedelta(seconds=30))
    polled = await store.jobs.get_job(job.id)
    assert polled is not None
    assert polled.attempts == 2 and polled.next_poll_at == later + timedelta(seconds=30)
    assert await store.jobs.mark_completed(job.id, "https://x/v.mp4")
    assert not await store.jobs.schedule_poll(job.id, later)


async def test_progress_message_and_errors(store: SQLiteStore) -> None:
    """Progress message ids and transient errors are stored without changing the state."""
    job = await job_in_state(store, JobState.SUBMITTED)
    assert await store.jobs.set_progress_message(job.id, 10)
    assert await store.jobs.set_progress_message(job.id, 11, channel_id=CHANNEL + 1)
    assert await store.jobs.record_error(job.id, "HTTP 503, retrying")
    after = await store.jobs.get_job(job.id)
    assert after is not None
    assert after.state is JobState.SUBMITTED
    assert (after.progress_message_id, after.channel_id) == (11, CHANNEL + 1)
    assert after.last_error == "HTTP 503, retrying"


async def test_claim_delivery_lease(store: SQLiteStore, clock: FakeClock) -> None:
    """One poster holds the lease until it runs out or is released."""
    job = await job_in_state(store, JobState.COMPLETED)
    await store.processes.beat(POSTER.process_id)
    assert [j.id for j in await store.jobs.deliverable_jobs()] == [job.id]
    assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert not await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert await store.jobs.deliverable_jobs() == []
    clock.advance(seconds=59)
    assert not await store.jobs.claim_delivery(job.id, 60, POSTER)
    clock.advance(seconds=1)
    assert [j.id for j in await store.jobs.deliverable_jobs()] == [job.id]
    assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert await store.jobs.release_delivery(job.id, POSTER)
    assert not await store.jobs.release_delivery(job.id, POSTER)
    assert await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert await store.jobs.mark_delivered(job.id, 5, POSTER)
    assert not await store.jobs.claim_delivery(job.id, 60, POSTER)
    assert await store.jobs.deliverable_jobs() == []


async def test_start_up_ends_dead_leases_but_remembers_them(store: SQLiteStore) -> None:
    """A lease left by a killed process is ended at start-up, and the job still shows it."""
    job = await job_in_state(store, JobState.COMPLETED)
    untouched = await job_in_state(store, JobState.COMPLETED)
    dead = Claimant("gone-host:9:dead")  # never beats: not live
    assert await store.jobs.claim_delivery(job.id, 300, dead)
    assert await store.jobs.end_stale_leases() == 1
    assert await store.jobs.end_stale_leases() == 0
    claimable = {j.id: j for j in await store.jobs.deliverable_jobs()}
    assert set(claimable) == {job.id, untouched.id}
    assert claimable[job.id].delivering_until is not None
    assert claimable[untouched.id].delivering_until is None
    assert await store.jobs.claim_delivery(job.id, 300, POSTER)


async def test_concurrent_claims_have_one_winner(store: SQLiteStore) -> None:
    """Two delivery loops claiming the same job at once: one posts."""
    job = await job_in_state(store, JobState.COMPLETED)
    await store.processes.beat(POSTER.process_id)
    results = await asyncio.gather(
        *(store.jobs.claim_delivery(job.id, 30, POSTER) for _ in range(20))
    )
    assert results.count(True) == 1


async def test_claim_delivery_rejects_non_positive_lease(store: SQLiteStore) -> None:
    """A zero lease would not protect anything."""
    job = await job_in_state(store, JobState.COMPLETED)
    with pytest.raises(ValueError, match="lease_seconds"):
        await store.jobs.claim_delivery(job.id, 0, POSTER)


async def test_due_jobs_ordering_and_batching(store: SQLiteStore, clock: FakeClock) -> None:
    """Only submitted jobs whose time has come, earliest first, at most ``limit``."""
    offsets = [30, -10, -30, 0, -20, 60]
    ids: dict[int, int] = {}
    for offset in offsets:
        job = await reserve(store)
        assert await store.jobs.mark_submitted(
            job.id, f"t{job.id}", clock.now + timedelta(seconds=offset)
        )
        ids[offset] = job.id
    not_polled = await reserve(store)  # reserved: never due
    del not_polled
    due = await store.jobs.due_jobs(clock.now, limit=10)
    assert [j.id for j in due] == [ids[-30], ids[-20], ids[-10], ids[0]]
    assert [j.id for j in await store.jobs.due_jobs(limit=2)] == [ids[-30], ids[-20]]
    clock.advance(seconds=45)
    assert len(await store.jobs.due_jobs()) == 5
    with pytest.raises(ValueError, match="limit"):
        await store.jobs.due_jobs(limit=0)


async def test_stale_reserved(store: SQLiteStore, clock: FakeClock) -> None:
    """Reserved jobs older than the threshold are reported; fresher or submitted ones not."""
    old = await reserve(store)
    old_submitted = await job_in_state(store, JobState.SUBMITTED)
    del old_submitted
    clock.advance(seconds=120)
    fresh = await reserve(store)
    del fresh
    assert [j.id for j in await store.jobs.stale_reserved(60)] == [old.id]


async def test_recent_jobs(store: SQLiteStore, clock: FakeClock) -> None:
    """A user's latest jobs in one guild, newest first."""
    ids = []
    for _ in range(4):
        ids.append((await reserve(store)).id)
        clock.advance(seconds=1)
    await reserve(store, user_id=OTHER_USER)
    await reserve(store, guild_id=GUILD + 1)
    recent = await store.jobs.recent_jobs(GUILD, USER, limit=3)
    assert [j.id for j in recent] == ids[::-1][:3]


async def test_usage_summary(store: SQLiteStore, clock: FakeClock) -> None:
    """Counts by state, credits spent (refunds excluded) and top users for the period."""
    await job_in_state(store, JobState.DELIVERED)
    await job_in_state(store, JobState.REFUNDED)
    await job_in_state(store, JobState.SUBMITTED, quality="pro")
    await reserve(store, user_id=OTHER_USER)
    await reserve(store, guild_id=GUILD + 1)
    summary = await store.jobs.usage_summary(GUILD)
    assert summary.jobs_by_state == {
        JobState.DELIVERED: 1,
        JobState.REFUNDED: 1,
        JobState.SUBMITTED: 1,
        JobState.RESERVED: 1,
    }
    assert summary.total_jobs == 4
    assert summary.credits_spent == 1 + 2 + 1
    assert [(u.user_id, u.credits, u.jobs) for u in summary.top_users] == [
        (USER, 3, 2),
        (OTHER_USER, 1, 1),
    ]
    assert summary.period_start <= clock.now < summary.period_end
    clock.advance(days=1)
    assert (await store.jobs.usage_summary(GUILD)).total_jobs == 0
    assert (await store.jobs.usage_summary(GUILD, START)).total_jobs == 4


async def test_reopen_mid_lifecycle_resumes_every_unfinished_job(
    db_path: Path, clock: FakeClock
) -> None:
    """Close and reopen the file: every unfinished job comes back with its progress."""
    store = await open_store(
        db_path, default_daily_credits=DEFAULT_CREDITS, clock=clock, database_clock=clock
    )
    try:
        by_state = {state: await job_in_state(store, state) for state in JobState}
        assert await store.jobs.schedule_poll(
            by_state[JobState.SUBMITTED].id, clock.now + timedelta(seconds=5)
        )
        await store.processes.beat(POSTER.process_id)
        assert await store.jobs.claim_delivery(by_state[JobState.COMPLETED].id, 30, POSTER)
        before = {job.id: await store.jobs.get_job(job.id) for job in by_state.values()}
    finally:
        await store.close()

    store = await open_store(
        db_path, default_daily_credits=DEFAULT_CREDITS, clock=clock, database_clock=clock
    )
    try:
        resumed = await store.jobs.resumable_jobs()
        unfinished = {
            JobState.QUEUED,
            JobState.RESERVED,
            JobState.SUBMITTED,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.EXPIRED,
        }
        assert {j.id for j in resumed} == {by_state[s].id for s in unfinished}
        for job in resumed:
            assert job == before[job.id]  # nothing lost, nothing changed

        # Carry on where the old process stopped.
        submitted = by_state[JobState.SUBMITTED]
        clock.advance(seconds=10)
        assert [j.id for j in await store.jobs.due_jobs()] == [submitted.id]
        completed = by_state[JobState.COMPLETED]
        later = Claimant("test-host:2:later", live_within=24 * 3600)
        assert not await store.jobs.claim_delivery(completed.id, 30, later)  # still live
        clock.advance(seconds=30)
        assert await store.jobs.claim_delivery(completed.id, 30, later)
        assert await store.jobs.mark_delivered(completed.id, 1, later)
        assert await store.jobs.mark_completed(submitted.id, "https://x/v.mp4")
        assert await store.jobs.refund(by_state[JobState.FAILED].id)
        assert await store.jobs.refund(by_state[JobState.EXPIRED].id)
        assert await store.jobs.fail_and_refund(
            by_state[JobState.RESERVED].id, "restart", expected=JobState.RESERVED
        )
        queued = by_state[JobState.QUEUED]
        assert [j.id for j in await store.jobs.queued_jobs()] == [queued.id]  # still waiting
        assert await store.jobs.claim_queued(queued.id)
        assert await store.jobs.fail_and_refund(queued.id, "restart", expected=JobState.RESERVED)
        assert [j.id for j in await store.jobs.resumable_jobs()] == [submitted.id]
    finally:
        await store.close()


async def test_failure_notice_outbox(store: SQLiteStore, clock: FakeClock) -> None:
    """Refunded jobs wait for their notice until marked; marking is once; old ones expire."""
    told = await job_in_state(store, JobState.REFUNDED)
    untold = await job_in_state(store, JobState.REFUNDED)
    delivered = await job_in_state(store, JobState.DELIVERED)
    assert await store.jobs.mark_notified(told.id)
    assert not await store.jobs.mark_notified(told.id)
    assert not await store.jobs.mark_notified(delivered.id)
    assert [j.id for j in await store.jobs.unnotified_refunds(3600)] == [untold.id]
    clock.advance(seconds=7200)
    assert await store.jobs.unnotified_refunds(3600) == []
    fresh = await store.jobs.get_job(told.id)
    assert fresh is not None and fresh.notified_at is not None


async def test_ping_answers_on_an_open_store_and_fails_on_a_closed_one(
    db_path: Path, clock: FakeClock
) -> None:
    """Health checks: ping returns while the database answers, raises once it is closed."""
    store = await open_store(
        db_path, default_daily_credits=DEFAULT_CREDITS, clock=clock, database_clock=clock
    )
    await store.ping()
    await store.close()
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own closed-error
        await store.ping()


async def test_reply_target_is_stored_with_the_job(store: SQLiteStore) -> None:
    """A Continue job keeps the message its video replies to (Discord ids need 64 bits);
    other jobs have none."""
    target = 1_234_567_890_123_456_789
    continued = await reserve(store, reply_to_message_id=target)
    plain = await reserve(store)
    fetched = await store.jobs.get_job(continued.id)
    assert fetched is not None and fetched.reply_to_message_id == target
    assert continued.reply_to_message_id == target
    other = await store.jobs.get_job(plain.id)
    assert other is not None and other.reply_to_message_id is None
