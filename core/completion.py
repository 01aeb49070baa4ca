"""How long jobs take at the API, learned from the jobs the bot has seen complete.

Polling never sees the moment a job completes, only a bracket: it completed after the
last "still pending" answer (`lower`) and before the "completed" answer (`upper`), in
seconds after submission. `CompletionModel` keeps the most recent brackets per
`CompletionKey` (mode, quality, duration, sound) and turns them into a smooth
distribution: each bracket becomes a log-normal bump centred on the bracket's middle
(in log time), as wide as the bracket plus a kernel bandwidth (Silverman's rule on the
log times). Log time, because generation times are positive and skewed; brackets,
because pretending a job finished exactly when it was seen would bias every estimate
late by half a poll spacing.

A key with fewer than `min_history` brackets borrows the pooled brackets of every key;
with fewer than that overall there is no distribution (`None`) and callers fall back to
a plain cadence. Distributions are rebuilt lazily, after a tenth of the window has
changed, so a burst of completions costs a few rebuilds, not one per completion.

Discord-free and storage-free: the job service feeds it, and the community queue reads
ETAs from it through `expected_seconds` and `quantile_seconds`.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from storage.models import CompletionTime, Job

GRID_POINTS = 240
# Kernel widths below this (in log seconds, ~1 %) would turn identical samples into spikes.
MIN_LOG_WIDTH = 0.01
# Tails beyond this many standard deviations carry no mass worth a grid point.
TAIL_SIGMAS = 4.0
# A bracket starting at 0 (completed before the first poll) is read as (upper/2, upper].
OPEN_BRACKET_FRACTION = 0.5
# Rebuild a distribution once this fraction of its samples is new...
REBUILD_FRACTION = 0.1
# ...but at most once in this many seconds: a rebuild costs tens of milliseconds on the
# event loop (GRID_POINTS x samples error functions), and a flood of completions (a
# thousand finishing together) would otherwise rebuild it every few polls.
REBUILD_MIN_SECONDS = 1.0


@dataclass(frozen=True)
class CompletionKey:
    """What a job's duration at the API depends on."""

    mode: str
    quality: str
    duration: int
    sound: bool

    @classmethod
    def of(cls, job: Job) -> CompletionKey:
        """The key of a stored job."""
        return cls(mode=job.mode, quality=job.quality, duration=job.duration, sound=job.sound)


