"""Delivery: the Discord side of the poll scheduler, and the posting of finished videos.

`core.scheduler.PollScheduler` decides when each job is polled; this cog turns what a poll
found into Discord actions without ever making the scheduler wait: a pending job's card
edit is requested (coalesced, see `botkit.status_cards`), a completed job gets a delivery
task, a failed one a card edit and a notice. Deliveries run as their own tasks, at most
`DELIVERY_CONCURRENCY` at once, each with a total time limit inside its lease, so a stalled
download or a slow upload delays only its own job. A housekeeping task retries deliveries
that gave up their lease, sends failure notices from the outbox and refunds leaked
reservations.

A job is posted at most once: every post goes through `botkit.posting.Poster` (the
lease, the nonce, the history check, the fenced record); this cog decides only what
follows (the card, a retry time, a refund and its notice).

Several processes may share the database: every poll, delivery and notice is claimed
under a lease naming this process (`JobService.claimant`), and the recovery that runs
at start-up and at every sweep touches only the work of processes that are no longer
live (by the database's clock). A video over its server's upload limit is re-encoded
to fit on the way to the post (`Poster`, through `core.uploads`, in the media pool); a
link is the last resort, only when re-encoding is impossible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from botkit.i18n import tr_for_guild
from botkit.permissions import channel_bot_permissions, may_send
from botkit.posting import GIVE_UP_REASONS, BoundedMap, Outcome, requester_mentions
from core import metrics
from core.heartbeat import SCHEDULER
from core.i18n import _
from core.jobs import PollKind, PollOutcome
from core.logs import job_logging
from core.modlog import job_failed
from core.queue.dispatch import known_reason
from core.scheduler import PollScheduler
from core.wording import quote, refund_words
from storage.models import Job, JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

DELIVERABLE_BATCH = 50
NOTICE_LEASE_SECONDS = 120.0


class Delivery(commands.Cog):
    """Owns the poll scheduler, the delivery and notice tasks and the housekeeping loop;
    cancels and awaits all of them when the cog unloads (bot shutdown).

    Per process: ``_deliveries`` and ``_notices`` hold this process's running tasks only
    (each removes itself when done, so they stay within the work in flight here); with
    several processes the database's leases decide who does a job's work, these maps only
    stop this process from starting the same job twice. ``_not_before`` is bounded
    (`BoundedMap`): a job another process delivers is never popped from it here.
    """

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        settings = bot.settings
        # Jobs Discord asked us to wait for (RateLimited): not retried before then. Per
        # process and bounded: a job another process delivers meanwhile is never popped
        # here, so the oldest entries are forgotten beyond the cap.
        self._not_before: BoundedMap[int, float] = BoundedMap()
        self._last_sweep = time.monotonic()
        self._slots = asyncio.Semaphore(settings.delivery_concurrency)
        self.scheduler = PollScheduler(bot.jobs, self._handle_outcome)
        self._deliveries: dict[int, asyncio.Task[None]] = {}
        self._notices: dict[int, asyncio.Task[None]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._closing = False

    async def cog_load(self) -> None:
        """Settle what a previous run left half-done, rebuild the schedule, start work."""
        for job in await self.bot.jobs.recover_interrupted():
            log.info("Refunded job %s left unfinished by a restart", job.id)
        learned = await self.bot.jobs.load_history()
        pending = await self.scheduler.load()
        log.info("Scheduler: %d jobs to poll, %d completion times learned", pending, learned)
        self._housekeeping = asyncio.create_task(self._housekeep(), name="delivery-housekeeping")

    async def cog_unload(self) -> None:
        """Stop everything this cog started and wait for it; unfinished work resumes at
        the next start (the store is the truth)."""
        self._closing = True
        await self.scheduler.close()
        tasks = [*self._deliveries.values(), *self._notices.values()]
        if self._housekeeping is not None:
            tasks.append(self._housekeeping)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.bot.cards.close()

    @property
    def running(self) -> bool:
        """Whether the scheduler and the housekeeping loop are alive."""
        runner = self.scheduler.running
        house = self._housekeeping is not None and not self._housekeeping.done()
        return runner and house

    # -- housekeeping ------------------------------------------------------------------

    async def _housekeep(self) -> None:
        """Start the scheduler once connected, then every poll interval: retry
        deliveries, send notices, sweep leaked reservations. Never raises."""
        await self.bot.wait_until_ready()
        self.scheduler.start()
        while True:
            if self.scheduler.running:
                self.bot.heartbeats.beat(SCHEDULER)
            try:
                await self.housekeeping_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Delivery housekeeping failed; continuing")
            await asyncio.sleep(self.bot.settings.poll_interval_seconds)

    async def housekeeping_round(self) -> None:
        """One round: stale sweep (when due), failure notices, deliveries to (re)try."""
        settings = self.bot.settings
        now = time.monotonic()
        if now - self._last_sweep >= settings.stale_sweep_interval_seconds:
            self._last_sweep = now
            # Ends the leases and refunds the reservations of processes that died, and
            # reservations that leaked; never a live process's work.
            for job in await self.bot.jobs.recover_interrupted():
                log.info("Refunded job %s left unfinished by a process that stopped", job.id)
        for job in await self.bot.store.jobs.claim_notices(
            self.bot.jobs.claimant,
            settings.failure_notice_window_seconds,
            NOTICE_LEASE_SECONDS,
        ):
            self._start_notice(job)
        for job in await self.bot.store.jobs.deliverable_jobs(DELIVERABLE_BATCH):
            self._start_delivery(job)

    def _handle_outcome(self, outcome: PollOutcome) -> None:
        """What a poll found, turned into Discord work that runs on its own (never blocks)."""
        job = outcome.job
        if outcome.kind is PollKind.PENDING:
            self.bot.cards.request(job, api_state=outcome.api_state)
        elif outcome.kind is PollKind.COMPLETED:
            self._start_delivery(job)
        elif outcome.kind in {PollKind.FAILED, PollKind.EXPIRED}:
            self.bot.cards.request(job, note=outcome.message, final=True)
            self._start_notice(job)

    def _start_delivery(self, job: Job) -> None:
        if self._closing or job.id in self._deliveries or job.id in self.bot.poster.posting:
            return
        not_before = self._not_before.get(job.id)
        if not_before is not None:
            if time.monotonic() < not_before:
                return
            self._not_before.pop(job.id)
        self._spawn(self._deliveries, job, self._deliver_slot(job), "deliver")

    def _start_notice(self, job: Job) -> None:
        if self._closing or job.id in self._notices or job.notified_at is not None:
            return
        self._spawn(self._notices, job, self._notify_failure(job), "notice")

    def _spawn(
        self,
        owner: dict[int, asyncio.Task[None]],
        job: Job,
        work: Coroutine[Any, Any, None],
        what: str,
    ) -> None:
        """Run one job's work as an owned task; its failure is logged, never lost."""

        async def guarded() -> None:
            try:
                await job_logging(job.id, work)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Job %s: %s failed; it will be retried", job.id, what)

        task = asyncio.create_task(guarded(), name=f"{what}-job-{job.id}")
        owner[job.id] = task
        task.add_done_callback(lambda _: owner.pop(job.id, None))

    async def _deliver_slot(self, job: Job) -> None:
        """Wait for a delivery slot, then deliver (the poster holds the time limits)."""
        async with self._slots:
            fresh = await self.bot.store.jobs.get_job(job.id)
            if fresh is None or fresh.state is not JobState.COMPLETED:
                return
            await self.deliver(fresh)

    # -- delivering one job ----------------------------------------------------------

    async def deliver(self, job: Job) -> None:
        """Post one completed job's video in its channel, exactly once (`botkit.posting`)."""
        result = await self.bot.poster.post(job)
        if result.outcome is Outcome.POSTED and result.message is not None:
            self._not_before.pop(job.id)
            await self._delivered(job, result.message)
        elif result.outcome is Outcome.RETRY and result.retry_after is not None:
            self._not_before.set(job.id, time.monotonic() + result.retry_after)
        elif result.outcome is Outcome.UNDELIVERABLE:
            await self._undeliverable(job, result.reason or "it could not be posted")

    async def _delivered(self, job: Job, message: discord.Message) -> None:
        metrics.job_delivered(job)
        delivered = await self.bot.store.jobs.get_job(job.id) or job
        self.bot.cards.request(
            delivered, note=_("Posted: {url}", url=message.jump_url), final=True
        )

    async def _undeliverable(self, job: Job, reason: str) -> None:
        """Refund a video that cannot be posted; the notice (a DM) follows from the outbox."""
        log.warning("Job %s cannot be delivered: %s", job.id, reason)
        self._not_before.pop(job.id)
        if await self.bot.jobs.fail_undeliverable(job, reason):
            self._start_notice(await self.bot.store.jobs.get_job(job.id) or job)
        else:
            await self.bot.poster.release(job)

    # -- telling people --------------------------------------------------------------

    async def _notify_failure(self, job: Job) -> None:
        """Tell the requester why a job was refunded: in its channel, else by DM.

        Refunded jobs wait in the store until this has run (`claim_notices`), so a crash
        between a refund and its notice delays the notice instead of losing it. The notice
        is claimed first, so two processes never both send it.
        """
        claimant = self.bot.jobs.claimant
        if not await self.bot.store.jobs.claim_notice(job.id, claimant, NOTICE_LEASE_SECONDS):
            return  # told already, or another process is telling them
        self.bot.modlog.post(job.guild_id, job_failed(job))
        tr = await tr_for_guild(self.bot, job.guild_id)
        stored = (job.last_error or "").strip()
        known = GIVE_UP_REASONS.get(stored) or known_reason(
            stored, self.bot.settings.queue_max_wait_seconds
        )
        if known is not None:
            reason = tr(known) + "."
        elif job.last_error:
            reason = quote(job.last_error.strip(), 300)
            if not reason.endswith((".", "!", "?", "…")):
                reason += "."
        else:
            reason = tr._("it was interrupted.")
        refunded = tr(refund_words(job, self.bot.store.credits.period))
        member = f"<@{job.user_id}>"
        if job.result_url:
            text = tr._(
                "{member} your video (job #{job}) was made, but I could not post it in "
                "{channel}: {reason} {refunded}. You can still download it for about a day: "
                "{url}",
                member=member,
                job=job.id,
                channel=f"<#{job.channel_id}>",
                reason=reason,
                refunded=refunded,
                url=job.result_url,
            )
            dm = tr._(
                "Your video (job #{job}) was made, but I could not post it in {channel}: "
                "{reason} {refunded}. You can still download it for about a day: {url}",
                job=job.id,
                channel=f"<#{job.channel_id}>",
                reason=reason,
                refunded=refunded,
                url=job.result_url,
            )
        else:
            text = tr._(
                "{member} your video could not be made: {reason} {refunded}.",
                member=member,
                reason=reason,
                refunded=refunded,
            )
            dm = tr._(
                "Your video could not be made: {reason} {refunded}.",
                reason=reason,
                refunded=refunded,
            )
        channel = self.bot.poster.channel(job)
        permissions = channel_bot_permissions(channel)
        sent = False
        if permissions is None or may_send(channel, permissions):
            try:
                await channel.send(text, allowed_mentions=requester_mentions(job.user_id))
                sent = True
            except discord.HTTPException as exc:
                log.info("Job %s: failure notice not posted in channel (%s)", job.id, exc)
        if not sent:
            await self._dm(job.user_id, dm)
        # Told, or every way to tell was tried: either way, do not repeat it (unless the
        # notice's lease passed to another process meanwhile: then its record stands).
        await self.bot.store.jobs.mark_notified(job.id, claimant)

    async def _dm(self, user_id: int, text: str) -> None:
        try:
            user = self.bot.get_user(user_id) or await self.bot.fetch_user(user_id)
            await user.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.info("Could not DM user %s (%s)", user_id, exc)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Delivery(bot))
