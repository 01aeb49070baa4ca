"""The backlog metrics read: unfinished jobs by state, due polls and due deliveries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import JobState, SQLiteStore
from storage.models import UNFINISHED_STATES
from tests.storage.helpers import POSTER, FakeClock, job_in_state, reserve


async def test_empty_database_has_no_backlog(store: SQLiteStore) -> None:
    """Every unfinished state is reported, at zero; nothing is due."""
    backlog = await store.jobs.backlog()
    assert dict(backlog.by_state) == dict.fromkeys(UNFINISHED_STATES, 0)
    assert (backlog.due_polls, backlog.oldest_due_poll) == (0, None)
    assert (backlog.due_deliveries, backlog.oldest_due_delivery) == (0, None)


async def test_counts_unfinished_states_only(store: SQLiteStore) -> None:
    """Delivered and refunded history is not part of the backlog."""
    for state in (JobState.RESERVED, JobState.COMPLETED, JobState.COMPLETED):
        await job_in_state(store, state)
    await job_in_state(store, JobState.DELIVERED)
    await job_in_state(store, JobState.REFUNDED)
    backlog = await store.jobs.backlog()
    assert backlog.by_state[JobState.RESERVED] == 1
    assert backlog.by_state[JobState.COMPLETED] == 2
    assert JobState.DELIVERED not in backlog.by_state
    assert JobState.REFUNDED not in backlog.by_state


async def test_due_polls_and_the_oldest_one(store: SQLiteStore, clock: FakeClock) -> None:
    """Only polls whose time has come are due; the oldest due time is reported."""
    now = clock.now
    first, second, later = [await reserve(store) for _ in range(3)]
    assert await store.jobs.mark_submitted(first.id, "t1", now - timedelta(seconds=90))
    assert await store.jobs.mark_submitted(second.id, "t2", now - timedelta(seconds=10))
    assert await store.jobs.mark_submitted(later.id, "t3", now + timedelta(seconds=30))
    backlog = await store.jobs.backlog()
    assert backlog.by_state[JobState.SUBMITTED] == 3
    assert backlog.due_polls == 2
    assert backlog.oldest_due_poll == now - timedelta(seconds=90)
    assert (await store.jobs.backlog(now + timedelta(seconds=60))).due_polls == 3


async def test_leased_deliveries_are_not_due(store: SQLiteStore, clock: FakeClock) -> None:
    """A completed job someone is posting is not waiting; the others are, oldest first."""
    leased = await job_in_state(store, JobState.COMPLETED)
    clock.advance(seconds=5)
    waiting = await job_in_state(store, JobState.COMPLETED)
    clock.advance(seconds=20)
    await store.processes.beat(POSTER.process_id)
    assert await store.jobs.claim_delivery(leased.id, 300, POSTER)
    backlog = await store.jobs.backlog()
    assert backlog.due_deliveries == 1
    assert backlog.oldest_due_delivery == waiting.completed_at
    clock.advance(seconds=301)
    assert (await store.jobs.backlog()).due_deliveries == 2


async def test_backlog_reads_use_the_state_index(store: SQLiteStore) -> None:
    """Scrapes stay cheap as history grows: no query scans the whole jobs table."""
    if store.database.engine != "sqlite":
        pytest.skip("reads SQLite's EXPLAIN QUERY PLAN")
    for sql in (
        "SELECT state, COUNT(*) FROM jobs WHERE state IN ('reserved', 'submitted') GROUP BY state",
        "SELECT COUNT(*), MIN(next_poll_at) FROM jobs"
        " WHERE state = 'submitted' AND next_poll_at <= 1",
        "SELECT COUNT(*), MIN(completed_at) FROM jobs WHERE state = 'completed'"
        " AND (delivering_until IS NULL OR delivering_until <= 1)",
    ):
        rows = await store.database.fetch_all("EXPLAIN QUERY PLAN " + sql)
        plan = " ".join(str(row[3]) for row in rows)
        assert "USING" in plan and "INDEX" in plan, plan


async def test_ping_answers(store: SQLiteStore) -> None:
    """`ping` succeeds on an open database."""
    await store.ping()
