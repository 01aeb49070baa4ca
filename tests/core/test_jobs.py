"""The job rules against a real SQLite store and the real sandbox over loopback."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from core.completion import CompletionKey
from core.errors import Refusal
from core.jobs import (
    IMAGE_TO_VIDEO,
    INTERRUPTED_BEFORE_RECORDED,
    TEXT_TO_VIDEO,
    JobDraft,
    JobService,
    PollKind,
    SubmitHeld,
    stale_reservation_seconds,
    worst_case_generate_seconds,
)
from happyhorse.sandbox import SandboxServer
from happyhorse.sandbox.state import Phase
from happyhorse.settings import ClientSettings
from storage.models import JobState
from storage.sqlite import SQLiteStore
from tests.core.conftest import Clock

GUILD, CHANNEL, USER = 111, 222, 333


def draft(prompt: str | None = "a horse in the rain", **overrides: object) -> JobDraft:
    values: dict[str, object] = dict(
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=USER,
        mode=TEXT_TO_VIDEO,
        prompt=prompt,
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
    )
    values.update(overrides)
    return JobDraft(**values)  # type: ignore[arg-type]


async def remaining(store: SQLiteStore) -> int:
    return (await store.credits.balance(GUILD, USER)).remaining


async def poll_until(service: JobService, clock: Clock, kind: PollKind) -> None:
    for _ in range(50):
        clock.advance(10)
        outcomes = await service.poll_due()
        if any(o.kind is kind for o in outcomes):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {kind}")


async def test_full_lifecycle_charges_once_and_completes(
    service: JobService, store: SQLiteStore, clock: Clock, sandbox: SandboxServer
) -> None:
    """A good request is charged once, submitted once and ends completed with a URL."""
    job = await service.reserve(draft(duration=10, quality="pro"))
    assert job.cost == 4
    assert await remaining(store) == 0
    job = await service.submit(job)
    assert job.state is JobState.SUBMITTED and job.task_id
    await poll_until(service, clock, PollKind.COMPLETED)
    done = await store.jobs.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result_url and done.result_url.startswith(sandbox.base_url)
    assert sandbox.state.request_counts["generate"] == 1
    assert await remaining(store) == 0


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"prompt": "   "}, "empty"),
        ({"prompt": "x" * 2001}, "2001 characters"),
        ({"prompt": "bad\x07bell"}, "control character"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"duration": 7}, "duration"),
        ({"mode": IMAGE_TO_VIDEO, "image_url": None, "prompt": None}, "image"),
    ],
)
async def test_bad_requests_are_refused_free(
    service: JobService, store: SQLiteStore, overrides: dict[str, object], needle: str
) -> None:
    """Every invalid request is refused with a message naming the problem, at no cost."""
    with pytest.raises(Refusal) as refused:
        await service.reserve(draft(**overrides))
    assert needle in refused.value.message
    assert await remaining(store) == 4
    assert await store.jobs.recent_jobs(GUILD, USER) == []


async def test_blocked_word_hidden_by_zero_width_space_is_caught(
    service: JobService, store: SQLiteStore
) -> None:
    """A blocked word split by invisible characters is still refused."""
    await store.guilds.add_blocked_word(GUILD, "gore", moderator_id=1)
    with pytest.raises(Refusal, match="does not allow"):
        await service.reserve(draft("lots of g\u200bore here"))
    assert await remaining(store) == 4


async def test_channel_allow_list_is_enforced(service: JobService, store: SQLiteStore) -> None:
    """With an allow-list, other channels are refused and the message names the allowed ones."""
    await store.guilds.add_allowed_channel(GUILD, 999, moderator_id=1)
    with pytest.raises(Refusal, match="<#999>"):
        await service.reserve(draft())
    assert await remaining(store) == 4


async def test_quota_exhausted_names_cost_and_balance(
    service: JobService, store: SQLiteStore
) -> None:
    """Once credits are spent, the refusal says the cost, what is left and when it resets."""
    await service.reserve(draft(duration=10))
    await service.reserve(draft(duration=10))
    with pytest.raises(Refusal) as refused:
        await service.reserve(draft())
    assert "costs 1" in refused.value.message and "0 of 4" in refused.value.message
    assert "<t:" in refused.value.message


async def test_concurrent_requests_never_overspend(service: JobService, store: SQLiteStore) -> None:
    """Twenty simultaneous 1-credit requests with 4 credits: exactly 4 are accepted."""
    results = await asyncio.gather(
        *(service.reserve(draft()) for _ in range(20)), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 4
    assert all(isinstance(r, Refusal) for r in results if isinstance(r, BaseException))


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        (400, "refused this request"),
        (401, "misconfigured"),
        (500, "internal error"),
    ],
)
async def test_submit_errors_refund_and_explain(
    service: JobService,
    store: SQLiteStore,
    sandbox: SandboxServer,
    status: int,
    needle: str,
) -> None:
    """Every API error on submit refunds the reservation and gives a specific message."""
    sandbox.state.faults.add("generate", status=status, count=5, retry_after="7")
    job = await service.reserve(draft())
    with pytest.raises(Refusal) as refused:
        await service.submit(job)
    assert needle in refused.value.message
    settled = await store.jobs.get_job(job.id)
    assert settled is not None and settled.state is JobState.REFUNDED
    assert await remaining(store) == 4


@pytest.mark.parametrize(("status", "out_of_credits"), [(402, True), (429, False)])
async def test_429_and_402_on_submit_put_the_job_back_in_the_queue(
    service: JobService,
    store: SQLiteStore,
    sandbox: SandboxServer,
    status: int,
    out_of_credits: bool,
) -> None:
    """The API cannot take the job yet: it is queued again, still charged, never refunded."""
    sandbox.state.faults.add("generate", status=status, count=5, retry_after="7")
    job = await service.reserve(draft())
    assert job.state is JobState.QUEUED
    with pytest.raises(SubmitHeld) as held:
        await service.submit(job)
    assert held.value.out_of_credits is out_of_credits
    assert held.value.retry_after == (None if out_of_credits else 7.0)
    waiting = await store.jobs.get_job(job.id)
    assert waiting is not None and waiting.state is JobState.QUEUED
    assert waiting.task_id is None and waiting.refunded_at is None
    assert await remaining(store) == 3


async def test_server_error_on_submit_is_not_retried(
    service: JobService, sandbox: SandboxServer
) -> None:
    """A 500 on generate may have created a task: it is never sent twice."""
    sandbox.state.faults.add("generate", status=500, count=5)
    job = await service.reserve(draft())
    with pytest.raises(Refusal):
        await service.submit(job)
    assert sandbox.state.request_counts["generate"] == 1


async def test_failed_task_is_refunded_once(
    service: JobService, store: SQLiteStore, clock: Clock
) -> None:
    """A task the API fails is refunded, and only once even if polled again."""
    job = await service.submit(await service.reserve(draft("please FAIL now")))
    await poll_until(service, clock, PollKind.FAILED)
    assert await remaining(store) == 4
    assert not await store.jobs.refund(job.id)
    assert await remaining(store) == 4


async def test_status_rate_limit_reschedules_instead_of_failing(
    service: JobService, store: SQLiteStore, clock: Clock, sandbox: SandboxServer
) -> None:
    """A 429 storm on status leaves the job submitted and pushes its next poll past Retry-After."""
    job = await service.submit(await service.reserve(draft()))
    sandbox.state.faults.add("status", status=429, count=-1, retry_after="30")
    clock.advance(5)
    outcomes = await service.poll_due()
    assert [o.kind for o in outcomes] == [PollKind.RETRY]
    after = await store.jobs.get_job(job.id)
    assert after is not None and after.state is JobState.SUBMITTED
    assert after.next_poll_at is not None
    assert (after.next_poll_at - clock.now).total_seconds() >= 30
    assert await store.jobs.due_jobs(clock.now, 10) == []


async def test_stuck_job_expires_and_is_refunded(
    service: JobService, store: SQLiteStore, clock: Clock, sandbox: SandboxServer
) -> None:
    """A job the API still calls unfinished past the deadline is expired and refunded."""
    job = await service.submit(await service.reserve(draft()))
    assert job.task_id is not None
    sandbox.state.force(job.task_id, Phase.PROCESSING)
    clock.advance(601)
    outcomes = await service.poll_due()
    assert [o.kind for o in outcomes] == [PollKind.EXPIRED]
    assert outcomes[0].refunded
    expired = await store.jobs.get_job(job.id)
    assert expired is not None and expired.state is JobState.REFUNDED
    assert await remaining(store) == 4


async def test_a_late_poll_still_delivers_a_finished_video(
    service: JobService, store: SQLiteStore, clock: Clock, sandbox: SandboxServer
) -> None:
    """A poll that comes after the deadline but finds the video done completes the job."""
    job = await service.submit(await service.reserve(draft()))
    assert job.task_id is not None
    sandbox.state.force(job.task_id, Phase.COMPLETED)
    clock.advance(601)
    outcomes = await service.poll_due()
    assert [o.kind for o in outcomes] == [PollKind.COMPLETED]
    done = await store.jobs.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result_url
    assert await remaining(store) == 3


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ({"status": 400}, "HTTP 400"),
        ({"status": 410}, "HTTP 410"),
        ({"status": 503}, "HTTP 503"),
        ({"status": 401}, "rejected the bot's API key (401)"),
        ({"body": {"code": 200, "data": {"state": "levitating"}}}, "unknown task state"),
        ({"body": {"code": 200, "data": {"state": "completed"}}}, "no result URL"),
    ],
    ids=["400", "410", "503", "401", "unknown-state", "completed-without-url"],
)
async def test_the_deadline_holds_whatever_the_api_answers(
    service: JobService,
    store: SQLiteStore,
    clock: Clock,
    sandbox: SandboxServer,
    fault: dict[str, object],
    named: str,
) -> None:
    """Regression (a job was polled forever: only a "pending" answer was checked against
    the deadline): a status call that fails the same way every time is retried, with the
    error recorded on the job, until the deadline; then the job is expired and refunded
    once, and waits in the notice outbox with the last error named."""
    job = await service.submit(await service.reserve(draft()))
    sandbox.state.faults.add("status", count=-1, **fault)  # type: ignore[arg-type]
    clock.advance(5)
    assert [o.kind for o in await service.poll_due()] == [PollKind.RETRY]
    retried = await store.jobs.get_job(job.id)
    assert retried is not None and retried.state is JobState.SUBMITTED
    assert retried.last_error is not None and named in retried.last_error

    clock.advance(601)
    outcomes = await service.poll_due()
    assert [o.kind for o in outcomes] == [PollKind.EXPIRED] and outcomes[0].refunded
    expired = await store.jobs.get_job(job.id)
    assert expired is not None and expired.state is JobState.REFUNDED
    assert expired.last_error is not None
    assert "took too long" in expired.last_error and named in expired.last_error
    assert [j.id for j in await store.jobs.unnotified_refunds(3600)] == [job.id]
    assert await remaining(store) == 4
    clock.advance(60)
    assert await service.poll_due() == []  # never polled again
    assert not await store.jobs.refund(job.id)
    assert await remaining(store) == 4


async def test_restart_refunds_jobs_interrupted_before_submit(
    service: JobService, store: SQLiteStore, clock: Clock
) -> None:
    """A job taken out of the queue but never submitted (crash) is refunded at start-up,
    once; a job still queued stays queued, its credits held."""
    job = await service.reserve(draft())
    waiting = await service.reserve(draft())
    assert await store.jobs.claim_queued(job.id)
    clock.advance(1)
    recovered = await service.recover_interrupted()
    assert [j.id for j in recovered] == [job.id]
    assert await remaining(store) == 3
    assert await service.recover_interrupted() == []
    still = await store.jobs.get_job(waiting.id)
    assert still is not None and still.state is JobState.QUEUED


async def test_restart_refund_notice_claims_only_what_is_known(
    service: JobService, store: SQLiteStore, clock: Clock
) -> None:
    """The request may have reached the API before the crash: the reason must not deny it."""
    job = await service.reserve(draft())
    assert await store.jobs.claim_queued(job.id)
    clock.advance(1)
    [recovered] = await service.recover_interrupted()
    assert recovered.last_error == INTERRUPTED_BEFORE_RECORDED
    assert "reached" not in recovered.last_error
    assert "interrupted by a restart" in recovered.last_error


async def test_without_history_polls_follow_the_plain_cadence(
    service: JobService, store: SQLiteStore, clock: Clock
) -> None:
    """With no completion history: first poll after the first delay, then every interval."""
    job = await service.submit(await service.reserve(draft()))
    assert job.submitted_at is not None and job.next_poll_at is not None
    assert (job.next_poll_at - job.submitted_at).total_seconds() == pytest.approx(1.0)
    pending = replace(job, last_pending_at=clock.now)
    clock.advance(1)
    nxt = service.policy.next_poll_at(pending, clock.now)
    assert (nxt - clock.now).total_seconds() == pytest.approx(2.0)


async def test_completions_are_recorded_with_their_bracket(
    service: JobService, store: SQLiteStore, clock: Clock, sandbox: SandboxServer
) -> None:
    """A completion is stored as (last pending answer, completed answer) after submit,
    and a fresh service learns it from the store."""
    job = await service.submit(await service.reserve(draft()))
    assert job.task_id is not None
    sandbox.state.force(job.task_id, Phase.PROCESSING)
    clock.advance(3)
    assert [o.kind for o in await service.poll_due()] == [PollKind.PENDING]
    sandbox.state.force(job.task_id, Phase.COMPLETED)
    clock.advance(4)
    assert [o.kind for o in await service.poll_due()] == [PollKind.COMPLETED]
    [sample] = await store.jobs.completion_times(10)
    assert (sample.mode, sample.quality, sample.duration, sample.sound) == (
        TEXT_TO_VIDEO, "std", 5, True,
    )
    assert sample.lower_seconds == pytest.approx(3.0)
    assert sample.upper_seconds == pytest.approx(7.0)
    fresh = JobService(store, service.client, service.settings, clock=clock)
    assert await fresh.load_history() == 1
    assert fresh.completion.samples(CompletionKey.of(job)) == 1


def test_stale_reservation_threshold_covers_the_worst_generate() -> None:
    """The sweep waits longer than a generate call can take with all retries and waits."""
    client = ClientSettings(timeout_seconds=30, max_retries=4, retry_cap_seconds=60)
    worst = worst_case_generate_seconds(client)
    assert worst == pytest.approx(5 * 30 + 4 * 60)
    assert stale_reservation_seconds(client) > worst


async def test_periodic_sweep_refunds_only_old_reservations(
    service: JobService, store: SQLiteStore, clock: Clock
) -> None:
    """A reservation that never got submitted is refunded once it is older than the limit."""
    old = await service.reserve(draft())
    assert await store.jobs.claim_queued(old.id)
    clock.advance(400)
    fresh = await service.reserve(draft())
    assert await store.jobs.claim_queued(fresh.id)
    refunded = await service.refund_stale_reservations(300)
    assert [j.id for j in refunded] == [old.id]
    still = await store.jobs.get_job(fresh.id)
    assert still is not None and still.state is JobState.RESERVED
    assert await remaining(store) == 3


async def test_unknown_task_is_failed_only_after_several_polls(
    service: JobService, store: SQLiteStore, clock: Clock, sandbox: SandboxServer
) -> None:
    """A 404 right after submit is retried; a task still unknown after 3 polls is refunded."""
    job = await service.submit(await service.reserve(draft()))
    sandbox.state.faults.add("status", status=404, count=-1)
    kinds = []
    for _ in range(4):
        clock.advance(60)
        kinds += [o.kind for o in await service.poll_due()]
    assert kinds == [PollKind.RETRY, PollKind.RETRY, PollKind.RETRY, PollKind.FAILED]
    lost = await store.jobs.get_job(job.id)
    assert lost is not None and lost.state is JobState.REFUNDED
    assert lost.last_error == "The video service lost track of this job."
    assert await remaining(store) == 4
