"""What a refund gives back, and says, when it comes after the credit period ended."""

from __future__ import annotations

from datetime import UTC, datetime

from core.jobs import JobDraft, JobService
from core.wording import refund_words
from storage import SQLStore
from storage.models import JobState
from tests.core.conftest import Clock

GUILD, CHANNEL, USER = 1, 2, 10


def draft() -> JobDraft:
    return JobDraft(
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=USER,
        mode="text-to-video",
        prompt="a horse at midnight",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
    )


async def test_a_refund_after_the_period_ended_says_the_balance_does_not_change(
    store: SQLStore, service: JobService, clock: Clock
) -> None:
    """Regression (the notice said "credits refunded" though they went back to a period
    that was over): a job charged at 23:59:30 and refunded after midnight gives back
    credits of yesterday's allowance; today's balance is full either way, and the words
    say so instead of promising credits."""
    clock.now = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)
    period = store.credits.period
    job = await service.reserve(draft())
    assert (await store.credits.balance(GUILD, USER)).used == job.cost
    clock.advance(60)  # 00:00:30 the next day: a new period, the full allowance again
    today = await store.credits.balance(GUILD, USER)
    assert today.used == 0
    assert await store.jobs.fail_and_refund(job.id, "the API failed", expected=JobState.QUEUED)
    refunded = await store.jobs.get_job(job.id)
    assert refunded is not None
    assert await store.credits.balance(GUILD, USER) == today  # nothing given back today
    words = refund_words(refunded, period)
    midnight = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())
    assert words == (
        f"1 credit refunded: they went back to the credit period it was charged in, which "
        f"ended <t:{midnight}:R>, so the current balance does not change"
    )


async def test_a_refund_within_the_period_gives_the_credits_back(
    store: SQLStore, service: JobService, clock: Clock
) -> None:
    """The usual case: refunded in the period it was charged in, spendable again."""
    clock.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    job = await service.reserve(draft())
    clock.advance(600)
    assert await store.jobs.fail_and_refund(job.id, "the API failed", expected=JobState.QUEUED)
    refunded = await store.jobs.get_job(job.id)
    assert refunded is not None
    assert (await store.credits.balance(GUILD, USER)).used == 0
    assert refund_words(refunded, store.credits.period) == "1 credit refunded"
    assert refund_words(refunded, store.credits.period, verb="returned") == "1 credit returned"
