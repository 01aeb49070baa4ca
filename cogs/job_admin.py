"""/job id: one job's full record for moderators, with Refund and Deliver again buttons.

Both buttons are `DynamicItem`s (the job id is in the custom id), so they keep working on a
/job answer shown before a restart. Each re-checks Manage Server when clicked, and the
store makes each happen at most once (a refund is a guarded state change; "Deliver again"
posts through `botkit.posting`, the one poster, and is used up only by a recorded post).

Everything here is private, in the moderator's own language (``tr_for``); the notes left
on a job's public card are `Message`s, said in the server's language by the card.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND
from botkit.i18n import locale_str, tr_for
from botkit.launch import reply_private
from botkit.permissions import MANAGE_SERVER_REQUIRED, is_moderator, moderator_only
from botkit.posting import Outcome
from core import metrics
from core.i18n import ENGLISH, Tr, _
from core.modlog import job_refunded
from core.privacy import STOPPED_REASON
from core.wording import credits_text, kind_label, past_period_note, quote, settings_line
from storage.models import Job, JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

#: Discord's largest integer option value: Int53Type in its OpenAPI spec is at most 2**53 - 1
#: (JavaScript's MAX_SAFE_INTEGER). One more and Discord refuses the whole command sync.
MAX_JOB_ID = 2**53 - 1

OPTION_NAMES = (locale_str("id"),)
"""The options' names, marked for pybabel (the code keeps the English ones)."""


def _bot(interaction: discord.Interaction) -> HappyHorseBot:
    return interaction.client  # type: ignore[return-value]


def _when(moment: Any) -> str:
    return f"<t:{int(moment.timestamp())}:f>"


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    """A jump link to a message."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def state_name(state: JobState, tr: Tr = ENGLISH) -> str:
    """A job state's name for moderators ('queued', 'delivered', ...)."""
    names = {
        JobState.QUEUED: tr.pgettext("job state", "queued"),
        JobState.RESERVED: tr.pgettext("job state", "reserved"),
        JobState.SUBMITTED: tr.pgettext("job state", "submitted"),
        JobState.COMPLETED: tr.pgettext("job state", "completed"),
        JobState.DELIVERED: tr.pgettext("job state", "delivered"),
        JobState.FAILED: tr.pgettext("job state", "failed"),
        JobState.REFUNDED: tr.pgettext("job state", "refunded"),
        JobState.EXPIRED: tr.pgettext("job state", "expired"),
    }
    return names.get(state, state.value)


def history_lines(job: Job, tr: Tr = ENGLISH) -> list[str]:
    """The job's state history with times, oldest first."""
    steps: list[tuple[Any, str]] = [(job.created_at, tr._("Requested (credits reserved)"))]
    if job.submitted_at:
        steps.append((job.submitted_at, tr._("Sent to the video service")))
    if job.completed_at:
        steps.append((job.completed_at, tr._("Video finished")))
    if job.delivered_at:
        steps.append((job.delivered_at, tr._("Delivered")))
    if job.message_deleted_at:
        steps.append((job.message_deleted_at, tr._("Delivered message deleted")))
    if job.redelivered_at:
        steps.append((job.redelivered_at, tr._("Delivered again by a moderator")))
    if job.refunded_at:
        refunded = (
            tr._("Refunded by {moderator}", moderator=f"<@{job.refunded_by}>")
            if job.refunded_by
            else tr._("Refunded")
        )
        steps.append((job.refunded_at, refunded))
    if job.notified_at and not job.refunded_by:
        steps.append((job.notified_at, tr._("Member told")))
    if job.erased_at:
        steps.append((job.erased_at, tr._("Prompt and links erased (retention)")))
    steps.sort(key=lambda step: step[0])
    return [f"{_when(moment)} {text}" for moment, text in steps]


STORED_REASONS = {
    "refunded by a moderator": _("refunded by a moderator"),
    STOPPED_REASON: _("cancelled: the member asked for their data to be deleted"),
}
"""The English reasons the store and core record in ``last_error`` (data, kept English in
the database), said in the moderator's language when /job shows them. Other errors (the
video service's own words) are shown as recorded."""


def last_error_text(error: str, tr: Tr = ENGLISH) -> str:
    """A job's recorded error for /job, translated when it is one of ours."""
    known = STORED_REASONS.get(error)
    return tr(known) if known is not None else tr(error)


def can_deliver_again(job: Job) -> bool:
    """Whether "Deliver again" may still be used on this job."""
    if job.redelivered_at is not None or job.result_url is None:
        return False
    if job.state is JobState.COMPLETED:
        return True
    return job.state is JobState.DELIVERED and job.message_deleted_at is not None


