"""Plain data the storage layer hands out: job states, jobs, balances, settings, audit rows.

Everything here is Discord-free and SQL-free. Times are timezone-aware UTC
``datetime`` objects; ids are Discord snowflakes (64-bit integers) except ``Job.id``,
which the database assigns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType


class JobState(StrEnum):
    """Where a generation job is in its lifecycle (see ``ALLOWED_TRANSITIONS``)."""

    QUEUED = "queued"
    RESERVED = "reserved"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUNDED = "refunded"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True when nothing more will ever happen to a job in this state."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[JobState] = frozenset({JobState.DELIVERED, JobState.REFUNDED})
"""States a job never leaves. Every other state is unfinished and resumed after a restart."""

UNFINISHED_STATES: tuple[JobState, ...] = tuple(s for s in JobState if s not in TERMINAL_STATES)
"""States that still need work: submit, poll, deliver or refund."""

ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        JobState.QUEUED: frozenset({JobState.RESERVED, JobState.REFUNDED}),
        JobState.RESERVED: frozenset({JobState.SUBMITTED, JobState.QUEUED, JobState.FAILED}),
        JobState.SUBMITTED: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.EXPIRED}),
        JobState.COMPLETED: frozenset({JobState.DELIVERED, JobState.FAILED}),
        JobState.FAILED: frozenset({JobState.REFUNDED}),
        JobState.EXPIRED: frozenset({JobState.REFUNDED}),
        JobState.DELIVERED: frozenset(),
        JobState.REFUNDED: frozenset(),
    }
)
"""The state machine the store enforces: ``from -> {to, ...}``.

``fail_and_refund`` is one shortcut: it performs ``-> failed -> refunded`` as a single
statement from the state the caller expects (queued, reserved, submitted or completed), so
no crash can fall between the two.
``moderator_refund`` is the other: a moderator may refund any job not refunded yet, even a
delivered one (the video stays posted; the member gets the credits back).

``queued`` is a job accepted and charged but not started: the queue moves it to ``reserved``
(``claim_queued``) when a slot is free, and a submit the API answered 429 or 402 moves it
back (``requeue``). A queued job leaves the queue unstarted only by being refunded: cancelled
(``cancel_queued``), waiting too long (``expire_queued``) or not acknowledged
(``fail_and_refund(..., expected=QUEUED)``).

Every transition names the state(s) it starts from in its ``WHERE`` clause; the shortcuts
that could start from several (``fail_and_refund``, ``mark_failed``) take the caller's
``expected`` state(s), so a job another process moved on meanwhile is never touched.
"""


@dataclass(frozen=True, slots=True)
class NewJob:
    """Everything the bot knows about a generation request before it is charged."""

    guild_id: int
    channel_id: int
    user_id: int
    mode: str
    prompt: str
    duration: int
    aspect_ratio: str
    quality: str
    sound: bool
    image_url: str | None = None
    interaction_id: int | None = None
    last_frame_url: str | None = None
    sandbox: bool = False
    role_ids: tuple[int, ...] = ()
    """The requester's roles, for allowances by role."""
    queued: bool = False
    """Create the job ``queued`` (the queue starts it) rather than ``reserved``."""
    queue_round: int | None = None
    """The job's round in the fair queue (see ``core.queue``), fixed when it arrives."""
    held_by: str | None = None
    """The process whose request will start this queued job itself (its lease, for
    ``hold_seconds``): dispatchers leave it alone meanwhile (see ``claim_queued``)."""
    hold_seconds: float = 0.0
    reply_to_message_id: int | None = None
    """Post the video as a reply to this message (Continue: the video it continues)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the job ledger: a generation, its charge and its progress.

    ``cost`` is charged for as long as the job exists in any state but ``refunded``.
    ``delivering_until`` is the delivery lease (see ``JobStore.claim_delivery``);
    ``delivery_nonce`` is unique per job and at most 25 characters, for the bot to attach
    to the posted message so a post that a crash left unrecorded can be recognised.
    """

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    interaction_id: int | None
    progress_message_id: int | None
    mode: str
    prompt: str
    image_url: str | None
    duration: int
    aspect_ratio: str
    quality: str
    sound: bool
    cost: int
    task_id: str | None
    state: JobState
    attempts: int
    next_poll_at: datetime | None
    delivering_until: datetime | None
    delivery_nonce: str
    result_url: str | None
    delivered_message_id: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    completed_at: datetime | None
    delivered_at: datetime | None
    refunded_at: datetime | None
    notified_at: datetime | None = None
    last_frame_url: str | None = None
    message_deleted_at: datetime | None = None
    redelivered_at: datetime | None = None
    refunded_by: int | None = None
    erased_at: datetime | None = None
    sandbox: bool = False
    cancelled_by: int | None = None
    queue_round: int | None = None
    last_pending_at: datetime | None = None
    """When the API last answered that the job was still unfinished."""
    lease_owner: str | None = None
    """The process holding the job's current background work (see ``Claimant``)."""
    lease_until: datetime | None = None
    upload_limit: int | None = None
    """The guild's upload limit in bytes when the request arrived (``None``: unknown)."""
    reply_to_message_id: int | None = None
    """The message this job's video is posted in reply to (the video it continues)."""


