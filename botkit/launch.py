"""The first seconds of every request, shared by /video, /animate, the context menu and
the Regenerate button: check and reserve, acknowledge, submit, show the status card.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from babel.lists import format_list

from botkit.cards import status_card
from botkit.i18n import public_tr, tr_for
from botkit.permissions import bot_permissions, may_send
from core import metrics
from core.errors import Refusal
from core.i18n import ENGLISH, PSEUDO_LOCALE, Message, Tr, _
from core.jobs import JobDraft
from core.logs import CURRENT_JOB
from core.modlog import job_accepted, job_failed
from storage.models import Job, JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

NOT_STARTED = _("⚠️ This video could not be started; nothing was charged.")
"""The public placeholder's last words when a request is refused after it (the server's
language)."""


async def reply_private(interaction: discord.Interaction, message: str) -> None:
    """Send an ephemeral answer, whether or not the interaction was acknowledged yet.

    A `core.i18n.Message` (a core refusal) is said in the member's language; other text
    is sent as it is (already translated by the caller).
    """
    message = tr_for(interaction)(message)
    if interaction.response.is_done():
        await interaction.followup.send(message, ephemeral=True)
    else:
        await interaction.response.send_message(message, ephemeral=True)


def missing_post_permissions(interaction: discord.Interaction) -> list[str]:
    """Permissions the bot lacks in this channel to post a finished video (names, for users).

    Checked before anything is charged, so nobody waits for a video that would be made
    only to be refunded because it cannot be posted. Attach Files is not needed (without
    it the video is posted as a link); Read Message History is, because after a crash
    mid-post the bot reads the channel to find out whether the video was already posted.
    """
    perms = bot_permissions(interaction)
    if perms is None:
        return []  # unknowable here; the delivery loop checks again before posting
    in_thread = isinstance(interaction.channel, discord.Thread)
    # Discord's own names for the permissions, as its settings show them in each language.
    send = _("Send Messages in Threads") if in_thread else _("Send Messages")
    needed = {
        _("View Channel"): perms.view_channel,
        send: may_send(interaction.channel, perms),
        _("Embed Links"): perms.embed_links,
        _("Read Message History"): perms.read_message_history,
    }
    return [name for name, granted in needed.items() if not granted]


class _Names(str):
    """Permission names as a list in the reader's language ('A, B and C', 'A、B、C')."""

    names: tuple[str, ...]

    def __new__(cls, names: list[str]) -> _Names:
        joined = super().__new__(cls, _join(names, ENGLISH))
        joined.names = tuple(names)
        return joined

    def localize(self, tr: Tr) -> str:
        return _join([tr(name) for name in self.names], tr)


def _join(names: list[str], tr: Tr) -> str:
    if tr.locale == PSEUDO_LOCALE:  # Babel's English "and" would read as a leak there
        return ", ".join(names)
    return format_list(names, locale=tr.babel_locale)


def cannot_post_message(missing: list[str]) -> Message:
    """The refusal for a channel where the bot lacks permissions to post videos."""
    return _(
        "I can't post videos in this channel: I need {permissions} here. Ask a server admin "
        "to grant them, or use another channel.",
        permissions=_Names(missing),
    )


async def _refuse(
    bot: HappyHorseBot, interaction: discord.Interaction, message: str, *, deferred: bool
) -> None:
    """Say no privately; after a public acknowledgement, neutralise the placeholder first
    (in the server's language: the channel sees it)."""
    if not deferred:
        await reply_private(interaction, message)
        return
    try:
        public = await public_tr(bot, interaction)
        await interaction.edit_original_response(
            content=public(NOT_STARTED), embed=None, attachments=[]
        )
    except discord.HTTPException as exc:
        log.info("Could not replace the placeholder: %s", exc)
    await interaction.followup.send(tr_for(interaction)(message), ephemeral=True)


