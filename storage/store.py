"""The storage interface the bot and the delivery loop call.

These protocols hold no SQL; ``storage.sql.SQLStore`` implements them once, in SQL that
runs on SQLite and on PostgreSQL (``storage.open_store`` picks the engine), without
``core`` or the cogs knowing which.

Contract every implementation keeps:

* Every state change is one atomic step guarded by the expected current state and returns
  ``True`` only for the caller that made it. ``False`` means "someone else already did it,
  or the job is not in a state that allows it", and nothing changed.
* ``CreditStore.reserve`` checks the balance and creates the charged job in one atomic step.
* A job is charged while it exists in any state but ``refunded``; a refund is a state
  change, so it happens at most once.
* "Now" comes from the store's clock (timezone-aware UTC), so tests can move time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Protocol

from storage.credits import Period
from storage.models import (
    AuditEntry,
    Backlog,
    Balance,
    Claimant,
    CompletionTime,
    CostTable,
    GateState,
    GuildLimits,
    GuildSettings,
    GuildStats,
    Job,
    JobState,
    MemberAdmission,
    MemberErasure,
    NewJob,
    ProcessInfo,
    Reservation,
    UsageSummary,
    WaitingMember,
)


class JobStore(Protocol):
    """The job ledger: one row per generation, moved along ``ALLOWED_TRANSITIONS``."""

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id, or ``None``."""
        ...

    async def mark_submitted(
        self,
        job_id: int,
        task_id: str,
        next_poll_at: datetime,
        *,
        claimant: Claimant | None = None,
    ) -> bool:
        """reserved -> submitted, recording the API task id and the first poll time;
        with a ``claimant``, only while the reservation is still leased to it (fenced)."""
        ...

    async def mark_completed(self, job_id: int, result_url: str) -> bool:
        """submitted -> completed, recording the video URL and how long the job took.

        In the same atomic step a ``CompletionTime`` is recorded: the job completed between
        its ``last_pending_at`` (or its submission) and now, in seconds after submission.
        """
        ...

    async def mark_pending(self, job_id: int, next_poll_at: datetime) -> bool:
        """A status call said the submitted job is unfinished: set ``last_pending_at`` to
        now and the next poll time, and count one more attempt."""
        ...

    async def completion_times(self, limit: int) -> list[CompletionTime]:
        """The most recent recorded completion times, newest first, at most ``limit``."""
        ...

    async def mark_delivered(self, job_id: int, message_id: int, claimant: Claimant) -> bool:
        """completed -> delivered, recording the posted message and dropping the lease;
        only while ``claimant`` still holds the posting lease (fenced)."""
        ...

    async def mark_failed(
        self, job_id: int, error: str, *, expected: JobState | Collection[JobState]
    ) -> bool:
        """``expected`` (some of reserved | submitted | completed) -> failed (still charged
        until refunded)."""
        ...

    async def mark_expired(self, job_id: int, error: str) -> bool:
        """submitted -> expired: the polling deadline passed (still charged until refunded)."""
        ...

    async def refund(self, job_id: int) -> bool:
        """failed | expired -> refunded. The second refund of a job returns ``False``."""
        ...

    async def fail_and_refund(
        self,
        job_id: int,
        error: str,
        *,
        expected: JobState | Collection[JobState],
        claimant: Claimant | None = None,
    ) -> bool:
        """``expected`` (the state(s) the caller knows the job is in, some of queued |
        reserved | submitted | completed) -> refunded in one step, recording ``error``.
        With a ``claimant`` (refunding its own reservation) it is fenced by that lease too.

        A job in any other state (moved on by another process) is left alone. The
        requester is told through the failure-notice outbox (``unnotified_refunds``).
        """
        ...

    async def expire_queued(
        self, created_before: datetime, error: str, *, limit: int = 500
    ) -> list[Job]:
        """queued -> refunded for the jobs still queued that arrived before the cut-off
        (at most ``limit``, oldest first); return them. Only queued jobs: a job just
        started elsewhere is not touched."""
        ...

    async def release_hold(self, job_id: int, claimant: Claimant) -> bool:
        """End the claimant's hold on its just-accepted, still queued job."""
        ...

    async def hold_reservation(
        self, job_id: int, claimant: Claimant, lease_seconds: float
    ) -> Job | None:
        """Renew the claimant's lease on a reserved job it is about to submit; ``None`` if
        it is no longer reserved or another live process holds it (do not send it)."""
        ...

    async def waiting_members(
        self,
        *,
        member_running: int,
        server_running: int,
        guild_id: int | None = None,
        user_id: int | None = None,
    ) -> list[WaitingMember]:
        """Members with queued jobs who may start one now (they and their guild are under
        their running limits; the defaults given apply to guilds that set none), read
        from the kept running counts, so the cost follows what can start. ``user_id``
        (with ``guild_id``) asks about one member."""
        ...

    async def member_queues(
        self,
        members: Sequence[tuple[int, int]],
        *,
        first: Sequence[int | None] | None = None,
        fair_limit: int | None = None,
    ) -> list[Job]:
        """The queued jobs of these (guild, member) pairs: of member ``i`` only the first
        ``first[i]``, and of them all only the first ``fair_limit``, in the fair order
        (by round, then oldest; ``None``: all)."""
        ...

    async def claim_queued(
        self,
        job_id: int,
        *,
        member_running: int = 0,
        server_running: int = 0,
        claimant: Claimant | None = None,
        lease_seconds: float | None = None,
        guild_id: int | None = None,
        take_held: bool = True,
    ) -> bool:
        """queued -> reserved, only while fewer than ``member_running`` jobs of the member
        and fewer than ``server_running`` jobs of the guild are reserved or submitted
        (0: no limit). The counts and the change are one atomic step. With a
        ``claimant`` the reservation is leased to it for ``lease_seconds``. ``guild_id``
        (the job's, when the caller has it) saves looking it up. Without ``take_held`` (a
        dispatcher) a job still held for its own request (``NewJob.held_by``) is left."""
        ...

    async def requeue(
        self, job_id: int, error: str, *, claimant: Claimant | None = None
    ) -> bool:
        """reserved -> queued (the API answered 429 or 402); the credits stay held."""
        ...

    async def cancel_queued(self, job_id: int, cancelled_by: int) -> bool:
        """queued -> refunded, recording who cancelled (and marking the requester told)."""
        ...

    async def queued_jobs(self, guild_id: int | None = None, limit: int = 1000) -> list[Job]:
        """Queued jobs (of one guild, or of all), oldest first, at most ``limit``."""
        ...

    async def running_counts(self, guild_id: int | None = None) -> dict[tuple[int, int], int]:
        """How many jobs hold a slot (reserved or submitted) per (guild, member)."""
        ...

    async def last_request_at(self, guild_id: int, user_id: int) -> datetime | None:
        """When the member's latest request that was not refunded was accepted."""
        ...

    async def schedule_poll(
        self, job_id: int, next_poll_at: datetime, error: str | None = None
    ) -> bool:
        """Set the next poll time of a submitted job and count one more attempt; with
        ``error``, record why the last status call gave no answer."""
        ...

    async def set_progress_message(
        self, job_id: int, message_id: int, *, channel_id: int | None = None
    ) -> bool:
        """Remember the message showing progress (and its channel, if it moved)."""
        ...

    async def record_error(self, job_id: int, error: str) -> bool:
        """Store the last (transient) error without changing the state."""
        ...

    async def claim_delivery(self, job_id: int, lease_seconds: float, claimant: Claimant) -> bool:
        """Lease a job for posting its video (completed, or delivered with its message
        deleted and not yet delivered again); ``False`` if not postable or held.

        The lease names ``claimant`` as its owner, so recovery never ends it while the
        claimant is live, and its end is read by the database's clock.

        Claim, post, then ``mark_delivered`` / ``record_redelivery`` (fenced by the lease).
        A crash after posting but before the record leaves a lease that runs out;
        whoever claims the job next looks for the post before posting again
        (``botkit.posting``).
        """
        ...

    async def end_stale_leases(self, claimant: Claimant | None = None) -> int:
        """End every live delivery lease whose owner is not live; return the count.

        ``delivering_until`` stays set, so the next poster knows a post may already exist.
        A live process's lease is never ended.
        """
        ...

    async def set_upload_limit(self, job_id: int, limit_bytes: int) -> bool:
        """Record the guild's upload limit (bytes) where the request arrived, for delivery."""
        ...

    async def poll_candidates(
        self, claimant: Claimant, now: datetime | None = None, limit: int = 50
    ) -> list[Job]:
        """Due submitted jobs free for the claimant, round-robin between guilds."""
        ...

    async def claim_polls(
        self,
        job_ids: Sequence[int],
        claimant: Claimant,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> list[Job]:
        """Lease these jobs' next poll to the claimant; return those it won, in order."""
        ...

    async def next_free_poll_at(self, claimant: Claimant) -> datetime | None:
        """The earliest poll time of a submitted job nobody holds a live lease on."""
        ...

    async def claim_notices(
        self, claimant: Claimant, within_seconds: float, lease_seconds: float, limit: int = 50
    ) -> list[Job]:
        """Lease untold refunds (refunded within the window) to the claimant, oldest first."""
        ...

    async def claim_notice(self, job_id: int, claimant: Claimant, lease_seconds: float) -> bool:
        """Lease one untold refund's notice to the claimant; ``False`` if another has it."""
        ...

    async def refund_stale_reserved(self, job_id: int, error: str, claimant: Claimant) -> bool:
        """reserved -> refunded, only while the reservation's lease is void."""
        ...

    async def release_delivery(self, job_id: int, claimant: Claimant) -> bool:
        """Give up the claimant's posting lease (nothing was posted; let anyone retry)."""
        ...

    async def end_delivery(self, job_id: int, claimant: Claimant) -> bool:
        """End a live delivery lease now, leaving ``delivering_until`` set.

        For an attempt that may have posted (it timed out while sending): the next poster
        then looks for the post first, as after a crash.
        """
        ...

    async def mark_notified(self, job_id: int, claimant: Claimant | None = None) -> bool:
        """Record that the requester of a refunded job was told; ``False`` if already so
        (or, with a ``claimant``, if the notice's lease is no longer its own)."""
        ...

    async def unnotified_refunds(self, within_seconds: float, limit: int = 50) -> list[Job]:
        """Refunded jobs whose requester was not told yet, refunded within the window.

        The outbox of failure notices: post the notice, then ``mark_notified``; a crash in
        between repeats a notice rather than losing it.
        """
        ...

    async def due_jobs(self, now: datetime | None = None, limit: int = 50) -> list[Job]:
        """Submitted jobs whose poll time has come, earliest first, at most ``limit``."""
        ...

    async def deliverable_jobs(self, limit: int = 50) -> list[Job]:
        """Completed jobs nobody holds a live delivery lease on, oldest first."""
        ...

    async def resumable_jobs(self) -> list[Job]:
        """Every unfinished job (not delivered, not refunded), for start-up recovery."""
        ...

    async def stale_reserved(
        self, older_than_seconds: float, claimant: Claimant | None = None
    ) -> list[Job]:
        """Reserved jobs unchanged for longer than this whose lease is void: a crash fell
        between reserve and submit (measured from the last change, as a queued job is
        reserved when it starts). A reservation leased to a live process is never listed."""
        ...

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        """A user's latest jobs in a guild, newest first."""
        ...

    async def usage_summary(
        self, guild_id: int, at: datetime | None = None, *, top: int = 5
    ) -> UsageSummary:
        """Jobs by state, credits spent and top users of the period containing ``at``."""
        ...

    async def mark_message_deleted(self, job_id: int, message_id: int) -> bool:
        """Record that the job's delivered message ``message_id`` was deleted."""
        ...

    async def moderator_refund(self, job_id: int, moderator_id: int) -> AuditEntry | None:
        """Refund any job not refunded yet (even a delivered one) by a moderator; audited.

        ``None`` when the job is unknown or already refunded: a job is refunded at most once.
        """
        ...

    async def record_redelivery(self, job_id: int, message_id: int, claimant: Claimant) -> bool:
        """Use up the job's one "Deliver again": point it at the message posted, only
        while ``claimant`` holds the posting lease (``claim_delivery``)."""
        ...

    async def guild_stats(
        self, guild_id: int, since: datetime, until: datetime, *, top: int = 5
    ) -> GuildStats:
        """Outcomes, credits, top members, busiest hours and seconds made in ``[since, until)``."""
        ...

    async def erase_settled_before(self, before: datetime, *, batch: int = 500) -> int:
        """Erase prompts, image and result URLs of settled jobs created before ``before``."""
        ...

    async def backlog(self, now: datetime | None = None) -> Backlog:
        """Unfinished jobs by state and the due polls and deliveries, for metrics.

        Called on every metrics scrape, so it must stay cheap: each query reads only
        unfinished jobs through an index on ``state``, never the delivered history.
        """
        ...


class CreditStore(Protocol):
    """Allowances, the atomic reservation, and moderators' changes to them."""

    @property
    def cost_table(self) -> CostTable:
        """What generations cost."""
        ...

    @property
    def period(self) -> Period:
        """How often allowances reset."""
        ...

    def cost(self, duration: int, quality: str) -> int:
        """Credits a generation of ``duration`` seconds at ``quality`` costs."""
        ...

    async def reserve(self, new_job: NewJob) -> Job | None:
        """Charge the user and create the job (reserved, or queued if ``new_job.queued``)
        atomically. The allowance honours ``new_job.role_ids`` (see ``balance``).

        Returns ``None``, changing nothing, if the user's remaining credits in the current
        period are below the job's cost.
        """
        ...

    async def admit_and_reserve(
        self,
        guild_id: int,
        user_id: int,
        role_ids: Sequence[int],
        decide: Callable[[MemberAdmission], NewJob],
    ) -> Reservation:
        """Admit and charge a member's request in one transaction, under the member's lock.

        ``decide`` gets what the admission rests on (guild rules, the member's latest
        request and queued jobs, the queue's rounds) and raises to refuse (nothing
        changes; the exception propagates) or returns the job to reserve. When credits are
        short, ``Reservation.job`` is ``None`` and ``Reservation.balance`` says why.
        """
        ...

    async def admission(self, guild_id: int, user_id: int) -> MemberAdmission:
        """What admitting a request of the member would be decided from, now (a read)."""
        ...

    async def balance(self, guild_id: int, user_id: int, role_ids: Sequence[int] = ()) -> Balance:
        """Allowance, used and remaining credits, when the allowance resets, and its source.

        The allowance is the member's override, else the highest allowance among
        ``role_ids`` (their roles), else the guild default, else the bot setting.
        """
        ...

    async def set_role_allowance(
        self, guild_id: int, role_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` remove) the allowance of members with a role; audited."""
        ...

    async def role_allowances(self, guild_id: int) -> dict[int, int]:
        """The guild's role allowances: role id -> credits per period."""
        ...

    async def set_user_allowance(
        self, guild_id: int, user_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) a user's per-period override; audited."""
        ...

    async def set_guild_default(
        self, guild_id: int, credits: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) the guild's default allowance; audited."""
        ...

    async def reset_usage(self, guild_id: int, user_id: int, moderator_id: int) -> AuditEntry:
        """Give the user their full allowance back for the current period; audited."""
        ...

    async def list_audit(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The guild's latest moderator changes (credits and settings), newest first."""
        ...


class GuildSettingsStore(Protocol):
    """Per-guild allowed channels and blocked words; every change is audited."""

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if it never configured anything)."""
        ...

    async def add_allowed_channel(self, guild_id: int, channel_id: int, moderator_id: int) -> bool:
        """Allow the bot in a channel; ``False`` if it already was."""
        ...

    async def remove_allowed_channel(
        self, guild_id: int, channel_id: int, moderator_id: int
    ) -> bool:
        """Stop allowing a channel; ``False`` if it was not in the list."""
        ...

    async def add_blocked_word(self, guild_id: int, word: str, moderator_id: int) -> bool:
        """Block a word (stored stripped and lower-case); ``False`` if already blocked."""
        ...

    async def remove_blocked_word(self, guild_id: int, word: str, moderator_id: int) -> bool:
        """Unblock a word; ``False`` if it was not blocked."""
        ...

    async def clear(self, guild_id: int, moderator_id: int) -> bool:
        """Drop all allowed channels and blocked words; ``False`` if there were none."""
        ...

    async def set_log_channel(
        self, guild_id: int, channel_id: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` turn off) the moderator log channel; audited."""
        ...

    async def set_limits(self, guild_id: int, limits: GuildLimits, moderator_id: int) -> AuditEntry:
        """Replace the guild's queue limits (``None`` fields: the default); audited."""
        ...

    async def set_language(
        self, guild_id: int, language: str | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) the language of public messages; audited."""
        ...

    async def remember_discord_locale(self, guild_id: int, locale: str) -> bool:
        """Record the server's Discord language; ``False`` if it was already recorded."""
        ...


class ProcessStore(Protocol):
    """The registry of running bot processes (see ``core.processes``)."""

    async def beat(self, process_id: str) -> None:
        """Register the process, or record that it is still alive."""
        ...

    async def live(self, within_seconds: float) -> list[ProcessInfo]:
        """Processes seen within the last ``within_seconds``, oldest first."""
        ...

    async def now(self) -> datetime:
        """The registry's clock (the database's) now, read in a statement of its own."""
        ...

    async def all(self) -> list[ProcessInfo]:
        """Every registered process, live or not."""
        ...

    async def forget(self, process_id: str) -> bool:
        """Remove a process (stopped, or known dead): its leases become void at once."""
        ...

    async def forget_silent(self, older_than_seconds: float) -> int:
        """Remove processes not seen for ``older_than_seconds``; return how many."""
        ...


class CommandSyncStore(Protocol):
    """The hash of the command payload each sync target last got (``SYNC_COMMANDS=auto``)."""

    async def stored_hash(self, target: str) -> str | None:
        """The hash of the payload last synced to ``target``, if any."""
        ...

    async def sync_if_changed(
        self, target: str, payload_hash: str, sync: Callable[[], Awaitable[object]]
    ) -> bool:
        """Run ``sync()`` unless ``target`` has ``payload_hash``, in one process at a time;
        store the hash after it succeeded; True if it ran."""
        ...

    async def forget(self, target: str) -> None:
        """Drop what is known about ``target``."""
        ...


class PrivacyStore(Protocol):
    """A member's data in one guild: read out, or erased on request (``storage.sql.privacy``)."""

    async def member_jobs(self, guild_id: int, user_id: int) -> list[Job]:
        """Every job of the member in the guild, oldest first."""
        ...

    async def member_audit(self, guild_id: int, user_id: int) -> list[AuditEntry]:
        """Audit entries about the member, oldest first."""
        ...

    async def member_allowance(self, guild_id: int, user_id: int) -> int | None:
        """The member's own allowance (set by a moderator), if any."""
        ...

    async def erase_member(self, guild_id: int, user_id: int, by_user_id: int) -> MemberErasure:
        """Erase the member's settled jobs' content and links and their per-member rows."""
        ...

    async def forget_due(self, now: datetime | None = None) -> int:
        """Erased members' jobs whose credit period ended become nobody's."""
        ...


class SubmitGateStore(Protocol):
    """Whether new jobs may be sent to the API: one row every process shares."""

    async def read(self) -> GateState:
        """The gate as it is now."""
        ...

    async def pause_out_of_credits(self, first_seconds: float, max_seconds: float) -> GateState:
        """A 402: pause for the current backoff (``first_seconds`` at first) and double the
        next one up to ``max_seconds``; return the gate after."""
        ...

    async def hold(self, seconds: float) -> GateState:
        """A 429: no submit for ``seconds`` (never shortening a longer hold)."""
        ...

    async def claim_probe(self, lease_seconds: float) -> bool:
        """Take the one probe of a 402 pause whose backoff is over; ``False`` if another
        process took it or the gate is not due."""
        ...

    async def open(self) -> bool:
        """The API accepted a job: lift any pause or hold; ``True`` if a 402 pause ended."""
        ...


class Store(Protocol):
    """Everything the bot remembers."""

    @property
    def jobs(self) -> JobStore:
        """The job ledger."""
        ...

    @property
    def credits(self) -> CreditStore:
        """Allowances and reservations."""
        ...

    @property
    def guilds(self) -> GuildSettingsStore:
        """Per-guild settings."""
        ...

    @property
    def processes(self) -> ProcessStore:
        """The registry of running bot processes."""
        ...

    @property
    def privacy(self) -> PrivacyStore:
        """A member's data, exported or erased on request."""
        ...

    @property
    def command_sync(self) -> CommandSyncStore:
        """The command payload hash per sync target."""
        ...

    @property
    def gate(self) -> SubmitGateStore:
        """The submit gate (the 402 pause and 429 hold), shared by every process."""
        ...

    async def ping(self) -> None:
        """Run a trivial query; raise if the database cannot answer (health checks)."""
        ...

    async def close(self) -> None:
        """Release the backend's connections."""
        ...
