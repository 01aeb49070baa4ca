"""Cancelling a queued job: by its requester or a moderator, its credits returned once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from core import metrics
from storage.models import Job, JobState
from storage.store import Store

log = logging.getLogger(__name__)


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


class Cancels:
    """Cancels queued jobs (one guarded ``queued -> refunded`` each) and tells listeners.

    Several processes: the cancel itself is one guarded statement, so a cancel racing a
    start in another process either wins (the job never starts) or says the job was sent.
    The listeners are this process's (its moderator log sink); ``on_cancelled`` wakes
    this process's dispatcher, and the others see the freed place at their next round.
    """

    def __init__(self, store: Store, on_cancelled: Callable[[Job], None]) -> None:
        self._store = store
        self._on_cancelled = on_cancelled
        self._listeners: list[CancelListener] = []

    def add_listener(self, listener: CancelListener) -> None:
        """Call ``listener`` after each cancel (say, to post it in a moderator log).

        Listeners run synchronously and must not block; one that raises is logged.
        """
        self._listeners.append(listener)

    async def cancel(
        self, job_id: int, guild_id: int, by_user_id: int, *, moderator: bool
    ) -> tuple[CancelOutcome, Job | None]:
        """Cancel a queued job for its requester or a moderator, returning its credits once."""
        job = await self._store.jobs.get_job(job_id)
        if job is None or job.guild_id != guild_id:
            return CancelOutcome.NOT_FOUND, None
        if job.user_id != by_user_id and not moderator:
            return CancelOutcome.NOT_ALLOWED, job
        if job.state is not JobState.QUEUED:
            return why_not(job), job
        if not await self._store.jobs.cancel_queued(job.id, by_user_id):
            job = await self._reload(job)  # it started, or was cancelled, a moment ago
            return why_not(job), job
        metrics.count_credits_refunded(job.cost)
        cancelled = await self._reload(job)
        log.info("Job %s cancelled by %s before it started", job.id, by_user_id)
        event = CancelEvent(cancelled, by_user_id, moderator and job.user_id != by_user_id)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("A cancel listener failed for job %s", job.id)
        self._on_cancelled(cancelled)  # its place frees up; positions change
        return CancelOutcome.CANCELLED, cancelled

    async def _reload(self, job: Job) -> Job:
        fresh = await self._store.jobs.get_job(job.id)
        return fresh if fresh is not None else job


def why_not(job: Job) -> CancelOutcome:
    """Why a job that is not queued cannot be cancelled."""
    if job.state in {JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED}:
        return CancelOutcome.ALREADY_SENT
    return CancelOutcome.ALREADY_SETTLED
