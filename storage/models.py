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
        JobState.RESERVED: frozenset({JobState.SUBMITTED, JobState.FAILED}),
        JobState.SUBMITTED: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.EXPIRED}),
        JobState.COMPLETED: frozenset({JobState.DELIVERED, JobState.FAILED}),
        JobState.FAILED: frozenset({JobState.REFUNDED}),
        JobState.EXPIRED: frozenset({JobState.REFUNDED}),
        JobState.DELIVERED: frozenset(),
        JobState.REFUNDED: frozenset(),
    }
)
"""The state machine the store enforces: ``from -> {to, ...}``.

``fail_and_refund`` is the one shortcut: it performs ``-> failed -> refunded`` as a single
statement from reserved, submitted or completed, so no crash can fall between the two.
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
    last_pending_at: datetime | None = None
    """When the API last answered that the job was still unfinished."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer of ``CreditStore.reserve_in_guild``: the job, or the balance that was short."""

    guild: GuildSettings
    job: Job | None
    balance: Balance | None = None


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
    """Credits a generation costs: ``unit_credits`` per started ``unit_seconds`` of video,
    multiplied by the quality's multiplier.

    The default is the issue's table: 5 s std = 1 credit, 10 s doubles it, pro doubles it.
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
        return self.unit_credits * math.ceil(duration / self.unit_seconds) * multiplier


class AllowanceSource(StrEnum):
    """Which rule set a user's allowance."""

    USER = "user"
    """A moderator's per-user override."""
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

    def channel_allowed(self, channel_id: int) -> bool:
        """True if the bot may be used in ``channel_id`` (an empty list allows everywhere)."""
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids


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
