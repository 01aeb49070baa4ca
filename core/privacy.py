"""A member's data on request, free of Discord: the export, and the erase.

`/privacy export` gives a member everything the bot keeps about them in a guild (their
jobs with prompts, settings, states, times and links, their credits, and the audit
entries about them) as one JSON document. `/privacy delete` (and a
moderator's `/privacy delete-member`) first stops the member's unfinished jobs, each
refunded once (a queued one through the queue's own cancel, one already at the video
service by refunding it, since the service has no cancel), then erases the rest in one
transaction (see `storage.sql.privacy`). What is erased never reaches a log or the audit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import metrics
from core.queue import CancelOutcome, QueueService
from storage.models import AuditEntry, Job, JobState, MemberErasure
from storage.store import Store

log = logging.getLogger(__name__)

STOPPED_REASON = "cancelled: the member asked for their data to be deleted"
EXPORT_FORMAT = 1
"""Bumped when the export's layout changes."""


def message_link(guild_id: int, channel_id: int, message_id: int | None) -> str | None:
    """A Discord link to a message, or None when there is no message."""
    if message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def job_record(job: Job) -> dict[str, Any]:
    """One job as the export shows it."""
    return {
        "id": job.id,
        "type": job.mode,
        "prompt": job.prompt,
        "settings": {
            "duration_seconds": job.duration,
            "aspect_ratio": job.aspect_ratio,
            "quality": job.quality,
            "sound": job.sound,
        },
        "state": job.state.value,
        "credits": job.cost,
        "refunded": job.refunded_at is not None,
        "error": job.last_error,
        "created_at": _time(job.created_at),
        "submitted_at": _time(job.submitted_at),
        "completed_at": _time(job.completed_at),
        "delivered_at": _time(job.delivered_at),
        "refunded_at": _time(job.refunded_at),
        "content_erased_at": _time(job.erased_at),
        "image_url": job.image_url,
        "last_frame_url": job.last_frame_url,
        "video_url": job.result_url,
        "status_card": message_link(job.guild_id, job.channel_id, job.progress_message_id),
        "video_message": message_link(job.guild_id, job.channel_id, job.delivered_message_id),
        "sandbox_test_clip": job.sandbox,
    }


def audit_record(entry: AuditEntry) -> dict[str, Any]:
    """One audit entry as the export shows it."""
    return {
        "id": entry.id,
        "action": entry.action.value,
        "by_user_id": str(entry.moderator_id),
        "about_user_id": None if entry.target_user_id is None else str(entry.target_user_id),
        "about_role_id": None if entry.target_role_id is None else str(entry.target_role_id),
        "old_value": entry.old_value,
        "new_value": entry.new_value,
        "at": _time(entry.created_at),
    }


@dataclass(frozen=True)
class Erased:
    """A finished erase: the unfinished jobs stopped first, then what the store did."""

    stopped: int
    credits_refunded: int
    erasure: MemberErasure
    stopped_jobs: tuple[Job, ...] = ()
    """The stopped jobs as they are now (refunded, erased): their cards can say so."""


class PrivacyService:
    """Exports and erases one member's data in one guild."""

    def __init__(self, store: Store, queue: QueueService) -> None:
        """`queue` cancels queued jobs (the one place that rule lives)."""
        self.store = store
        self.queue = queue

    async def export(
        self, guild_id: int, user_id: int, role_ids: Sequence[int], now: datetime
    ) -> dict[str, Any]:
        """Everything kept about the member in the guild, as JSON-ready data."""
        jobs = await self.store.privacy.member_jobs(guild_id, user_id)
        audit = await self.store.privacy.member_audit(guild_id, user_id)
        balance = await self.store.credits.balance(guild_id, user_id, role_ids)
        own = await self.store.privacy.member_allowance(guild_id, user_id)
        return {
            "format": EXPORT_FORMAT,
            "generated_at": _time(now),
            "guild_id": str(guild_id),
            "user_id": str(user_id),
            "credits": {
                "allowance": balance.allowance,
                "used": balance.used,
                "remaining": balance.remaining,
                "allowance_from": balance.source.value,
                "own_allowance": own,
                "period_start": _time(balance.period_start),
                "resets_at": _time(balance.resets_at),
            },
            "jobs": [job_record(job) for job in jobs],
            "audit": [audit_record(entry) for entry in audit],
        }

    @staticmethod
    def export_bytes(data: dict[str, Any]) -> bytes:
        """The export as an indented UTF-8 JSON file."""
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    async def stop_unfinished(self, guild_id: int, user_id: int, by_user_id: int) -> list[Job]:
        """Cancel or refund every unfinished job of the member; return the jobs stopped."""
        stopped = [
            job
            for job in await self.store.privacy.member_jobs(guild_id, user_id)
            if not job.state.is_terminal and await self._stop(job, by_user_id)
        ]
        if stopped:
            self.queue.wake()  # running slots freed
        return stopped

    async def _stop(self, job: Job, by_user_id: int) -> bool:
        if job.state is JobState.QUEUED:
            outcome, _ = await self.queue.cancel(
                job.id, job.guild_id, by_user_id, moderator=by_user_id != job.user_id
            )
            if outcome is CancelOutcome.CANCELLED:
                await self.store.jobs.mark_notified(job.id)
                return True
            job = await self.store.jobs.get_job(job.id) or job  # it started meanwhile
        if job.state in (JobState.FAILED, JobState.EXPIRED):
            refunded = await self.store.jobs.refund(job.id)
        else:
            # Whatever unfinished state it is in now: the member asked for it to stop.
            refunded = await self.store.jobs.fail_and_refund(
                job.id,
                STOPPED_REASON,
                expected=(JobState.RESERVED, JobState.SUBMITTED, JobState.COMPLETED),
            )
        if refunded:
            metrics.count_credits_refunded(job.cost)
            # The member asked for this: no "could not be made" notice follows.
            await self.store.jobs.mark_notified(job.id)
            # The poll scheduler stops tracking it.
            self.queue.jobs.notify(await self.store.jobs.get_job(job.id) or job)
        return refunded

    async def erase(self, guild_id: int, user_id: int, by_user_id: int) -> Erased:
        """Stop the member's unfinished jobs, then erase their data; audited by the store."""
        stopped = await self.stop_unfinished(guild_id, user_id, by_user_id)
        erasure = await self.store.privacy.erase_member(guild_id, user_id, by_user_id)
        if erasure.unfinished:
            # A request arrived between the two steps: stop it and erase once more.
            stopped += await self.stop_unfinished(guild_id, user_id, by_user_id)
            again = await self.store.privacy.erase_member(guild_id, user_id, by_user_id)
            erasure = dataclasses.replace(
                again, jobs_erased=erasure.jobs_erased + again.jobs_erased
            )
        log.info(
            "Erased the data of a member of guild %s on request of %s: %d jobs, %d stopped",
            guild_id,
            "the member" if by_user_id == user_id else f"moderator {by_user_id}",
            erasure.jobs_erased,
            len(stopped),
        )
        now = [await self.store.jobs.get_job(job.id) or job for job in stopped]
        return Erased(
            stopped=len(stopped),
            credits_refunded=sum(job.cost for job in stopped),
            erasure=erasure,
            stopped_jobs=tuple(now),
        )

    async def forget_due(self) -> int:
        """Erased members' jobs whose credit period ended become nobody's."""
        return await self.store.privacy.forget_due()
