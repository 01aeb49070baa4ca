"""The poll scheduler's decisions, with a hand-moved clock: which job is polled when.

No test here sleeps or measures time: the scheduler's choices (`due`, `next_poll_at`,
`seconds_until_due`) take "now" as an argument, and the store shares the fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from datetime import datetime, timedelta

import pytest

from core import completion as completion_module
from core.completion import CompletionKey, CompletionModel
from core.jobs import TEXT_TO_VIDEO, JobService, PollKind, PollOutcome
from core.poll_policy import PollPolicy
from core.scheduler import PollScheduler
from core.settings import BotSettings
from happyhorse.sandbox import SandboxServer
from storage.models import Job, JobState
from storage.sqlite import SQLiteStore
from tests.core.conftest import Clock
from tests.core.test_jobs import draft

KEY = CompletionKey(mode=TEXT_TO_VIDEO, quality="std", duration=5, sound=True)


def teach(model: CompletionModel, count: int = 60, *, seed: int = 3) -> list[float]:
    """Feed `count` completions around 40 s (log-normal, 15..120 s), bracketed by 2 s."""
    rng = random.Random(seed)
    times = [min(120.0, max(15.0, rng.lognormvariate(math.log(40), 0.5))) for _ in range(count)]
    for t in times:
        model.observe(KEY, t - 2.0, t)
    return times


def submitted(job: Job, at: datetime, *, pending_at: datetime | None = None) -> Job:
    """A copy of `job` as if submitted at `at` and last seen pending at `pending_at`."""
    return dataclasses.replace(
        job,
        state=JobState.SUBMITTED,
        submitted_at=at,
        last_pending_at=pending_at,
        next_poll_at=at,
        task_id=job.task_id or "task",
    )


@pytest.fixture
async def scheduler(service: JobService) -> PollScheduler:
    outcomes: list[PollOutcome] = []
    return PollScheduler(service, outcomes.append, clock=service._clock)


async def test_without_history_the_longest_overdue_goes_first(
    service: JobService, scheduler: PollScheduler, clock: Clock
) -> None:
    """No history: every job scores the same, so the budget goes to the most overdue."""
    base = await service.reserve(draft())
    now = clock.now
    jobs = [
        dataclasses.replace(
            submitted(base, now - timedelta(seconds=30)),
            id=1,
            next_poll_at=now - timedelta(seconds=1),
        ),
        dataclasses.replace(
            submitted(base, now - timedelta(seconds=30)),
            id=2,
            next_poll_at=now - timedelta(seconds=9),
        ),
        dataclasses.replace(
            submitted(base, now - timedelta(seconds=30)),
            id=3,
            next_poll_at=now + timedelta(seconds=5),
        ),
    ]
    for job in jobs:
        scheduler.track(job)
    assert [j.id for j in scheduler.due(now, 10)] == [2, 1]
    assert [j.id for j in scheduler.due(now, 1)] == [2]
    assert scheduler.seconds_until_due(now) == 0.0
    assert scheduler.seconds_until_due(now - timedelta(seconds=20)) == pytest.approx(11.0)


async def test_guilds_take_turns_when_the_budget_is_short(
    service: JobService, scheduler: PollScheduler, clock: Clock
) -> None:
    """One guild's long overdue backlog does not take every slot: guilds alternate."""
    base = await service.reserve(draft())
    now = clock.now
    for job_id in range(1, 6):  # the busy guild, all more overdue than the quiet one
        scheduler.track(
            dataclasses.replace(
                submitted(base, now - timedelta(seconds=60)),
                id=job_id,
                next_poll_at=now - timedelta(seconds=30 - job_id),
            )
        )
    for job_id in (10, 11):
        scheduler.track(
            dataclasses.replace(
                submitted(base, now - timedelta(seconds=60)),
                id=job_id,
                guild_id=base.guild_id + 1,
                next_poll_at=now - timedelta(seconds=job_id - 9),
            )
        )
    assert [j.id for j in scheduler.due(now, 4)] == [1, 11, 2, 10]
    assert [j.id for j in scheduler.due(now, 10)] == [1, 11, 2, 10, 3, 4, 5]


async def test_a_short_budget_polls_the_likeliest_finished_first(
    service: JobService, scheduler: PollScheduler, clock: Clock
) -> None:
    """With history and one free slot, the job most likely done since its last pending
    answer is polled first; one just answered 'pending' and one far too young wait."""
    teach(service.completion)
    base = await service.reserve(draft())
    now = clock.now
    ago = lambda s: now - timedelta(seconds=s)  # noqa: E731
    just_asked = dataclasses.replace(submitted(base, ago(45), pending_at=ago(1)), id=1)
    long_unasked = dataclasses.replace(submitted(base, ago(45), pending_at=ago(25)), id=2)
    too_young = dataclasses.replace(submitted(base, ago(8), pending_at=ago(4)), id=3)
    for job in (just_asked, too_young, long_unasked):
        scheduler.track(job)
    order = [j.id for j in scheduler.due(now, 3)]
    assert order == [2, 1, 3]
    assert [j.id for j in scheduler.due(now, 1)] == [2]
    assert (
        service.policy.priority(too_young, now) < 0.01 < service.policy.priority(long_unasked, now)
    )


