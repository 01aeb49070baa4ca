"""/privacy: a member's own data on request (export, delete) and a moderator's
/privacy delete-member for requests made by other channels.

The rules live in `core.privacy`; this cog is the Discord side: ephemeral replies, the
export as a JSON file, and a confirmation button (a persistent `DynamicItem`, so it still
works after a restart) before anything is erased. Who may press it is checked again at
the click: the member themself, or a moderator (Manage Server, at run time).
"""

from __future__ import annotations

import io
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from botkit.launch import reply_private
from botkit.permissions import is_moderator, member_role_ids, moderator_only
from core.modlog import audit_event
from core.privacy import Erased, PrivacyService

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

FORGET_INTERVAL_HOURS = 1.0
"""How often erased members' jobs of an ended credit period lose the member's id."""
NONE = discord.AllowedMentions.none()
STOPPED_NOTE = "Cancelled and refunded: the member's data was deleted on request."


def _bot(interaction: discord.Interaction) -> HappyHorseBot:
    return interaction.client  # type: ignore[return-value]


def _service(bot: HappyHorseBot) -> PrivacyService:
    return PrivacyService(bot.store, bot.queue)


def erased_text(done: Erased, whose: str) -> str:
    """The reply after an erase: what happened, in counts."""
    erasure = done.erasure
    parts = [
        f"Deleted {whose} data here: {erasure.jobs_erased} videos' prompts, images, links "
        "and messages are erased."
    ]
    if done.stopped:
        parts.append(
            f"{done.stopped} unfinished videos were cancelled and "
            f"{done.credits_refunded} credits refunded first."
        )
    if erasure.jobs_still_counted:
        parts.append(
            "This period's videos still count against the allowance until it resets; "
            "then they are nobody's."
        )
    if erasure.allowance_removed:
        parts.append("The member's own allowance was removed.")
    parts.append("Only anonymous counts remain, for the server's statistics.")
    return " ".join(parts)


class EraseButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"hh:privacy-erase:(?P<user_id>[0-9]+)",
):
    """Confirm erasing a member's data (the member, or a moderator)."""

    def __init__(self, user_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete the data",
                emoji="🗑️",
                style=discord.ButtonStyle.danger,
                custom_id=f"hh:privacy-erase:{user_id}",
            )
        )
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> EraseButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["user_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Erase, if the clicker is the member or a moderator; say what was done."""
        guild_id = interaction.guild_id
        if guild_id is None:
            return
        own = interaction.user.id == self.user_id
        if not own and not is_moderator(interaction):
            await reply_private(
                interaction, "Only that member or a moderator (Manage Server) can confirm this."
            )
            return
        # The confirmation turns into the result, without its button.
        await interaction.response.defer()
        bot = _bot(interaction)
        done = await _service(bot).erase(guild_id, self.user_id, interaction.user.id)
        if done.erasure.audit is not None:
            bot.modlog.post(guild_id, audit_event(done.erasure.audit))
        for job in done.stopped_jobs:
            # Its card must not keep saying "Queued" or "Generating".
            bot.cards.request(job, note=STOPPED_NOTE, final=True)
        whose = "your" if own else f"<@{self.user_id}>'s"
        await interaction.edit_original_response(
            content=erased_text(done, whose), view=None, allowed_mentions=NONE
        )


def confirm_view(user_id: int) -> discord.ui.View:
    """The confirmation button under the warning."""
    view = discord.ui.View(timeout=None)
    view.add_item(EraseButton(user_id))
    return view


class Privacy(commands.Cog):
    """The /privacy commands, and the hourly task that forgets erased members' ids."""

    privacy = app_commands.Group(
        name="privacy",
        description="Your data: get a copy, or delete it",
        guild_only=True,
    )

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Register the button (clicks after a restart still work) and start the task."""
        self.bot.add_dynamic_items(EraseButton)
        self.forget_due.start()

    async def cog_unload(self) -> None:
        """Stop the task and unregister the button."""
        self.forget_due.cancel()
        self.bot.remove_dynamic_items(EraseButton)

    @tasks.loop(hours=FORGET_INTERVAL_HOURS)
    async def forget_due(self) -> None:
        """Erased members' jobs whose credit period ended become nobody's."""
        try:
            forgotten = await _service(self.bot).forget_due()
        except Exception:
            log.exception("Privacy: could not anonymise erased members' jobs; next hour again")
            return
        if forgotten:
            log.info("Privacy: %d jobs of erased members are now anonymous", forgotten)

    @forget_due.before_loop
    async def _before_forget(self) -> None:
        await self.bot.wait_until_ready()

    @privacy.command(
        name="export", description="Get a copy of everything the bot keeps about you here"
    )
    async def export(self, interaction: discord.Interaction) -> None:
        """/privacy export: the member's jobs, credits and audit entries as a JSON file."""
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        await interaction.response.defer(ephemeral=True, thinking=True)
        service = _service(self.bot)
        data = await service.export(
            interaction.guild_id,
            interaction.user.id,
            member_role_ids(interaction.user),
            discord.utils.utcnow(),
        )
        payload = service.export_bytes(data)
        name = f"happyhorse-data-{interaction.guild_id}-{interaction.user.id}.json"
        await interaction.followup.send(
            f"Your data in this server: {len(data['jobs'])} videos, your credits and "
            f"{len(data['audit'])} moderator log entries about you. Only you can see this.",
            file=discord.File(io.BytesIO(payload), filename=name),
            ephemeral=True,
            allowed_mentions=NONE,
        )

    @privacy.command(
        name="delete", description="Delete your prompts, images, video links and history here"
    )
    async def delete(self, interaction: discord.Interaction) -> None:
        """/privacy delete: explain, then ask for confirmation with a button."""
        await interaction.response.send_message(
            "This erases your prompts, images, video links and message links in this server, "
            "and your own allowance. Unfinished videos are cancelled and refunded first. "
            "Videos already posted stay in their channels (delete them there). Only "
            "anonymous counts are kept. This cannot be undone. To keep your data, dismiss "
            "this message.",
            view=confirm_view(interaction.user.id),
            ephemeral=True,
            allowed_mentions=NONE,
        )

    @privacy.command(
        name="delete-member",
        description="Moderators: delete a member's data (a request made elsewhere)",
    )
    @app_commands.describe(user="The member whose data to delete")
    @moderator_only
    async def delete_member(self, interaction: discord.Interaction, user: discord.User) -> None:
        """/privacy delete-member user: the same erase, confirmed by the moderator."""
        await interaction.response.send_message(
            f"This erases <@{user.id}>'s prompts, images, video links and message links in "
            "this server, and their own allowance; unfinished videos are cancelled and "
            "refunded first. The moderator log records that you did it, without the erased "
            "content. This cannot be undone.",
            view=confirm_view(user.id),
            ephemeral=True,
            allowed_mentions=NONE,
        )


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Privacy(bot))
