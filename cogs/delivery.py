"""Delivery: the Discord side of the poll scheduler, and the posting of finished videos.

`core.scheduler.PollScheduler` decides when each job is polled; this cog turns what a poll
found into Discord actions without ever making the scheduler wait: a pending job's card
edit is requested (coalesced, see `botkit.status_cards`), a completed job gets a delivery
task, a failed one a card edit and a notice. Deliveries run as their own tasks, at most
`DELIVERY_CONCURRENCY` at once, each with a total time limit inside its lease, so a stalled
download or a slow upload delays only its own job. A housekeeping task retries deliveries
that gave up their lease, sends failure notices from the outbox and refunds leaked
reservations.

A job is posted at most once: the store leases it to one poster, and a poster that finds
an ended lease (a crash, or an attempt that timed out mid-post) first looks in the
channel for a message carrying the job's marker before posting again.

Several processes may share the database: every poll, delivery and notice is claimed
under a lease naming this process (`JobService.claimant`), and the recovery that runs
at start-up and at every sweep touches only the work of processes that are no longer
live. A video is uploaded within the upload limit recorded with the job where its
request arrived, so a process without that guild in its cache (another shard's guild)
still posts the file rather than falling back to a link. A video over that limit is
re-encoded to fit (`core.uploads`, in the media pool, within what the attempt has left
after the upload's deadline), and again smaller when Discord answers 413; a link is the
last resort, only when re-encoding is impossible.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import shutil
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from botkit.bot import requester_mentions
from botkit.cards import delivery_embed, job_marker
from botkit.permissions import channel_bot_permissions, may_send
from botkit.views import result_view
from core import metrics
from core.heartbeat import SCHEDULER
from core.jobs import PollKind, PollOutcome
from core.logs import job_logging
from core.modlog import job_failed
from core.scheduler import PollScheduler
from core.uploads import PreparedVideo, VideoPreparer, link_expires_at, original_link_alive
from core.wording import credits_text, short
from happyhorse.errors import HappyHorseError
from storage.models import Job

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

MAX_DOWNLOAD_TRIES = 3
MAX_POST_TRIES = 5
HISTORY_SCAN_LIMIT = 500
ENTITY_TOO_LARGE = 40005
DELIVERABLE_BATCH = 50
NOTICE_LEASE_SECONDS = 120.0


class Delivery(commands.Cog):
    """Owns the poll scheduler, the delivery and notice tasks and the housekeeping loop;
    cancels and awaits all of them when the cog unloads (bot shutdown)."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        settings = bot.settings
        self._download_failures: dict[int, int] = {}
        self._post_failures: dict[int, int] = {}
        # Jobs Discord asked us to wait for (RateLimited): not retried before then.
        self._not_before: dict[int, float] = {}
        self._last_sweep = time.monotonic()
        self._slots = asyncio.Semaphore(settings.delivery_concurrency)
        self._tmp = Path(tempfile.mkdtemp(prefix="happyhorse-"))
        self.preparer = VideoPreparer(bot.api, bot.transcoder, self._tmp)
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
        shutil.rmtree(self._tmp, ignore_errors=True)

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
        if self._closing or job.id in self._deliveries:
            return
        not_before = self._not_before.get(job.id)
        if not_before is not None:
            if time.monotonic() < not_before:
                return
            del self._not_before[job.id]
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
        """Wait for a delivery slot, then deliver within the total time limit."""
        async with self._slots:
            fresh = await self.bot.store.jobs.get_job(job.id)
            if fresh is None or fresh.result_url is None or fresh.delivered_at is not None:
                return
            limit = self.bot.settings.delivery_time_limit_seconds
            try:
                async with asyncio.timeout(limit):
                    await self.deliver(fresh, ends_at=time.monotonic() + limit)
            except TimeoutError:
                # It may have been posting: end the lease visibly so the next attempt
                # looks for the post before posting again.
                log.warning("Job %s: delivery ran out of time; retrying later", job.id)
                await self.bot.store.jobs.end_delivery(job.id)

    # -- delivering one job ----------------------------------------------------------

    async def deliver(self, job: Job, *, ends_at: float | None = None) -> None:
        """Post one completed job's video in its channel, exactly once.

        ``ends_at`` (``time.monotonic()``) is when the attempt's time limit runs out; a
        re-encode must leave the upload its deadline before then.
        """
        if ends_at is None:
            ends_at = time.monotonic() + self.bot.settings.delivery_time_limit_seconds
        crashed_before = job.delivering_until is not None
        lease = self.bot.settings.delivery_lease_seconds
        if not await self.bot.store.jobs.claim_delivery(job.id, lease, self.bot.jobs.claimant):
            return
        channel = self._resolve_channel(job)
        if crashed_before:
            existing = await self._find_posted(channel, job)
            if existing is not None:
                log.info("Job %s was already posted as %s before a restart", job.id, existing.id)
                await self._finish(job, existing)
                return
        # Checked first: a refused send is an invalid request (Discord bans IPs that make
        # too many), and without Attach Files a link still delivers the video.
        permissions = channel_bot_permissions(channel)
        if permissions is not None and not may_send(channel, permissions):
            await self._undeliverable(job, "the bot is not allowed to post in that channel")
            return
        prepared: PreparedVideo | None = None
        try:
            if permissions is None or permissions.attach_files:
                prepared = await prepare_result(self.bot, self.preparer, job, ends_at)
        except HappyHorseError as exc:
            failures = self._download_failures.get(job.id, 0) + 1
            self._download_failures[job.id] = failures
            if failures < MAX_DOWNLOAD_TRIES:
                log.warning("Job %s: download failed (%s); retrying", job.id, exc.message)
                await self.bot.store.jobs.record_error(job.id, f"download: {exc.message}")
                await self.bot.store.jobs.release_delivery(job.id)
                return
            log.warning("Job %s: download keeps failing; posting a link instead", job.id)
        if prepared is not None and prepared.retryable:
            # Out of time (the media pool was busy), not impossible: try again later with
            # a fresh time budget, and post a link only if it keeps happening.
            failures = self._download_failures.get(job.id, 0) + 1
            self._download_failures[job.id] = failures
            if failures < MAX_DOWNLOAD_TRIES:
                log.warning("Job %s: %s; retrying", job.id, prepared.reason)
                prepared.cleanup()
                await self.bot.store.jobs.record_error(job.id, f"re-encode: {prepared.reason}")
                await self.bot.store.jobs.release_delivery(job.id)
                return
        try:
            message = await send_result(
                self.bot,
                self.preparer,
                channel,
                job,
                prepared,
                content=f"<@{job.user_id}> your video is ready!",
                mentions=requester_mentions(job.user_id),
                nonce=job.delivery_nonce[:25],
                ends_at=ends_at,
            )
        except discord.Forbidden:
            await self._undeliverable(job, "the bot is not allowed to post in that channel")
            return
        except discord.NotFound:
            await self._undeliverable(job, "the channel no longer exists")
            return
        except discord.HTTPException as exc:
            await self._post_failed(job, f"HTTP {exc.status}, code {exc.code}", exc)
            return
        except discord.RateLimited as exc:
            # discord.py refuses to wait out a long rate limit (max_ratelimit_timeout):
            # nothing was posted, so give the lease back at once and retry once Discord
            # allows it. Being asked to wait is not a refusal: it does not count as one.
            log.warning("Job %s: posting is rate limited for %.0f s", job.id, exc.retry_after)
            self._not_before[job.id] = time.monotonic() + exc.retry_after
            await self.bot.store.jobs.release_delivery(job.id)
            return
        except TimeoutError:
            # The upload ran out of time and may have reached Discord: end the lease but
            # keep it visible, so the next attempt looks for the post first.
            log.warning("Job %s: the upload did not finish in time; retrying later", job.id)
            self._count_post_failure(job)
            await self.bot.store.jobs.end_delivery(job.id)
            return
        finally:
            if prepared is not None:
                prepared.cleanup()
        await self._finish(job, message)

    def _count_post_failure(self, job: Job) -> int:
        failures = self._post_failures.get(job.id, 0) + 1
        self._post_failures[job.id] = failures
        return failures

    async def _post_failed(self, job: Job, what: str, exc: Exception) -> None:
        """A retryable refusal of the post: retry later, or give up after several."""
        if self._count_post_failure(job) >= MAX_POST_TRIES:
            await self._undeliverable(job, f"Discord kept refusing the post ({what})")
            return
        log.warning("Job %s: posting failed (%s); retrying later", job.id, exc)
        await self.bot.store.jobs.release_delivery(job.id)

    def _resolve_channel(self, job: Job) -> discord.abc.Messageable:
        """The job's channel from the cache, else a partial one to send to directly.

        No lookup first: sending is the test. A channel that is gone answers 404 and one
        the bot may not use 403, and both are handled where the message is sent.
        """
        channel = self.bot.get_channel(job.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    async def _find_posted(
        self, channel: discord.abc.Messageable, job: Job
    ) -> discord.Message | None:
        """Look for a message this bot already posted for the job (crash after posting).

        Only messages created since the job completed can be its post, so the scan starts
        there (oldest first) and a busy channel cannot push the post out of reach.
        """
        marker = job_marker(job.id)
        since = (job.completed_at or job.created_at) - datetime.timedelta(seconds=5)
        try:
            async for message in channel.history(
                limit=HISTORY_SCAN_LIMIT,
                after=discord.Object(id=discord.utils.time_snowflake(since)),
            ):
                if message.author.id != getattr(self.bot.user, "id", None):
                    continue
                # The job's status card carries the same footer, but it is an interaction
                # response; the video is always a plain channel message.
                is_card = message.id == job.progress_message_id
                if is_card or message.interaction_metadata is not None:
                    continue
                if any(e.footer.text == marker for e in message.embeds):
                    return message
        except discord.HTTPException as exc:
            log.info("Job %s: could not read channel history (%s)", job.id, exc)
        return None

    async def _finish(self, job: Job, message: discord.Message) -> None:
        self._download_failures.pop(job.id, None)
        self._post_failures.pop(job.id, None)
        self._not_before.pop(job.id, None)
        if not await self.bot.store.jobs.mark_delivered(job.id, message.id):
            return
        metrics.job_delivered(job)
        delivered = await self.bot.store.jobs.get_job(job.id) or job
        self.bot.cards.request(delivered, note=f"Posted: {message.jump_url}", final=True)

    async def _undeliverable(self, job: Job, reason: str) -> None:
        """Refund a video that cannot be posted; the notice (a DM) follows from the outbox."""
        log.warning("Job %s cannot be delivered: %s", job.id, reason)
        self._download_failures.pop(job.id, None)
        self._post_failures.pop(job.id, None)
        self._not_before.pop(job.id, None)
        if await self.bot.jobs.fail_undeliverable(job, reason):
            self._start_notice(await self.bot.store.jobs.get_job(job.id) or job)

    # -- telling people --------------------------------------------------------------

    async def _notify_failure(self, job: Job) -> None:
        """Tell the requester why a job was refunded: in its channel, else by DM.

        Refunded jobs wait in the store until this has run (`claim_notices`), so a crash
        between a refund and its notice delays the notice instead of losing it. The notice
        is claimed first, so two processes never both send it.
        """
        if not await self.bot.store.jobs.claim_notice(
            job.id, self.bot.jobs.claimant, NOTICE_LEASE_SECONDS
        ):
            return  # told already, or another process is telling them
        self.bot.modlog.post(job.guild_id, job_failed(job))
        reason = short((job.last_error or "it was interrupted").strip(), 300)
        if not reason.endswith((".", "!", "?", "…")):
            reason += "."
        refunded = f"{credits_text(job.cost).capitalize()} refunded."
        if job.result_url:
            text = (
                f"your video (job #{job.id}) was made, but I could not post it in "
                f"<#{job.channel_id}>: {reason} {refunded} You can still download it for "
                f"about a day: {job.result_url}"
            )
        else:
            text = f"your video could not be made: {reason} {refunded}"
        channel = self._resolve_channel(job)
        permissions = channel_bot_permissions(channel)
        sent = False
        if permissions is None or may_send(channel, permissions):
            try:
                await channel.send(
                    f"<@{job.user_id}> {text}", allowed_mentions=requester_mentions(job.user_id)
                )
                sent = True
            except discord.HTTPException as exc:
                log.info("Job %s: failure notice not posted in channel (%s)", job.id, exc)
        if not sent:
            await self._dm(job.user_id, text[0].upper() + text[1:])
        # Told, or every way to tell was tried: either way, do not repeat it.
        await self.bot.store.jobs.mark_notified(job.id)

    async def _dm(self, user_id: int, text: str) -> None:
        try:
            user = self.bot.get_user(user_id) or await self.bot.fetch_user(user_id)
            await user.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.info("Could not DM user %s (%s)", user_id, exc)


async def prepare_result(
    bot: HappyHorseBot, preparer: VideoPreparer, job: Job, ends_at: float
) -> PreparedVideo:
    """Download the job's video and fit it into its guild's upload limit (see
    `core.uploads`); a failed download raises ``HappyHorseError``."""
    assert job.result_url is not None
    return await preparer.prepare(
        job.result_url,
        f"job-{job.id}",
        upload_limit(bot, job),
        download_deadline=bot.settings.download_deadline_seconds,
        transcode_until=ends_at - bot.settings.upload_deadline_seconds,
    )


def _too_large(exc: discord.HTTPException) -> bool:
    return exc.status == 413 or exc.code == ENTITY_TOO_LARGE


async def send_result(
    bot: HappyHorseBot,
    preparer: VideoPreparer,
    channel: discord.abc.Messageable,
    job: Job,
    prepared: PreparedVideo | None,
    *,
    content: str,
    mentions: discord.AllowedMentions,
    nonce: str | None,
    ends_at: float,
) -> discord.Message:
    """Post the job's video: the prepared file (re-encoded smaller when Discord refuses it
    as too large), else a link that says when it expires. Each send has the upload
    deadline (``TimeoutError`` past it); other refusals raise ``discord.HTTPException``.

    A re-encoded file gets an "Original" link button while the service's URL should
    still work (``RESULT_URL_TTL_HOURS``). A continuation replies to the video it continues.
    """
    settings = bot.settings
    reference = (
        discord.MessageReference(
            message_id=job.reply_to_message_id,
            channel_id=job.channel_id,
            fail_if_not_exists=False,
        )
        if job.reply_to_message_id is not None
        else None
    )
    extra: dict[str, Any] = {"reference": reference} if reference is not None else {}
    if nonce is not None:
        extra["nonce"] = nonce
    current = prepared
    try:
        while current is not None and current.path is not None:
            note = current.note()
            try:
                async with asyncio.timeout(settings.upload_deadline_seconds):
                    return await channel.send(
                        f"{content}\n{note}" if note else content,
                        embed=delivery_embed(job, link_only=False),
                        file=discord.File(current.path, filename=f"happyhorse-{job.id}.mp4"),
                        view=result_view(job.id, original_url=_original(bot, job, current)),
                        allowed_mentions=mentions,
                        **extra,
                    )
            except discord.HTTPException as exc:
                if not _too_large(exc):
                    raise
                refused = current.path.stat().st_size
                log.info("Job %s: Discord refused %d bytes as too large", job.id, refused)
                current = await preparer.shrink(
                    current,
                    refused,
                    f"job-{job.id}",
                    transcode_until=ends_at - settings.upload_deadline_seconds,
                )
    finally:
        # Files re-encoded after a refusal replace the caller's: none may outlive the post.
        if current is not None:
            current.cleanup()
    assert job.result_url is not None
    notice = link_notice(job, current, settings.result_url_ttl_hours)
    async with asyncio.timeout(settings.upload_deadline_seconds):
        return await channel.send(
            f"{content}\n{job.result_url}\n{notice}",
            embed=delivery_embed(job, link_only=True),
            view=result_view(job.id),
            allowed_mentions=mentions,
            **extra,
        )


def _original(bot: HappyHorseBot, job: Job, prepared: PreparedVideo) -> str | None:
    """The service's URL for an "Original" button: only under a re-encode, while it lives."""
    alive = original_link_alive(
        job.completed_at, bot.settings.result_url_ttl_hours, discord.utils.utcnow()
    )
    return job.result_url if prepared.reencoded and alive else None


def link_notice(job: Job, prepared: PreparedVideo | None, ttl_hours: float) -> str:
    """Why a video is posted as a link, and that the link expires."""
    expires = link_expires_at(job.completed_at, ttl_hours)
    when = (
        f"expires {discord.utils.format_dt(expires, 'R')}"
        if expires is not None
        else "expires within a day"
    )
    if prepared is None:
        return f"The video could not be attached here; this link {when}."
    reason = (prepared.reason or "it could not be re-encoded").removeprefix("cannot re-encode: ")
    reason = reason.rstrip(".")
    return (
        f"The video is over this server's upload limit and could not be re-encoded to fit "
        f"({reason}); this link {when}."
    )


def upload_limit(bot: HappyHorseBot, job: Job) -> int:
    """The largest file the job's guild accepts: from the cache, else (a guild on another
    process's shards) the limit recorded with the job where its request arrived."""
    guild = bot.get_guild(job.guild_id)
    if guild is not None:
        return guild.filesize_limit
    return job.upload_limit or discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Delivery(bot))