class CompletionDistribution:
    """A smooth distribution of completion times built from brackets (seconds)."""

    def __init__(self, brackets: Iterable[tuple[float, float]]) -> None:
        centres: list[float] = []
        widths: list[float] = []
        for lower, upper in brackets:
            upper = max(upper, 1e-3)
            lower = lower if lower > 0 else upper * OPEN_BRACKET_FRACTION
            lower = min(max(lower, 1e-3), upper)
            centres.append((math.log(lower) + math.log(upper)) / 2)
            widths.append(math.log(upper) - math.log(lower))
        if not centres:
            raise ValueError("a distribution needs at least one completion time")
        self.count = len(centres)
        bandwidth = max(_silverman(centres), MIN_LOG_WIDTH)
        # A bracket of log width w spreads like a uniform: variance w**2 / 12.
        self._parts = [
            (c, math.sqrt(bandwidth**2 + w * w / 12)) for c, w in zip(centres, widths, strict=True)
        ]
        low = min(c - TAIL_SIGMAS * s for c, s in self._parts)
        high = max(c + TAIL_SIGMAS * s for c, s in self._parts)
        step = (high - low) / (GRID_POINTS - 1)
        self._log_grid = [low + i * step for i in range(GRID_POINTS)]
        self._grid = [math.exp(x) for x in self._log_grid]
        self._cdf = [self._exact_cdf(x) for x in self._log_grid]
        self._cdf[0], self._cdf[-1] = 0.0, 1.0
        # Running ∫ t dF(t) up to each grid point (midpoint rule per cell).
        self._mean_upto = [0.0]
        for i in range(1, GRID_POINTS):
            cell = (self._grid[i - 1] + self._grid[i]) / 2 * (self._cdf[i] - self._cdf[i - 1])
            self._mean_upto.append(self._mean_upto[-1] + cell)
        # Mean of a log-normal mixture, exactly.
        self.mean = sum(math.exp(c + s * s / 2) for c, s in self._parts) / self.count

    def _exact_cdf(self, log_t: float) -> float:
        total = 0.0
        for centre, sigma in self._parts:
            total += 0.5 * (1.0 + math.erf((log_t - centre) / (sigma * math.sqrt(2.0))))
        return total / self.count

    def cdf(self, seconds: float) -> float:
        """P(a job completes within `seconds` of submission)."""
        return self._interpolate(self._cdf, seconds)

    def _interpolate(self, values: list[float], seconds: float) -> float:
        if seconds <= self._grid[0]:
            return values[0]
        if seconds >= self._grid[-1]:
            return values[-1]
        i = bisect.bisect_right(self._grid, seconds)
        t0, t1 = self._grid[i - 1], self._grid[i]
        v0, v1 = values[i - 1], values[i]
        return v0 + (v1 - v0) * (seconds - t0) / (t1 - t0)

    def quantile(self, q: float) -> float:
        """Seconds after submission by which a fraction `q` of jobs complete (0 < q < 1)."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"q must be strictly between 0 and 1, got {q}")
        i = bisect.bisect_left(self._cdf, q)
        i = min(max(i, 1), len(self._cdf) - 1)
        f0, f1 = self._cdf[i - 1], self._cdf[i]
        t0, t1 = self._grid[i - 1], self._grid[i]
        if f1 <= f0:
            return t1
        return t0 + (t1 - t0) * (q - f0) / (f1 - f0)

    def probability_done(self, after: float, by: float) -> float:
        """P(completed by `by` | still unfinished at `after`), seconds after submission."""
        alive = 1.0 - self.cdf(after)
        if alive <= 1e-9:
            return 1.0  # past everything seen: as good as certain, poll it
        return max(0.0, min(1.0, (self.cdf(by) - self.cdf(after)) / alive))

    def expected_lag(self, poll_ages: Iterable[float]) -> float:
        """Mean wait from completion to the first poll at or after it, for these ages.

        A job completing after the last age is counted as waiting until that age plus
        its distance past it, so a schedule that stops early is not flattered.
        """
        total = 0.0
        previous = 0.0
        previous_cdf = 0.0
        for age in poll_ages:
            if age <= previous:
                continue
            f = self.cdf(age)
            total += (age * (f - previous_cdf)) - self._partial_mean(previous, age)
            previous, previous_cdf = age, f
        return total

    def _partial_mean(self, start: float, end: float) -> float:
        """∫ t dF(t) over (start, end]."""
        return self._interpolate(self._mean_upto, end) - self._interpolate(self._mean_upto, start)


def _silverman(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    ordered = sorted(values)
    mean = sum(ordered) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in ordered) / (n - 1))
    iqr = ordered[(3 * n) // 4] - ordered[n // 4]
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    return float(0.9 * spread * n ** (-0.2))


class _History:
    """The most recent brackets of one key and its lazily rebuilt distribution."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.brackets: deque[tuple[float, float]] = deque(maxlen=size)
        self.distribution: CompletionDistribution | None = None
        self.changes = 0
        self.version = 0
        self._clock = clock
        self._built_at = -math.inf

    def add(self, lower: float, upper: float) -> None:
        self.brackets.append((lower, upper))
        self.changes += 1

    def current(self, min_history: int) -> CompletionDistribution | None:
        count = len(self.brackets)
        if count < min_history:
            return None
        stale = self.changes >= max(1, math.ceil(REBUILD_FRACTION * count))
        now = self._clock()
        if self.distribution is None or (stale and now - self._built_at >= REBUILD_MIN_SECONDS):
            self.distribution = CompletionDistribution(self.brackets)
            self.changes = 0
            self.version += 1
            self._built_at = now
        return self.distribution


class CompletionModel:
    """Learned completion times per `CompletionKey`; see the module docstring."""

    def __init__(self, *, min_history: int, history_size: int) -> None:
        if min_history < 1 or history_size < min_history:
            raise ValueError("need 1 <= min_history <= history_size")
        self.min_history = min_history
        self.history_size = history_size
        self._keys: dict[CompletionKey, _History] = {}
        self._pooled = _History(history_size)

    def load(self, samples: Iterable[CompletionTime]) -> None:
        """Add stored completion times (any order; the newest `history_size` per key win)."""
        ordered = sorted(samples, key=lambda s: s.recorded_at)
        for sample in ordered:
            key = CompletionKey(sample.mode, sample.quality, sample.duration, sample.sound)
            self.observe(key, sample.lower_seconds, sample.upper_seconds)

    def observe(self, key: CompletionKey, lower: float, upper: float) -> None:
        """Record that a job of `key` completed between `lower` and `upper` seconds."""
        if not (math.isfinite(lower) and math.isfinite(upper)) or upper < 0:
            return
        lower = min(max(lower, 0.0), upper)
        history = self._keys.get(key)
        if history is None:
            history = self._keys[key] = _History(self.history_size)
        history.add(lower, upper)
        self._pooled.add(lower, upper)

    def samples(self, key: CompletionKey) -> int:
        """How many completion times of exactly this key are kept."""
        history = self._keys.get(key)
        return 0 if history is None else len(history.brackets)

    def distribution(self, key: CompletionKey) -> CompletionDistribution | None:
        """The key's distribution, else the pooled one, else None (not enough history)."""
        history = self._keys.get(key)
        if history is not None:
            own = history.current(self.min_history)
            if own is not None:
                return own
        return self._pooled.current(self.min_history)

    def expected_seconds(self, key: CompletionKey) -> float | None:
        """Mean seconds from submission to completion for `key`; None without history."""
        distribution = self.distribution(key)
        return None if distribution is None else distribution.mean

    def quantile_seconds(self, key: CompletionKey, q: float) -> float | None:
        """Seconds from submission by which a fraction `q` (0 < q < 1) of `key`'s jobs
        complete; None without enough history."""
        distribution = self.distribution(key)
        return None if distribution is None else distribution.quantile(q)
