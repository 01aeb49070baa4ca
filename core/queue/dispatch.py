"""Dispatch: starting queued jobs fairly within the running limits, and expiring old ones.

A request that is accepted but cannot start at once (the member or the server is at its
running limit, the API answered 429 to generate, or submission is paused because the API
account is out of credits) waits as a ``queued`` job with its credits held, and starts
when a slot frees, in the fair order of `core.fairness`.

Which jobs may start is narrowed in the database (`JobStore.waiting_members`), from the
running counts it keeps per guild and per member: only guilds with jobs waiting are
visited, and in those with a free slot only the members with a free slot, whose queues
alone are read; the fair order (`core.fairness`) then picks among them. So a round costs
what it starts, not the queue's length, and a small guild's job is seen however many
older jobs big guilds have waiting. Each start is one guarded claim (``queued ->
reserved`` under the guild's running-slots lock, checking the limits in the same
statement), so dispatchers in several processes and the acknowledgement path never fill
one slot twice, and no lock is held across a round that the acknowledgement path needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from core import metrics
from core.errors import Refusal
from core.fairness import could_start, fair_order, startable
from core.i18n import Message, _
from core.jobs import JobService, SubmitHeld
from core.limits import DEFAULT_MEMBER_RUNNING, DEFAULT_SERVER_RUNNING, Limits
from core.queue.gate import SubmitGate, wait_text
from core.settings import BotSettings
from storage.models import Job, JobState, WaitingMember
from storage.store import Store

log = logging.getLogger(__name__)

MAX_STARTS_PER_ROUND = 1000
"""At most this many jobs are claimed in one round (the next round takes the rest)."""


class StartKind(Enum):
    """What happened to a request right after it was accepted."""

    STARTED = "started"  # sent to the API
    QUEUED = "queued"  # waiting for a slot (or for the API)


@dataclass(frozen=True)
class StartOutcome:
    """The job after `Dispatcher.start`, and what to tell its requester privately."""

    job: Job
    kind: StartKind
    message: str | None = None


@dataclass
class DispatchReport:
    """What one dispatch round did, for the cogs to show."""

    started: list[Job] = field(default_factory=list)
    failed: list[Job] = field(default_factory=list)  # refunded; the notice outbox tells them
    expired: list[Job] = field(default_factory=list)  # waited too long; refunded
    still_queued: list[Job] = field(default_factory=list)


class Dispatcher:
    """Starts queued jobs: the request's own start, and rounds woken by events.

    Several processes: every process runs a dispatcher over the same database; what it
    keeps in memory is only this process's: the wake-up event (woken by this process's
    accepts, cancels and freed slots; the others look at least every
    `QUEUE_CHECK_INTERVAL_SECONDS`), a lock so that this process runs one round at a
    time (never taken by the acknowledgement path), and the guilds whose waiting jobs
    this process shows cards for (`watch`; cleared when their queue is empty).
    """

    def __init__(
        self,
        store: Store,
        jobs: JobService,
        settings: BotSettings,
        gate: SubmitGate,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._settings = settings
        self.gate = gate
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._round = asyncio.Lock()
        self._watched: set[int] = set()
        jobs.add_slot_listener(self.wake)

    # -- events ------------------------------------------------------------------------

    def wake(self) -> None:
        """Something changed (a job queued or settled, a pause lifted): dispatch soon."""
        self._wakeup.set()

    def watch(self, guild_id: int) -> None:
        """Refresh this guild's waiting cards after each round until its queue is empty."""
        self._watched.add(guild_id)

    async def wait_for_work(self, seconds: float) -> None:
        """Sleep until `wake` is called or ``seconds`` pass (the periodic safety check)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        self._wakeup.clear()

    def next_check_in(self) -> float:
        """Seconds until the dispatcher should look again without being woken."""
        interval = self._settings.queue_check_interval_seconds
        held = self.gate.seconds_until_open()
        return min(interval, held) if held > 0 else interval

    # -- starting ----------------------------------------------------------------------

    async def start(self, job: Job, *, tell_now: bool = True) -> StartOutcome:
        """Start a just-accepted (queued) job if it is its turn and a slot is free.

        Reads the shared gate and the guild's startable jobs, and claims this one if it
        is among them; the API call follows without any lock, so one slow submit never
        holds up other requests. A job left queued is released to the dispatchers (its
        hold ends). Raises `Refusal` (the job already refunded) if the API refused it
        outright.
        """
        self.watch(job.guild_id)
        await self.gate.refresh()
        if not self.gate.is_open() or self.gate.out_of_credits:
            # Paused or held: the dispatcher starts it (or, while paused, probes with
            # the first job in the fair order) once the gate opens.
            await self._store.jobs.release_hold(job.id, self._jobs.claimant)
            self.wake()
            return StartOutcome(job, StartKind.QUEUED, self._held_message())
        picks, limits = await self.startable(job.guild_id, for_job=job)
        claimed = job.id in {p.id for p in picks} and await self._claim(job, limits[job.guild_id])
        if claimed:
            job = replace(job, state=JobState.RESERVED)
        else:
            await self._store.jobs.release_hold(job.id, self._jobs.claimant)
        if len(picks) > 1 or not claimed:
            self.wake()  # others may start too, or this one later
        if not claimed:
            message = self._held_message() if self.gate.status else None
            return StartOutcome(await self._reload(job), StartKind.QUEUED, message)
        return await self._submit(job, tell_now=tell_now)

    async def _claim(self, job: Job, limits: Limits, *, take_held: bool = True) -> bool:
        return await self._store.jobs.claim_queued(
            job.id,
            member_running=limits.member_running,
            server_running=limits.server_running,
            claimant=self._jobs.claimant,
            lease_seconds=self._jobs.reservation_lease_seconds,
            guild_id=job.guild_id,
            take_held=take_held,
        )

    async def _submit(self, job: Job, *, tell_now: bool) -> StartOutcome:
        """Send a claimed job to the API; a 429 or 402 puts it back in the queue."""
        try:
            submitted = await self._jobs.submit(job, tell_now=tell_now)
        except SubmitHeld as held:
            return StartOutcome(
                await self._reload(job), StartKind.QUEUED, await self._on_held(held)
            )
        if await self.gate.on_accepted():
            log.warning("The video service accepted a job again: submission resumed")
            self.wake()
        return StartOutcome(submitted, StartKind.STARTED)

    async def _on_held(self, held: SubmitHeld) -> str:
        if held.out_of_credits:
            wait = await self.gate.on_out_of_credits()
            log.error(
                "HappyHorse account is out of credits (402): every new video is paused and "
                "queued jobs keep their place. Top up the HappyHorse account; the bot retries "
                "by itself (next try in %.0f s) and resumes without a restart. Queued jobs "
                "that wait longer than QUEUE_MAX_WAIT_SECONDS (%.0f s) are refunded.",
                wait,
                self._settings.queue_max_wait_seconds,
            )
        else:
            wait = await self.gate.on_rate_limited(held.retry_after)
            log.info("Generate was rate limited (429); holding submission for %.1f s", wait)
        return self._held_message()

    def _held_message(self) -> str:
        return self.gate.held_message(self._settings.queue_max_wait_seconds)

    async def dispatch(self) -> DispatchReport:
        """One round: refund jobs that waited too long, then start every job that may start.

        Jobs are chosen in the database and claimed one guarded statement each, then
        submitted concurrently (the running limits bound how many). While the API is
        paused for a 402, one job, the first in the fair order, probes it, in whichever
        process claims the probe.
        """
        async with self._round:
            return await self._dispatch()

    async def _dispatch(self) -> DispatchReport:
        report = DispatchReport()
        await self.gate.refresh()
        report.expired = await self._expire_overdue()
        claimed = await self._claim_startable() if self.gate.is_open() else []
        results = await asyncio.gather(
            *(self._submit(job, tell_now=False) for job in claimed), return_exceptions=True
        )
        for job, result in zip(claimed, results, strict=True):
            if isinstance(result, Refusal):
                report.failed.append(await self._reload(job))
            elif isinstance(result, asyncio.CancelledError):
                raise result
            elif isinstance(result, BaseException):
                # Left reserved: the stale-reservation sweep refunds it with a notice.
                log.error("Starting job %s failed unexpectedly", job.id, exc_info=result)
            elif result.kind is StartKind.STARTED:
                report.started.append(result.job)
        for job in [*report.started, *report.failed, *report.expired]:
            self.watch(job.guild_id)
        report.still_queued = await self._watched_queues()
        return report

    async def startable(
        self, guild_id: int | None = None, *, for_job: Job | None = None
    ) -> tuple[list[Job], dict[int, Limits]]:
        """The queued jobs that may start now (of one guild, or all), in fair order, and
        the limits of their guilds.

        The database narrows the queue to the members who may start a job (they and
        their guild are under their running limits, `JobStore.waiting_members`) and reads
        of their queues no more than could start now (`could_start`); `core.fairness.
        startable` then applies the one rule. Jobs still held for their request are
        included (they keep their place); a dispatcher's claim skips them.

        ``for_job`` (of ``guild_id``) asks only whether that job may start: the answer
        then holds the jobs that decide it, not every startable one.
        """
        if for_job is not None:
            guild_id = for_job.guild_id
            # This member first: when their server sets no running limit, the other
            # members' jobs cannot hold this one back, and need not be read.
            mine = await self._waiting(guild_id, for_job.user_id)
            if not mine:
                return [], {}  # the member or the server is at its running limit
            members, fair_limit = mine, None
            if mine[0].server_limit:
                members = await self._waiting(guild_id)
                fair_limit = mine[0].server_limit - mine[0].guild_running
            elif not mine[0].member_limit:
                return [for_job], _limits(mine)  # no limit at all: nothing to be fair about
        else:
            members, fair_limit = await self._waiting(guild_id), None
        if not members:
            return [], {}
        limits = _limits(members)
        queued = await self._store.jobs.member_queues(
            [(m.guild_id, m.user_id) for m in members],
            first=[could_start(m, MAX_STARTS_PER_ROUND) for m in members],
            fair_limit=fair_limit,
        )
        picks = startable(
            fair_order(queued),
            {(m.guild_id, m.user_id): m.running for m in members},
            limits.__getitem__,
            guild_running={m.guild_id: m.guild_running for m in members},
        )
        return picks, limits

    async def _waiting(
        self, guild_id: int | None, user_id: int | None = None
    ) -> list[WaitingMember]:
        return await self._store.jobs.waiting_members(
            member_running=DEFAULT_MEMBER_RUNNING,
            server_running=DEFAULT_SERVER_RUNNING,
            guild_id=guild_id,
            user_id=user_id,
        )

    async def _claim_startable(self) -> list[Job]:
        probe = self.gate.out_of_credits
        if probe and not await self.gate.claim_probe():
            return []  # another process probes the paused API now
        picks, limits = await self.startable()
        claimed: list[Job] = []
        for job in picks[: 1 if probe else MAX_STARTS_PER_ROUND]:
            if await self._claim(job, limits[job.guild_id], take_held=False):
                claimed.append(replace(job, state=JobState.RESERVED))
        return claimed

    async def _expire_overdue(self) -> list[Job]:
        """Refund the jobs that waited longer than QUEUE_MAX_WAIT_SECONDS (only jobs still
        queued: one another process has just started is not touched)."""
        limit = self._settings.queue_max_wait_seconds
        # Stored in English; the notice says it again in the server's language.
        reason = str(expiry_reason(limit, out_of_credits=self.gate.out_of_credits))
        cutoff = self._clock() - timedelta(seconds=limit)
        expired = await self._store.jobs.expire_queued(cutoff, reason)
        for job in expired:
            metrics.count_credits_refunded(job.cost)
        return expired

    async def _watched_queues(self) -> list[Job]:
        """The waiting jobs of the guilds this process shows cards for."""
        waiting: list[Job] = []
        for guild_id in sorted(self._watched):
            queued = await self._store.jobs.queued_jobs(guild_id)
            if not queued:
                self._watched.discard(guild_id)
            waiting.extend(queued)
        return waiting

    async def _reload(self, job: Job) -> Job:
        fresh = await self._store.jobs.get_job(job.id)
        return fresh if fresh is not None else job


def _limits(members: list[WaitingMember]) -> dict[int, Limits]:
    """The running limits of the members' guilds, by guild id."""
    return {
        m.guild_id: Limits(member_running=m.member_limit, server_running=m.server_limit)
        for m in members
    }


def expiry_reason(limit_seconds: float, *, out_of_credits: bool) -> Message:
    """Why a job that waited too long in the queue was refunded (its ``last_error``)."""
    if out_of_credits:
        return _(
            "it waited in the queue for more than {wait} (the video service account is out "
            "of credits)",
            wait=wait_text(limit_seconds),
        )
    return _("it waited in the queue for more than {wait}", wait=wait_text(limit_seconds))


def known_reason(stored: str, limit_seconds: float) -> Message | None:
    """The message behind a stored queue-expiry reason, to say it in another language."""
    for out_of_credits in (False, True):
        message = expiry_reason(limit_seconds, out_of_credits=out_of_credits)
        if str(message) == stored:
            return message
    return None
