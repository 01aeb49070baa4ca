"""The token bucket, Retry-After parsing and retry backoff."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from happyhorse import ratelimit
from happyhorse.ratelimit import RateLimiter, backoff_delay, parse_retry_after

NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)

# --- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0),
        ("Thu, 05 Nov 2026 12:01:00 GMT", 60.0),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    """Seconds and HTTP-dates are read; junk is None; the past is 0."""
    assert parse_retry_after(header, now=NOW) == seconds


# --- backoff --------------------------------------------------------------------------------


def test_backoff_grows_exponentially_under_the_cap() -> None:
    """The jitter ceiling doubles per attempt and stops at the cap."""
    top = [backoff_delay(n, base=0.5, cap=5.0, rng=lambda: 1.0) for n in range(6)]
    assert top == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_is_full_jitter() -> None:
    """The delay is a uniform pick from zero to the ceiling."""
    assert backoff_delay(3, base=1.0, cap=60.0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(3, base=1.0, cap=60.0, rng=lambda: 0.25) == 2.0


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    """Retry-After is used as is, capped at the cap, and beats the jitter."""
    assert backoff_delay(0, base=1.0, cap=60.0, retry_after=7.0, rng=lambda: 0.0) == 7.0
    assert backoff_delay(0, base=1.0, cap=10.0, retry_after=3600.0) == 10.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """A large attempt number still gives a finite, capped delay."""
    assert backoff_delay(10_000, base=1.0, cap=30.0, rng=lambda: 1.0) == 30.0


# --- RateLimiter ----------------------------------------------------------------------------


def test_limiter_rejects_bad_arguments() -> None:
    """Rate and burst must be positive."""
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(1, burst=0)


async def test_burst_is_immediate_then_paced() -> None:
    """`burst` tokens are free; after that, one per 1/rate seconds."""
    limiter = RateLimiter(rate=20, burst=3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await limiter.acquire()
    assert loop.time() - start < 0.03
    for _ in range(4):
        await limiter.acquire()
    # Four more at 20/s take about 0.2 s.
    assert 0.17 <= loop.time() - start < 0.5


async def test_waiters_are_served_in_arrival_order() -> None:
    """Many concurrent waiters get their tokens first come, first served."""
    limiter = RateLimiter(rate=200, burst=1)
    order: list[int] = []

    async def worker(n: int) -> None:
        async with limiter:
            order.append(n)

    tasks = []
    for n in range(30):
        tasks.append(asyncio.create_task(worker(n)))
        await asyncio.sleep(0)  # make the arrival order explicit
    await asyncio.gather(*tasks)
    assert order == list(range(30))


async def test_no_busy_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for tokens sleeps about once per token, not in a spin."""
    calls: list[float] = []
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float) -> None:
        calls.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(ratelimit.asyncio, "sleep", counting_sleep)
    limiter = RateLimiter(rate=100, burst=1)
    await asyncio.gather(*(limiter.acquire() for _ in range(10)))
    assert len(calls) <= 15
    assert all(delay > 0 for delay in calls)


async def test_penalize_pauses_every_caller() -> None:
    """After penalize(s), nobody gets a token for s seconds, even with a full bucket."""
    limiter = RateLimiter(rate=1000, burst=5)
    loop = asyncio.get_running_loop()
    limiter.penalize(0.25)
    assert 0.2 < limiter.paused_for <= 0.25
    start = loop.time()
    await asyncio.gather(*(limiter.acquire() for _ in range(3)))
    assert loop.time() - start >= 0.24


async def test_penalty_empties_the_bucket() -> None:
    """After a pause, callers resume at the steady rate, not in a burst."""
    limiter = RateLimiter(rate=10, burst=5)
    limiter.penalize(0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await limiter.acquire()
    # 0.05 s pause, then three tokens at 10/s: about 0.35 s (a burst would be ~0.05 s).
    assert loop.time() - start >= 0.3


async def test_shorter_penalty_does_not_cut_a_longer_one() -> None:
    """penalize keeps the later of the two deadlines."""
    limiter = RateLimiter(rate=100)
    limiter.penalize(0.5)
    limiter.penalize(0.1)
    assert limiter.paused_for > 0.4
    limiter.penalize(-1)
    limiter.penalize(float("nan"))
    assert limiter.paused_for > 0.4


async def test_penalty_during_a_wait_is_honoured() -> None:
    """A waiter already sleeping for its token also waits out a new penalty."""
    limiter = RateLimiter(rate=5, burst=1)
    await limiter.acquire()
    loop = asyncio.get_running_loop()
    start = loop.time()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.05)
    limiter.penalize(0.4)
    await waiter
    assert loop.time() - start >= 0.44


async def test_cancelled_waiter_does_not_block_others() -> None:
    """Cancelling the waiter in front lets the next one through."""
    limiter = RateLimiter(rate=10, burst=1)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.wait_for(second, timeout=1.0)
    assert first.cancelled()


async def test_set_rate_changes_the_pace_in_place() -> None:
    """Tokens earned at the old rate are kept; from then on they accrue at the new one."""
    now = [100.0]
    limiter = RateLimiter(rate=10, burst=4, clock=lambda: now[0])
    for _ in range(4):
        await limiter.acquire()
    now[0] += 0.1  # one token at 10/s
    limiter.set_rate(1, burst=1)
    assert (limiter.rate, limiter.burst) == (1.0, 1)
    await limiter.acquire()  # the token earned before the change
    now[0] += 0.5  # half a token at 1/s: not enough
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(), 0.05)
    now[0] += 0.5
    await asyncio.wait_for(limiter.acquire(), 1.0)
    with pytest.raises(ValueError, match="rate"):
        limiter.set_rate(0)
    with pytest.raises(ValueError, match="burst"):
        limiter.set_rate(1, burst=0)


async def test_hold_stops_every_caller_until_release() -> None:
    """A hold has no end known in advance: callers wait (paused_for says when to look
    again) until release, then resume at the steady rate rather than in a burst."""
    limiter = RateLimiter(rate=20, burst=5)
    limiter.hold(0.25)
    assert limiter.held and limiter.paused_for == 0.25
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(2)]
    await asyncio.sleep(0.3)
    assert not any(waiter.done() for waiter in waiters)
    loop = asyncio.get_running_loop()
    start = loop.time()
    limiter.release()
    assert not limiter.held and limiter.paused_for == 0
    await asyncio.gather(*waiters)
    # Two tokens at 20/s from the release: about 0.1 s (the hold earned none).
    assert loop.time() - start >= 0.09
    with pytest.raises(ValueError):
        limiter.hold(0)