@dataclass(frozen=True, slots=True)
class CompletionTime:
    """How long one job took at the API, as far as polling can tell.

    The job completed between ``lower_seconds`` (its last "still pending" answer, or 0)
    and ``upper_seconds`` (the "completed" answer) after it was submitted.
    """

    mode: str
    quality: str
    duration: int
    sound: bool
    lower_seconds: float
    upper_seconds: float
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CostTable:
    """Credits a generation costs, in proportion to its length, rounded up:

    ``ceil(unit_credits * multiplier(quality) * seconds / unit_seconds)``.

    The default is the issue's table: 5 s std = 1 credit, 10 s doubles it, pro doubles it;
    3 s costs 1, 7 s costs 2 and 15 s costs 3 (std).
    """

    unit_credits: int = 1
    unit_seconds: int = 5
    quality_multipliers: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"std": 1, "pro": 2})
    )

    def __post_init__(self) -> None:
        """Reject tables that would make a generation free or negative."""
        if self.unit_credits < 1 or self.unit_seconds < 1:
            raise ValueError("cost table: unit_credits and unit_seconds must be at least 1")
        if not self.quality_multipliers:
            raise ValueError("cost table: at least one quality multiplier is required")
        for quality, multiplier in self.quality_multipliers.items():
            if multiplier < 1:
                raise ValueError(f"cost table: multiplier for {quality!r} must be at least 1")
        object.__setattr__(
            self, "quality_multipliers", MappingProxyType(dict(self.quality_multipliers))
        )

    def cost(self, duration: int, quality: str) -> int:
        """Credits for a ``duration``-second video at ``quality`` (``ValueError`` if unknown)."""
        if duration < 1:
            raise ValueError(f"duration must be a positive number of seconds, got {duration}")
        try:
            multiplier = self.quality_multipliers[quality]
        except KeyError:
            known = ", ".join(sorted(self.quality_multipliers))
            raise ValueError(f"unknown quality {quality!r}; expected one of: {known}") from None
        return math.ceil(self.unit_credits * multiplier * duration / self.unit_seconds)


