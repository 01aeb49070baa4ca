"""Exactly-once posting of a finished video: the one module every path that posts goes through.

The delivery loop (`cogs.delivery`) and a moderator's /job → Deliver again
(`cogs.job_admin`) both call `Poster.post`. Four rules make a post happen once, whatever
crashes, stalls or races in between, with one process or several on one database:

1. **The lease.** Nothing is posted before `JobStore.claim_delivery` leased the job to this
   process (`JobService.claimant`), with its end read by the database's clock. Recovery
   never ends a live process's lease; a process that stops beating loses it.
2. **The nonce.** Every attempt at one posting sends the same message `nonce` with
   `enforce_nonce` (discord.py sets it with any nonce): the job's `delivery_nonce` for its
   delivery, `r` + it for its one redelivery (`post_nonce`). Discord answers a repeat
   within its nonce window (a few minutes) with the message already created instead of a
   second one: two posters that overlap (a stalled one and its successor) post once.
3. **The history check.** A poster that finds a lease ended without a record (a crash, a
   stall, an upload that ran out of time) first looks in the channel, from the moment the
   posting became due, for a message of this bot carrying the job's footer marker
   (`botkit.cards.job_marker`), and records it instead of posting again: this covers
   what the nonce window does not.
4. **The record, fenced.** `mark_delivered` / `record_redelivery` succeed only while this
   process still holds the lease, checked in the statement that records the post. A
   poster whose lease was taken over is refused there and leaves the job to its
   successor (whose post, by rules 2 and 3, is the same message).

Every step has a deadline (`DOWNLOAD_DEADLINE_SECONDS`, `UPLOAD_DEADLINE_SECONDS`, and the
two together with a margin for the whole post, inside the lease). A video is uploaded
within the guild's upload limit (from the cache, else the limit recorded with the job): a
larger one is re-encoded to fit (`core.uploads`, in the media pool `core.transcode`), with
what the whole post has left after reserving the upload's deadline, so the re-encode ends
inside the lease too. When Discord refuses the file as too large (413/40005: its limit
was lower than the bot knew) it is re-encoded smaller and sent again, with the same nonce.
The post says what a re-encode did and links the service's original while its URL lives
(`RESULT_URL_TTL_HOURS`). A link is the last resort, saying when it expires: when
re-encoding is impossible (undecodable, cannot fit even at 360p), or Discord refuses
attachments (403/50013: no Attach Files, which a process without the guild in its cache
cannot know beforehand). Only when even the link cannot be posted is the job
undeliverable. A job made by Continue is posted as a reply to the video it continues
(`Job.reply_to_message_id`; posted without the reply when that message is gone).

The post is public, so it speaks the server's language (`core.languages`): its text, embed,
buttons, the re-encode note and the link notice (`send_video(..., tr=)`).

Seams: `fetch_video` turns a job into a downloaded file fitted to the upload limit (or a
link preparation), and `send_video` turns it into a posted message.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import discord

from botkit.cards import delivery_embed, job_marker
from botkit.permissions import channel_bot_permissions, may_send
from botkit.views import result_view
from core.i18n import ENGLISH, Message, Tr, _
from core.jobs import JobService
from core.languages import GuildLanguages
from core.settings import BotSettings
from core.transcode import Transcoder
from core.uploads import PreparedVideo, VideoPreparer, link_expires_at, original_link_alive
from happyhorse.client import HappyHorseClient
from happyhorse.errors import HappyHorseError
from storage.models import Claimant, Job, JobState
from storage.store import Store

log = logging.getLogger(__name__)

MAX_DOWNLOAD_TRIES = 3
MAX_POST_TRIES = 5
HISTORY_SCAN_LIMIT = 500
ENTITY_TOO_LARGE = 40005
MISSING_PERMISSIONS = 50013
FAILURE_MEMORY = 1000
"""Jobs whose failed attempts this process remembers (least recently failed forgotten)."""

NOT_ALLOWED = _("the bot is not allowed to post in that channel")
CHANNEL_GONE = _("the channel no longer exists")
GIVE_UP_REASONS: dict[str, Message] = {str(m): m for m in (NOT_ALLOWED, CHANNEL_GONE)}
"""Why a post was given up, by its stored English text: said again in any language."""

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A dict that keeps at most ``cap`` keys, forgetting the least recently set first.

    For per-process memory about jobs (failure counts, retry-after times): with several
    processes each sees only some attempts at a job, and a job settled by another process
    is never popped here, so without a cap these maps would only grow.
    """

    def __init__(self, cap: int = FAILURE_MEMORY) -> None:
        self._cap = cap
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value for ``key``, or ``None``."""
        return self._items.get(key)

    def set(self, key: K, value: V) -> None:
        """Set ``key`` (now the most recent), dropping the oldest beyond the cap."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._cap:
            self._items.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value or ``None``."""
        return self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class Outcome(enum.Enum):
    """How one call of `Poster.post` ended."""

    POSTED = "posted"
    """Posted (or found already posted) and recorded by this process."""
    BUSY = "busy"
    """Not postable by this process now: another lease is live, or it is settled."""
    RETRY = "retry"
    """Nothing recorded; the lease was given back (or ended) and a later attempt may post."""
    UNDELIVERABLE = "undeliverable"
    """Even a link cannot be posted in the job's channel; ``reason`` says why. The lease
    is still held: the caller refunds the job or calls `Poster.release`."""
    TAKEN_OVER = "taken over"
    """Posted, but the lease had passed to another process: the record is its to make."""


@dataclass(frozen=True, slots=True)
class PostResult:
    """What `Poster.post` did: the outcome, the message, why, and when to retry."""

    outcome: Outcome
    message: discord.Message | None = None
    reason: str | None = None
    retry_after: float | None = None
    found: bool = False
    """The message was found in the channel (posted before a crash), not sent now."""


def requester_mentions(user_id: int) -> discord.AllowedMentions:
    """Mentions that may ping the requester and nobody else."""
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(id=user_id)], replied_user=False
    )


def post_nonce(job: Job, *, again: bool) -> str:
    """The nonce of every attempt at one posting (at most 25 characters, Discord's cap):
    the job's delivery nonce, or ``r`` + it for its one redelivery."""
    return f"r{job.delivery_nonce[:24]}" if again else job.delivery_nonce[:25]


def is_again(job: Job) -> bool:
    """Whether posting this job now is a redelivery (its delivered message was deleted)."""
    return job.state is JobState.DELIVERED


class Poster:
    """Posts finished videos exactly once (see the module docstring).

    Per process: ``_posting`` holds the jobs this process is posting right now (the
    database lease already refuses a second claim; this answers without a query), and
    the failure memory (`BoundedMap`) counts only this process's attempts, so with ``n``
    processes a job may be tried up to ``n`` times the limits before one gives up.
    """

    def __init__(
        self,
        client: discord.Client,
        store: Store,
        api: HappyHorseClient,
        jobs: JobService,
        settings: BotSettings,
        tmp: Path,
        *,
        transcoder: Transcoder,
        claimant: Claimant | None = None,
        languages: GuildLanguages | None = None,
    ) -> None:
        """``tmp`` holds downloads and re-encodes while they are uploaded; ``transcoder``
        runs the re-encodes; ``claimant`` names the lease owner (default:
        ``jobs.claimant``, this process); ``languages`` gives each server's language for
        its posts (English without it)."""
        self._languages = languages
        self._client = client
        self._store = store
        self._api = api
        self._jobs = jobs
        self._settings = settings
        self._tmp = tmp
        self._preparer = VideoPreparer(api, transcoder, tmp)
        self.claimant = claimant or jobs.claimant
        self._posting: set[int] = set()
        self.download_failures: BoundedMap[int, int] = BoundedMap()
        self.post_failures: BoundedMap[int, int] = BoundedMap()

    @property
    def posting(self) -> frozenset[int]:
        """The jobs this process is posting right now."""
        return frozenset(self._posting)

    async def post(self, job: Job) -> PostResult:
        """Post the job's video in its channel once: its delivery, or (a delivered job
        whose message was deleted) its one redelivery. Never raises for Discord errors."""
        if job.id in self._posting:
            return PostResult(Outcome.BUSY)
        self._posting.add(job.id)
        try:
            return await self._post(job)
        finally:
            self._posting.discard(job.id)

    async def _post(self, job: Job) -> PostResult:
        store = self._store.jobs
        lease = self._settings.delivery_lease_seconds
        # Read just before the claim: a lease end left set means an attempt ended
        # unrecorded (the claim overwrites it).
        before = await store.get_job(job.id)
        if before is None or not await store.claim_delivery(job.id, lease, self.claimant):
            return PostResult(Outcome.BUSY)
        claimed = await store.get_job(job.id)
        if claimed is None:
            return PostResult(Outcome.BUSY)
        ended_before = before.delivering_until is not None
        limit = self._settings.delivery_time_limit_seconds
        # A re-encode must end in time for the upload after it: by this monotonic time.
        transcode_until = time.monotonic() + limit - self._settings.upload_deadline_seconds
        try:
            async with asyncio.timeout(limit):
                return await self._attempt(
                    claimed, ended_before=ended_before, transcode_until=transcode_until
                )
        except TimeoutError:
            # It may have been posting: end the lease visibly, so the next attempt looks
            # for the post before posting again.
            log.warning("Job %s: posting ran out of time; retrying later", job.id)
            await store.end_delivery(job.id, self.claimant)
            return PostResult(Outcome.RETRY, reason="the post did not finish in time")
        except BaseException:
            # Cancelled (shutdown) or a bug: a post may be on its way; keep that visible.
            await asyncio.shield(store.end_delivery(job.id, self.claimant))
            raise

    async def _attempt(
        self, job: Job, *, ended_before: bool, transcode_until: float
    ) -> PostResult:
        again = is_again(job)
        channel = self.channel(job)
        if ended_before:
            existing = await self.find_posted(channel, job, again=again)
            if existing is not None:
                log.info("Job %s was already posted as %s before a restart", job.id, existing.id)
                return await self._record(job, existing, found=True)
        # Checked first when the guild is cached: a refused send is an invalid request
        # (Discord bans IPs that make too many), and without Attach Files a link still
        # delivers the video.
        permissions = channel_bot_permissions(channel)
        if permissions is not None and not may_send(channel, permissions):
            return await self._give_up(job, NOT_ALLOWED)
        video: PreparedVideo | None = None
        try:
            if permissions is None or permissions.attach_files:
                try:
                    video = await self.fetch_video(job, transcode_until=transcode_until)
                except HappyHorseError as exc:
                    if self._count_download_failure(job) < MAX_DOWNLOAD_TRIES:
                        log.warning("Job %s: download failed (%s); retrying", job.id, exc.message)
                        await self._store.jobs.record_error(job.id, f"download: {exc.message}")
                        return await self._release(job, f"download: {exc.message}")
                    log.warning("Job %s: download keeps failing; posting a link instead", job.id)
                if video is not None and video.retryable:
                    # Out of time (the media pool was busy), not impossible: a later attempt
                    # has a fresh time budget; a link only if it keeps happening.
                    if self._count_download_failure(job) < MAX_DOWNLOAD_TRIES:
                        log.warning("Job %s: %s; retrying", job.id, video.reason)
                        await self._store.jobs.record_error(job.id, f"re-encode: {video.reason}")
                        return await self._release(job, f"re-encode: {video.reason}")
                    log.warning("Job %s: re-encoding keeps running out of time", job.id)
            return await self._upload(
                channel, job, video, again=again, transcode_until=transcode_until
            )
        finally:
            if video is not None:
                video.cleanup()

    async def _upload(
        self,
        channel: discord.abc.Messageable,
        job: Job,
        video: PreparedVideo | None,
        *,
        again: bool,
        transcode_until: float,
    ) -> PostResult:
        current = video
        ttl = self._settings.result_url_ttl_hours
        tr = ENGLISH if self._languages is None else await self._languages.tr(job.guild_id)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._settings.upload_deadline_seconds):
                        message = await send_video(
                            channel, job, current, again=again, ttl_hours=ttl, tr=tr
                        )
                    break
                except discord.HTTPException as exc:
                    if current is None or current.path is None or not too_large(exc):
                        raise
                    # Discord's limit is lower than the bot knew: re-encode smaller (the
                    # source stays; the refused file is replaced) and send again.
                    refused = current.path.stat().st_size
                    log.info("Job %s: Discord refused %d bytes as too large", job.id, refused)
                    current = await self._preparer.shrink(
                        current,
                        refused,
                        f"job-{job.id}-{time.monotonic_ns()}",
                        transcode_until=transcode_until,
                    )
        except discord.Forbidden:
            return await self._give_up(job, NOT_ALLOWED)
        except discord.NotFound:
            return await self._give_up(job, CHANNEL_GONE)
        except discord.HTTPException as exc:
            what = f"HTTP {exc.status}, code {exc.code}"
            if self._count_post_failure(job) >= MAX_POST_TRIES:
                return await self._give_up(job, f"Discord kept refusing the post ({what})")
            log.warning("Job %s: posting failed (%s); retrying later", job.id, exc)
            return await self._release(job, what)
        except discord.RateLimited as exc:
            # discord.py refuses to wait out a long rate limit (max_ratelimit_timeout):
            # nothing was posted, so give the lease back at once and retry once Discord
            # allows it. Being asked to wait is not a refusal: it does not count as one.
            log.warning("Job %s: posting is rate limited for %.0f s", job.id, exc.retry_after)
            await self._store.jobs.release_delivery(job.id, self.claimant)
            return PostResult(
                Outcome.RETRY, reason="Discord asked to wait", retry_after=exc.retry_after
            )
        except TimeoutError:
            # The upload ran out of time and may have reached Discord: end the lease but
            # keep it visible, so the next attempt looks for the post first (and sends the
            # same nonce).
            log.warning("Job %s: the upload did not finish in time; retrying later", job.id)
            self._count_post_failure(job)
            await self._store.jobs.end_delivery(job.id, self.claimant)
            return PostResult(Outcome.RETRY, reason="the upload did not finish in time")
        finally:
            # Files re-encoded after a refusal replace the caller's: none may outlive it.
            if current is not None:
                current.cleanup()
        return await self._record(job, message)

    async def _record(
        self, job: Job, message: discord.Message, *, found: bool = False
    ) -> PostResult:
        """Record the post, fenced by this process's lease."""
        self.forget(job.id)
        store = self._store.jobs
        if is_again(job):
            recorded = await store.record_redelivery(job.id, message.id, self.claimant)
        else:
            recorded = await store.mark_delivered(job.id, message.id, self.claimant)
        if not recorded:
            log.warning(
                "Job %s: posted as %s, but another process took the post over; its record "
                "stands",
                job.id,
                message.id,
            )
            return PostResult(Outcome.TAKEN_OVER, message, found=found)
        return PostResult(Outcome.POSTED, message, found=found)

    async def _release(self, job: Job, reason: str) -> PostResult:
        await self._store.jobs.release_delivery(job.id, self.claimant)
        return PostResult(Outcome.RETRY, reason=reason)

    async def _give_up(self, job: Job, reason: str) -> PostResult:
        """Nothing can be posted. The lease stays held, so no other poster starts before
        the caller settles the job: it refunds it (which ends the lease) or `release`s it."""
        log.warning("Job %s cannot be posted: %s", job.id, reason)
        self.forget(job.id)
        return PostResult(Outcome.UNDELIVERABLE, reason=reason)

    async def release(self, job: Job) -> bool:
        """Give back this process's posting lease on the job (nothing was posted)."""
        return await self._store.jobs.release_delivery(job.id, self.claimant)

    def _count_download_failure(self, job: Job) -> int:
        failures = (self.download_failures.get(job.id) or 0) + 1
        self.download_failures.set(job.id, failures)
        return failures

    def _count_post_failure(self, job: Job) -> int:
        failures = (self.post_failures.get(job.id) or 0) + 1
        self.post_failures.set(job.id, failures)
        return failures

    def forget(self, job_id: int) -> None:
        """Drop what this process remembers about a job's failed attempts."""
        self.download_failures.pop(job_id)
        self.post_failures.pop(job_id)

    def channel(self, job: Job) -> discord.abc.Messageable:
        """The job's channel from the cache, else a partial one to send to directly.

        No lookup first: sending is the test. A channel that is gone answers 404 and one
        the bot may not use 403, and both are handled where the message is sent.
        """
        channel = self._client.get_channel(job.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self._client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    def upload_limit(self, job: Job) -> int:
        """The largest file the job's guild accepts: from the cache, else (a guild on another
        process's shards) the limit recorded with the job where its request arrived."""
        guild = self._client.get_guild(job.guild_id)
        if guild is not None:
            return guild.filesize_limit
        return job.upload_limit or discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    async def fetch_video(self, job: Job, *, transcode_until: float) -> PreparedVideo:
        """Download the video and fit it into the guild's upload limit: as it is, or
        re-encoded in the media pool by ``transcode_until`` (``time.monotonic()``); a
        preparation without a file (its ``reason`` says why) posts a link.

        Raises ``HappyHorseError`` when the download fails (the caller counts tries).
        """
        assert job.result_url is not None
        return await self._preparer.prepare(
            job.result_url,
            f"job-{job.id}-{time.monotonic_ns()}",
            self.upload_limit(job),
            download_deadline=self._settings.download_deadline_seconds,
            transcode_until=transcode_until,
        )

    async def find_posted(
        self, channel: discord.abc.Messageable, job: Job, *, again: bool
    ) -> discord.Message | None:
        """Look for a message this bot already posted for the job (an attempt that ended
        unrecorded).

        Only messages created since the posting became due can be it (the job's completion,
        or for a redelivery the deletion of its message), so the scan starts there (oldest
        first) and a busy channel cannot push the post out of reach.
        """
        marker = job_marker(job.id)
        due = job.message_deleted_at if again else job.completed_at
        since = (due or job.created_at) - datetime.timedelta(seconds=5)
        me = getattr(self._client.user, "id", None)
        try:
            async for message in channel.history(
                limit=HISTORY_SCAN_LIMIT,
                after=discord.Object(id=discord.utils.time_snowflake(since)),
            ):
                if message.author.id != me:
                    continue
                # The job's status card carries the same footer, but it is an interaction
                # response; the video is always a plain channel message.
                is_card = message.id == job.progress_message_id
                if is_card or message.interaction_metadata is not None:
                    continue
                if again and message.id == job.delivered_message_id:
                    continue
                if any(e.footer.text == marker for e in message.embeds):
                    return message
        except discord.HTTPException as exc:
            log.info("Job %s: could not read channel history (%s)", job.id, exc)
        return None


def too_large(exc: discord.HTTPException) -> bool:
    """Discord refused an upload as larger than the channel's limit."""
    return exc.status == 413 or exc.code == ENTITY_TOO_LARGE


def reply_reference(job: Job) -> discord.MessageReference | None:
    """A Continue job's post replies to the video it continues; without that message
    (deleted meanwhile) it is posted as a plain message rather than refused."""
    if job.reply_to_message_id is None:
        return None
    return discord.MessageReference(
        message_id=job.reply_to_message_id,
        channel_id=job.channel_id,
        guild_id=job.guild_id,
        fail_if_not_exists=False,
    )


def original_url(job: Job, video: PreparedVideo, ttl_hours: float) -> str | None:
    """The service's URL for an "Original" button: only under a re-encode, while it lives."""
    alive = original_link_alive(job.completed_at, ttl_hours, discord.utils.utcnow())
    return job.result_url if video.reencoded and alive else None


def link_notice(
    job: Job, video: PreparedVideo | None, ttl_hours: float, tr: Tr = ENGLISH
) -> str:
    """Why a video is posted as a link, and that the link expires (in ``tr``'s language)."""
    expires = link_expires_at(job.completed_at, ttl_hours)
    if video is None or video.reason is None:
        if expires is None:
            return tr._("The video could not be attached here; this link expires within a day.")
        return tr._(
            "The video could not be attached here; this link expires {when}.",
            when=discord.utils.format_dt(expires, "R"),
        )
    reason = tr(video.why) if video.why is not None else tr._("it could not be re-encoded")
    if expires is None:
        return tr._(
            "The video is over this server's upload limit and could not be re-encoded to fit "
            "({reason}); this link expires within a day.",
            reason=reason,
        )
    return tr._(
        "The video is over this server's upload limit and could not be re-encoded to fit "
        "({reason}); this link expires {when}.",
        reason=reason,
        when=discord.utils.format_dt(expires, "R"),
    )


async def send_video(
    channel: discord.abc.Messageable,
    job: Job,
    video: PreparedVideo | None,
    *,
    again: bool = False,
    ttl_hours: float,
    tr: Tr = ENGLISH,
) -> discord.Message:
    """Turn a prepared video into a posted message: upload its file, or post the link.

    In ``tr``'s language (the server's): the text, the embed and the buttons.
    A re-encoded file's post says what the re-encode did and carries an "Original" link
    button while the service's URL lives (``ttl_hours`` after completion). The link is
    posted, saying when it expires, when there is no file, or when the bot may not attach
    files there (403/50013; a process without the guild in its cache cannot check that
    first). A refusal as too large (413/40005) is raised: the caller re-encodes smaller.
    Every attempt sends the posting's nonce (`post_nonce`); a Continue job's post replies
    to the video it continues (`reply_reference`). Other errors are raised.
    """
    if again:
        content = tr._(
            "Video #{job} by {member}, posted again by a moderator.",
            job=job.id,
            member=f"<@{job.user_id}>",
        )
        mentions = discord.AllowedMentions.none()
    else:
        content = tr._("{member} your video is ready!", member=f"<@{job.user_id}>")
        mentions = requester_mentions(job.user_id)
    extra: dict[str, Any] = {"nonce": post_nonce(job, again=again)}
    reference = reply_reference(job)
    if reference is not None:
        extra["reference"] = reference
    refused_files = False
    if video is not None and video.path is not None:
        note = video.note()
        try:
            return await channel.send(
                f"{content}\n{tr(note)}" if note else content,
                embed=delivery_embed(job, link_only=False, tr=tr),
                file=discord.File(video.path, filename=f"happyhorse-{job.id}.mp4"),
                view=result_view(
                    job.id, original_url=original_url(job, video, ttl_hours), tr=tr
                ),
                allowed_mentions=mentions,
                **extra,
            )
        except discord.HTTPException as exc:
            if not (exc.status == 403 and exc.code == MISSING_PERMISSIONS):
                raise
            log.info("Job %s: attachments not allowed (no Attach Files); posting a link", job.id)
            refused_files = True
    notice = link_notice(job, None if refused_files else video, ttl_hours, tr)
    return await channel.send(
        f"{content}\n{job.result_url}\n{notice}",
        embed=delivery_embed(job, link_only=True, tr=tr),
        view=result_view(job.id, tr=tr),
        allowed_mentions=mentions,
        **extra,
    )
