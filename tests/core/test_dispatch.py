"""Dispatch at any queue size, and what two processes on one database may do to one job.

Two `QueueService`s over one store (each with its own `JobService`, claimant and API
client) stand for two processes; their steps are interleaved by hand (events, no sleeps).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.errors import Refusal
from core.fairness import fair_order, startable
from core.jobs import JobDraft, JobService
from core.limits import Limits
from core.queue import QueueService, StartKind
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxServer
from storage import SQLStore
from storage.models import GuildLimits, Job, JobState, NewJob
from tests.core.conftest import Clock

SMALL_GUILD, BIG_GUILDS, CHANNEL, MOD = 7, (1, 2), 5, 99


def draft(guild: int, user: int) -> JobDraft:
    return JobDraft(
        guild_id=guild,
        channel_id=CHANNEL,
        user_id=user,
        mode="text-to-video",
        prompt="a horse in the rain",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
    )


def queued(guild: int, user: int, round_: int) -> NewJob:
    return NewJob(
        guild_id=guild,
        channel_id=CHANNEL,
        user_id=user,
        mode="text-to-video",
        prompt="a horse",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=False,
        queued=True,
        queue_round=round_,
    )


async def fill(store: SQLStore, jobs: list[NewJob]) -> list[Job]:
    made: list[Job] = []
    for start in range(0, len(jobs), 100):
        batch = await asyncio.gather(*(store.credits.reserve(j) for j in jobs[start : start + 100]))
        made.extend(job for job in batch if job is not None)
    assert len(made) == len(jobs)
    return made


@pytest.fixture
async def process_b(
    settings: BotSettings, store: SQLStore, clock: Clock
) -> AsyncIterator[JobService]:
    """A second process's job service: its own API client and claimant, the same database."""
    async with HappyHorseClient(settings.client) as client:
        yield JobService(store, client, settings, clock=clock)


@pytest.fixture
async def queues(
    store: SQLStore,
    service: JobService,
    process_b: JobService,
    settings: BotSettings,
    clock: Clock,
) -> tuple[QueueService, QueueService]:
    for jobs in (service, process_b):
        await store.processes.beat(jobs.claimant.process_id)
    return (
        QueueService(store, service, settings, clock=clock),
        QueueService(store, process_b, settings, clock=clock),
    )


