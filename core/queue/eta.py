"""What a queued or running job's card shows: queue position, start and ready estimates.

The estimates come from a `core.eta.CompletionEstimator` (the scheduler's learned
completion times by default), so a card's "ready" time and the polls share one history.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.eta import CompletionEstimator
from core.fairness import Member, fair_order, positions
from core.limits import Limits
from core.queue.gate import SubmitGate
from storage.models import Job, JobState
from storage.store import Store


@dataclass(frozen=True)
class CardInfo:
    """What a status card shows beyond the job itself: queue position and estimates."""

    position: int | None = None
    total: int | None = None
    starts_at: datetime | None = None
    ready_at: datetime | None = None
    estimating: bool = False
    paused: str | None = None

    def key(self) -> tuple[object, ...]:
        """The parts whose change is worth a card edit (estimates drift; they are not)."""
        return (self.position, self.total, self.paused, self.estimating)


class QueueEstimates:
    """Positions and estimates for cards, read from the store (nothing kept between calls).

    Several processes: every answer is read from the shared database at the time of the
    call; the gate's status is this process's last read of the shared gate (refreshed
    here first).
    """

    def __init__(
        self,
        store: Store,
        gate: SubmitGate,
        estimator: CompletionEstimator,
        limits: Callable[[int], Awaitable[Limits]],
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._gate = gate
        self.estimator = estimator
        self._limits = limits
        self._clock = clock

    async def card_info(self, job: Job) -> CardInfo:
        """Position, queue length and estimates for a queued job; expected finish for a
        running one; nothing for others."""
        return (await self.card_infos([job]))[job.id]

    async def card_infos(self, jobs: Sequence[Job]) -> dict[int, CardInfo]:
        """`card_info` for many jobs at once: each guild's queue is read and ordered once."""
        result = {job.id: CardInfo() for job in jobs}
        for job in jobs:
            if job.state is not JobState.SUBMITTED:
                continue
            expected = self._expected(job)
            if expected is None or job.submitted_at is None:
                result[job.id] = CardInfo(estimating=True)
            else:
                result[job.id] = CardInfo(ready_at=job.submitted_at + timedelta(seconds=expected))
        guilds = {job.guild_id for job in jobs if job.state is JobState.QUEUED}
        if guilds:
            await self._gate.refresh()
        for guild_id in guilds:
            ordered = fair_order(await self._store.jobs.queued_jobs(guild_id))
            running = await self._store.jobs.running_counts(guild_id)
            limits = await self._limits(guild_id)
            estimates = self._estimates(ordered, running, limits)
            where = positions(ordered)
            paused = self._gate.status
            for job in jobs:
                if job.state is not JobState.QUEUED or job.guild_id != guild_id:
                    continue
                if job.id not in where:
                    result[job.id] = CardInfo(paused=paused)
                    continue
                position, total = where[job.id]
                starts_at, ready_at = estimates[position - 1]
                result[job.id] = CardInfo(
                    position=position,
                    total=total,
                    starts_at=starts_at,
                    ready_at=ready_at,
                    estimating=starts_at is None,
                    paused=paused,
                )
        return result

    async def queue_positions(self, guild_id: int) -> dict[int, tuple[int, int]]:
        """Job id -> (position, length) of the guild's queued jobs."""
        return positions(fair_order(await self._store.jobs.queued_jobs(guild_id)))

    def _expected(self, job: Job) -> float | None:
        return self.estimator.expected_seconds(job.mode, job.quality, job.duration, job.sound)

    def _estimates(
        self, ordered: Sequence[Job], running: Mapping[Member, int], limits: Limits
    ) -> list[tuple[datetime | None, datetime | None]]:
        """When each job of a guild's ordered queue should start and be ready.

        A queued job waits at least for one job to finish; beyond the server's free slots
        the jobs ahead start in waves, one per ``server_running`` jobs, each as long as the
        average expected time of the jobs ahead. Once a job's kind has no history, it and
        every job behind it have no estimate ("estimating…").
        """
        now = self._clock()
        held = timedelta(seconds=self._gate.seconds_until_open())
        busy = sum(running.values())
        slots = limits.server_running or max(1, busy + len(ordered))
        free = max(0, slots - busy)
        result: list[tuple[datetime | None, datetime | None]] = []
        ahead_total = 0.0
        for index, job in enumerate(ordered):
            own = self._expected(job)
            if own is None or (result and result[-1][0] is None):
                result.append((None, None))
                continue
            waves = max(1, math.ceil(max(0, index + 1 - free) / slots))
            wave_length = ahead_total / index if index else own
            starts_at = max(now + timedelta(seconds=waves * wave_length), now + held)
            result.append((starts_at, starts_at + timedelta(seconds=own)))
            ahead_total += own
        return result
