"""The delivery loop: one owned background task that polls jobs and posts finished videos.

Each tick asks the job service to poll the jobs that are due (rate-limited by the API
client), refreshes status cards, tells requesters about failures (their credits already
refunded), and delivers completed jobs. A job is posted at most once: the store leases it
to one poster, and a poster that finds an expired lease (a crash mid-post) first looks in
the channel for a message carrying the job's marker before posting again.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from cogs.buttons import result_view
from cogs.cards import credits_text, delivery_embed, job_marker, short
from cogs.permissions import channel_bot_permissions, may_send
from cogs.runtime import requester_mentions
from core import metrics
from core.jobs import PollKind, PollOutcome
from core.logs import job_logging
from core.modlog import job_failed
from happyhorse.errors import DownloadTooLargeError, HappyHorseError
from storage.models import Job

if TYPE_CHECKING:
    from cogs.runtime import HappyHorseBot

log = logging.getLogger(__name__)

DELIVERY_LEASE_SECONDS = 300.0
MAX_DOWNLOAD_TRIES = 3
MAX_POST_TRIES = 5
PARALLEL_DELIVERIES = 4
HISTORY_SCAN_LIMIT = 500
ENTITY_TOO_LARGE = 40005
STALE_SWEEP_INTERVAL = 60.0
# Failure notices older than this are not sent after a long outage: too late to matter.
NOTICE_WINDOW_SECONDS = 24 * 3600.0


class Delivery(commands.Cog):
    """Owns the delivery loop; cancels it when the cog unloads (bot shutdown)."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        self._download_failures: dict[int, int] = {}
        self._post_failures: dict[int, int] = {}
        self._last_sweep = time.monotonic()
        # A reservation can only legitimately stay unsubmitted for one generate call.
        self._stale_after = max(300.0, 4 * bot.settings.client.timeout_seconds)
        self._slots = asyncio.Semaphore(PARALLEL_DELIVERIES)
        self._tmp = Path(tempfile.mkdtemp(prefix="happyhorse-"))
        self.loop.change_interval(seconds=bot.settings.poll_interval_seconds)

    async def cog_load(self) -> None:
        """Settle what a previous run left half-done, then start the loop."""
        for job in await self.bot.jobs.recover_interrupted():
            log.info("Refunded job %s left unfinished by a restart", job.id)
        self.loop.start()

    async def cog_unload(self) -> None:
        """Stop the loop (an in-flight tick is cancelled; its work resumes next start)."""
        self.loop.cancel()
        shutil.rmtree(self._tmp, ignore_errors=True)

    @tasks.loop(seconds=5.0)
    async def loop(self) -> None:
        """One tick. Never raises: a failing tick is logged and the next one runs."""
        self.bot.heartbeats.beat("scheduler")
        try:
            await self.tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Delivery loop tick failed; continuing")

    @loop.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def tick(self) -> None:
        """Poll due jobs, update cards and settle outcomes, then deliver completed jobs."""
        now = time.monotonic()
        if now - self._last_sweep >= STALE_SWEEP_INTERVAL:
            self._last_sweep = now
            await self.bot.jobs.refund_stale_reservations(self._stale_after)
        for outcome in await self.bot.jobs.poll_due():
            await self._guarded(outcome.job, self._handle_outcome(outcome))
        for job in await self.bot.store.jobs.unnotified_refunds(NOTICE_WINDOW_SECONDS):
            await self._guarded(job, self._notify_failure(job))
        deliverable = await self.bot.store.jobs.deliverable_jobs(self.bot.settings.poll_batch_size)
        await asyncio.gather(*(self._guarded(job, self._deliver_slot(job)) for job in deliverable))

    async def _guarded(self, job: Job, work: object) -> None:
        """Run one job's work; one bad job must never stop the loop."""
        assert asyncio.iscoroutine(work)
        try:
            await job_logging(job.id, work)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Handling job %s failed; it will be retried", job.id)

    async def _handle_outcome(self, outcome: PollOutcome) -> None:
        job = outcome.job
        if outcome.kind is PollKind.PENDING:
            await self.bot.cards.update(job, api_state=outcome.api_state)
        elif outcome.kind in {PollKind.FAILED, PollKind.EXPIRED}:
            await self.bot.cards.update(job, note=outcome.message, force=True)
            self.bot.cards.forget(job.id)

    async def _deliver_slot(self, job: Job) -> None:
        async with self._slots:
            await self.deliver(job)

    # -- delivering one job ----------------------------------------------------------

    async def deliver(self, job: Job) -> None:
        """Post one completed job's video in its channel, exactly once."""
        crashed_before = job.delivering_until is not None
        if not await self.bot.store.jobs.claim_delivery(job.id, DELIVERY_LEASE_SECONDS):
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
        path: Path | None = None
        try:
            if permissions is None or permissions.attach_files:
                path = await self._download(job, channel)
        except HappyHorseError as exc:
            failures = self._download_failures.get(job.id, 0) + 1
            self._download_failures[job.id] = failures
            if failures < MAX_DOWNLOAD_TRIES:
                log.warning("Job %s: download failed (%s); retrying", job.id, exc.message)
                await self.bot.store.jobs.record_error(job.id, f"download: {exc.message}")
                await self.bot.store.jobs.release_delivery(job.id)
                return
            log.warning("Job %s: download keeps failing; posting a link instead", job.id)
        try:
            message = await self._post(channel, job, path)
        except discord.Forbidden:
            await self._undeliverable(job, "the bot is not allowed to post in that channel")
            return
        except discord.NotFound:
            await self._undeliverable(job, "the channel no longer exists")
            return
        except discord.HTTPException as exc:
            failures = self._post_failures.get(job.id, 0) + 1
            self._post_failures[job.id] = failures
            if failures >= MAX_POST_TRIES:
                await self._undeliverable(
                    job, f"Discord kept refusing the post (HTTP {exc.status}, code {exc.code})"
                )
                return
            log.warning("Job %s: posting failed (%s); retrying later", job.id, exc)
            await self.bot.store.jobs.release_delivery(job.id)
            return
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
        await self._finish(job, message)

    def _resolve_channel(self, job: Job) -> discord.abc.Messageable:
        """The job's channel from the cache, else a partial one to send to directly.

        No lookup first: sending is the test. A channel that is gone answers 404 and one
        the bot may not use 403, and both are handled where the message is sent.
        """
        channel = self.bot.get_channel(job.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    async def _download(self, job: Job, channel: discord.abc.Messageable) -> Path | None:
        """Fetch the video if it fits the guild's upload limit; None means post a link."""
        assert job.result_url is not None
        guild = getattr(channel, "guild", None)
        limit = guild.filesize_limit if isinstance(guild, discord.Guild) else 10 * 1024 * 1024
        dest = self._tmp / f"job-{job.id}.mp4"
        try:
            await self.bot.api.download(job.result_url, dest, limit)
        except DownloadTooLargeError:
            return None
        return dest

    async def _post(
        self, channel: discord.abc.Messageable, job: Job, path: Path | None
    ) -> discord.Message:
        content = f"<@{job.user_id}> your video is ready!"
        view = result_view(job.id)
        mentions = requester_mentions(job.user_id)
        if path is not None:
            try:
                return await channel.send(
                    content,
                    embed=delivery_embed(job, link_only=False),
                    file=discord.File(path, filename=f"happyhorse-{job.id}.mp4"),
                    view=view,
                    allowed_mentions=mentions,
                    nonce=job.delivery_nonce[:25],
                )
            except discord.HTTPException as exc:
                if exc.status != 413 and exc.code != ENTITY_TOO_LARGE:
                    raise
                log.info("Job %s: upload refused as too large; posting a link", job.id)
        return await channel.send(
            f"{content}\n{job.result_url}",
            embed=delivery_embed(job, link_only=True),
            view=view,
            allowed_mentions=mentions,
            nonce=job.delivery_nonce[:25],
        )

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
        if not await self.bot.store.jobs.mark_delivered(job.id, message.id):
            return
        metrics.job_delivered(job)
        delivered = await self.bot.store.jobs.get_job(job.id) or job
        await self.bot.cards.update(delivered, note=f"Posted: {message.jump_url}", force=True)
        self.bot.cards.forget(job.id)

    async def _undeliverable(self, job: Job, reason: str) -> None:
        """Refund a video that cannot be posted; the notice (a DM) follows from the outbox."""
        log.warning("Job %s cannot be delivered: %s", job.id, reason)
        self._download_failures.pop(job.id, None)
        self._post_failures.pop(job.id, None)
        if await self.bot.jobs.fail_undeliverable(job, reason):
            await self._notify_failure(await self.bot.store.jobs.get_job(job.id) or job)

    # -- telling people --------------------------------------------------------------

    async def _notify_failure(self, job: Job) -> None:
        """Tell the requester why a job was refunded: in its channel, else by DM.

        Refunded jobs wait in the store until this has run (`unnotified_refunds`), so a
        crash between a refund and its notice delays the notice instead of losing it.
        """
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


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Delivery(bot))
