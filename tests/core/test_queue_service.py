"""The queue service on a real store and sandbox: admission refusals, estimates from the
ledger, cancels and their listeners, and wait timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from core.completion import CompletionKey, CompletionModel
from core.errors import Refusal
from core.eta import LearnedEstimator
from core.jobs import JobDraft, JobService
from core.queue import CancelEvent, CancelOutcome, QueueService, StartKind
from core.settings import BotSettings
from storage.models import GuildLimits, Job, JobState
from storage.sqlite import SQLiteStore
from tests.core.conftest import Clock

GUILD, CHANNEL, ALICE, BOB, MOD = 1, 2, 10, 20, 99


def draft(user: int = ALICE, prompt: str = "a horse in the rain") -> JobDraft:
    return JobDraft(
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=user,
        mode="text-to-video",
        prompt=prompt,
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
    )


@pytest.fixture
async def queue(
    store: SQLiteStore, service: JobService, settings: BotSettings, clock: Clock
) -> AsyncIterator[QueueService]:
    # The holds on just-accepted jobs are leases: their owner must be a live process.
    await store.processes.beat(service.claimant.process_id)
    yield QueueService(store, service, settings, clock=clock)


async def test_estimates_come_from_the_learned_completion_model(
    store: SQLiteStore, clock: Clock
) -> None:
    """The queue's estimator is the scheduler's model: none until it has enough history,
    then its mean for the kind (pooled across kinds while one kind has little history)."""
    model = CompletionModel(min_history=5, history_size=50)
    estimator = LearnedEstimator(model)
    kind = CompletionKey("text-to-video", "std", 5, True)
    for took in (30, 50, 40, 45):
        model.observe(kind, took, took)
    assert estimator.expected_seconds("text-to-video", "std", 5, True) is None
    model.observe(kind, 1000, 1000)
    expected = estimator.expected_seconds("text-to-video", "std", 5, True)
    assert expected is not None and 40 < expected < 1000
    assert estimator.expected_seconds("text-to-video", "pro", 5, True) == expected  # pooled


async def test_queued_card_says_estimating_until_there_is_history(
    queue: QueueService, store: SQLiteStore, clock: Clock
) -> None:
    await store.guilds.set_limits(GUILD, GuildLimits(server_running=1), MOD)
    first = await queue.jobs.reserve(draft())
    assert (await queue.start(first)).kind is StartKind.STARTED
    waiting = await queue.jobs.reserve(draft(BOB))
    assert (await queue.start(waiting)).kind is StartKind.QUEUED
    info = await queue.card_info(await reload(store, waiting.id))
    assert (info.position, info.total, info.estimating, info.starts_at) == (1, 1, True, None)
    running = await queue.card_info(await reload(store, first.id))
    assert running.estimating and running.ready_at is None


async def test_estimates_from_history_for_queued_and_running_jobs(
    queue: QueueService, store: SQLiteStore, clock: Clock
) -> None:
    kind = CompletionKey("text-to-video", "std", 5, True)
    for _ in range(queue.jobs.completion.min_history):
        queue.jobs.completion.observe(kind, 40, 40)
    took = queue.estimator.expected_seconds("text-to-video", "std", 5, True)
    assert took is not None and 35 < took < 45
    await store.guilds.set_limits(GUILD, GuildLimits(server_running=1, member_running=0), MOD)
    first = await queue.jobs.reserve(draft())
    await queue.start(first)
    second = await queue.jobs.reserve(draft(BOB))
    third = await queue.jobs.reserve(draft(ALICE))
    for job in (second, third):
        await queue.start(job)
    now = clock()
    running = await queue.card_info(await reload(store, first.id))
    submitted_at = (await reload(store, first.id)).submitted_at
    assert submitted_at is not None and running.ready_at == submitted_at + timedelta(seconds=took)
    infos = await queue.card_infos([await reload(store, second.id), await reload(store, third.id)])
    one, two = infos[second.id], infos[third.id]
    assert (one.position, two.position) == (1, 2) and one.total == 2
    assert one.starts_at == now + timedelta(seconds=took)
    assert one.ready_at == now + timedelta(seconds=2 * took)
    assert two.starts_at == now + timedelta(seconds=2 * took)  # a second wave of one slot
    assert not one.estimating and one.paused is None


async def test_cooldown_and_queue_limit_refusals(
    queue: QueueService, store: SQLiteStore, clock: Clock
) -> None:
    await store.guilds.set_limits(GUILD, GuildLimits(cooldown_seconds=60), MOD)
    await queue.jobs.reserve(draft())
    with pytest.raises(Refusal) as refused:
        await queue.admit(draft())
    assert "cool-down of 60 s" in refused.value.message
    assert refused.value.retry_after == pytest.approx(60)
    await queue.admit(draft(BOB))  # others are not cooling down
    clock.advance(61)
    await queue.admit(draft())

    await store.guilds.set_limits(
        GUILD, GuildLimits(member_running=1, member_queued=1, cooldown_seconds=0), MOD
    )
    running = await queue.jobs.reserve(draft(BOB))
    await queue.start(running)
    waiting = await queue.jobs.reserve(draft(BOB))
    assert (await queue.start(waiting)).kind is StartKind.QUEUED
    with pytest.raises(Refusal) as full:
        await queue.admit(draft(BOB))
    assert "1 video waiting" in full.value.message and "<t:" in full.value.message


async def test_accept_checks_the_cooldown_atomically_with_the_charge(
    queue: QueueService, store: SQLiteStore, clock: Clock
) -> None:
    """Two requests of one member at the same moment inside a cool-down: the acknowledgement
    path admits and charges in one transaction, so one job is made and the other is told
    about the cool-down (nothing charged)."""
    await store.guilds.set_limits(GUILD, GuildLimits(cooldown_seconds=60), MOD)
    results = await asyncio.gather(
        queue.accept(draft()), queue.accept(draft()), return_exceptions=True
    )
    jobs = [r for r in results if isinstance(r, Job)]
    refusals = [r for r in results if isinstance(r, Refusal)]
    assert len(jobs) == 1 and len(refusals) == 1
    assert "cool-down of 60 s" in refusals[0].message
    assert len(await store.jobs.recent_jobs(GUILD, ALICE)) == 1
    balance = await store.credits.balance(GUILD, ALICE)
    assert balance.used == jobs[0].cost


async def test_a_dispatch_round_leaves_a_just_accepted_job_to_its_request(
    queue: QueueService, store: SQLiteStore
) -> None:
    """Between the acknowledgement and `start`, a dispatch round does not take the job: the
    request starts it, so an outright refusal by the API reaches the requester in the reply
    to their command (a dispatched job's refusal would only come later, as a notice)."""
    job = await queue.accept(draft())
    report = await queue.dispatch()
    assert report.started == [] and [j.id for j in report.still_queued] == [job.id]
    assert (await reload(store, job.id)).state is JobState.QUEUED
    assert (await queue.start(job)).kind is StartKind.STARTED


async def test_accept_refuses_a_full_queue_with_the_usual_wording(
    queue: QueueService, store: SQLiteStore
) -> None:
    await store.guilds.set_limits(
        GUILD, GuildLimits(member_running=1, member_queued=1, cooldown_seconds=0), MOD
    )
    await queue.start(await queue.accept(draft()))
    waiting = await queue.accept(draft())
    assert (await queue.start(waiting)).kind is StartKind.QUEUED
    with pytest.raises(Refusal) as full:
        await queue.accept(draft())
    assert "1 video waiting" in full.value.message and "<t:" in full.value.message
    assert len(await store.jobs.recent_jobs(GUILD, ALICE)) == 2


async def test_cancel_rules_and_listeners(queue: QueueService, store: SQLiteStore) -> None:
    events: list[CancelEvent] = []
    queue.add_cancel_listener(events.append)
    queue.add_cancel_listener(lambda event: 1 / 0)  # a broken listener changes nothing
    await store.guilds.set_limits(GUILD, GuildLimits(member_running=1), MOD)
    first = await queue.jobs.reserve(draft())
    await queue.start(first)
    waiting = await queue.jobs.reserve(draft())
    await queue.start(waiting)

    assert (await queue.cancel(waiting.id, GUILD, BOB, moderator=False))[0] is (
        CancelOutcome.NOT_ALLOWED
    )
    assert (await queue.cancel(waiting.id, GUILD + 1, ALICE, moderator=False))[0] is (
        CancelOutcome.NOT_FOUND
    )
    assert (await queue.cancel(first.id, GUILD, ALICE, moderator=False))[0] is (
        CancelOutcome.ALREADY_SENT
    )
    outcome, job = await queue.cancel(waiting.id, GUILD, MOD, moderator=True)
    assert outcome is CancelOutcome.CANCELLED and job is not None
    assert job.state is JobState.REFUNDED and job.cancelled_by == MOD
    assert (await queue.cancel(waiting.id, GUILD, MOD, moderator=True))[0] is (
        CancelOutcome.ALREADY_SETTLED
    )
    assert [(e.job.id, e.by_user_id, e.by_moderator) for e in events] == [(waiting.id, MOD, True)]


async def test_jobs_that_wait_too_long_are_refunded_and_left_for_the_notice_outbox(
    queue: QueueService, store: SQLiteStore, clock: Clock, settings: BotSettings
) -> None:
    await store.guilds.set_limits(GUILD, GuildLimits(server_running=1), MOD)
    await queue.start(await queue.jobs.reserve(draft()))
    waiting = await queue.jobs.reserve(draft(BOB))
    clock.advance(settings.queue_max_wait_seconds + 1)
    report = await queue.dispatch()
    assert [j.id for j in report.expired] == [waiting.id]
    [told] = await store.jobs.unnotified_refunds(3600)
    assert told.id == waiting.id and told.last_error is not None
    assert "waited in the queue for more than 30 minutes" in told.last_error


async def reload(store: SQLiteStore, job_id: int) -> Job:
    job = await store.jobs.get_job(job_id)
    assert job is not None
    return job
