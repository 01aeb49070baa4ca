"""Where to place a job's status polls, and which due job to poll first.

The policy
----------
Every poll costs one status request out of a shared budget (`HAPPYHORSE_STATUS_RATE`);
every second between a job's completion at the API and the poll that sees it is a second
the requester waits. Completion times are learned per (mode, quality, duration, sound)
by `core.completion.CompletionModel`. From that distribution F each key gets a schedule
of poll ages (seconds after submission):

1. **Nothing while completion is very unlikely.** The first poll is at the quantile
   F⁻¹(ε), ε = `POLL_SKIP_PROBABILITY` (5 %): the fastest ε of jobs wait a little longer,
   and nobody pays for polls that almost never find anything.
2. **Evenly dense where most jobs finish**, from F⁻¹(ε) to F⁻¹(1 − τ), at the widest
   spacing Δ whose expected lag under F stays within `POLL_TARGET_LAG_SECONDS` (L).
   Δ is found by bisection between `POLL_MIN_INTERVAL_SECONDS` and 2L (2L is what a
   uniform spacing gives when the lag is spread evenly over each gap).
3. **Backing off in the tail**: after F⁻¹(1 − τ), τ = `POLL_TAIL_SKIP_PROBABILITY`
   (2 %), the spacing grows ×1.5 per poll up to `POLL_MAX_INTERVAL_SECONDS`, so a job
   slower than almost all history still gets caught without costing a dense schedule
   forever. τ is smaller than ε because tail jobs wait longest: with 5 % in the tail, the
   95th percentile of the lag would be a tail job's (and sampling noise puts more than 5 %
   of any 40 jobs there), so a few more polls of the slowest jobs buy a p95 near Δ.

Until a key (or, pooled, all keys) has `POLL_MIN_HISTORY` completions, polls follow a
plain cadence: `POLL_FIRST_DELAY_SECONDS` after submission, then every
`POLL_INTERVAL_SECONDS`.

The trade-off: compared with polling every job every few seconds, this spends far fewer
requests (none during the early stretch where almost no job finishes) for about the same
typical lag, at the price of a longer wait for the rare jobs faster than F⁻¹(ε) and for
those slower than F⁻¹(1 − τ). Even spacing (rather than spacing that follows the density)
keeps the worst lag of the bulk of jobs at about Δ, which is what users notice; spacing by
the square root of the density would shave a few more requests off the mean and lengthen
the 95th percentile.

When the budget runs short
--------------------------
When more jobs are due than the status budget can poll at once, the scheduler polls first
the job most likely to have completed since the API last said it was pending:
P(T ≤ now | T > last pending) under F (its hazard over the time it has been waiting).
A job just answered "pending" drops to the back; one deep into the dense region and not
asked for a while moves to the front. Without history every job scores the same and the
longest overdue goes first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.completion import CompletionDistribution, CompletionKey, CompletionModel
from core.settings import BotSettings
from storage.models import Job

TAIL_BACKOFF = 1.5
SPACING_SEARCH_STEPS = 24
# The tail schedule ends where completion is this certain (later polls use the cap).
TAIL_END_PROBABILITY = 0.9999


@dataclass(frozen=True)
class PollSchedule:
    """The poll ages (seconds after submission) of one learned distribution."""

    start: float
    spacing: float
    dense_end: float
    tail: tuple[float, ...]
    max_interval: float

    def next_age(self, age: float, min_interval: float) -> float:
        """The first scheduled poll age after `age`, at least `min_interval` later."""
        earliest = age + min_interval
        if earliest <= self.start:
            return self.start
        if earliest <= self.dense_end:
            steps = math.ceil((earliest - self.start) / self.spacing - 1e-9)
            return min(self.start + steps * self.spacing, self.dense_end)
        for point in self.tail:
            if point >= earliest:
                return point
        last = self.tail[-1] if self.tail else self.dense_end
        steps = math.ceil((earliest - last) / self.max_interval - 1e-9)
        return last + max(steps, 1) * self.max_interval

    def ages(self) -> list[float]:
        """Every scheduled age up to the end of the tail (for the expected-lag check)."""
        points: list[float] = []
        age = self.start
        while age < self.dense_end:
            points.append(age)
            age += self.spacing
        points.append(self.dense_end)
        points.extend(self.tail)
        return points


class PollPolicy:
    """Turns learned completion times into poll times and poll priorities."""

    def __init__(self, settings: BotSettings, model: CompletionModel) -> None:
        self.settings = settings
        self.model = model
        self._schedules: dict[int, tuple[CompletionDistribution, PollSchedule]] = {}

    def schedule(self, key: CompletionKey) -> PollSchedule | None:
        """The key's schedule, or None while there is not enough history."""
        distribution = self.model.distribution(key)
        if distribution is None:
            return None
        cached = self._schedules.get(id(distribution))
        if cached is not None and cached[0] is distribution:
            return cached[1]
        schedule = build_schedule(distribution, self.settings)
        if len(self._schedules) > 64:  # old distributions of rebuilt keys
            self._schedules.clear()
        self._schedules[id(distribution)] = (distribution, schedule)
        return schedule

    def next_poll_at(self, job: Job, now: datetime) -> datetime:
        """When to poll `job` next, asked at `now` (after a pending answer or at submit)."""
        submitted = job.submitted_at or now
        age = max((now - submitted).total_seconds(), 0.0)
        schedule = self.schedule(CompletionKey.of(job))
        if schedule is None:
            if job.submitted_at is None or age < self.settings.poll_first_delay_seconds:
                delay = max(self.settings.poll_first_delay_seconds - age, 0.0)
            else:
                delay = self.settings.poll_interval_seconds
        else:
            delay = schedule.next_age(age, self.settings.poll_min_interval_seconds) - age
        return now + timedelta(seconds=max(delay, 0.0))

    def priority(self, job: Job, now: datetime) -> float:
        """How likely `job` completed since the API last said it was pending (0..1)."""
        distribution = self.model.distribution(CompletionKey.of(job))
        if distribution is None or job.submitted_at is None:
            return 0.0
        seen = job.last_pending_at or job.submitted_at
        after = max((seen - job.submitted_at).total_seconds(), 0.0)
        by = max((now - job.submitted_at).total_seconds(), after)
        return distribution.probability_done(after, by)


