"""Pacing: the client-side token bucket, Retry-After parsing and retry backoff."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

# Tolerance for float drift when the bucket refills to exactly one token.
_EPSILON = 1e-9


class RateLimiter:
    """An async token bucket: `rate` requests per second, bursts of up to `burst`.

    Waiters are served strictly first come, first served: one waiter at a time holds an
    asyncio.Lock (which is FIFO) and sleeps exactly until its token is due, so there is no
    busy loop and a late arrival can never overtake an earlier one. `penalize(seconds)`
    pauses every caller until that time has passed and empties the bucket, so requests
    resume at the steady rate rather than in a burst.

    Use `await limiter.acquire()` or `async with limiter:` before each request.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._paused_until = 0.0
        self._held_recheck: float | None = None
        self._released = asyncio.Event()
        self._released.set()
        self._lock = asyncio.Lock()

    def set_rate(self, rate: float, burst: int | None = None) -> None:
        """Change the rate (and burst) in place, for callers waiting now and later.

        Tokens earned so far are kept (at most the new burst); from now on they accrue at
        the new rate. A waiter already sleeping re-checks when it wakes, so it is served
        no earlier than the new rate allows. Used to share one budget among processes.
        """
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._refill(self._clock())
        self.rate = float(rate)
        if burst is not None:
            self.burst = burst
            self._tokens = min(self._tokens, float(burst))

    @property
    def paused_for(self) -> float:
        """Seconds left of the current penalty (0 when not paused); while held, the hold's
        re-check interval (when to look again: its end is not known in advance)."""
        left = max(self._paused_until - self._clock(), 0.0)
        if self._held_recheck is not None:
            return max(left, self._held_recheck)
        return left

    @property
    def held(self) -> bool:
        """Whether ``hold`` stopped every caller until ``release``."""
        return self._held_recheck is not None

    def hold(self, recheck_seconds: float) -> None:
        """Stop every caller until ``release`` (an end not known in advance).

        ``paused_for`` answers ``recheck_seconds`` meanwhile, so callers that plan around
        it look again that often. Time held earns no tokens.
        """
        if not math.isfinite(recheck_seconds) or recheck_seconds <= 0:
            raise ValueError(f"recheck_seconds must be positive, got {recheck_seconds!r}")
        self._refill(self._clock())
        self._tokens = 0.0
        self._held_recheck = recheck_seconds
        self._released.clear()

    def release(self) -> None:
        """End a ``hold``: tokens accrue from now, at the current rate."""
        if self._held_recheck is None:
            return
        self._held_recheck = None
        self._tokens = 0.0
        self._updated = max(self._updated, self._clock())
        self._released.set()

    def penalize(self, seconds: float) -> None:
        """Pause all callers for `seconds` from now (a longer running pause is kept)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        now = self._clock()
        self._refill(now)
        self._tokens = 0.0
        self._paused_until = max(self._paused_until, now + seconds)

    async def acquire(self) -> None:
        """Wait until a request may be sent, then take its token."""
        async with self._lock:
            while True:
                await self._released.wait()
                now = self._clock()
                self._refill(now)
                wait = self._paused_until - now
                if wait <= 0:
                    if self._tokens >= 1 - _EPSILON:
                        self._tokens = max(self._tokens - 1, 0.0)
                        return
                    wait = (1 - self._tokens) / self.rate
                # Sleep, then look again: a penalty may have arrived meanwhile.
                await asyncio.sleep(wait)

    def _refill(self, now: float) -> None:
        # Time spent paused or held earns no tokens.
        if self._held_recheck is not None:
            self._updated = max(self._updated, now)
            return
        start = max(self._updated, self._paused_until)
        if now > start:
            self._tokens = min(self._tokens + (now - start) * self.rate, float(self.burst))
        self._updated = max(self._updated, now)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header (delta seconds or HTTP-date) into seconds from now.

    Returns None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max((when - reference).total_seconds(), 0.0)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    The server's Retry-After is honoured up to `cap`; otherwise exponential backoff with
    full jitter: a uniform pick in [0, min(cap, base * 2**attempt)].
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    ceiling = min(cap, base * (2.0 ** min(attempt, 32)))
    return rng() * ceiling
