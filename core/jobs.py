"""The job rules, free of Discord: reserve credits, submit, poll, expire and refund.

`JobService` is the one place that decides what happens to a job. The cogs call it and
turn what it returns into Discord messages; the storage layer guarantees that each state
change happens once (guarded transitions), so this module never has to lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum

from core import metrics
from core.completion import CompletionKey, CompletionModel
from core.errors import Refusal, describe_submit_error, operator_hint
from core.fairness import next_round
from core.i18n import Number, _
from core.logs import job_logging
from core.poll_policy import PollPolicy
from core.processes import new_process_id
from core.prompts import PromptError, check_prompt
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.errors import (
    APIStatusError,
    AuthenticationError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ValidationError,
)
from happyhorse.models import GenerationRequest, TaskState, TaskStatus
from happyhorse.settings import ClientSettings
from storage.models import (
    Balance,
    Claimant,
    GuildSettings,
    Job,
    JobState,
    MemberAdmission,
    NewJob,
)
from storage.store import Store

log = logging.getLogger(__name__)

TEXT_TO_VIDEO = "text-to-video"
LOST_TASK_POLLS = 3
IMAGE_TO_VIDEO = "image-to-video"
# A reservation counts as leaked once it is this many times older than the longest a
# live submit can take (see `stale_reservation_seconds`).
STALE_RESERVATION_MARGIN = 2.0


def worst_case_generate_seconds(client: ClientSettings) -> float:
    """The longest one generate call can take, retries and Retry-After waits included.

    Every attempt may run to the request timeout, and every retry may first wait the
    backoff or the server's Retry-After, both capped at `retry_cap_seconds`.
    """
    attempts = client.max_retries + 1
    return attempts * client.timeout_seconds + client.max_retries * client.retry_cap_seconds


def stale_reservation_seconds(client: ClientSettings) -> float:
    """How old a reservation must be before the running bot may take it as leaked.

    A reservation becomes a submitted job within one generate call (plus the defer before
    it), so anything younger than the worst-case generate time, with a margin, may still
    be a live submit and must not be refunded.
    """
    return STALE_RESERVATION_MARGIN * worst_case_generate_seconds(client)


def poll_lease_seconds(client: ClientSettings) -> float:
    """How long a claimed poll is held: longer than one status call can take, retries
    and Retry-After waits included (the same worst case as a generate call), with the
    same margin; a poll that outlives it may be repeated by another process."""
    return stale_reservation_seconds(client)


@dataclass(frozen=True)
class JobDraft:
    """What a user asked for, before any check: straight from the command's options."""

    guild_id: int
    channel_id: int
    user_id: int
    mode: str
    prompt: str | None
    duration: int
    aspect_ratio: str
    quality: str
    sound: bool
    image_url: str | None = None
    interaction_id: int | None = None
    last_frame_url: str | None = None
    role_ids: tuple[int, ...] = ()
    """The requester's roles (allowances by role)."""
    reply_to_message_id: int | None = None
    """Post the video as a reply to this message (Continue: the video it continues)."""


class SubmitHeld(Exception):
    """The API could not take the job yet (429 or 402): it is queued again, still charged."""

    def __init__(self, *, out_of_credits: bool, retry_after: float | None = None) -> None:
        super().__init__("out of credits" if out_of_credits else "rate limited")
        self.out_of_credits = out_of_credits
        self.retry_after = retry_after


class PollKind(Enum):
    """What one poll of a job found."""

    PENDING = "pending"  # still queued or processing at the API
    COMPLETED = "completed"  # a result URL is stored; the job awaits delivery
    FAILED = "failed"  # the API failed the job; its credits were refunded
    EXPIRED = "expired"  # the job outlived the deadline; its credits were refunded
    RETRY = "retry"  # the status call failed transiently; polled again later


@dataclass(frozen=True)
class PollOutcome:
    """The result of polling one job; `job` is the row after the poll."""

    job: Job
    kind: PollKind
    api_state: TaskState | None = None
    message: str = ""
    refunded: bool = False


def _check_channel(guild: GuildSettings, channel_id: int) -> None:
    if not guild.channel_allowed(channel_id):
        channels = ", ".join(f"<#{cid}>" for cid in sorted(guild.allowed_channel_ids))
        raise Refusal(
            _("Videos can't be made in this channel. Use one of: {channels}.", channels=channels)
        )


