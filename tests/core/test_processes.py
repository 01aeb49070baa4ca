"""The process registry: registration, dead processes, and the shared status budget."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from core import metrics
from core.jobs import JobService
from core.processes import ProcessRegistry, _local_pid, new_process_id, pid_space, share
from core.scheduler import PollScheduler
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.ratelimit import RateLimiter
from storage import SQLStore
from storage.models import Claimant, JobState
from tests.core.conftest import Clock
from tests.core.test_jobs import draft


def test_alone_a_process_keeps_the_whole_budget_and_shares_leave_headroom() -> None:
    """One process: the configured rate and burst. Several: under rate / n each, burst 1,
    so together they stay under the budget whatever the network does to the timing."""
    assert share(30, 10, 1) == (30, 10)
    assert share(30, 10, 3) == (9, 1)
    assert share(30, 10, 2) == (14, 1)
    rate, burst = share(4, 1, 4)
    assert (rate, burst) == (0.5, 1) and rate * 4 < 4
    for live in range(2, 12):
        assert share(30, 5, live)[0] * live < 30


async def test_processes_divide_the_budget_as_they_join_and_leave(
    store: SQLStore, clock: Clock
) -> None:
    """Each beat re-divides the rate among the live processes; a joining process waits
    for the others to shrink their shares first; leaving frees the share at once."""
    limiters = [RateLimiter(30, 10) for _ in range(2)]
    first, second = (
        ProcessRegistry(
            store, Claimant(new_process_id(), 20), heartbeat_seconds=1,
            limiter=limiter, rate=30, burst=10, leave_grace_seconds=0.1,
        )
        for limiter in limiters
    )  # fmt: skip
    assert await first.register() == 1
    assert (limiters[0].rate, limiters[0].burst) == (30, 10)
    assert limiters[0].paused_for == 0
    assert await second.register() == 2
    assert (limiters[1].rate, limiters[1].burst) == (14, 1)
    assert limiters[1].held and limiters[1].paused_for > 0  # the first has not shrunk yet
    clock.advance(5)  # however long the first's beat is late, the second keeps waiting
    assert await second.beat() == 2
    assert second.joining and limiters[1].held
    assert await first.beat() == 2
    assert limiters[0].rate == 14
    assert await second.beat() == 2  # it sees the first's beat after its own registration
    assert not second.joining and not limiters[1].held and limiters[1].paused_for == 0
    assert metrics.REGISTRY.get_sample_value("happyhorse_processes_live") == 2
    assert metrics.REGISTRY.get_sample_value("happyhorse_status_rate_share") == 14
    await second.leave()
    assert await first.beat() == 1
    # The leaver's calls of the last second still count at the API: grow a moment later.
    assert (limiters[0].rate, limiters[0].burst) == (14, 1)
    await asyncio.sleep(0.06)
    assert await first.beat() == 1  # beats more often than the grace do not postpone it
    await asyncio.sleep(0.06)
    assert (limiters[0].rate, limiters[0].burst) == (30, 10)
    assert metrics.REGISTRY.get_sample_value("happyhorse_status_rate_share") == 30
    clock.advance(21)
    await store.processes.beat("elsewhere:1:abcd")
    clock.advance(21)
    assert await first.beat() == 1  # the silent first counted itself back in


async def test_a_joining_process_polls_once_every_other_live_process_has_beaten(
    store: SQLStore, clock: Clock
) -> None:
    """With two others live, the newcomer holds its status calls until both have beaten
    after it registered (each then counts three and shrinks its share), not for a fixed
    time: a busy process beating late cannot overlap its old share with the newcomer's."""
    registries = [
        ProcessRegistry(
            store, Claimant(new_process_id(), 20), heartbeat_seconds=1,
            limiter=RateLimiter(30, 1), rate=30, burst=1,
        )
        for _ in range(3)
    ]  # fmt: skip
    first, second, newcomer = registries
    await first.register()
    clock.advance(1)
    await second.register()
    clock.advance(1)
    await first.beat()
    await second.beat()
    assert not second.joining
    clock.advance(1)
    assert await newcomer.register() == 3
    clock.advance(1)
    await first.beat()
    await newcomer.beat()
    assert newcomer.joining  # the second still runs at its two-process share
    assert second._limiter is not None and second._limiter.rate == 14
    clock.advance(1)
    await second.beat()
    await newcomer.beat()
    assert not newcomer.joining
    assert [r._limiter.rate for r in registries if r._limiter] == [9, 9, 9]