async def test_jobs_being_polled_are_not_chosen_again(
    service: JobService, scheduler: PollScheduler, clock: Clock
) -> None:
    """A job with a poll in flight is neither due nor counted for the next wake-up."""
    base = await service.reserve(draft())
    job = dataclasses.replace(submitted(base, clock.now), id=7)
    scheduler.track(job)
    scheduler._in_flight[7] = None  # type: ignore[assignment]
    assert scheduler.due(clock.now, 5) == []
    assert scheduler.seconds_until_due(clock.now) is None


async def test_settled_jobs_leave_the_schedule(
    service: JobService, scheduler: PollScheduler, clock: Clock
) -> None:
    """Tracking a job that is no longer submitted drops it."""
    base = await service.reserve(draft())
    job = dataclasses.replace(submitted(base, clock.now), id=8)
    scheduler.track(job)
    assert scheduler.pending == 1
    scheduler.track(dataclasses.replace(job, state=JobState.COMPLETED))
    assert scheduler.pending == 0


def test_learned_schedule_skips_the_unlikely_start_and_is_dense_in_the_middle(
    settings: BotSettings,
) -> None:
    """With history: nothing before the fastest ~2 %, spacing at most 2x the target lag
    where most jobs finish, backing off in the tail, expected lag within the target."""
    model = CompletionModel(min_history=20, history_size=200)
    times = sorted(teach(model))
    settings = settings.model_copy(
        update={"poll_target_lag_seconds": 2.5, "poll_max_interval_seconds": 60.0}
    )
    policy = PollPolicy(settings, model)
    schedule = policy.schedule(KEY)
    assert schedule is not None
    distribution = model.distribution(KEY)
    assert distribution is not None
    assert schedule.start == pytest.approx(distribution.quantile(settings.poll_skip_probability))
    assert schedule.start > 10.0  # no polls in the first seconds, where nothing finishes
    assert sum(t < schedule.start for t in times) <= 2 * settings.poll_skip_probability * len(times)
    assert schedule.spacing <= 2 * 2.5
    assert distribution.expected_lag(schedule.ages()) <= 2.5
    tail_gaps = [b - a for a, b in zip(schedule.tail, schedule.tail[1:], strict=False)]
    assert tail_gaps == sorted(tail_gaps) and max(tail_gaps) <= 60.0
    # Polls requested from the middle land on the dense grid, min interval respected.
    assert schedule.next_age(40.0, 0.5) - 40.0 <= schedule.spacing + 0.5
    assert schedule.next_age(0.0, 0.5) == schedule.start


def test_the_tail_backs_off_only_after_all_but_the_tail_share(settings: BotSettings) -> None:
    """Dense polls last until all but POLL_TAIL_SKIP_PROBABILITY of jobs have finished (not
    POLL_SKIP_PROBABILITY): the slowest 5 % are still polled densely, so they do not set
    the lag's 95th percentile."""
    model = CompletionModel(min_history=20, history_size=200)
    teach(model)
    distribution = model.distribution(KEY)
    assert distribution is not None
    settings = settings.model_copy(
        update={"poll_skip_probability": 0.05, "poll_tail_skip_probability": 0.01}
    )
    schedule = PollPolicy(settings, model).schedule(KEY)
    assert schedule is not None
    assert schedule.dense_end == pytest.approx(distribution.quantile(0.99))
    assert schedule.dense_end > distribution.quantile(0.95)
    assert schedule.start == pytest.approx(distribution.quantile(0.05))
    age = distribution.quantile(0.96)
    assert schedule.next_age(age, 0.0) - age <= schedule.spacing + 1e-9


def test_fewer_polls_than_a_fixed_cadence_for_the_same_typical_lag(settings: BotSettings) -> None:
    """On the learned draws the schedule spends fewer polls per job than polling every
    5 s, for an expected lag no worse than that cadence's."""
    model = CompletionModel(min_history=20, history_size=200)
    teach(model, 80, seed=5)
    settings = settings.model_copy(
        update={
            "poll_target_lag_seconds": 3.0,
            "poll_skip_probability": 0.06,
            "poll_tail_skip_probability": 0.06,
        }
    )
    schedule = PollPolicy(settings, model).schedule(KEY)
    assert schedule is not None
    rng = random.Random(11)
    draws = [min(120.0, max(15.0, rng.lognormvariate(math.log(40), 0.5))) for _ in range(2000)]
    ages = schedule.ages()
    learned = fixed = 0
    lag_learned = lag_fixed = 0.0
    for t in draws:
        polls = [a for a in ages if a < t]
        learned += len(polls) + 1
        lag_learned += schedule.next_age(t - 1e-9, 0.0) - t if t > ages[0] else ages[0] - t
        fixed += math.ceil(t / 5.0)
        lag_fixed += math.ceil(t / 5.0) * 5.0 - t
    assert learned <= 0.75 * fixed
    assert lag_learned / len(draws) <= lag_fixed / len(draws) + 0.5