def _not_enough_credits(cost: int, balance: Balance) -> Refusal:
    return Refusal(
        _(
            "Not enough credits: this video costs {cost} and you have {remaining} of "
            "{allowance} left. Your credits reset <t:{reset}:R>. Try a 5 s std video, or "
            "ask a moderator for more.",
            cost=Number(cost),
            remaining=Number(balance.remaining),
            allowance=Number(balance.allowance),
            reset=int(balance.resets_at.timestamp()),
        )
    )


def request_for(job: Job, *, model: str | None = None) -> GenerationRequest:
    """Build the API request that a stored job stands for."""
    kwargs: dict[str, object] = {}
    if model:
        kwargs["model"] = model
    return GenerationRequest(
        prompt=job.prompt,
        mode=job.mode,  # type: ignore[arg-type]
        duration=job.duration,
        aspect_ratio=job.aspect_ratio,  # type: ignore[arg-type]
        quality=job.quality,  # type: ignore[arg-type]
        sound=job.sound,
        image_url=job.image_url,
        last_frame_url=job.last_frame_url,
        **kwargs,  # type: ignore[arg-type]
    )


class JobService:
    """Submits, polls and settles jobs; every state change goes through the store."""

    def __init__(
        self,
        store: Store,
        client: HappyHorseClient,
        settings: BotSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        model: CompletionModel | None = None,
        claimant: Claimant | None = None,
    ) -> None:
        self.store = store
        #: This process, as the owner of the work it claims (see ``core.processes``).
        self.claimant = claimant or Claimant(
            new_process_id(), live_within=settings.process_liveness_seconds
        )
        self.client = client
        self.settings = settings
        self._clock = clock
        self.completion = model or CompletionModel(
            min_history=settings.poll_min_history,
            history_size=max(settings.poll_history_size, settings.poll_min_history),
        )
        self.policy = PollPolicy(settings, self.completion)
        self._listeners: list[Callable[[Job], None]] = []
        self._slot_listeners: list[Callable[[], None]] = []

    @property
    def reservation_lease_seconds(self) -> float:
        """How long a reservation is held by this process while it submits it."""
        return stale_reservation_seconds(self.settings.client)

    def on_job_changed(self, listener: Callable[[Job], None]) -> None:
        """Call `listener` with every job submitted here or passed to `notify`."""
        self._listeners.append(listener)

    def notify(self, job: Job) -> None:
        """Tell the listeners (the poll scheduler) that `job` changed outside a poll: it
        was submitted, or settled by someone else (cancelled, refunded), so it is polled
        from now on, or no longer."""
        for listener in self._listeners:
            listener(job)

    async def load_history(self) -> int:
        """Feed the completion model the stored completion times; return how many."""
        samples = await self.store.jobs.completion_times(self.completion.history_size * 4)
        self.completion.load(samples)
        return len(samples)

    def add_slot_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a job stops holding a running slot (completed,
        failed or expired at the API): the queue starts the next one."""
        self._slot_listeners.append(listener)

    def _slot_freed(self) -> None:
        for listener in self._slot_listeners:
            listener()

    # -- creating jobs -------------------------------------------------------------

    def cost_of(self, duration: int, quality: str) -> int:
        """Credits a request of this duration and quality costs."""
        return self.store.credits.cost(duration, quality)

    async def reserve(
        self,
        draft: JobDraft,
        *,
        admit: Callable[[MemberAdmission], None] | None = None,
        hold_seconds: float = 0.0,
    ) -> Job:
        """Check a draft and reserve its credits atomically; raise Refusal to say no.

        The job is created ``queued``, with its round in the fair queue; the queue starts
        it (at once, if it is its turn and a slot is free). ``admit`` (the queue's
        cool-down and queue limit, see `QueueService.accept`) is checked first, by
        raising, on the same snapshot.

        The checks are local and the database work is one transaction (the guild's rules,
        the member's state, the rounds and the charge, under the member's lock), so the
        cogs call this before acknowledging the interaction, and two requests of one
        member at once cannot both pass a check the other's job would fail.

        With ``hold_seconds`` the job is held for this process that long (its request
        starts it; dispatchers leave it alone, see `JobStore.claim_queued`).
        """
        held_by = self.claimant.process_id if hold_seconds > 0 else None

        def decide(admission: MemberAdmission) -> NewJob:
            if admit is not None:
                admit(admission)
            return replace(
                self._new_job(draft, admission.guild),
                queue_round=next_round(admission.rounds),
                held_by=held_by,
                hold_seconds=hold_seconds,
            )

        reservation = await self.store.credits.admit_and_reserve(
            draft.guild_id, draft.user_id, draft.role_ids, decide
        )
        if reservation.job is None:
            assert reservation.balance is not None  # short of credits: it says how short
            cost = self.cost_of(draft.duration, draft.quality)
            raise _not_enough_credits(cost, reservation.balance)
        metrics.count_credits_reserved(reservation.job.cost)
        return reservation.job

    def _new_job(self, draft: JobDraft, guild: GuildSettings) -> NewJob:
        """The job a draft stands for under the guild's rules, or the Refusal saying why not.

        Plain checks without I/O (channel, prompt, the API's own limits, the cost), so they
        can run inside the reservation's transaction.
        """
        _check_channel(guild, draft.channel_id)
        try:
            prompt = check_prompt(
                draft.prompt,
                max_length=self.settings.client.max_prompt_length,
                blocked_words=guild.blocked_words,
                required=draft.mode == TEXT_TO_VIDEO,
            )
        except PromptError as exc:
            raise Refusal(exc.message) from None
        request = GenerationRequest(
            prompt=prompt,
            mode=draft.mode,  # type: ignore[arg-type]
            duration=draft.duration,
            aspect_ratio=draft.aspect_ratio,  # type: ignore[arg-type]
            quality=draft.quality,  # type: ignore[arg-type]
            sound=draft.sound,
            image_url=draft.image_url,
            last_frame_url=draft.last_frame_url,
        )
        try:
            request.validate(
                max_prompt_length=self.settings.client.max_prompt_length,
                durations=self.client.dialect.durations,
                last_frame=self.client.dialect.supports_last_frame,
            )
        except ValidationError as exc:
            raise Refusal(_("That request is not valid: {reason}", reason=exc.message)) from None
        try:
            self.cost_of(draft.duration, draft.quality)
        except ValueError as exc:
            raise Refusal(_("That request is not valid: {reason}", reason=str(exc))) from None
        return NewJob(
            guild_id=draft.guild_id,
            channel_id=draft.channel_id,
            user_id=draft.user_id,
            mode=draft.mode,
            prompt=prompt,
            image_url=draft.image_url,
            duration=draft.duration,
            aspect_ratio=draft.aspect_ratio,
            quality=draft.quality,
            sound=draft.sound,
            interaction_id=draft.interaction_id,
            last_frame_url=draft.last_frame_url,
            sandbox=self.settings.sandbox,
            role_ids=draft.role_ids,
            queued=True,
            reply_to_message_id=draft.reply_to_message_id,
        )

    async def precheck(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        cost: int,
        role_ids: Sequence[int] = (),
    ) -> None:
        """Raise the Refusal a request costing `cost` would get here, without reserving.

        For flows that ask the user for more input first (the Animate image form), so they
        are not asked to type a prompt that would then be refused.
        """
        _check_channel(await self.store.guilds.get(guild_id), channel_id)
        balance = await self.store.credits.balance(guild_id, user_id, role_ids)
        if balance.remaining < cost:
            raise _not_enough_credits(cost, balance)

    async def submit(self, job: Job, *, tell_now: bool = True) -> Job:
        """Send a job to the API; on an API error refund it and raise Refusal.

        A queued job is taken out of the queue first (the caller chose it, see
        `core.queue`). A 429 or 402 puts it back in the queue, still charged, and raises
        `SubmitHeld`. ``tell_now`` means the caller tells the requester about a refusal
        itself; otherwise the failure-notice outbox does.

        The client never retries a generate call that may have reached the server, so a
        failure here cannot have created a second task.
        """
        if job.state is JobState.QUEUED and not await self.store.jobs.claim_queued(
            job.id,
            claimant=self.claimant,
            lease_seconds=self.reservation_lease_seconds,
            guild_id=job.guild_id,
        ):
            raise Refusal(_("This video was cancelled before it started."))
        # Only a job still reserved, and by nobody else, may be sent: expiry, a cancel or
        # another process's recovery may have settled it since it was chosen.
        held = await self.store.jobs.hold_reservation(
            job.id, self.claimant, self.reservation_lease_seconds
        )
        if held is None:
            raise Refusal(NOT_SENT_SETTLED)
        job = held
        try:
            task = await self.client.generate(request_for(job, model=self.settings.client.model))
        except (RateLimitError, InsufficientCreditsError) as exc:
            out_of_credits = isinstance(exc, InsufficientCreditsError)
            await self.store.jobs.requeue(
                job.id, f"submit: {exc.message}", claimant=self.claimant
            )
            retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
            raise SubmitHeld(out_of_credits=out_of_credits, retry_after=retry_after) from None
        except HappyHorseError as exc:
            hint = operator_hint(exc)
            if hint:
                log.error("Submitting job %s failed: %s", job.id, hint)
            else:
                log.warning("Submitting job %s failed: %s", job.id, type(exc).__name__)
            if await self.store.jobs.fail_and_refund(
                job.id,
                f"submit: {exc.message}",
                expected=JobState.RESERVED,
                claimant=self.claimant,
            ):
                metrics.count_credits_refunded(job.cost)
            if tell_now:
                # The requester hears why at once, in the reply to their command.
                await self.store.jobs.mark_notified(job.id)
            raise describe_submit_error(exc) from None
        now = self._clock()
        next_poll = self.policy.next_poll_at(replace(job, submitted_at=now), now)
        if not await self.store.jobs.mark_submitted(
            job.id, task.task_id, next_poll, claimant=self.claimant
        ):
            log.warning("Job %s was settled while it was being submitted", job.id)
        submitted = await self._reload(job)
        self.notify(submitted)
        return submitted

    # -- polling -------------------------------------------------------------------

    async def poll_due(self) -> list[PollOutcome]:
        """Poll every job whose next poll time has come (one bounded batch), at once.

        For tools and tests; the bot's scheduler (`core.scheduler`) polls job by job.
        Status calls go through the client's shared rate limiter; one failing job never
        stops the others. The polls are claimed first, so another process polling at
        the same time takes other jobs.
        """
        now = self._clock()
        window = await self.store.jobs.poll_candidates(
            self.claimant, now, self.settings.poll_batch_size
        )
        jobs = await self.store.jobs.claim_polls(
            [job.id for job in window],
            self.claimant,
            poll_lease_seconds(self.settings.client),
            now,
        )
        if not jobs:
            return []
        polls = (job_logging(job.id, self.poll(job)) for job in jobs)
        results = await asyncio.gather(*polls, return_exceptions=True)
        outcomes: list[PollOutcome] = []
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.exception("Polling job %s failed unexpectedly", job.id, exc_info=result)
                outcomes.append(await self.poll_failed(job, result))
                continue
            outcomes.append(result)
        return outcomes

    async def poll(self, job: Job) -> PollOutcome:
        """Ask the API about one submitted job and record what it says.

        The deadline (`JOB_DEADLINE_SECONDS` after submission) holds whatever the API
        answers: past it, a job that is not completed is expired and refunded once (the
        requester is told through the failure-notice outbox) with the last error named,
        whether the API said "still unfinished", answered an error or nothing readable.
        Before it, a failed status call only reschedules the poll, recording the error on
        the job (``last_error``). A video the API reports completed is delivered even when
        its poll comes late. The outcome carries the job as stored afterwards (its next
        poll time included).
        """
        outcome = await self._poll_once(job)
        if outcome.kind is PollKind.RETRY:
            return replace(outcome, job=await self._reload(job))
        return outcome

    async def _poll_once(self, job: Job) -> PollOutcome:
        assert job.task_id is not None, "a submitted job always has a task id"
        at_least = 0.0
        try:
            status = await self.client.status(job.task_id)
        except RateLimitError as exc:
            error, at_least = "the status call was rate limited (429)", exc.retry_after or 0.0
        except AuthenticationError as exc:
            log.error("Polling job %s: %s", job.id, operator_hint(exc))
            error = "the video service rejected the bot's API key (401)"
        except APIStatusError as exc:
            if exc.status == 404 and job.attempts >= LOST_TASK_POLLS:
                # Some services answer 404 for a moment after creating a task; only a
                # task still unknown after several polls is taken as lost.
                return await self._fail(job, "The video service lost track of this job.")
            error = f"the status call failed with HTTP {exc.status}: {exc.message}"
        except InvalidResponseError as exc:
            log.warning("Job %s: unreadable status answer: %s", job.id, exc.message)
            error = f"unreadable status answer: {exc.message}"
        except HappyHorseError as exc:
            log.info("Job %s: status call failed (%s); will retry", job.id, type(exc).__name__)
            error = f"the status call failed: {exc.message or type(exc).__name__}"
        else:
            return await self._apply_status(job, status)
        error = short_error(error)
        if self._past_deadline(job):
            return await self._expire(job, expired_reason(error))
        await self.reschedule(job, at_least=at_least, error=error)
        return PollOutcome(job=job, kind=PollKind.RETRY, message=error)

    async def poll_failed(self, job: Job, exc: BaseException) -> PollOutcome:
        """A poll that raised unexpectedly (a bug, not an API answer) is held to the same
        deadline: past it the job is expired and refunded once; before it the poll is
        rescheduled with the error recorded."""
        error = short_error(f"the status check failed unexpectedly ({type(exc).__name__})")
        if self._past_deadline(job):
            return await self._expire(job, expired_reason(error))
        await self.reschedule(job, error=error)
        return PollOutcome(job=await self._reload(job), kind=PollKind.RETRY, message=error)

    def _past_deadline(self, job: Job) -> bool:
        """Whether the job has outlived `JOB_DEADLINE_SECONDS` since its submission."""
        if job.submitted_at is None:
            return False
        age = self._clock() - job.submitted_at
        return age.total_seconds() > self.settings.job_deadline_seconds

    async def _apply_status(self, job: Job, status: TaskStatus) -> PollOutcome:
        if status.state is TaskState.COMPLETED:
            url = status.video_url
            assert url is not None, "the client refuses a completed status without a URL"
            completed = await self.store.jobs.mark_completed(job.id, url)
            done = await self._reload(job)
            if completed:
                self._learn(done)
                self._slot_freed()
            return PollOutcome(job=done, kind=PollKind.COMPLETED, api_state=status.state)
        if status.state is TaskState.FAILED:
            reason = status.message or "The video service could not make this video."
            return await self._fail(job, reason)
        now = self._clock()
        if self._past_deadline(job):
            return await self._expire(job, expired_reason(None))
        await self.store.jobs.mark_pending(job.id, self.policy.next_poll_at(job, now))
        return PollOutcome(
            job=await self._reload(job),
            kind=PollKind.PENDING,
            api_state=status.state,
            message=status.message or "",
        )

    def _learn(self, job: Job) -> None:
        """Feed a just-completed job's bracket to the completion model (as stored)."""
        if job.submitted_at is None or job.completed_at is None:
            return
        seen = job.last_pending_at or job.submitted_at
        self.completion.observe(
            CompletionKey.of(job),
            (seen - job.submitted_at).total_seconds(),
            (job.completed_at - job.submitted_at).total_seconds(),
        )

    async def reschedule(
        self, job: Job, *, at_least: float = 0.0, error: str | None = None
    ) -> None:
        """After a failed status call: the next scheduled poll, or after Retry-After;
        ``error`` (why the call gave no answer) is recorded on the job."""
        now = self._clock()
        scheduled = self.policy.next_poll_at(job, now)
        retry = now + timedelta(seconds=max(at_least, self.settings.poll_min_interval_seconds))
        await self.store.jobs.schedule_poll(job.id, max(scheduled, retry), error)

    async def _fail(self, job: Job, reason: str) -> PollOutcome:
        refunded = await self.store.jobs.fail_and_refund(
            job.id, reason, expected=JobState.SUBMITTED
        )
        metrics.count_credits_refunded(job.cost if refunded else 0)
        self._slot_freed()
        return PollOutcome(
            job=await self._reload(job),
            kind=PollKind.FAILED,
            api_state=TaskState.FAILED,
            message=reason,
            refunded=refunded,
        )

    async def _expire(self, job: Job, reason: str) -> PollOutcome:
        refunded = False
        if await self.store.jobs.mark_expired(job.id, reason):
            refunded = await self.store.jobs.refund(job.id)
            self._slot_freed()
        metrics.count_credits_refunded(job.cost if refunded else 0)
        return PollOutcome(
            job=await self._reload(job), kind=PollKind.EXPIRED, message=reason, refunded=refunded
        )

    # -- settling ------------------------------------------------------------------

    async def fail_undeliverable(self, job: Job, reason: str) -> bool:
        """A completed video could not be delivered at all: record why and refund once."""
        refunded = await self.store.jobs.fail_and_refund(
            job.id, reason, expected=JobState.COMPLETED
        )
        metrics.count_credits_refunded(job.cost if refunded else 0)
        return refunded

    async def recover_interrupted(self, older_than_seconds: float = 0.0) -> Sequence[Job]:
        """Settle what a crash left half-done; return the jobs refunded, to tell their users.

        A job still reserved may or may not have reached the API: the user is refunded
        either way (resubmitting could create a second paid task). A job left failed or
        expired but not yet refunded is refunded now. Submitted and completed jobs are
        left to the delivery loop; delivery leases held by the dead process are ended (a
        job that was being posted is then checked for a message already posted).

        Only work whose owner is no longer live (or whose lease ran out) is touched:
        another live process's reservations and delivery leases are left alone, so this
        may run at every start-up and periodically while several processes share the
        database.
        """
        ended = await self.store.jobs.end_stale_leases(self.claimant)
        if ended:
            log.info("Ended %d delivery leases left by a previous run", ended)
        recovered = list(
            await self.refund_stale_reservations(
                older_than_seconds,
                reason=INTERRUPTED_BEFORE_RECORDED,
            )
        )
        for job in await self.store.jobs.resumable_jobs():
            if job.state in {JobState.FAILED, JobState.EXPIRED} and await self.store.jobs.refund(
                job.id
            ):
                metrics.count_credits_refunded(job.cost)
                recovered.append(await self._reload(job))
        return recovered

    async def refund_stale_reservations(
        self, older_than_seconds: float, *, reason: str = "it was never sent to the video service"
    ) -> Sequence[Job]:
        """Refund reservations older than this that never became a submitted job.

        At start-up every reservation is stale (its process is gone). While running, a
        reservation older than any submit could take means its request died half-way (a
        bug or a lost interaction); refunding it keeps credits from leaking.
        """
        refunded: list[Job] = []
        for job in await self.store.jobs.stale_reserved(older_than_seconds, self.claimant):
            if await self.store.jobs.refund_stale_reserved(job.id, reason, self.claimant):
                metrics.count_credits_refunded(job.cost)
                refunded.append(await self._reload(job))
        if refunded:
            self._slot_freed()
        return refunded

    async def _reload(self, job: Job) -> Job:
        fresh = await self.store.jobs.get_job(job.id)
        return fresh if fresh is not None else job


EXPIRED_REASON = "The video took too long and was cancelled"
MAX_ERROR_LENGTH = 300


def short_error(error: str) -> str:
    """An error for ``last_error`` and notices: one line, at most `MAX_ERROR_LENGTH`."""
    line = " ".join(error.split())
    return line if len(line) <= MAX_ERROR_LENGTH else line[: MAX_ERROR_LENGTH - 1] + "…"


def expired_reason(last_error: str | None) -> str:
    """Why a job past its deadline was refunded, naming the video service's last answer."""
    if last_error is None:
        return f"{EXPIRED_REASON}: the video service still had not finished it."
    return f"{EXPIRED_REASON}; the video service's last answer was: {last_error}."


NOT_SENT_SETTLED = _(
    "This video was not sent to the video service: it was cancelled or refunded before "
    "it could start."
)
"""Why a job chosen to start was not sent: it was settled meanwhile (expired, cancelled,
refunded by recovery), so it must not create a paid task."""

INTERRUPTED_BEFORE_RECORDED = (
    "interrupted by a restart before the video service's answer was recorded"
)
"""Why a reservation found at start-up is refunded: the request may or may not have reached
the video service, so the notice claims neither."""


def is_settled(job: Job) -> bool:
    """True when nothing more will happen to the job."""
    return job.state in {JobState.DELIVERED, JobState.REFUNDED}