async def test_a_dead_process_on_this_host_is_forgotten_at_once(store: SQLStore) -> None:
    """A process whose pid is gone holds nothing; one on another host waits for silence."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    dead = f"{socket.gethostname()}:{pid_space()}:{child.pid}:0000"
    other_host = "some-other-host:any:1:0000"
    await store.processes.beat(dead)
    await store.processes.beat(other_host)
    me = ProcessRegistry(store, Claimant(new_process_id()), heartbeat_seconds=1)
    assert await me.register() == 2
    assert {p.id for p in await store.processes.all()} == {me.process_id, other_host}


async def test_a_container_sharing_the_hostname_is_not_taken_for_this_one(
    store: SQLStore,
) -> None:
    """Another container with this hostname registers a pid that does not exist here: it
    is live there, so it is not forgotten (on old main every id with this hostname was
    checked against this container's pids and removed, voiding its leases)."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    elsewhere = f"{socket.gethostname()}:0badf00d:{child.pid}:0000"
    old_format = f"{socket.gethostname()}:{child.pid}:0000"
    await store.processes.beat(elsewhere)
    await store.processes.beat(old_format)
    me = ProcessRegistry(store, Claimant(new_process_id()), heartbeat_seconds=1)
    assert await me.register() == 3
    assert {p.id for p in await store.processes.all()} == {me.process_id, elsewhere, old_format}


async def test_the_heartbeat_task_is_owned(store: SQLStore) -> None:
    """start() beats in a task; leave() ends it and removes the row."""
    me = ProcessRegistry(store, Claimant(new_process_id()), heartbeat_seconds=0.01)
    await me.register()
    me.start()
    assert me.running
    await asyncio.sleep(0.05)
    await me.leave()
    assert not me.running
    assert await store.processes.all() == []


@pytest.mark.parametrize(
    "text", ["no-colons", "host:notanumber:x", f"{socket.gethostname()}:123:x"]
)
def test_odd_ids_are_never_taken_for_local_pids(text: str) -> None:
    """Only host:space:pid:random ids of this host and pid namespace are checked against
    local pids."""
    assert _local_pid(text) is None
    assert _local_pid(f"{socket.gethostname()}:{pid_space()}:123:x") == 123
    assert _local_pid(f"{socket.gethostname()}:other:123:x") is None


async def test_start_up_recovery_leaves_a_live_processs_work_alone(
    service: JobService, store: SQLStore, clock: Clock
) -> None:
    """A second process starting on the same database refunds nothing the first is still
    submitting and ends none of its delivery leases; once the first has left, it does."""
    first = ProcessRegistry(store, service.claimant, heartbeat_seconds=1)
    await first.register()
    submitting = await service.reserve(draft())
    assert await service.store.jobs.claim_queued(
        submitting.id, claimant=service.claimant, lease_seconds=600
    )
    posting = await service.reserve(draft())
    assert await store.jobs.claim_queued(posting.id)
    assert await store.jobs.mark_submitted(posting.id, "t1", clock())
    assert await store.jobs.mark_completed(posting.id, "https://cdn.example/1.mp4")
    assert await store.jobs.claim_delivery(posting.id, 300, service.claimant)
    clock.advance(1)
    second = JobService(store, service.client, service.settings, clock=clock)
    await ProcessRegistry(store, second.claimant, heartbeat_seconds=1).register()
    assert await second.recover_interrupted() == []
    assert not await store.jobs.claim_delivery(posting.id, 300, second.claimant)
    await first.leave()
    [refunded] = await second.recover_interrupted()
    assert refunded.id == submitting.id and refunded.state is JobState.REFUNDED
    assert await store.jobs.claim_delivery(posting.id, 300, second.claimant)


async def test_a_process_that_may_not_poll_yet_leaves_due_polls_to_the_others(
    service: JobService, store: SQLStore, clock: Clock, settings: BotSettings
) -> None:
    """A process whose status calls are on hold (just joined, or after a 429) claims no
    poll it could not make: the due job stays free for a process that can poll it now."""
    job = await service.submit(await service.reserve(draft()))
    clock.advance(5)
    async with HappyHorseClient(settings.client) as client:
        joining = JobService(store, client, settings, clock=clock)
        for process in (service, joining):
            await store.processes.beat(process.claimant.process_id)
        client.status_limiter.penalize(30)
        wait = await PollScheduler(joining, lambda outcome: None, clock=clock).round()
        assert wait is not None and 0 < wait <= 30
        [claimed] = await store.jobs.claim_polls([job.id], service.claimant, 60, clock())
        assert claimed.lease_owner == service.claimant.process_id
