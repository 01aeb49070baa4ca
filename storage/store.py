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

from collections.abc import Callable, Sequence
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
    GuildLimits,
    GuildSettings,
    GuildStats,
    Job,
    MemberAdmission,
    NewJob,
    ProcessInfo,
    Reservation,
    UsageSummary,
)


class JobStore(Protocol):
    """The job ledger: one row per generation, moved along ``ALLOWED_TRANSITIONS``."""

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id, or ``None``."""
        ...

    async def mark_submitted(self, job_id: int, task_id: str, next_poll_at: datetime) -> bool:
        """reserved -> submitted, recording the API task id and the first poll time."""
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

    async def mark_delivered(self, job_id: int, message_id: int) -> bool:
        """completed -> delivered, recording the posted message and dropping the lease."""
        ...

    async def mark_failed(self, job_id: int, error: str) -> bool:
        """reserved | submitted | completed -> failed (still charged until refunded)."""
        ...

    async def mark_expired(self, job_id: int, error: str) -> bool:
        """submitted -> expired: the polling deadline passed (still charged until refunded)."""
        ...

    async def refund(self, job_id: int) -> bool:
        """failed | expired -> refunded. The second refund of a job returns ``False``."""
        ...

    async def fail_and_refund(self, job_id: int, error: str) -> bool:
        """queued | reserved | submitted | completed -> refunded in one step, recording ``error``.

        The requester is told through the failure-notice outbox (``unnotified_refunds``).
        """
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
    ) -> bool:
        """queued -> reserved, only while fewer than ``member_running`` jobs of the member
        and fewer than ``server_running`` jobs of the guild are reserved or submitted
        (0: no limit). The counts and the change are one atomic step. With a
        ``claimant`` the reservation is leased to it for ``lease_seconds``. ``guild_id``
        (the job's, when the caller has it) saves looking it up."""
        ...

    async def requeue(self, job_id: int, error: str) -> bool:
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

    async def schedule_poll(self, job_id: int, next_poll_at: datetime) -> bool:
        """Set the next poll time of a submitted job and count one more attempt."""
        ...

    async def set_progress_message(
        self, job_id: int, message_id: int, *, channel_id: int | None = None
    ) -> bool:
        """Remember the message showing progress (and its channel, if it moved)."""
        ...

    async def record_error(self, job_id: int, error: str) -> bool:
        """Store the last (transient) error without changing the state."""
        ...

    async def claim_delivery(
        self, job_id: int, lease_seconds: float, claimant: Claimant | None = None
    ) -> bool:
        """Lease a completed job for posting; ``False`` if another poster holds a live lease.

        The lease names ``claimant`` as its owner, so recovery never ends it while the
        claimant is live.

        Claim, post, then ``mark_delivered``. A crash after posting but before
        ``mark_delivered`` leaves a lease that runs out; whoever claims the job next must
        look for a message carrying ``Job.delivery_nonce`` before posting again.
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

    async def release_delivery(self, job_id: int) -> bool:
        """Give up a delivery lease early (posting failed; let the loop retry)."""
        ...

    async def end_delivery(self, job_id: int) -> bool:
        """End a live delivery lease now, leaving ``delivering_until`` set.

        For an attempt that may have posted (it timed out while sending): the next poster
        then looks for the post first, as after a crash.
        """
        ...

    async def mark_notified(self, job_id: int) -> bool:
        """Record that the requester of a refunded job was told; ``False`` if already so."""
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

    async def claim_redelivery(self, job_id: int) -> bool:
        """Claim a job's one "Deliver again" (delivered with its message deleted, or completed)."""
        ...

    async def record_redelivery(self, job_id: int, message_id: int) -> bool:
        """Point a delivered job at the message "Deliver again" posted."""
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

    async def all(self) -> list[ProcessInfo]:
        """Every registered process, live or not."""
        ...

    async def forget(self, process_id: str) -> bool:
        """Remove a process (stopped, or known dead): its leases become void at once."""
        ...

    async def forget_silent(self, older_than_seconds: float) -> int:
        """Remove processes not seen for ``older_than_seconds``; return how many."""
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

    async def ping(self) -> None:
        """Run a trivial query; raise if the database cannot answer (health checks)."""
        ...

    async def close(self) -> None:
        """Release the backend's connections."""
        ...
