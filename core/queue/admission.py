"""Admission: the acknowledgement path's checks and charge, and the read-only pre-check.

`Admission.accept` admits and reserves a request in ONE database transaction (cool-down,
queue limit, channel, prompt, round and credits, under the member's lock, see
`CreditStore.admit_and_reserve`). The job is created ``queued`` and *held* for its own
request for `ACCEPT_HOLD_SECONDS`: its lease names this process, so no dispatcher (in any
process) starts it before the request does, and an outright refusal by the API reaches
the requester in the reply to their command rather than as a later notice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from core.errors import Refusal
from core.jobs import JobDraft, JobService
from core.limits import Limits, cooldown_refusal, queue_full_refusal
from core.settings import BotSettings
from storage.models import Job, MemberAdmission
from storage.store import Store

ACCEPT_HOLD_SECONDS = 15.0
"""How long a just-accepted job is left to its own request to start (`Dispatcher.start`
right after the acknowledgement) before any dispatcher may start it instead."""


class QueueFull(Exception):
    """The member already has `limit` jobs waiting (becomes a `Refusal` in `Admission`)."""

    def __init__(self, queued: int, limit: int, oldest_id: int | None) -> None:
        super().__init__(f"{queued} of {limit} queued")
        self.queued = queued
        self.limit = limit
        self.oldest_id = oldest_id


class Admission:
    """Admits requests (nothing kept in memory: every rule is read in the transaction)."""

    def __init__(
        self,
        store: Store,
        jobs: JobService,
        settings: BotSettings,
        starts_at: Callable[[Job], Awaitable[datetime | None]],
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._settings = settings
        self._starts_at = starts_at
        self._clock = clock

    async def limits(self, guild_id: int) -> Limits:
        """The guild's effective limits."""
        return Limits.resolve((await self._store.guilds.get(guild_id)).limits)

    async def accept(self, draft: JobDraft) -> Job:
        """Admit and reserve a request: the acknowledgement path's one database transaction.

        The cool-down and the member's queue limit are checked on the same snapshot as the
        credits and under the same member lock as the charge (see `JobService.reserve`),
        so two requests of one member at once cannot both pass the cool-down. Raises
        `Refusal` (nothing charged) to say no. The job is held for this request (see the
        module docstring).
        """
        try:
            return await self._jobs.reserve(
                draft, admit=self._admit, hold_seconds=ACCEPT_HOLD_SECONDS
            )
        except QueueFull as full:
            raise await self._queue_full(full) from None

    async def admit(self, draft: JobDraft) -> None:
        """Refuse (for free) a request inside the member's cool-down or over their queue
        limit; say when to try again. A check only: `accept` checks again atomically."""
        await self.admit_member(draft.guild_id, draft.user_id)

    async def admit_member(self, guild_id: int, user_id: int) -> None:
        """`admit` for flows that know only who is asking (the Animate image menu)."""
        try:
            self._admit(await self._store.credits.admission(guild_id, user_id))
        except QueueFull as full:
            raise await self._queue_full(full) from None

    def _admit(self, admission: MemberAdmission) -> None:
        """The admission rules on a snapshot: raise the cool-down `Refusal`, or
        `QueueFull` (whose refusal needs the queue's estimates, read afterwards)."""
        limits = Limits.resolve(admission.guild.limits)
        refusal = cooldown_refusal(
            admission.last_request_at, limits.cooldown_seconds, self._clock()
        )
        if refusal is not None:
            raise refusal
        if limits.member_queued and admission.queued >= limits.member_queued:
            raise QueueFull(admission.queued, limits.member_queued, admission.oldest_queued_id)

    async def _queue_full(self, full: QueueFull) -> Refusal:
        """The queue-limit refusal, saying when the member's oldest waiting job should start."""
        oldest = None if full.oldest_id is None else await self._store.jobs.get_job(full.oldest_id)
        now = self._clock()
        max_wait = timedelta(seconds=self._settings.queue_max_wait_seconds)
        retry_at = now + max_wait
        if oldest is not None:
            retry_at = await self._starts_at(oldest) or oldest.created_at + max_wait
        return queue_full_refusal(full.queued, full.limit, retry_at, now)
