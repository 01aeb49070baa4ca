"""Completion-time draws and the baselines computed from them.

Completion times follow a seeded log-normal (median 40 s, clipped to 15-120 s, as the
issue describes the API), multiplied by the run's time scale. From the same draws this
module computes what a naive bot polling every job every 5 s would get (lag and status
requests per video), and the floor a status budget allows: a simulated scheduler that
spends each request on the job most likely to have finished.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

MEDIAN_SECONDS = 40.0
SIGMA = 0.55
"""Log-normal shape: with the median at 40 s, about 5 % of draws exceed 100 s."""
CLIP_SECONDS = (15.0, 120.0)
FIXED_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Spread:
    """The completion-time distribution, already scaled."""

    scale: float
    median: float = MEDIAN_SECONDS
    sigma: float = SIGMA
    low: float = CLIP_SECONDS[0]
    high: float = CLIP_SECONDS[1]

    def draw(self, count: int, seed: int) -> list[float]:
        """`count` completion times (seconds after submission), reproducible by `seed`."""
        rng = random.Random(seed)
        mu = math.log(self.median)
        return [
            min(self.high, max(self.low, rng.lognormvariate(mu, self.sigma))) * self.scale
            for _ in range(count)
        ]

    def cdf(self, seconds: float) -> float:
        """P(a job has completed `seconds` after submission), clipping included."""
        unscaled = seconds / self.scale
        if unscaled < self.low:
            return 0.0
        if unscaled >= self.high:
            return 1.0
        return NormalDist(math.log(self.median), self.sigma).cdf(math.log(unscaled))


@dataclass(frozen=True)
class PollerResult:
    """What a polling policy achieves on a set of draws."""

    lags: list[float]
    requests: int

    @property
    def requests_per_video(self) -> float:
        """Status requests spent per delivered video."""
        return self.requests / len(self.lags) if self.lags else 0.0


def fixed_poller(durations: list[float], interval: float) -> PollerResult:
    """A bot polling each job every `interval` seconds from its submission, by schedule.

    The job is seen done at the first poll at or after its completion, so its lag is the
    wait until that poll (unlimited budget: what the schedule promises).
    """
    lags: list[float] = []
    requests = 0
    for duration in durations:
        polls = max(1, math.ceil(duration / interval - 1e-9))
        requests += polls
        lags.append(polls * interval - duration)
    return PollerResult(lags, requests)


def budget_floor(durations: list[float], spread: Spread, rate: float) -> PollerResult:
    """Simulate a scheduler that, `rate` times a second, polls the likeliest-done job.

    All jobs are submitted together at time 0. At each request slot the job with the
    highest probability of having completed since its last poll (from the known
    distribution) is polled; a job found complete is delivered at once. This is the best
    a budget of `rate` requests a second can do without knowing the draws.
    """
    step = 1.0 / rate
    last_poll = [0.0] * len(durations)
    pending = set(range(len(durations)))
    lags: list[float] = []
    requests = 0
    now = 0.0
    horizon = spread.high * spread.scale * 4 + len(durations) * step * 4
    while pending and now < horizon:
        now += step
        best, best_p = -1, -1.0
        for job in pending:
            before = spread.cdf(last_poll[job])
            p = (spread.cdf(now) - before) / max(1e-12, 1.0 - before)
            if p > best_p:
                best, best_p = job, p
        if best_p <= 0.0:
            continue  # nothing can have finished yet: spend no request
        requests += 1
        last_poll[best] = now
        if durations[best] <= now:
            pending.discard(best)
            lags.append(now - durations[best])
    return PollerResult(lags, requests)


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
