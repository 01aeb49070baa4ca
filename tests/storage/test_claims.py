"""Claims and leases: background work on a job is held by one process at a time.

Runs on both engines. Two claimants (processes) never win the same job; a lease that ran
out, or whose owner is no longer live, is free again; recovery never touches the work of
a live process.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from storage import JobState, SQLStore
from storage.models import Claimant
from tests.storage.helpers import (
    OTHER_GUILD,
    FakeClock,
    job_in_state,
    race_processes,
    reserve,
)

A = Claimant("host-a:1:aaaa", live_within=30)
B = Claimant("host-b:2:bbbb", live_within=30)
LEASE = 60.0


async def submitted_due(
    store: SQLStore, clock: FakeClock, count: int, **changes: object
) -> list[int]:
    """``count`` submitted jobs whose poll is due now."""
    ids = []
    for _ in range(count):
        job = await reserve(store, **changes)
        assert await store.jobs.mark_submitted(job.id, f"t{job.id}", clock.now)
        ids.append(job.id)
    return ids


async def test_two_owners_never_win_the_same_poll(store: SQLStore, clock: FakeClock) -> None:
    """Both claim every due job at once, many times over: each job goes to exactly one."""
    await store.processes.beat(A.process_id)
    await store.processes.beat(B.process_id)
    ids = await submitted_due(store, clock, 10)
    results = await asyncio.gather(*(store.jobs.claim_polls(ids, who, LEASE) for who in (A, B) * 5))
    won = [job.id for batch in results for job in batch]
    assert sorted(won) == sorted(ids)
    owners = {job.id: job.lease_owner for batch in results for job in batch}
    assert set(owners.values()) <= {A.process_id, B.process_id}
    # Held (being polled): nobody's candidates, no free poll time.
    assert await store.jobs.next_free_poll_at(A) is None
    assert await store.jobs.poll_candidates(A, limit=50) == []
    assert await store.jobs.poll_candidates(B, limit=50) == []


async def test_a_finished_poll_frees_the_job_for_anyone(store: SQLStore, clock: FakeClock) -> None:
    """Recording the answer ends the lease: the next poll may go to another process."""
    await store.processes.beat(A.process_id)
    await store.processes.beat(B.process_id)
    [job_id] = await submitted_due(store, clock, 1)
    assert [j.id for j in await store.jobs.claim_polls([job_id], A, LEASE)] == [job_id]
    assert await store.jobs.claim_polls([job_id], B, LEASE) == []
    assert await store.jobs.mark_pending(job_id, clock.now)
    after = await store.jobs.get_job(job_id)
    assert after is not None and after.lease_owner is None
    assert [j.id for j in await store.jobs.claim_polls([job_id], B, LEASE)] == [job_id]


async def test_an_expired_lease_is_reclaimable(store: SQLStore, clock: FakeClock) -> None:
    """A live owner's lease holds until its end time; then anyone may take the job."""
    [job_id] = await submitted_due(store, clock, 1)
    for _ in range(3):
        await store.processes.beat(A.process_id)
        await store.processes.beat(B.process_id)
        assert [j.id for j in await store.jobs.claim_polls([job_id], A, 20)] == [job_id]
        assert await store.jobs.claim_polls([job_id], B, 20) == []
        clock.advance(seconds=19)
        await store.processes.beat(A.process_id)
        await store.processes.beat(B.process_id)
        assert await store.jobs.claim_polls([job_id], B, 20) == []
        clock.advance(seconds=1)
        assert [j.id for j in await store.jobs.claim_polls([job_id], B, 20)] == [job_id]
        assert await store.jobs.schedule_poll(job_id, clock.now)


async def test_a_dead_owner_frees_its_work_before_the_lease_ends(
    store: SQLStore, clock: FakeClock
) -> None:
    """An owner that stops beating (or is forgotten) holds nothing, however long its lease."""
    await store.processes.beat(A.process_id)
    [silent, forgotten] = await submitted_due(store, clock, 2)
    assert len(await store.jobs.claim_polls([silent, forgotten], A, 3600)) == 2
    await store.processes.beat(B.process_id)
    assert await store.jobs.claim_polls([silent, forgotten], B, LEASE) == []
    clock.advance(seconds=31)  # A has not beaten within B's liveness window
    await store.processes.beat(B.process_id)
    assert [j.id for j in await store.jobs.claim_polls([silent], B, LEASE)] == [silent]
    await store.processes.beat(A.process_id)
    assert await store.jobs.claim_polls([forgotten], B, LEASE) == []
    assert await store.processes.forget(A.process_id)
    assert [j.id for j in await store.jobs.claim_polls([forgotten], B, LEASE)] == [forgotten]


async def test_recovery_skips_a_live_owners_reservation(store: SQLStore, clock: FakeClock) -> None:
    """A reservation being submitted by a live process is never refunded by another's
    recovery; once that process is dead it is, once."""
    await store.processes.beat(A.process_id)
    queued = await reserve(store, queued=True)
    assert await store.jobs.claim_queued(queued.id, claimant=A, lease_seconds=600)
    unowned = await reserve(store)  # reserved by nobody we know: a crash long ago
    clock.advance(seconds=1)
    assert [j.id for j in await store.jobs.stale_reserved(0, B)] == [unowned.id]
    assert not await store.jobs.refund_stale_reserved(queued.id, "restart", B)
    assert await store.jobs.refund_stale_reserved(unowned.id, "restart", B)
    assert await store.processes.forget(A.process_id)
    assert [j.id for j in await store.jobs.stale_reserved(0, B)] == [queued.id]
    assert await store.jobs.refund_stale_reserved(queued.id, "restart", B)
    assert not await store.jobs.refund_stale_reserved(queued.id, "restart", B)
    refunded = await store.jobs.get_job(queued.id)
    assert refunded is not None and refunded.state is JobState.REFUNDED