def build_schedule(distribution: CompletionDistribution, settings: BotSettings) -> PollSchedule:
    """The schedule for one distribution under the settings (see the module docstring)."""
    skip = settings.poll_skip_probability
    tail_skip = settings.poll_tail_skip_probability
    min_interval = settings.poll_min_interval_seconds
    max_interval = max(settings.poll_max_interval_seconds, min_interval)
    start = distribution.quantile(skip) if skip > 0 else min_interval
    last = distribution.quantile(1.0 - tail_skip if tail_skip > 0 else TAIL_END_PROBABILITY)
    dense_end = max(last, start)
    tail_end = max(distribution.quantile(TAIL_END_PROBABILITY), dense_end)
    target = settings.poll_target_lag_seconds

    def make(spacing: float) -> PollSchedule:
        tail: list[float] = []
        step, age = spacing, dense_end
        while age < tail_end:
            step = min(step * TAIL_BACKOFF, max_interval)
            age += step
            tail.append(age)
        return PollSchedule(start, spacing, dense_end, tuple(tail), max_interval)

    low, high = min_interval, max(2.0 * target, min_interval)
    best = make(low)
    if distribution.expected_lag(make(high).ages()) <= target:
        return make(high)
    for _ in range(SPACING_SEARCH_STEPS):
        middle = (low + high) / 2
        candidate = make(middle)
        if distribution.expected_lag(candidate.ages()) <= target:
            low, best = middle, candidate
        else:
            high = middle
    return best