class AllowanceSource(StrEnum):
    """Which rule set a user's allowance."""

    USER = "user"
    """A moderator's per-user override."""
    ROLE = "role"
    """The highest allowance among the member's roles."""
    GUILD = "guild"
    """The guild's default, set by a moderator."""
    DEFAULT = "default"
    """The bot-wide setting."""


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's credits in one guild for the current period."""

    guild_id: int
    user_id: int
    allowance: int
    used: int
    remaining: int
    period_start: datetime
    resets_at: datetime
    source: AllowanceSource
    role_id: int | None = None
    """The role the allowance comes from, when ``source`` is ``ROLE``."""

    @property
    def override(self) -> bool:
        """True when a per-user override sets the allowance."""
        return self.source is AllowanceSource.USER


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """Moderator-controlled settings of one guild (defaults when never configured)."""

    guild_id: int
    default_credits: int | None = None
    allowed_channel_ids: frozenset[int] = frozenset()
    blocked_words: tuple[str, ...] = ()
    log_channel_id: int | None = None
    limits: GuildLimits = field(default_factory=lambda: GuildLimits())
    language: str | None = None
    """The language a moderator chose for public messages (None: the server's Discord one)."""
    discord_locale: str | None = None
    """The server's Discord language (``guild_locale``) as last seen in an interaction."""

    def channel_allowed(self, channel_id: int) -> bool:
        """True if the bot may be used in ``channel_id`` (an empty list allows everywhere)."""
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids


@dataclass(frozen=True, slots=True)
class QueueRounds:
    """What the next job's round depends on (all ``None`` when there are no such jobs)."""

    lowest_unfinished: int | None
    """The lowest round queued or running in the guild: the round being served."""
    highest: int | None
    """The highest round any job of the guild ever had."""
    member_unfinished: int | None
    """The member's highest round among their queued or running jobs."""


@dataclass(frozen=True, slots=True)
class MemberAdmission:
    """What admitting a member's request is decided from (the guild's rules, the member's
    latest request and queued jobs, the queue's rounds), read in one transaction."""

    guild: GuildSettings
    last_request_at: datetime | None
    """When the member's latest request that was not refunded was accepted."""
    queued: int
    """How many of the member's jobs wait in the queue."""
    oldest_queued_id: int | None
    """The member's job that has waited longest, if any."""
    rounds: QueueRounds


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of ``CreditStore.admit_and_reserve``: the charged job, or, when the
    member's credits were short, ``job`` is ``None`` and ``balance`` says why."""

    job: Job | None
    balance: Balance | None = None


@dataclass(frozen=True, slots=True)
class GuildLimits:
    """A guild's queue limits as moderators set them; ``None`` means the bot's default."""

    member_running: int | None = None
    member_queued: int | None = None
    server_running: int | None = None
    cooldown_seconds: int | None = None


class AuditAction(StrEnum):
    """Kinds of moderator change recorded in the audit log."""

    SET_USER_ALLOWANCE = "set_user_allowance"
    SET_GUILD_DEFAULT = "set_guild_default"
    RESET_USAGE = "reset_usage"
    ADD_ALLOWED_CHANNEL = "add_allowed_channel"
    REMOVE_ALLOWED_CHANNEL = "remove_allowed_channel"
    ADD_BLOCKED_WORD = "add_blocked_word"
    REMOVE_BLOCKED_WORD = "remove_blocked_word"
    CLEAR_SETTINGS = "clear_settings"
    SET_LOG_CHANNEL = "set_log_channel"
    REFUND_JOB = "refund_job"
    SET_ROLE_ALLOWANCE = "set_role_allowance"
    SET_LIMITS = "set_limits"
    ERASE_MEMBER_DATA = "erase_member_data"
    SET_LANGUAGE = "set_language"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One moderator change: who changed what for whom, from which value to which, when."""

    id: int
    guild_id: int
    moderator_id: int
    target_user_id: int | None
    action: AuditAction
    old_value: str | None
    new_value: str | None
    created_at: datetime
    target_role_id: int | None = None


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One user's line in a usage summary."""

    user_id: int
    credits: int
    jobs: int


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """What a guild used in one credit period."""

    guild_id: int
    period_start: datetime
    period_end: datetime
    jobs_by_state: Mapping[JobState, int]
    credits_spent: int
    top_users: tuple[UserUsage, ...]

    @property
    def total_jobs(self) -> int:
        """Jobs created in the period, whatever their state."""
        return sum(self.jobs_by_state.values())


@dataclass(frozen=True, slots=True)
class MemberVideos:
    """One member's line in /stats: videos made and credits spent in the period."""

    user_id: int
    videos: int
    credits: int


