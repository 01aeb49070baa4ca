"""Regenerate and Delete buttons on delivered videos, working across restarts.

They are `DynamicItem`s: the job id lives in the custom id (`hh:regen:<id>`,
`hh:delete:<id>`), and the classes are registered at start-up, so a click on a message
posted by an earlier process is routed here with no view kept in memory.

The replies to a click are private, in the clicker's own language (``tr_for``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from botkit import views
from botkit.cards import status_card
from botkit.i18n import public_tr, tr_for
from botkit.launch import reply_private, start_job
from botkit.permissions import is_moderator, member_permissions, member_role_ids
from core.i18n import _
from core.images import signed_url_expired
from core.jobs import IMAGE_TO_VIDEO, JobDraft
from core.queue import CancelOutcome
from core.wording import credits_text, past_period_note
from storage.models import Job

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)


def _bot(interaction: discord.Interaction) -> HappyHorseBot:
    return interaction.client  # type: ignore[return-value]


class RegenerateButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=views.template(views.REGENERATE),
):
    """Start a new job with the same settings, charged to whoever clicks."""

    def __init__(self, job_id: int) -> None:
        super().__init__(views.regenerate_button(job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RegenerateButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Reserve and submit a copy of the job for the clicker."""
        bot = _bot(interaction)
        tr = tr_for(interaction)
        job = await bot.store.jobs.get_job(self.job_id)
        if job is None or interaction.guild_id != job.guild_id or interaction.channel_id is None:
            await reply_private(interaction, tr._("That video's settings are no longer available."))
            return
        if job.erased_at is not None:
            await reply_private(
                interaction,
                tr._(
                    "This video's prompt and images were erased under the server's data "
                    "retention policy, so it can't be regenerated. Start a new one with "
                    "`/video` or `/animate`."
                ),
            )
            return
        if job.mode == IMAGE_TO_VIDEO and job.image_url and signed_url_expired(job.image_url):
            await reply_private(
                interaction,
                tr._(
                    "The source image's link has expired, so this video can't be regenerated. "
                    "Use `/animate` with the image again."
                ),
            )
            return
        draft = JobDraft(
            guild_id=job.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            mode=job.mode,
            prompt=job.prompt,
            duration=job.duration,
            aspect_ratio=job.aspect_ratio,
            quality=job.quality,
            sound=job.sound,
            image_url=job.image_url,
            interaction_id=interaction.id,
            last_frame_url=job.last_frame_url,
            role_ids=member_role_ids(interaction.user),
        )
        await start_job(bot, interaction, draft)


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=views.template(views.DELETE),
):
    """Delete a delivered video: its requester, or anyone who can manage messages."""

    def __init__(self, job_id: int) -> None:
        super().__init__(views.delete_button(job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> DeleteButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Delete the message if the clicker may; say why not otherwise."""
        bot = _bot(interaction)
        tr = tr_for(interaction)
        job = await bot.store.jobs.get_job(self.job_id)
        is_requester = job is not None and job.user_id == interaction.user.id
        can_manage = (
            isinstance(interaction.user, discord.Member)
            and member_permissions(interaction).manage_messages
        )
        if not (is_requester or can_manage):
            await reply_private(
                interaction,
                tr._(
                    "Only the person who asked for this video, or someone with Manage "
                    "Messages, can delete it."
                ),
            )
            return
        if interaction.message is None:
            await reply_private(interaction, tr._("That message is already gone."))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await interaction.message.delete()
        except discord.NotFound:
            pass
        except discord.Forbidden:
            await interaction.followup.send(
                tr._("I don't have permission to delete that message here."), ephemeral=True
            )
            return
        # /jobs must not link a message that is gone (and /job offers Deliver again).
        await bot.store.jobs.mark_message_deleted(self.job_id, interaction.message.id)
        await interaction.followup.send(tr._("Deleted."), ephemeral=True)


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=views.template(views.CANCEL),
):
    """Cancel a queued job: its requester, or a moderator (Manage Server)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(views.cancel_button(job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Cancel the job if the clicker may; update the card and say what happened."""
        bot = _bot(interaction)
        tr = tr_for(interaction)
        if interaction.guild_id is None:
            await reply_private(interaction, tr(CANCEL_REFUSALS[CancelOutcome.NOT_FOUND]))
            return
        outcome, job = await bot.queue.cancel(
            self.job_id,
            interaction.guild_id,
            interaction.user.id,
            moderator=is_moderator(interaction),
        )
        if outcome is not CancelOutcome.CANCELLED or job is None:
            await reply_private(interaction, tr(CANCEL_REFUSALS[outcome]))
            return
        card_tr = await public_tr(bot, interaction)  # the card is public: the server's language
        async with bot.cards.lock(job.id):
            try:
                await interaction.response.edit_message(
                    content=None, embed=status_card(job, tr=card_tr), view=None
                )
            except discord.HTTPException as exc:
                log.info("Could not update the card of cancelled job %s: %s", job.id, exc)
        bot.cards.forget(job.id)
        await reply_private(interaction, tr(cancelled_text(job, interaction.user.id, bot)))


def cancelled_text(job: Job, clicker_id: int, bot: HappyHorseBot) -> str:
    """'Cancelled your video; 2 credits returned.' (or the member's, for a moderator), with
    the past-period note when the credits went back to a period that has ended."""
    credits = credits_text(job.cost)
    note = past_period_note(job, bot.store.credits.period)
    if job.user_id == clicker_id:
        if note:
            return _(
                "Cancelled your video; {credits} returned: {note}.", credits=credits, note=note
            )
        return _("Cancelled your video; {credits} returned.", credits=credits)
    member = f"<@{job.user_id}>"
    if note:
        return _(
            "Cancelled {member}'s video; {credits} returned: {note}.",
            member=member,
            credits=credits,
            note=note,
        )
    return _("Cancelled {member}'s video; {credits} returned.", member=member, credits=credits)


CANCEL_REFUSALS = {
    CancelOutcome.NOT_ALLOWED: _(
        "Only the person who asked for this video, or a moderator (Manage Server), can cancel it."
    ),
    CancelOutcome.ALREADY_SENT: _(
        "This video was already sent to the video service, which has no way to cancel a "
        "job, so it can't be cancelled any more."
    ),
    CancelOutcome.ALREADY_SETTLED: _("This video was already cancelled or finished."),
    CancelOutcome.NOT_FOUND: _("That video no longer exists."),
}
"""Why a Cancel click did nothing (English `Message`s, said in the clicker's language)."""


class Buttons(commands.Cog):
    """Registers the persistent buttons so clicks after a restart still work."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Register the dynamic items."""
        self.bot.add_dynamic_items(RegenerateButton, DeleteButton, CancelButton)

    async def cog_unload(self) -> None:
        """Unregister the dynamic items."""
        self.bot.remove_dynamic_items(RegenerateButton, DeleteButton, CancelButton)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Buttons(bot))