async def test_a_small_guilds_job_starts_behind_thousands_of_big_guilds_jobs(
    store: SQLStore, queues: tuple[QueueService, QueueService], clock: Clock
) -> None:
    """Regression (the dispatcher read only the 1,000 oldest queued jobs, before the fair
    order): two big guilds at their server limit with 1,200 older queued jobs between
    them do not keep a small guild's later job from starting in the next round."""
    queue, _ = queues
    for guild in (*BIG_GUILDS, SMALL_GUILD):
        await store.credits.set_guild_default(guild, 1_000_000, MOD)
        await store.guilds.set_limits(guild, GuildLimits(server_running=1, member_running=0), MOD)
    backlog = [queued(guild, 100 + n % 50, n // 50) for n in range(600) for guild in BIG_GUILDS]
    big = await fill(store, backlog)
    for guild in BIG_GUILDS:  # each big guild is at its limit
        first = next(job for job in big if job.guild_id == guild)
        assert await store.jobs.claim_queued(first.id)
    clock.advance(1)
    [small] = await fill(store, [queued(SMALL_GUILD, 500, 0)])

    report = await queue.dispatch()
    assert [job.id for job in report.started] == [small.id]
    started = await store.jobs.get_job(small.id)
    assert started is not None and started.state is JobState.SUBMITTED
    assert len(await store.jobs.queued_jobs(BIG_GUILDS[0], limit=10_000)) == 599


async def test_the_narrowed_queue_starts_what_the_whole_queue_would(
    store: SQLStore, queues: tuple[QueueService, QueueService]
) -> None:
    """The dispatcher, reading only the members who may start (`waiting_members`, from
    the kept counts) and of their queues what could start, picks what
    `core.fairness.startable` picks over every queued job, on a mixed ledger: guilds
    with their own limits (or none), members at and under their limits, rounds and ties.
    It also shows the counts kept by the triggers match the ledger."""
    rng = random.Random(14)
    limits = {
        1: Limits(member_running=1, server_running=3),
        2: Limits(member_running=0, server_running=2),
        3: Limits(member_running=2, server_running=0),
        4: Limits(),  # the defaults
        5: Limits(member_running=0, server_running=0),  # no limits at all
    }
    for guild, guild_limits in limits.items():
        await store.credits.set_guild_default(guild, 1_000_000, MOD)
        if guild != 4:
            await store.guilds.set_limits(
                guild,
                GuildLimits(
                    member_running=guild_limits.member_running,
                    server_running=guild_limits.server_running,
                ),
                MOD,
            )
    made = await fill(
        store,
        [queued(rng.choice(list(limits)), rng.randrange(6), rng.randrange(4)) for _ in range(120)],
    )
    for job in rng.sample(made, 25):  # some running: claimed without limits
        assert await store.jobs.claim_queued(job.id)
    all_queued = await store.jobs.queued_jobs(limit=10_000)
    running = await store.jobs.running_counts()
    expected = startable(fair_order(all_queued), running, limits.__getitem__)
    got, _ = await queues[0].dispatcher.startable()
    assert [job.id for job in got] == [job.id for job in expected]
    for guild in limits:
        one_guild, _ = await queues[0].dispatcher.startable(guild)
        assert [job.id for job in one_guild] == [j.id for j in expected if j.guild_id == guild]
    assert expected  # the ledger leaves something to start
    # The acknowledgement's question, "may this job start now?", reads only the jobs that
    # decide it, and answers as the whole queue would, for every queued job.
    chosen = {job.id for job in expected}
    for job in all_queued:
        picks, _ = await queues[0].dispatcher.startable(job.guild_id, for_job=job)
        assert (job.id in {pick.id for pick in picks}) == (job.id in chosen), job


class PausedJobs:
    """A store's job ledger whose queue-expiry step waits for the test's go-ahead."""

    def __init__(self, jobs: Any, entered: asyncio.Event, go: asyncio.Event) -> None:
        self._jobs = jobs
        self._entered = entered
        self._go = go

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._jobs, name)
        if name not in {"expire_queued", "fail_and_refund"}:
            return attribute

        async def paused(*args: Any, **kwargs: Any) -> Any:
            self._entered.set()
            await self._go.wait()
            return await attribute(*args, **kwargs)

        return paused


class PausedStore:
    """The same database, seen by a process paused just before it expires queued jobs."""

    def __init__(self, store: SQLStore, entered: asyncio.Event, go: asyncio.Event) -> None:
        self._store = store
        self.jobs = PausedJobs(store.jobs, entered, go)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_queue_expiry_never_refunds_a_job_another_process_just_started(
    store: SQLStore,
    service: JobService,
    process_b: JobService,
    settings: BotSettings,
    clock: Clock,
    sandbox: SandboxServer,
) -> None:
    """Regression (expiry's refund matched reserved and submitted jobs too): process B's
    round finds a job past the queue's wait limit and is about to refund it; meanwhile
    process A starts it and sends it to the API. B's refund must then leave it alone:
    the job stays submitted and charged (it was paid for at the API)."""
    for jobs in (service, process_b):
        await store.processes.beat(jobs.claimant.process_id)
    queue_a = QueueService(store, service, settings, clock=clock)
    entered, go = asyncio.Event(), asyncio.Event()
    queue_b = QueueService(PausedStore(store, entered, go), process_b, settings, clock=clock)  # type: ignore[arg-type]
    job = await queue_a.accept(draft(SMALL_GUILD, 1))
    clock.advance(settings.queue_max_wait_seconds + 1)

    round_b = asyncio.create_task(queue_b.dispatch())
    await entered.wait()  # B has decided the job is overdue
    outcome = await queue_a.start(job)
    assert outcome.kind is StartKind.STARTED
    go.set()
    report = await round_b

    assert report.expired == []
    after = await store.jobs.get_job(job.id)
    assert after is not None and after.state is JobState.SUBMITTED and after.refunded_at is None
    assert sandbox.state.request_counts.get("generate", 0) == 1


async def test_another_process_leaves_a_just_accepted_job_to_its_request(
    store: SQLStore, queues: tuple[QueueService, QueueService], sandbox: SandboxServer
) -> None:
    """Regression (the 15 s hold on a just-accepted job was one process's memory): process
    B's dispatch round does not start a job process A accepted a moment ago; A's request
    starts it, so an API refusal would reach the requester in their command's reply."""
    queue_a, queue_b = queues
    job = await queue_a.accept(draft(SMALL_GUILD, 1))
    report = await queue_b.dispatch()
    assert report.started == [] and sandbox.state.request_counts.get("generate", 0) == 0
    assert (await queue_a.start(job)).kind is StartKind.STARTED


async def test_a_job_left_queued_by_its_request_is_free_for_any_dispatcher(
    store: SQLStore, queues: tuple[QueueService, QueueService]
) -> None:
    """The hold ends when the request leaves its job queued (not its turn): another
    process's dispatcher starts it as soon as a slot frees, without waiting for the hold."""
    queue_a, queue_b = queues
    await store.guilds.set_limits(SMALL_GUILD, GuildLimits(server_running=1), MOD)
    first = await queue_a.accept(draft(SMALL_GUILD, 1))
    assert (await queue_a.start(first)).kind is StartKind.STARTED
    second = await queue_a.accept(draft(SMALL_GUILD, 2))
    assert (await queue_a.start(second)).kind is StartKind.QUEUED
    assert await store.jobs.fail_and_refund(first.id, "test", expected=JobState.SUBMITTED)
    report = await queue_b.dispatch()
    assert [job.id for job in report.started] == [second.id]


async def test_a_reservation_settled_before_its_submit_is_never_sent(
    store: SQLStore, service: JobService, sandbox: SandboxServer
) -> None:
    """Regression (`JobService.submit` did not require the job to still be reserved): a
    job taken out of the queue and then refunded (here by a moderator) before its submit
    is not sent to the API, so no paid task exists for a refunded job."""
    await store.processes.beat(service.claimant.process_id)
    job = await service.reserve(draft(SMALL_GUILD, 1))
    assert await store.jobs.claim_queued(job.id, claimant=service.claimant, lease_seconds=60)
    chosen = await store.jobs.get_job(job.id)
    assert chosen is not None and chosen.state is JobState.RESERVED
    assert await store.jobs.moderator_refund(job.id, MOD) is not None
    with pytest.raises(Refusal):
        await service.submit(chosen)
    assert sandbox.state.request_counts.get("generate", 0) == 0
    after = await store.jobs.get_job(job.id)
    assert after is not None and after.state is JobState.REFUNDED and after.task_id is None