def job_embed(job: Job, tr: Tr = ENGLISH) -> discord.Embed:
    """One job's full record, in ``tr``'s language."""
    embed = discord.Embed(
        title=tr._("Job #{id}: {state}", id=job.id, state=state_name(job.state, tr)),
        colour=BRAND,
    )
    if job.erased_at:
        embed.description = "*" + tr._("(prompt erased by the retention policy)") + "*"
    elif job.prompt:
        embed.description = quote(job.prompt, 1000)
    embed.add_field(name=tr._("Member"), value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name=tr._("Channel"), value=f"<#{job.channel_id}>", inline=True)
    kind = tr._("{kind} (sandbox)", kind=kind_label(job)) if job.sandbox else tr(kind_label(job))
    embed.add_field(name=tr._("Type"), value=kind, inline=True)
    embed.add_field(name=tr._("Settings"), value=tr(settings_line(job)), inline=True)
    embed.add_field(name=tr._("Cost"), value=tr(credits_text(job.cost)), inline=True)
    embed.add_field(
        name=tr._("Task id"), value=f"`{job.task_id}`" if job.task_id else "—", inline=True
    )
    refund = tr._("Not refunded")
    if job.state is JobState.REFUNDED:
        credits = credits_text(job.cost)
        refund = (
            tr._(
                "{credits} refunded by {moderator}",
                credits=credits,
                moderator=f"<@{job.refunded_by}>",
            )
            if job.refunded_by
            else tr._("{credits} refunded", credits=credits)
        )
    embed.add_field(name=tr.pgettext("job record", "Refund"), value=refund, inline=True)
    if job.delivered_message_id:
        link = message_link(job.guild_id, job.channel_id, job.delivered_message_id)
        message = (
            tr._("deleted ({link})", link=link)
            if job.message_deleted_at
            else tr._("[Open]({link})", link=link)
        )
    else:
        message = tr._("Not posted")
    embed.add_field(name=tr._("Delivery message"), value=message, inline=True)
    embed.add_field(
        name=tr._("History"), value="\n".join(history_lines(job, tr))[:1024], inline=False
    )
    if job.last_error:
        embed.add_field(
            name=tr._("Last error"),
            value=quote(last_error_text(job.last_error, tr), 500),
            inline=False,
        )
    if job.image_url:
        images = job.image_url + (f"\n{job.last_frame_url}" if job.last_frame_url else "")
        embed.add_field(name=tr._("Images"), value=quote(images, 1000), inline=False)
    if job.result_url:
        embed.add_field(
            name=tr._("Video"), value=tr._("[Result]({link})", link=job.result_url), inline=False
        )
    return embed


class RefundButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"hh:jobrefund:(?P<job_id>[0-9]+)",
):
    """Refund the job (moderators; once)."""

    def __init__(self, job_id: int, tr: Tr = ENGLISH) -> None:
        super().__init__(
            discord.ui.Button(
                label=tr._("Refund"),
                emoji="↩️",
                style=discord.ButtonStyle.danger,
                custom_id=f"hh:jobrefund:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RefundButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["job_id"]), tr_for(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Refund once; say so; log it."""
        bot = _bot(interaction)
        tr = tr_for(interaction)
        job = await _moderated_job(interaction, self.job_id)
        if job is None:
            return
        entry = await bot.store.jobs.moderator_refund(job.id, interaction.user.id)
        if entry is None:
            await reply_private(interaction, tr._("Job #{id} was already refunded.", id=job.id))
            return
        refunded = await bot.store.jobs.get_job(job.id) or job
        bot.modlog.post(job.guild_id, job_refunded(refunded, interaction.user.id))
        # The scheduler stops polling it, and a running slot it held is free again.
        bot.jobs.notify(refunded)
        bot.queue.wake()
        if job.state is not JobState.DELIVERED:
            # An unfinished job stops here: its card must not keep saying "Generating".
            bot.cards.request(refunded, note=_("Refunded by a moderator."), final=True)
        note = past_period_note(refunded, bot.store.credits.period)
        credits, member = credits_text(job.cost), f"<@{job.user_id}>"
        await reply_private(
            interaction,
            tr._(
                "Refunded {credits} to {member} for job #{id}: {note}.",
                credits=credits,
                member=member,
                id=job.id,
                note=note,
            )
            if note
            else tr._(
                "Refunded {credits} to {member} for job #{id}.",
                credits=credits,
                member=member,
                id=job.id,
            ),
        )


class DeliverAgainButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"hh:redeliver:(?P<job_id>[0-9]+)",
):
    """Post a delivered job's video again after its message was deleted (moderators; once)."""

    def __init__(self, job_id: int, tr: Tr = ENGLISH) -> None:
        super().__init__(
            discord.ui.Button(
                label=tr._("Deliver again"),
                emoji="📮",
                style=discord.ButtonStyle.primary,
                custom_id=f"hh:redeliver:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> DeliverAgainButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["job_id"]), tr_for(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Claim the one redelivery, post the video, record the new message."""
        bot = _bot(interaction)
        tr = tr_for(interaction)
        job = await _moderated_job(interaction, self.job_id)
        if job is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await refresh_message_state(bot, job)
        if job.state is JobState.DELIVERED and job.message_deleted_at is None:
            link = message_link(job.guild_id, job.channel_id, job.delivered_message_id or 0)
            await interaction.followup.send(
                tr._("Job #{id}'s video is still posted: {link}", id=job.id, link=link),
                ephemeral=True,
            )
            return
        if not can_deliver_again(job):
            fresh = await _reload(bot, job)
            text = (
                tr._(
                    "Job #{id} can't be delivered again: it was already delivered again once.",
                    id=job.id,
                )
                if fresh.redelivered_at
                else tr._(
                    "Job #{id} can't be delivered again: it has no video to post (not "
                    "finished, refunded, or its link was erased).",
                    id=job.id,
                )
            )
            await interaction.followup.send(text, ephemeral=True)
            return
        # The one poster: the lease, the nonce, the history check and the fenced record.
        # The redelivery is used up only by a post that was made and recorded.
        result = await bot.poster.post(job)
        if result.outcome is Outcome.BUSY:
            fresh = await _reload(bot, job)
            text = (
                tr._(
                    "Job #{id} is being posted right now; check {channel} in a moment.",
                    id=job.id,
                    channel=f"<#{job.channel_id}>",
                )
                if can_deliver_again(fresh)
                else tr._(
                    "Job #{id} can't be delivered again: it was already delivered again "
                    "once, or its video is gone.",
                    id=job.id,
                )
            )
            await interaction.followup.send(text, ephemeral=True)
            return
        if result.outcome is Outcome.UNDELIVERABLE:
            await bot.poster.release(job)  # the delivery loop settles a completed job
        if result.message is None:
            why = tr(result.reason) if result.reason else tr._("the post did not go through")
            await interaction.followup.send(
                tr._(
                    "Could not post job #{id} in {channel}: {reason}. Nothing was used up: "
                    "you can try again (check my permissions there first).",
                    id=job.id,
                    channel=f"<#{job.channel_id}>",
                    reason=why,
                ),
                ephemeral=True,
            )
            return
        if job.state is JobState.COMPLETED and result.outcome is Outcome.POSTED:
            metrics.job_delivered(job)
            delivered = await _reload(bot, job)
            bot.cards.request(
                delivered, note=_("Posted: {link}", link=result.message.jump_url), final=True
            )
        await interaction.followup.send(
            tr._("Posted job #{id} again: {link}", id=job.id, link=result.message.jump_url),
            ephemeral=True,
        )


async def _reload(bot: HappyHorseBot, job: Job) -> Job:
    return await bot.store.jobs.get_job(job.id) or job


async def _moderated_job(interaction: discord.Interaction, job_id: int) -> Job | None:
    """The job, if the clicker is a moderator of its guild; otherwise answer why not."""
    if not is_moderator(interaction):
        await reply_private(interaction, tr_for(interaction)(MANAGE_SERVER_REQUIRED))
        return None
    job = await _bot(interaction).store.jobs.get_job(job_id)
    if job is None or job.guild_id != interaction.guild_id:
        await reply_private(
            interaction, tr_for(interaction)._("There is no job #{id} in this server.", id=job_id)
        )
        return None
    return job


async def refresh_message_state(bot: HappyHorseBot, job: Job) -> Job:
    """Check that a delivered job's message still exists; record it as deleted if not."""
    if job.delivered_message_id is None or job.message_deleted_at is not None:
        return job
    channel = bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    try:
        await channel.fetch_message(job.delivered_message_id)
    except discord.NotFound:
        await bot.store.jobs.mark_message_deleted(job.id, job.delivered_message_id)
        return await _reload(bot, job)
    except discord.HTTPException as exc:
        log.info("Could not check the message of job %s: %s", job.id, exc)
    return job


def job_view(job: Job, tr: Tr = ENGLISH) -> discord.ui.View | None:
    """The buttons that apply to the job now (None when neither does)."""
    view = discord.ui.View(timeout=None)
    if job.state is not JobState.REFUNDED:
        view.add_item(RefundButton(job.id, tr))
    if can_deliver_again(job):
        view.add_item(DeliverAgainButton(job.id, tr))
    return view if view.children else None


class JobAdmin(commands.Cog):
    """The /job command and its buttons."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Register the buttons so clicks after a restart still work."""
        self.bot.add_dynamic_items(RefundButton, DeliverAgainButton)

    async def cog_unload(self) -> None:
        """Unregister the buttons."""
        self.bot.remove_dynamic_items(RefundButton, DeliverAgainButton)

    @app_commands.command(
        name=locale_str("job"), description=locale_str("Moderators: one job's full record")
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(
        id=locale_str("The job number (shown as 'HappyHorse job #N' under its video)")
    )
    @moderator_only
    async def job(
        self, interaction: discord.Interaction, id: app_commands.Range[int, 1, MAX_JOB_ID]
    ) -> None:
        """/job id: the record, state history, and the buttons that apply."""
        tr = tr_for(interaction)
        job = await self.bot.store.jobs.get_job(id)
        if job is None or job.guild_id != interaction.guild_id:
            await reply_private(interaction, tr._("There is no job #{id} in this server.", id=id))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await refresh_message_state(self.bot, job)
        view = job_view(job, tr)
        if view is None:
            await interaction.followup.send(embed=job_embed(job, tr), ephemeral=True)
        else:
            await interaction.followup.send(embed=job_embed(job, tr), view=view, ephemeral=True)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(JobAdmin(bot))
