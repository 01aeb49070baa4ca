"""/job id: one job's full record for moderators, with Refund and Deliver again buttons.

Both buttons are `DynamicItem`s (the job id is in the custom id), so they keep working on a
/job answer shown before a restart. Each re-checks Manage Server when clicked, and the
store makes each happen at most once (a refund is a guarded state change; "Deliver again"
is claimed by one guarded update before anything is posted).
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND
from botkit.launch import reply_private
from botkit.permissions import MANAGE_SERVER_REQUIRED, is_moderator, moderator_only
from cogs.delivery import prepare_result, send_result
from core.modlog import job_refunded
from core.uploads import PreparedVideo, VideoPreparer
from core.wording import credits_text, kind_label, settings_line, short
from happyhorse.errors import HappyHorseError
from storage.models import Job, JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

MAX_JOB_ID = 2**53


def _bot(interaction: discord.Interaction) -> HappyHorseBot:
    return interaction.client  # type: ignore[return-value]


def _when(moment: Any) -> str:
    return f"<t:{int(moment.timestamp())}:f>"


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    """A jump link to a message."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def history_lines(job: Job) -> list[str]:
    """The job's state history with times, oldest first."""
    steps: list[tuple[Any, str]] = [(job.created_at, "Requested (credits reserved)")]
    if job.submitted_at:
        steps.append((job.submitted_at, "Sent to the video service"))
    if job.completed_at:
        steps.append((job.completed_at, "Video finished"))
    if job.delivered_at:
        steps.append((job.delivered_at, "Delivered"))
    if job.message_deleted_at:
        steps.append((job.message_deleted_at, "Delivered message deleted"))
    if job.redelivered_at:
        steps.append((job.redelivered_at, "Delivered again by a moderator"))
    if job.refunded_at:
        by = f" by <@{job.refunded_by}>" if job.refunded_by else ""
        steps.append((job.refunded_at, f"Refunded{by}"))
    if job.notified_at and not job.refunded_by:
        steps.append((job.notified_at, "Member told"))
    if job.erased_at:
        steps.append((job.erased_at, "Prompt and links erased (retention)"))
    steps.sort(key=lambda step: step[0])
    return [f"{_when(moment)} {text}" for moment, text in steps]


def can_deliver_again(job: Job) -> bool:
    """Whether "Deliver again" may still be used on this job."""
    if job.redelivered_at is not None or job.result_url is None:
        return False
    if job.state is JobState.COMPLETED:
        return True
    return job.state is JobState.DELIVERED and job.message_deleted_at is not None


def job_embed(job: Job) -> discord.Embed:
    """One job's full record."""
    embed = discord.Embed(title=f"Job #{job.id}: {job.state.value}", colour=BRAND)
    if job.erased_at:
        embed.description = "*(prompt erased by the retention policy)*"
    elif job.prompt:
        embed.description = short(discord.utils.escape_markdown(job.prompt), 1000)
    embed.add_field(name="Member", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Channel", value=f"<#{job.channel_id}>", inline=True)
    kind = kind_label(job) + (" (sandbox)" if job.sandbox else "")
    embed.add_field(name="Type", value=kind, inline=True)
    embed.add_field(name="Settings", value=settings_line(job), inline=True)
    embed.add_field(name="Cost", value=credits_text(job.cost), inline=True)
    embed.add_field(name="Task id", value=f"`{job.task_id}`" if job.task_id else "—", inline=True)
    refund = "Not refunded"
    if job.state is JobState.REFUNDED:
        refund = f"{credits_text(job.cost)} refunded"
        if job.refunded_by:
            refund += f" by <@{job.refunded_by}>"
    embed.add_field(name="Refund", value=refund, inline=True)
    if job.delivered_message_id:
        link = message_link(job.guild_id, job.channel_id, job.delivered_message_id)
        message = f"deleted ({link})" if job.message_deleted_at else f"[Open]({link})"
    else:
        message = "Not posted"
    embed.add_field(name="Delivery message", value=message, inline=True)
    embed.add_field(name="History", value="\n".join(history_lines(job))[:1024], inline=False)
    if job.last_error:
        embed.add_field(name="Last error", value=short(job.last_error, 500), inline=False)
    if job.image_url:
        images = job.image_url + (f"\n{job.last_frame_url}" if job.last_frame_url else "")
        embed.add_field(name="Images", value=short(images, 1000), inline=False)
    if job.result_url:
        embed.add_field(name="Video", value=f"[Result]({job.result_url})", inline=False)
    return embed


class RefundButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"hh:jobrefund:(?P<job_id>[0-9]+)",
):
    """Refund the job (moderators; once)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Refund",
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
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Refund once; say so; log it."""
        bot = _bot(interaction)
        job = await _moderated_job(interaction, self.job_id)
        if job is None:
            return
        entry = await bot.store.jobs.moderator_refund(job.id, interaction.user.id)
        if entry is None:
            await reply_private(interaction, f"Job #{job.id} was already refunded.")
            return
        refunded = await bot.store.jobs.get_job(job.id) or job
        bot.modlog.post(job.guild_id, job_refunded(refunded, interaction.user.id))
        # The scheduler stops polling it, and a running slot it held is free again.
        bot.jobs.notify(refunded)
        bot.queue.wake()
        if job.state is not JobState.DELIVERED:
            # An unfinished job stops here: its card must not keep saying "Generating".
            bot.cards.request(refunded, note="Refunded by a moderator.", final=True)
        await reply_private(
            interaction,
            f"Refunded {credits_text(job.cost)} to <@{job.user_id}> for job #{job.id}.",
        )


class DeliverAgainButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"hh:redeliver:(?P<job_id>[0-9]+)",
):
    """Post a delivered job's video again after its message was deleted (moderators; once)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Deliver again",
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
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Claim the one redelivery, post the video, record the new message."""
        bot = _bot(interaction)
        job = await _moderated_job(interaction, self.job_id)
        if job is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await refresh_message_state(bot, job)
        if job.state is JobState.DELIVERED and job.message_deleted_at is None:
            link = message_link(job.guild_id, job.channel_id, job.delivered_message_id or 0)
            await interaction.followup.send(
                f"Job #{job.id}'s video is still posted: {link}", ephemeral=True
            )
            return
        if not await bot.store.jobs.claim_redelivery(job.id):
            fresh = await _reload(bot, job)
            reason = (
                "it was already delivered again once."
                if fresh.redelivered_at
                else "it has no video to post (not finished, refunded, or its link was erased)."
            )
            await interaction.followup.send(
                f"Job #{job.id} can't be delivered again: {reason}", ephemeral=True
            )
            return
        if job.state is JobState.COMPLETED and not await bot.store.jobs.claim_delivery(
            job.id, 300.0
        ):
            await interaction.followup.send(
                f"Job #{job.id} is being posted by the delivery loop right now.", ephemeral=True
            )
            return
        try:
            message = await post_again(bot, job)
        except discord.HTTPException as exc:
            log.warning("Deliver again of job %s failed: %s", job.id, exc)
            if job.state is JobState.COMPLETED:
                await bot.store.jobs.release_delivery(job.id)
            await interaction.followup.send(
                f"Discord refused the post (HTTP {exc.status}). Check my permissions in "
                f"<#{job.channel_id}>.",
                ephemeral=True,
            )
            return
        if job.state is JobState.COMPLETED:
            await bot.store.jobs.mark_delivered(job.id, message.id)
        else:
            await bot.store.jobs.record_redelivery(job.id, message.id)
        await interaction.followup.send(
            f"Posted job #{job.id} again: {message.jump_url}", ephemeral=True
        )


async def _reload(bot: HappyHorseBot, job: Job) -> Job:
    return await bot.store.jobs.get_job(job.id) or job


async def _moderated_job(interaction: discord.Interaction, job_id: int) -> Job | None:
    """The job, if the clicker is a moderator of its guild; otherwise answer why not."""
    if not is_moderator(interaction):
        await reply_private(interaction, MANAGE_SERVER_REQUIRED)
        return None
    job = await _bot(interaction).store.jobs.get_job(job_id)
    if job is None or job.guild_id != interaction.guild_id:
        await reply_private(interaction, f"There is no job #{job_id} in this server.")
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


async def post_again(bot: HappyHorseBot, job: Job) -> discord.Message:
    """Post the job's video in its channel the way the delivery does: the file, re-encoded
    to fit the upload limit when it is over it, else a link."""
    cached = bot.get_channel(job.channel_id)
    channel: discord.abc.Messageable = (
        cached
        if isinstance(cached, discord.abc.Messageable)
        else bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    )
    assert job.result_url is not None
    ends_at = time.monotonic() + bot.settings.delivery_time_limit_seconds
    with tempfile.TemporaryDirectory(prefix="happyhorse-again-") as folder:
        preparer = VideoPreparer(bot.api, bot.transcoder, Path(folder))
        prepared: PreparedVideo | None = None
        try:
            prepared = await prepare_result(bot, preparer, job, ends_at)
        except HappyHorseError as exc:
            log.info("Job %s: download for Deliver again failed (%s)", job.id, exc.message)
        return await send_result(
            bot,
            preparer,
            channel,
            job,
            prepared,
            content=f"Video #{job.id} by <@{job.user_id}>, posted again by a moderator.",
            mentions=discord.AllowedMentions.none(),
            nonce=None,
            ends_at=ends_at,
        )


def job_view(job: Job) -> discord.ui.View | None:
    """The buttons that apply to the job now (None when neither does)."""
    view = discord.ui.View(timeout=None)
    if job.state is not JobState.REFUNDED:
        view.add_item(RefundButton(job.id))
    if can_deliver_again(job):
        view.add_item(DeliverAgainButton(job.id))
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

    @app_commands.command(name="job", description="Moderators: one job's full record")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(id="The job number (shown as 'HappyHorse job #N' under its video)")
    @moderator_only
    async def job(
        self, interaction: discord.Interaction, id: app_commands.Range[int, 1, MAX_JOB_ID]
    ) -> None:
        """/job id: the record, state history, and the buttons that apply."""
        job = await self.bot.store.jobs.get_job(id)
        if job is None or job.guild_id != interaction.guild_id:
            await reply_private(interaction, f"There is no job #{id} in this server.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await refresh_message_state(self.bot, job)
        view = job_view(job)
        if view is None:
            await interaction.followup.send(embed=job_embed(job), ephemeral=True)
        else:
            await interaction.followup.send(embed=job_embed(job), view=view, ephemeral=True)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(JobAdmin(bot))
