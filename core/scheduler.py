"""The poll scheduler: one sleeper that polls each submitted job when its poll is due.

Instead of a fixed tick, `PollScheduler.run` sleeps until the earliest due poll, or until
it is woken: a job was submitted or settled elsewhere (`JobService.notify`), or a poll
finished and freed a slot. It then starts polls for the due jobs, most likely finished first (see
`core.poll_policy`), each in its own task, at most `POLL_BATCH_SIZE` in flight. Every
status call still waits for the client's shared rate limiter, so the budget is never
exceeded; keeping few calls in flight keeps the choice of which job goes next fresh
instead of queueing hundreds of calls first come, first served inside the limiter.

A poll never waits for anything but its status call: what it found goes to `on_outcome`,
which must not block (the delivery cog starts a delivery task or queues a card edit).
A 429 pauses the limiter, so it delays polls only.

The store stays the truth: every decision is written there (`next_poll_at`,
`last_pending_at`) before it is acted on, so a restart resumes where the last run
stopped. `close()` cancels and awaits every task the scheduler owns.

Several processes, one schedule
-------------------------------
Every process runs a scheduler over the same database, and each poll is *claimed* before
it is made (`JobStore.claim_polls`: a lease naming this process, `FOR UPDATE SKIP
LOCKED` on PostgreSQL), so no job is ever polled by two processes at once. Each round
reads a window of due jobs nobody holds (`poll_candidates`, round-robin between guilds so
one guild's backlog cannot starve the others), orders it here (`due`: most likely
finished first within each guild, guilds taking turns), and claims what it has room for;
jobs another process claimed meanwhile are skipped. Recording a poll's answer ends its
lease, so the next poll of the job goes to whichever process is free first. While this
process's status limiter is paused (the hold after joining, see `core.processes`, or a
429's Retry-After) it claims nothing, so no job waits on a process that may not poll it
while other processes could. Between
rounds the scheduler sleeps until the earliest unclaimed poll time in the store (capped
by `POLL_INTERVAL_SECONDS`, so jobs submitted by other processes are picked up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from core.jobs import JobService, PollOutcome, poll_lease_seconds
from core.logs import job_logging
from storage.models import Job, JobState

log = logging.getLogger(__name__)

OutcomeHandler = Callable[[PollOutcome], None]

CANDIDATE_WINDOW = 4
"""Due jobs read per free poll slot, to choose the likeliest finished among them."""


class PollScheduler:
    """Polls due jobs concurrently through the job service; owns its tasks."""

    def __init__(
        self,
        service: JobService,
        on_outcome: OutcomeHandler,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.policy = service.policy
        self._on_outcome = on_outcome
        self._clock = clock
        self._capacity = max(1, service.settings.poll_batch_size)
        self._jobs: dict[int, Job] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        service.on_job_changed(self.track)

    # -- the in-memory view --------------------------------------------------------------

    async def load(self) -> int:
        """Rebuild the view from the store: every submitted job, with its next poll time."""
        jobs = await self.service.store.jobs.resumable_jobs()
        self._jobs = {job.id: job for job in jobs if job.state is JobState.SUBMITTED}
        self._wake.set()
        return len(self._jobs)

    def track(self, job: Job) -> None:
        """Schedule a (newly) submitted job, or drop a job that is no longer submitted."""
        if job.state is JobState.SUBMITTED and job.next_poll_at is not None:
            self._jobs[job.id] = job
        else:
            self._jobs.pop(job.id, None)
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the sleeper task is alive."""
        return self._runner is not None and not self._runner.done()

    @property
    def pending(self) -> int:
        """Submitted jobs the scheduler is looking after."""
        return len(self._jobs)

    # -- decisions (pure: no I/O, the clock is an argument) ------------------------------

    def due(self, now: datetime, limit: int) -> list[Job]:
        """Up to `limit` due jobs not being polled, most likely finished first.

        Ties (no history: every job scores 0) go to the longest overdue. Guilds take
        turns: every guild's best job comes before any guild's second best.
        """
        if limit <= 0:
            return []
        due = [
            job
            for job in self._jobs.values()
            if job.id not in self._in_flight
            and job.next_poll_at is not None
            and job.next_poll_at <= now
        ]
        due.sort(key=lambda job: (-self.policy.priority(job, now), job.next_poll_at, job.id))
        turns: dict[int, int] = {}
        ranked = []
        for index, job in enumerate(due):
            turn = turns.get(job.guild_id, 0)
            turns[job.guild_id] = turn + 1
            ranked.append((turn, index, job))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [job for _, _, job in ranked[:limit]]

    def seconds_until_due(self, now: datetime) -> float | None:
        """How long until the next poll falls due (0 if one is due); None if none waits."""
        times = [
            job.next_poll_at
            for job in self._jobs.values()
            if job.id not in self._in_flight and job.next_poll_at is not None
        ]
        if not times:
            return None
        return max((min(times) - now).total_seconds(), 0.0)

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sleeper task (call `load()` first)."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self.run(), name="poll-scheduler")

    async def run(self) -> None:
        """Poll due jobs until cancelled; a failure in one round is logged, not fatal."""
        refresh = self.service.settings.poll_interval_seconds
        while True:
            self._wake.clear()
            try:
                wait = await self.round()
            except Exception:
                log.exception("Poll scheduler round failed; continuing")
                wait = refresh
            wait = refresh if wait is None else min(wait, refresh)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def round(self) -> float | None:
        """Claim and start the due polls there is room for; return the seconds until the
        next unclaimed poll falls due (None: none waits, or no room until a poll ends)."""
        jobs = self.service.store.jobs
        claimant = self.service.claimant
        paused = self.service.client.status_limiter.paused_for
        if paused > 0:
            # No status call may leave this process yet (it just joined others, or the
            # API said 429): a poll claimed now would hold its job, which another process
            # could poll at once, until the pause ends. Claim nothing; look again then.
            return paused
        free = self._capacity - len(self._in_flight)
        if free > 0:
            now = self._clock()
            window = await jobs.poll_candidates(claimant, now, free * CANDIDATE_WINDOW)
            # The store is the truth: what other processes polled meanwhile is not due.
            self._jobs = {job.id: job for job in window}
            picks = self.due(now, free)
            lease = poll_lease_seconds(self.service.settings.client)
            for job in await jobs.claim_polls([j.id for j in picks], claimant, lease, now):
                self._launch(job)
        if len(self._in_flight) >= self._capacity:
            return None
        next_at = await jobs.next_free_poll_at(claimant)
        if next_at is None:
            return None
        return max((next_at - self._clock()).total_seconds(), 0.0)

    def _launch(self, job: Job) -> None:
        task = asyncio.create_task(job_logging(job.id, self._poll(job)), name=f"poll-job-{job.id}")
        self._in_flight[job.id] = task

    async def _poll(self, job: Job) -> None:
        try:
            try:
                outcome = await self.service.poll(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("Polling job %s failed unexpectedly", job.id)
                outcome = await self.service.poll_failed(job, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Rescheduling job %s after a failed poll failed", job.id)
            return
        finally:
            self._in_flight.pop(job.id, None)
            self._wake.set()
        self.track(outcome.job)
        try:
            self._on_outcome(outcome)
        except Exception:
            log.exception("Handling the poll outcome of job %s failed", job.id)

    async def close(self) -> None:
        """Cancel the sleeper and every poll in flight, and wait for them to end."""
        tasks = list(self._in_flight.values())
        if self._runner is not None:
            tasks.append(self._runner)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        self._runner = None