@dataclass(frozen=True, slots=True)
class DayOutcomes:
    """Jobs of one UTC day by outcome: made (posted), failed (never posted), pending."""

    day: datetime
    made: int = 0
    failed: int = 0
    pending: int = 0


@dataclass(frozen=True, slots=True)
class GuildStats:
    """What a guild made, spent and was refunded in ``[since, until)``.

    ``seconds_made`` counts seconds of video the real service produced (sandbox clips left
    out), keyed by ``(quality, sound)``: what an estimate of the service's bill is based on.
    """

    guild_id: int
    since: datetime
    until: datetime
    made: int
    failed: int
    pending: int
    refunded: int
    credits_spent: int
    credits_refunded: int
    top_members: tuple[MemberVideos, ...]
    busiest_hours: tuple[tuple[int, int], ...]
    """``(hour of day UTC, jobs)``, busiest first."""
    days: tuple[DayOutcomes, ...]
    """One entry per UTC day of the period, oldest first (days without jobs included)."""
    seconds_made: Mapping[tuple[str, bool], int]

    @property
    def total_jobs(self) -> int:
        """Every job created in the period."""
        return self.made + self.failed + self.pending


@dataclass(frozen=True, slots=True)
class Backlog:
    """How much work is waiting, for operators' metrics (the whole database, every guild).

    ``by_state`` counts unfinished jobs (every state in ``UNFINISHED_STATES`` is present).
    ``due_polls`` are submitted jobs whose poll time has come; ``due_deliveries`` completed
    jobs nobody holds a live delivery lease on. ``oldest_*`` say since when the oldest of
    each has been waiting (``None`` when there is none).
    """

    by_state: Mapping[JobState, int]
    due_polls: int
    oldest_due_poll: datetime | None
    due_deliveries: int
    oldest_due_delivery: datetime | None


DEFAULT_LIVENESS_SECONDS = 30.0
"""How stale a process's heartbeat may be before it counts as dead (its leases void)."""


@dataclass(frozen=True, slots=True)
class Claimant:
    """Who claims background work: a process id, and how stale another process's
    heartbeat may grow before that process counts as dead and its leases as void.

    A lease (``Job.lease_owner``/``lease_until``) is *live* while its end time has not
    passed and its owner is live (a ``processes`` row seen within ``live_within``).
    Claims take work that is free (no live lease) or already this claimant's.
    """

    process_id: str
    live_within: float = DEFAULT_LIVENESS_SECONDS


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One registered bot process (a ``processes`` row)."""

    id: str
    started: datetime
    last_seen: datetime


ERASED_USER_ID = 0
"""The ``user_id`` of a job whose member erased their data: counted, nobody's."""


@dataclass(frozen=True, slots=True)
class MemberErasure:
    """What ``PrivacyStore.erase_member`` did: counts only, never the erased content."""

    jobs_erased: int
    jobs_still_counted: int
    allowance_removed: bool
    usage_resets_removed: int
    audit_entries_anonymised: int
    unfinished: int
    audit: AuditEntry | None


@dataclass(frozen=True, slots=True)
class GateState:
    """Whether new jobs may be sent to the API (``SubmitGateStore``), shared by processes."""

    out_of_credits: bool = False
    """The API answered 402: submission is paused for everyone until a probe is accepted."""
    not_before: datetime | None = None
    """No submit before this moment (a 402 backoff, a 429 Retry-After); ``None``: open."""
    backoff_seconds: float | None = None
    """How long the next 402 pauses for; ``None``: the first backoff."""


@dataclass(frozen=True, slots=True)
class WaitingMember:
    """A member with queued jobs who may start one now (``JobStore.waiting_members``)."""

    guild_id: int
    user_id: int
    running: int
    """The member's jobs holding a running slot (reserved or submitted)."""
    guild_running: int
    """The guild's jobs holding a running slot."""
    member_limit: int
    """The guild's running limit per member (0: none)."""
    server_limit: int
    """The guild's running limit (0: none)."""