async def test_recovery_ends_only_dead_owners_delivery_leases(
    store: SQLStore, clock: FakeClock
) -> None:
    """B's start-up ends the delivery lease of a dead process, never a live one's."""
    await store.processes.beat(A.process_id)
    await store.processes.beat(B.process_id)
    live = await job_in_state(store, JobState.COMPLETED)
    dead = await job_in_state(store, JobState.COMPLETED)
    assert await store.jobs.claim_delivery(live.id, 300, A)
    dead_owner = Claimant("host-c:3:cccc")
    await store.processes.beat(dead_owner.process_id)
    assert await store.jobs.claim_delivery(dead.id, 300, dead_owner)
    assert await store.processes.forget(dead_owner.process_id)
    assert await store.jobs.end_stale_leases(B) == 1
    assert await store.jobs.end_stale_leases(B) == 0
    assert {j.id for j in await store.jobs.deliverable_jobs()} == {dead.id}
    assert not await store.jobs.claim_delivery(live.id, 300, B)


async def test_notices_are_claimed_once(store: SQLStore, clock: FakeClock) -> None:
    """Two processes sweeping the outbox at once: each untold refund goes to one."""
    await store.processes.beat(A.process_id)
    await store.processes.beat(B.process_id)
    ids = {(await job_in_state(store, JobState.REFUNDED)).id for _ in range(6)}
    first, second = await asyncio.gather(
        store.jobs.claim_notices(A, 3600, LEASE), store.jobs.claim_notices(B, 3600, LEASE)
    )
    assert {j.id for j in first} | {j.id for j in second} == ids
    assert not {j.id for j in first} & {j.id for j in second}
    job = (first or second)[0]
    other = B if job.lease_owner == A.process_id else A
    assert not await store.jobs.claim_notice(job.id, other, LEASE)
    owner = A if other is B else B
    assert await store.jobs.claim_notice(job.id, owner, LEASE)  # its own, again
    assert await store.jobs.mark_notified(job.id)
    assert not await store.jobs.claim_notice(job.id, owner, LEASE)


async def test_candidates_take_turns_between_guilds(store: SQLStore, clock: FakeClock) -> None:
    """A guild with a large backlog does not fill the batch: guilds alternate."""
    await store.processes.beat(A.process_id)
    busy = await submitted_due(store, clock, 8)
    clock.advance(seconds=1)
    quiet = await submitted_due(store, clock, 2, guild_id=OTHER_GUILD)
    clock.advance(seconds=1)
    batch = [j.id for j in await store.jobs.poll_candidates(A, limit=4)]
    assert batch == [busy[0], quiet[0], busy[1], quiet[1]]


async def test_the_upload_limit_is_kept_with_the_job(store: SQLStore) -> None:
    """Recorded where the request arrived, read back wherever it is delivered."""
    job = await reserve(store)
    assert job.upload_limit is None
    assert await store.jobs.set_upload_limit(job.id, 50 * 1024 * 1024)
    stored = await store.jobs.get_job(job.id)
    assert stored is not None and stored.upload_limit == 50 * 1024 * 1024


async def test_process_registry(store: SQLStore, clock: FakeClock) -> None:
    """Beats register and refresh; silent processes drop out of ``live`` and can be swept."""
    await store.processes.beat(A.process_id)
    clock.advance(seconds=10)
    await store.processes.beat(B.process_id)
    assert [p.id for p in await store.processes.live(30)] == [A.process_id, B.process_id]
    clock.advance(seconds=25)
    assert [p.id for p in await store.processes.live(30)] == [B.process_id]
    await store.processes.beat(A.process_id)
    assert len(await store.processes.live(30)) == 2
    clock.advance(seconds=40)
    await store.processes.beat(B.process_id)
    assert await store.processes.forget_silent(30) == 1
    assert [p.id for p in await store.processes.all()] == [B.process_id]
    assert await store.processes.forget(B.process_id)
    assert not await store.processes.forget(B.process_id)


RACE = """
import asyncio, json, sys
from datetime import UTC, datetime
from storage import open_store
from storage.models import Claimant
from tests.storage.helpers import wait_until

async def main() -> None:
    store = await open_store(sys.argv[1], default_daily_credits=1000)
    me = Claimant(f"racer:{sys.argv[3]}")
    await store.processes.beat(me.process_id)
    rows = await store.database.fetch_all("SELECT id FROM jobs WHERE state = 'submitted'")
    ids = [row["id"] for row in rows]
    await wait_until(float(sys.argv[2]), store)
    won = []
    for _ in range(20):
        won += [job.id for job in await store.jobs.claim_polls(ids, me, 600)]
    print(json.dumps(won))
    await store.close()

asyncio.run(main())
"""


async def test_four_processes_claim_disjoint_polls(
    store: SQLStore, clock: FakeClock, db_path: str | Path
) -> None:
    """Four OS processes claiming the same 40 due jobs at once: each job is won once."""
    clock.now = clock.now - timedelta(days=1)  # the racers' real clock sees them all due
    ids = []
    for index in range(40):
        job = await reserve(store, user_id=1000 + index)
        assert await store.jobs.mark_submitted(job.id, f"t{job.id}", clock.now)
        ids.append(job.id)
    outputs = await race_processes(RACE, db_path, 4)
    won = [job_id for out in outputs for job_id in json.loads(out)]
    assert sorted(won) == sorted(ids)
