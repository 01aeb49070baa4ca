"""Leases by the database's clock, and fencing: a stalled process's late act is refused.

Runs on both engines. Two stores on one database stand for two processes. Their own
clocks disagree (skew); leases and liveness follow the database's clock, so neither's
skew ends the other's lease early. When a process does lose its lease (it stalled past
the end, by the database's clock, and another process took the job over), its late record
is refused in the statement that would have recorded it, and only the new holder's post
is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import JobState, SQLStore, open_store
from storage.models import Claimant
from storage.sql.common import database_now
from tests.storage.conftest import DEFAULT_CREDITS
from tests.storage.helpers import START, FakeClock, job_in_state

A = Claimant("host-a:1:aaaa", live_within=30)
B = Claimant("host-b:2:bbbb", live_within=30)


@pytest.fixture
async def skewed(db_path: str | Path) -> AsyncIterator[tuple[SQLStore, SQLStore]]:
    """Two processes on one database, with the database's real clock: A's own clock is
    ten minutes slow, B's is right."""
    slow = FakeClock(START)
    a = await open_store(db_path, default_daily_credits=DEFAULT_CREDITS, clock=slow)
    b = await open_store(db_path, default_daily_credits=DEFAULT_CREDITS)
    slow.now = (await _database_now(b)) - timedelta(minutes=10)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _database_now(store: SQLStore) -> datetime:
    row = await store.database.fetch_one(
        f"SELECT {database_now(store.database.engine)} AS now"
    )
    assert row is not None
    return datetime.fromtimestamp(row["now"], UTC)


async def test_a_slow_clock_neither_shortens_a_lease_nor_kills_a_live_process(
    skewed: tuple[SQLStore, SQLStore],
) -> None:
    """A's clock is 10 minutes slow: its 300 s delivery lease and its heartbeat still count
    as live for B, so B neither takes the post over nor ends A's lease."""
    a, b = skewed
    await a.processes.beat(A.process_id)
    await b.processes.beat(B.process_id)
    job = await job_in_state(a, JobState.COMPLETED)
    assert await a.jobs.claim_delivery(job.id, 300, A)
    assert {p.id for p in await b.processes.live(30)} == {A.process_id, B.process_id}
    assert await b.jobs.end_stale_leases(B) == 0
    assert not await b.jobs.claim_delivery(job.id, 300, B)
    assert await b.jobs.deliverable_jobs() == []
    assert (await b.jobs.backlog()).due_deliveries == 0
    reserved = await job_in_state(a, JobState.QUEUED)
    assert await a.jobs.claim_queued(reserved.id, claimant=A, lease_seconds=600)
    assert await b.jobs.stale_reserved(0, B) == []
    assert not await b.jobs.refund_stale_reserved(reserved.id, "stale", B)


class SkewedClock:
    """A process's own clock: the database's, off by a fixed amount."""

    def __init__(self, database: FakeClock, seconds: float) -> None:
        self._database = database
        self._skew = timedelta(seconds=seconds)

    def __call__(self) -> datetime:
        return self._database.now + self._skew


@pytest.fixture
async def pair(db_path: str | Path) -> AsyncIterator[tuple[SQLStore, SQLStore, FakeClock]]:
    """Two processes on one database whose clock the test moves; A's own clock runs 20 s
    fast and B's 20 s slow, which is more than some leases below last: neither matters."""
    database = FakeClock(START)
    fast, slow = SkewedClock(database, 20), SkewedClock(database, -20)
    a = await open_store(
        db_path, default_daily_credits=DEFAULT_CREDITS, clock=fast, database_clock=database
    )
    b = await open_store(
        db_path, default_daily_credits=DEFAULT_CREDITS, clock=slow, database_clock=database
    )
    try:
        yield a, b, database
    finally:
        await a.close()
        await b.close()


async def test_a_stalled_posters_late_record_is_refused(
    pair: tuple[SQLStore, SQLStore, FakeClock],
) -> None:
    """A claims the post and stalls past its lease; B takes over and records its post;
    A's late record (and its late release) are refused: one post is recorded, B's."""
    a, b, database = pair
    await a.processes.beat(A.process_id)
    await b.processes.beat(B.process_id)
    job = await job_in_state(a, JobState.COMPLETED)
    assert await a.jobs.claim_delivery(job.id, 60, A)
    database.advance(seconds=30)
    await a.processes.beat(A.process_id)
    await b.processes.beat(B.process_id)
    assert not await b.jobs.claim_delivery(job.id, 60, B), "A's lease is live"
    database.advance(seconds=31)  # A stalls: its lease ends by the database's clock
    await b.processes.beat(B.process_id)
    assert await b.jobs.claim_delivery(job.id, 60, B)
    assert not await a.jobs.release_delivery(job.id, A), "A must not free B's lease"
    assert not await a.jobs.end_delivery(job.id, A)
    assert not await a.jobs.mark_delivered(job.id, 111, A), "A's late record is fenced"
    assert await b.jobs.mark_delivered(job.id, 222, B)
    done = await b.jobs.get_job(job.id)
    assert done is not None and done.state is JobState.DELIVERED
    assert done.delivered_message_id == 222


async def test_a_stalled_submitters_record_is_refused_after_its_reservation_was_refunded(
    pair: tuple[SQLStore, SQLStore, FakeClock],
) -> None:
    """A took a job out of the queue and stalled past liveness; B refunded the reservation;
    A's late mark_submitted is refused (so is a notice record under a lease it lost)."""
    a, b, database = pair
    await a.processes.beat(A.process_id)
    job = await job_in_state(a, JobState.QUEUED)
    assert await a.jobs.claim_queued(job.id, claimant=A, lease_seconds=600)
    database.advance(seconds=61)  # A misses its beats: no longer live
    await b.processes.beat(B.process_id)
    [stale] = await b.jobs.stale_reserved(0, B)
    assert stale.id == job.id
    assert await b.jobs.refund_stale_reserved(job.id, "stale", B)
    assert not await a.jobs.mark_submitted(job.id, "task-late", START, claimant=A)
    assert await b.jobs.claim_notice(job.id, B, 60)
    assert not await a.jobs.mark_notified(job.id, A), "the notice is B's"
    assert await b.jobs.mark_notified(job.id, B)


async def test_a_redelivery_that_failed_is_not_used_up(
    pair: tuple[SQLStore, SQLStore, FakeClock],
) -> None:
    """A moderator's Deliver again is used up by a recorded post only; a process that lost
    the redelivery's lease cannot record it."""
    a, b, database = pair
    await a.processes.beat(A.process_id)
    await b.processes.beat(B.process_id)
    job = await job_in_state(a, JobState.DELIVERED)
    assert await a.jobs.mark_message_deleted(job.id, 999)
    assert await a.jobs.claim_delivery(job.id, 60, A)
    assert await a.jobs.release_delivery(job.id, A)  # the post failed
    assert await a.jobs.claim_delivery(job.id, 60, A)
    database.advance(seconds=61)
    await b.processes.beat(B.process_id)
    assert await b.jobs.claim_delivery(job.id, 60, B)
    assert not await a.jobs.record_redelivery(job.id, 1, A)
    assert await b.jobs.record_redelivery(job.id, 2, B)
    assert not await b.jobs.claim_delivery(job.id, 60, B), "used up"