async def start_job(
    bot: HappyHorseBot, interaction: discord.Interaction, draft: JobDraft, *, deferred: bool = False
) -> Job | None:
    """Run a request from the interaction to a started (or queued) job with a live card.

    The checks (permissions, channel, prompt, cool-down, queue limit, credits) are local,
    and the database work before the acknowledgement is one transaction (`QueueService.accept`),
    so a refusal is answered ephemerally before anything is acknowledged. Only then is
    the interaction deferred (publicly: the card is for the channel to see) and the job
    started, or left in the queue if it is not its turn. A submit error refunds the
    reservation; the public placeholder then says so in one neutral line and the reason
    goes to the requester alone. A 429 or 402 keeps the job queued and says why, privately.

    ``deferred``: the caller already acknowledged publicly (Continue, which needs the time
    to make its starting image); a refusal then replaces the placeholder with the same
    neutral line and goes to the requester privately.
    """
    missing = missing_post_permissions(interaction)
    if missing:
        await _refuse(bot, interaction, cannot_post_message(missing), deferred=deferred)
        return None
    try:
        job = await bot.queue.accept(draft)
    except Refusal as refusal:
        await _refuse(bot, interaction, refusal.message, deferred=deferred)
        return None
    # This interaction runs in its own task: from here on its log lines carry the job id.
    CURRENT_JOB.set(job.id)
    try:
        if not deferred:
            await interaction.response.defer(thinking=True)
    except discord.HTTPException as exc:
        # Too late (the 3 s deadline passed) or Discord refused: nobody is waiting for
        # this job, so it must not run or cost anything.
        log.warning("Could not acknowledge the request for job %s: %s", job.id, exc)
        if await bot.store.jobs.fail_and_refund(
            job.id, "the request could not be acknowledged", expected=JobState.QUEUED
        ):
            metrics.count_credits_refunded(job.cost)
        return None
    if interaction.guild is not None:
        # Any process may deliver it, maybe one without this guild in its cache (another
        # shard's): it uploads within the limit recorded here.
        await bot.store.jobs.set_upload_limit(job.id, interaction.guild.filesize_limit)
    # The card and its placeholder are public: the server's language (and this records it,
    # so the video post and any notice later use the same one).
    public = await public_tr(bot, interaction)
    try:
        outcome = await bot.queue.start(job)
    except Refusal as refusal:
        try:
            await interaction.edit_original_response(content=public(NOT_STARTED), embed=None)
        except discord.HTTPException as exc:
            log.info("Could not replace the placeholder of job %s: %s", job.id, exc)
        await interaction.followup.send(tr_for(interaction)(refusal.message), ephemeral=True)
        bot.modlog.post(job.guild_id, job_failed(job, refusal.message))
        return None
    job = outcome.job
    try:
        info = await bot.cards.info(job)
        message = await interaction.edit_original_response(
            content=None,
            embed=status_card(job, info=info, tr=public),
            view=bot.cards.view_for(job) or discord.utils.MISSING,
        )
    except discord.HTTPException as exc:
        # The job is accepted and will be made and delivered by the loops regardless.
        log.warning("Could not show the status card of job %s: %s", job.id, exc)
        bot.modlog.post(job.guild_id, job_accepted(job, None))
        return job
    except Exception:
        # An unexpected answer must not make an accepted (and charged) job look failed.
        log.exception("Showing the status card of job %s failed", job.id)
        bot.modlog.post(job.guild_id, job_accepted(job, None))
        return job
    bot.modlog.post(job.guild_id, job_accepted(job, message.jump_url))
    await bot.store.jobs.set_progress_message(job.id, message.id)
    bot.cards.track(job.id, interaction)
    if outcome.message:
        try:
            await interaction.followup.send(tr_for(interaction)(outcome.message), ephemeral=True)
        except discord.HTTPException as exc:
            log.info("Could not tell the requester of job %s why it waits: %s", job.id, exc)
    return job
