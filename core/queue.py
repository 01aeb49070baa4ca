"""The queue service: admission, starting queued jobs, the 402/429 gate, cancels, ETAs.

A request that is accepted but cannot start at once (the member or the server is at its
running limit, the API answered 429 to generate, or submission is paused because the API
account is out of credits) waits as a ``queued`` job with its credits held, and starts
when a slot frees, in the fair order of `core.fairness`.

Everything here is Discord-free: the cogs call `QueueService` and render what it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from core import metrics
from core.errors import Refusal
from core.eta import CompletionEstimator, LearnedEstimator
from core.fairness import Member, fair_order, positions, startable
from core.jobs import JobDraft, JobService, SubmitHeld
from core.limits import Limits, cooldown_refusal, queue_full_refusal
from core.settings import BotSettings
from storage.models import Job, JobState, MemberAdmission
from storage.store import Store

log = logging.getLogger(__name__)

OUT_OF_CREDITS_STATUS = "paused: the video service account is out of credits"
BUSY_STATUS = "waiting: the video service is busy"
DEFAULT_RATE_LIMIT_WAIT = 10.0
ACCEPT_HOLD_SECONDS = 15.0
"""How long a just-accepted job is left to its own request to start (`QueueService.start`
right after the acknowledgement) before the dispatcher may start it instead."""


def wait_text(seconds: float) -> str:
    """'30 minutes', '1 minute', '45 seconds': a wait limit in words."""
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    if seconds >= 60:
        return "1 minute"
    whole = max(1, round(seconds))
    return "1 second" if whole == 1 else f"{whole} seconds"


# -- the submit gate ------------------------------------------------------------------------


class SubmitGate:
    """Whether new jobs may be sent to the API now.

    A 402 (the API account is out of credits) pauses submission for everyone; the queue
    probes again after a backoff that doubles up to a cap, and the first accepted submit
    lifts the pause. A 429 holds submission until its Retry-After.
    """

    def __init__(
        self,
        first_backoff: float,
        max_backoff: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._first = first_backoff
        self._max = max(max_backoff, first_backoff)
        self._clock = clock
        self._backoff = first_backoff
        self.out_of_credits = False
        self.not_before: datetime | None = None

    def is_open(self) -> bool:
        """True when a submit may be tried now (a paused gate opens for one probe)."""
        return self.not_before is None or self._clock() >= self.not_before

    def seconds_until_open(self) -> float:
        """How long until a submit may be tried (0 when open)."""
        if self.not_before is None:
            return 0.0
        return max(0.0, (self.not_before - self._clock()).total_seconds())

    def on_out_of_credits(self) -> float:
        """Pause (or stay paused) after a 402; return the seconds until the next probe."""
        wait = self._backoff
        self.out_of_credits = True
        self.not_before = self._clock() + timedelta(seconds=wait)
        self._backoff = min(self._max, self._backoff * 2)
        return wait

    def on_rate_limited(self, retry_after: float | None) -> float:
        """Hold submission after a 429; return the seconds to wait."""
        wait = retry_after if retry_after and retry_after > 0 else DEFAULT_RATE_LIMIT_WAIT
        until = self._clock() + timedelta(seconds=wait)
        if self.not_before is None or until > self.not_before:
            self.not_before = until
        return wait

    def on_accepted(self) -> bool:
        """The API took a job: lift any pause. Returns True if a 402 pause was lifted."""
        lifted = self.out_of_credits
        self.out_of_credits = False
        self.not_before = None
        self._backoff = self._first
        return lifted

    @property
    def status(self) -> str | None:
        """Why submission is held, for cards and `/config show`; ``None`` when running."""
        if self.out_of_credits:
            return OUT_OF_CREDITS_STATUS
        if not self.is_open():
            return BUSY_STATUS
        return None


# -- the service ------------------------------------------------------------------------------


class StartKind(Enum):
    """What happened to a request right after it was accepted."""

    STARTED = "started"  # sent to the API
    QUEUED = "queued"  # waiting for a slot (or for the API)


@dataclass(frozen=True)
class StartOutcome:
    """The job after `QueueService.start`, and what to tell its requester privately."""

    job: Job
    kind: StartKind
    message: str | None = None


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


@dataclass
class DispatchReport:
    """What one dispatch round did, for the cogs to show."""

    started: list[Job] = field(default_factory=list)
    failed: list[Job] = field(default_factory=list)  # refunded; the notice outbox tells them
    expired: list[Job] = field(default_factory=list)  # waited too long; refunded
    still_queued: list[Job] = field(default_factory=list)


class CancelOutcome(Enum):
    """What a click on Cancel did."""

    CANCELLED = "cancelled"
    NOT_ALLOWED = "not_allowed"  # neither the requester nor a moderator
    ALREADY_SENT = "already_sent"  # the API has it; it has no cancel
    ALREADY_SETTLED = "already_settled"  # cancelled, refunded or delivered already
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class CancelEvent:
    """A queued job was cancelled: by whom, and whether as a moderator (for a mod log)."""

    job: Job
    by_user_id: int
    by_moderator: bool


CancelListener = Callable[[CancelEvent], None]


HELD_RATE_LIMITED = (
    "The video service is busy right now, so your video is waiting in the queue. It starts "
    "automatically; your credits are held until then (and returned if it cannot start)."
)
HELD_OUT_OF_CREDITS = (
    "The video service account is out of credits, so videos are paused and yours is "
    "waiting in the queue. The bot's operator has been told. It starts automatically once "
    "the account is topped up; if it cannot start within {wait} your credits are "
    "returned."
)


class _QueueFull(Exception):
    """The member already has `limit` jobs waiting (becomes a `Refusal` in `QueueService`)."""

    def __init__(self, queued: int, limit: int, oldest_id: int | None) -> None:
        super().__init__(f"{queued} of {limit} queued")
        self.queued = queued
        self.limit = limit
        self.oldest_id = oldest_id


class QueueService:
    """Admits requests, starts queued jobs fairly within the limits, and expires old ones."""

    def __init__(
        self,
        store: Store,
        jobs: JobService,
        settings: BotSettings,
        *,
        estimator: CompletionEstimator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self.estimator: CompletionEstimator = estimator or LearnedEstimator(jobs.completion)
        self.gate = SubmitGate(
            settings.queue_pause_backoff_seconds,
            settings.queue_pause_max_backoff_seconds,
            clock,
        )
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._dispatching = asyncio.Lock()
        self._cancel_listeners: list[CancelListener] = []
        # Jobs accepted here whose request is about to start them (job id -> monotonic
        # time): the dispatcher leaves them alone, so a refusal from the API reaches the
        # requester in the reply to their command rather than as a later notice.
        self._accepted: dict[int, float] = {}
        jobs.add_slot_listener(self.wake)

    # -- cancelling ----------------------------------------------------------------------

    def add_cancel_listener(self, listener: CancelListener) -> None:
        """Call ``listener`` after each cancel (say, to post it in a moderator log).

        Listeners run synchronously and must not block; one that raises is logged.
        """
        self._cancel_listeners.append(listener)

    async def cancel(
        self, job_id: int, guild_id: int, by_user_id: int, *, moderator: bool
    ) -> tuple[CancelOutcome, Job | None]:
        """Cancel a queued job for its requester or a moderator, returning its credits once."""
        job = await self.store.jobs.get_job(job_id)
        if job is None or job.guild_id != guild_id:
            return CancelOutcome.NOT_FOUND, None
        if job.user_id != by_user_id and not moderator:
            return CancelOutcome.NOT_ALLOWED, job
        if job.state is not JobState.QUEUED:
            return self._why_not(job), job
        if not await self.store.jobs.cancel_queued(job.id, by_user_id):
            job = await self._reload(job)  # it started, or was cancelled, a moment ago
            return self._why_not(job), job
        metrics.count_credits_refunded(job.cost)
        cancelled = await self._reload(job)
        log.info("Job %s cancelled by %s before it started", job.id, by_user_id)
        event = CancelEvent(cancelled, by_user_id, moderator and job.user_id != by_user_id)
        for listener in self._cancel_listeners:
            try:
                listener(event)
            except Exception:
                log.exception("A cancel listener failed for job %s", job.id)
        self.wake()  # its place frees up; positions change
        return CancelOutcome.CANCELLED, cancelled

    @staticmethod
    def _why_not(job: Job) -> CancelOutcome:
        if job.state in {JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED}:
            return CancelOutcome.ALREADY_SENT
        return CancelOutcome.ALREADY_SETTLED

    # -- events ------------------------------------------------------------------------

    def wake(self) -> None:
        """Something changed (a job queued or settled, a pause lifted): dispatch soon."""
        self._wakeup.set()

    async def wait_for_work(self, seconds: float) -> None:
        """Sleep until `wake` is called or ``seconds`` pass (the periodic safety check)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        self._wakeup.clear()

    def next_check_in(self) -> float:
        """Seconds until the dispatcher should look again without being woken."""
        interval = self.settings.queue_check_interval_seconds
        held = self.gate.seconds_until_open()
        return min(interval, held) if held > 0 else interval

    # -- admission ---------------------------------------------------------------------

    async def limits(self, guild_id: int) -> Limits:
        """The guild's effective limits."""
        return Limits.resolve((await self.store.guilds.get(guild_id)).limits)

    async def accept(self, draft: JobDraft) -> Job:
        """Admit and reserve a request: the acknowledgement path's one database transaction.

        The cool-down and the member's queue limit are checked on the same snapshot as the
        credits and under the same member lock as the charge (see `JobService.reserve`),
        so two requests of one member at once cannot both pass the cool-down. Raises
        `Refusal` (nothing charged) to say no.
        """
        try:
            job = await self.jobs.reserve(draft, admit=self._admit)
        except _QueueFull as full:
            raise await self._queue_full(full) from None
        now = time.monotonic()
        for stale in [i for i, at in self._accepted.items() if now - at > ACCEPT_HOLD_SECONDS]:
            del self._accepted[stale]  # its request never started it (say, the defer failed)
        self._accepted[job.id] = now
        return job

    def _left_to_requester(self, job_id: int) -> bool:
        accepted = self._accepted.get(job_id)
        if accepted is None:
            return False
        if time.monotonic() - accepted > ACCEPT_HOLD_SECONDS:
            del self._accepted[job_id]  # its request never started it: the queue does
            return False
        return True

    async def admit(self, draft: JobDraft) -> None:
        """Refuse (for free) a request inside the member's cool-down or over their queue
        limit; say when to try again. A check only: `accept` checks again atomically."""
        await self.admit_member(draft.guild_id, draft.user_id)

    async def admit_member(self, guild_id: int, user_id: int) -> None:
        """`admit` for flows that know only who is asking (the Animate image menu)."""
        try:
            self._admit(await self.store.credits.admission(guild_id, user_id))
        except _QueueFull as full:
            raise await self._queue_full(full) from None

    def _admit(self, admission: MemberAdmission) -> None:
        """The admission rules on a snapshot: raise the cool-down `Refusal`, or
        `_QueueFull` (whose refusal needs the queue's estimates, read afterwards)."""
        limits = Limits.resolve(admission.guild.limits)
        refusal = cooldown_refusal(
            admission.last_request_at, limits.cooldown_seconds, self._clock()
        )
        if refusal is not None:
            raise refusal
        if limits.member_queued and admission.queued >= limits.member_queued:
            raise _QueueFull(admission.queued, limits.member_queued, admission.oldest_queued_id)

    async def _queue_full(self, full: _QueueFull) -> Refusal:
        """The queue-limit refusal, saying when the member's oldest waiting job should start."""
        oldest = None if full.oldest_id is None else await self.store.jobs.get_job(full.oldest_id)
        now = self._clock()
        retry_at = now + timedelta(seconds=self.settings.queue_max_wait_seconds)
        if oldest is not None:
            info = await self.card_info(oldest)
            retry_at = info.starts_at or oldest.created_at + timedelta(
                seconds=self.settings.queue_max_wait_seconds
            )
        return queue_full_refusal(full.queued, full.limit, retry_at, now)

    # -- starting ----------------------------------------------------------------------

    async def start(self, job: Job, *, tell_now: bool = True) -> StartOutcome:
        """Start a just-accepted (queued) job if it is its turn and a slot is free.

        The decision and the claim are made under the dispatch lock; the API call is not,
        so one slow submit never holds up other requests. Raises `Refusal` (the job
        already refunded) if the API refused it outright.
        """
        if not self.gate.is_open():
            self._accepted.pop(job.id, None)  # the dispatcher starts it once the gate opens
            self.wake()
            return StartOutcome(job, StartKind.QUEUED, self._held_message())
        async with self._dispatching:
            # Only now, under the lock, may the dispatcher take the job (if this start
            # leaves it queued): a round in progress skipped it.
            self._accepted.pop(job.id, None)
            # Whether this job may start depends on its guild alone, except while paused,
            # when the one probe is the first startable job across every guild.
            scope = None if self.gate.out_of_credits else job.guild_id
            ordered, running, limits = await self._snapshot(scope)
            picks = startable(ordered, running, limits.__getitem__)
            if self.gate.out_of_credits:
                picks = picks[:1]  # while paused, one job probes the API
            claimed = job.id in {p.id for p in picks} and await self._claim(
                job, limits[job.guild_id]
            )
        if len(picks) > 1 or not claimed:
            self.wake()  # others may start too, or this one later
        if not claimed:
            message = self._held_message() if self.gate.status else None
            return StartOutcome(await self._reload(job), StartKind.QUEUED, message)
        return await self._submit(job, tell_now=tell_now)

    async def _claim(self, job: Job, limits: Limits) -> bool:
        return await self.store.jobs.claim_queued(
            job.id,
            member_running=limits.member_running,
            server_running=limits.server_running,
            claimant=self.jobs.claimant,
            lease_seconds=self.jobs.reservation_lease_seconds,
            guild_id=job.guild_id,
        )

    async def _submit(self, job: Job, *, tell_now: bool) -> StartOutcome:
        """Send a claimed job to the API; a 429 or 402 puts it back in the queue."""
        try:
            submitted = await self.jobs.submit(await self._reload(job), tell_now=tell_now)
        except SubmitHeld as held:
            return StartOutcome(await self._reload(job), StartKind.QUEUED, self._on_held(held))
        if self.gate.on_accepted():
            log.warning("The video service accepted a job again: submission resumed")
        return StartOutcome(submitted, StartKind.STARTED)

    def _on_held(self, held: SubmitHeld) -> str:
        if held.out_of_credits:
            wait = self.gate.on_out_of_credits()
            log.error(
                "HappyHorse account is out of credits (402): every new video is paused and "
                "queued jobs keep their place. Top up the HappyHorse account; the bot retries "
                "by itself (next try in %.0f s) and resumes without a restart. Queued jobs "
                "that wait longer than QUEUE_MAX_WAIT_SECONDS (%.0f s) are refunded.",
                wait,
                self.settings.queue_max_wait_seconds,
            )
        else:
            wait = self.gate.on_rate_limited(held.retry_after)
            log.info("Generate was rate limited (429); holding submission for %.1f s", wait)
        return self._held_message()

    def _held_message(self) -> str:
        if self.gate.out_of_credits:
            return HELD_OUT_OF_CREDITS.format(wait=wait_text(self.settings.queue_max_wait_seconds))
        return HELD_RATE_LIMITED

    async def dispatch(self) -> DispatchReport:
        """One round: refund jobs that waited too long, then start every job that may start.

        Jobs are chosen and claimed under the dispatch lock, then submitted concurrently
        (the running limits bound how many). While the API is paused for a 402, one job
        probes it.
        """
        report = DispatchReport()
        claimed: list[Job] = []
        async with self._dispatching:
            report.expired = await self._expire_overdue()
            if self.gate.is_open():
                ordered, running, limits = await self._snapshot()
                picks = startable(ordered, running, limits.__getitem__)
                if self.gate.out_of_credits:
                    picks = picks[:1]
                claimed = [
                    job
                    for job in picks
                    if not self._left_to_requester(job.id)
                    and await self._claim(job, limits[job.guild_id])
                ]
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
        report.still_queued = await self.store.jobs.queued_jobs()
        return report

    async def _expire_overdue(self) -> list[Job]:
        limit = self.settings.queue_max_wait_seconds
        now = self._clock()
        expired: list[Job] = []
        for job in await self.store.jobs.queued_jobs():
            if (now - job.created_at).total_seconds() <= limit:
                continue
            reason = f"it waited in the queue for more than {wait_text(limit)}"
            if self.gate.out_of_credits:
                reason += " (the video service account is out of credits)"
            if await self.store.jobs.fail_and_refund(job.id, reason):
                metrics.count_credits_refunded(job.cost)
                expired.append(await self._reload(job))
        return expired

    async def _snapshot(
        self, guild_id: int | None = None
    ) -> tuple[list[Job], dict[Member, int], dict[int, Limits]]:
        """The queue in fair order, running counts and limits: of one guild, or of all."""
        queued = await self.store.jobs.queued_jobs(guild_id)
        running = await self.store.jobs.running_counts(guild_id)
        guilds = {job.guild_id for job in queued}
        limits = {guild_id: await self.limits(guild_id) for guild_id in guilds}
        return fair_order(queued), running, limits

    # -- what cards show ---------------------------------------------------------------

    async def card_info(self, job: Job) -> CardInfo:
        """Position, queue length and estimates for a queued job; expected finish for a
        running one; nothing for others."""
        return (await self.card_infos([job]))[job.id]

    async def card_infos(self, jobs: Sequence[Job]) -> dict[int, CardInfo]:
        """`card_info` for many jobs at once: each guild's queue is read and ordered once."""
        result = {job.id: CardInfo() for job in jobs}
        submitted = [job for job in jobs if job.state is JobState.SUBMITTED]
        for job in submitted:
            expected = self._expected(job)
            if expected is None or job.submitted_at is None:
                result[job.id] = CardInfo(estimating=True)
            else:
                result[job.id] = CardInfo(ready_at=job.submitted_at + timedelta(seconds=expected))
        for guild_id in {job.guild_id for job in jobs if job.state is JobState.QUEUED}:
            ordered = fair_order(await self.store.jobs.queued_jobs(guild_id))
            running = await self.store.jobs.running_counts(guild_id)
            estimates = self._estimates(ordered, running, await self.limits(guild_id))
            where = positions(ordered)
            for job in jobs:
                if job.state is not JobState.QUEUED or job.guild_id != guild_id:
                    continue
                if job.id not in where:
                    result[job.id] = CardInfo(paused=self.gate.status)
                    continue
                position, total = where[job.id]
                starts_at, ready_at = estimates[position - 1]
                result[job.id] = CardInfo(
                    position=position,
                    total=total,
                    starts_at=starts_at,
                    ready_at=ready_at,
                    estimating=starts_at is None,
                    paused=self.gate.status,
                )
        return result

    async def queue_positions(self, guild_id: int) -> dict[int, tuple[int, int]]:
        """Job id -> (position, length) of the guild's queued jobs."""
        return positions(fair_order(await self.store.jobs.queued_jobs(guild_id)))

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
        held = timedelta(seconds=self.gate.seconds_until_open())
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

    async def _reload(self, job: Job) -> Job:
        fresh = await self.store.jobs.get_job(job.id)
        return fresh if fresh is not None else job