def test_not_enough_history_means_no_distribution() -> None:
    """Below the minimum there is no ETA; the pooled history of other keys fills in."""
    model = CompletionModel(min_history=5, history_size=50)
    assert model.expected_seconds(KEY) is None
    for _ in range(4):
        model.observe(KEY, 30.0, 32.0)
    assert model.expected_seconds(KEY) is None
    other = dataclasses.replace(KEY, quality="pro")
    model.observe(other, 60.0, 62.0)
    pooled = model.expected_seconds(KEY)
    assert pooled is not None and 30.0 < pooled < 62.0
    for _ in range(5):
        model.observe(other, 60.0, 62.0)
    own = model.expected_seconds(other)
    assert own is not None and own == pytest.approx(61.0, rel=0.05)
    q90 = model.quantile_seconds(other, 0.9)
    assert q90 is not None and 60.0 < q90 < 66.0


def test_brackets_are_not_read_as_exact_times() -> None:
    """A completion seen only by a coarse poll counts across its whole bracket: the
    estimate sits mid-bracket, not at the poll that saw it."""
    model = CompletionModel(min_history=3, history_size=10)
    for _ in range(5):
        model.observe(KEY, 20.0, 40.0)
    median = model.quantile_seconds(KEY, 0.5)
    assert median is not None and 25.0 < median < 35.0


async def test_on_429_the_job_waits_out_retry_after_and_others_stay_due(
    service: JobService,
    scheduler: PollScheduler,
    store: SQLiteStore,
    clock: Clock,
    sandbox: SandboxServer,
) -> None:
    """A 429 on one job's poll moves that job past Retry-After; the other due job is
    still chosen now (only the rate limiter pauses, not the schedule)."""
    first = await service.submit(await service.reserve(draft()))
    second = await service.submit(await service.reserve(draft("a second horse")))
    clock.advance(5)
    sandbox.state.faults.add("status", status=429, count=3, retry_after="30")
    outcome = await service.poll(first)
    assert outcome.kind is PollKind.RETRY
    fresh_second = await store.jobs.get_job(second.id)
    assert fresh_second is not None
    scheduler.track(outcome.job)  # what the scheduler does with every outcome
    scheduler.track(fresh_second)
    assert [j.id for j in scheduler.due(clock.now, 5)] == [second.id]
    assert outcome.job.next_poll_at is not None
    assert (outcome.job.next_poll_at - clock.now).total_seconds() >= 30
    clock.advance(31)
    assert {j.id for j in scheduler.due(clock.now, 5)} == {first.id, second.id}


async def test_the_schedule_is_rebuilt_from_the_store(
    service: JobService, store: SQLiteStore, clock: Clock
) -> None:
    """A new scheduler (a restart) finds every submitted job with its stored poll time."""
    job = await service.submit(await service.reserve(draft()))
    await service.reserve(draft("never submitted"))
    fresh = PollScheduler(service, lambda outcome: None, clock=service._clock)
    assert await fresh.load() == 1
    assert job.next_poll_at is not None
    assert fresh.seconds_until_due(clock.now) == pytest.approx(
        (job.next_poll_at - clock.now).total_seconds()
    )
    clock.advance(2)
    assert [j.id for j in fresh.due(clock.now, 5)] == [job.id]


async def test_a_poll_that_raises_every_time_still_ends_at_the_deadline(
    service: JobService, store: SQLiteStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (a poll raising unexpectedly was only rescheduled, so a bug on one job's
    answer kept it polled forever): the scheduler holds it to the deadline like any
    answer, expiring and refunding it once."""
    outcomes: list[PollOutcome] = []
    scheduler = PollScheduler(service, outcomes.append, clock=service._clock)
    job = await service.submit(await service.reserve(draft()))

    async def broken(task_id: str) -> None:
        raise RuntimeError("a bug reading this answer")

    monkeypatch.setattr(service.client, "status", broken)
    for advance, kind in ((5, PollKind.RETRY), (601, PollKind.EXPIRED)):
        clock.advance(advance)
        await scheduler.round()
        await asyncio.gather(*list(scheduler._in_flight.values()))
        assert outcomes[-1].kind is kind
    after = await store.jobs.get_job(job.id)
    assert after is not None and after.state is JobState.REFUNDED
    assert after.last_error is not None and "RuntimeError" in after.last_error
    await scheduler.close()


def test_a_flood_of_completions_rebuilds_the_distribution_at_most_once_a_second() -> None:
    """Rebuilding costs tens of milliseconds on the event loop: a thousand completions in
    a moment rebuild it once, and the next rebuild waits for the clock, not for samples."""
    now = [0.0]
    history = completion_module._History(200, clock=lambda: now[0])
    for _ in range(50):
        history.add(30.0, 32.0)
    first = history.current(20)
    assert first is not None and history.version == 1
    for _ in range(1000):
        history.add(60.0, 62.0)
        assert history.current(20) is first
    now[0] = completion_module.REBUILD_MIN_SECONDS
    rebuilt = history.current(20)
    assert rebuilt is not first and history.version == 2
    assert rebuilt is not None and rebuilt.mean == pytest.approx(61.0, rel=0.05)
