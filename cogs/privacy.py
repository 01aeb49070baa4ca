"""/privacy: a member's own data on request (export, delete) and a moderator's
/privacy delete-member for requests made by other channels.

The rules live in `core.privacy`; this cog is the Discord side: ephemeral replies, the
export as a JSON file, and a confirmation button (a persistent `DynamicItem`, so it still
works after a restart) before anything is erased. Who may press it is checked again at
the click: the member themself, or a moderator (Manage Server, at run time).

Every reply is private, in the clicker's own language (``tr_for``); the export file's keys
stay English (it is data, read by programs as much as by people).
"""

from __future__ import annotations

import io
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from botkit.i18n import locale_str, tr_for
from botkit.launch import reply_private
from botkit.permissions import is_moderator, member_role_ids, moderator_only
from core.i18n import ENGLISH, Number, Tr, _
from core.modlog import audit_event
from core.privacy import Erased, PrivacyService
from core.wording import credits_text

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

FORGET_INTERVAL_HOURS = 1.0
"""How often erased members' jobs of an ended credit period lose the member's id."""
NONE = discord.AllowedMentions.none()
STOPPED_NOTE = _("Cancelled and refunded: the member's data was deleted on request.")
OPTION_NAMES = (locale_str("user"),)
"""The options' names, marked for pybabel (the code keeps the English ones)."""


def _bot(interaction: discord.Interaction) -> HappyHorseBot:
    return interaction.client  # type: ignore[return-value]


def _service(bot: HappyHorseBot) -> PrivacyService:
    return PrivacyService(bot.store, bot.queue)


def erased_text(done: Erased, member: str | None, tr: Tr = ENGLISH) -> str:
    """The reply after an erase: what happened, in counts. ``member`` is the erased
    member's mention when a moderator did it, None when it was their own data."""
    erasure = done.erasure
    count, videos = erasure.jobs_erased, Number(erasure.jobs_erased)
    if member is None:
        first = tr.ngettext(
            "Deleted your data here: {count} video's prompt, images, links and messages are "
            "erased.",
            "Deleted your data here: {count} videos' prompts, images, links and messages are "
            "erased.",
            count,
            count=videos,
        )
    else:
        first = tr.ngettext(
            "Deleted {member}'s data here: {count} video's prompt, images, links and "
            "messages are erased.",
            "Deleted {member}'s data here: {count} videos' prompts, images, links and "
            "messages are erased.",
            count,
            member=member,
            count=videos,
        )
    parts = [first]
    if done.stopped:
        parts.append(
            tr.ngettext(
                "{count} unfinished video was cancelled and {credits} refunded first.",
                "{count} unfinished videos were cancelled and {credits} refunded first.",
                done.stopped,
                count=Number(done.stopped),
                credits=credits_text(done.credits_refunded),
            )
        )
    if erasure.jobs_still_counted:
        parts.append(
            tr._(
                "This period's videos still count against the allowance until it resets; "
                "then they are nobody's."
            )
        )
    if erasure.allowance_removed:
        parts.append(tr._("The member's own allowance was removed."))
    parts.append(tr._("Only anonymous counts remain, for the server's statistics."))
    return " ".join(parts)


class EraseButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"hh:privacy-erase:(?P<user_id>[0-9]+)",
):
    """Confirm erasing a member's data (the member, or a moderator)."""

    def __init__(self, user_id: int, tr: Tr = ENGLISH) -> None:
        super().__init__(
            discord.ui.Button(
                label=tr._("Delete the data"),
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
        return cls(int(match["user_id"]), tr_for(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Erase, if the clicker is the member or a moderator; say what was done."""
        guild_id = interaction.guild_id
        if guild_id is None:
            return
        tr = tr_for(interaction)
        own = interaction.user.id == self.user_id
        if not own and not is_moderator(interaction):
            await reply_private(
                interaction,
                tr._("Only that member or a moderator (Manage Server) can confirm this."),
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
        member = None if own else f"<@{self.user_id}>"
        await interaction.edit_original_response(
            content=erased_text(done, member, tr), view=None, allowed_mentions=NONE
        )


def confirm_view(user_id: int, tr: Tr = ENGLISH) -> discord.ui.View:
    """The confirmation button under the warning."""
    view = discord.ui.View(timeout=None)
    view.add_item(EraseButton(user_id, tr))
    return view


class Privacy(commands.Cog):
    """The /privacy commands, and the hourly task that forgets erased members' ids."""

    privacy = app_commands.Group(
        name=locale_str("privacy"),
        description=locale_str("Your data: get a copy, or delete it"),
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
        name=locale_str("export"),
        description=locale_str("Get a copy of everything the bot keeps about you here"),
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
        tr = tr_for(interaction)
        jobs, audit = len(data["jobs"]), len(data["audit"])
        videos = tr.ngettext("{count} video", "{count} videos", jobs, count=Number(jobs))
        entries = tr.ngettext(
            "{count} moderator log entry",
            "{count} moderator log entries",
            audit,
            count=Number(audit),
        )
        await interaction.followup.send(
            tr._(
                "Your data in this server: {videos}, your credits and {entries} about you. "
                "Only you can see this.",
                videos=videos,
                entries=entries,
            ),
            file=discord.File(io.BytesIO(payload), filename=name),
            ephemeral=True,
            allowed_mentions=NONE,
        )

    @privacy.command(
        name=locale_str("delete"),
        description=locale_str("Delete your prompts, images, video links and history here"),
    )
    async def delete(self, interaction: discord.Interaction) -> None:
        """/privacy delete: explain, then ask for confirmation with a button."""
        tr = tr_for(interaction)
        await interaction.response.send_message(
            tr._(
                "This erases your prompts, images, video links and message links in this "
                "server, and your own allowance. Unfinished videos are cancelled and refunded "
                "first. Videos already posted stay in their channels (delete them there). "
                "Only anonymous counts are kept. This cannot be undone. To keep your data, "
                "dismiss this message."
            ),
            view=confirm_view(interaction.user.id, tr),
            ephemeral=True,
            allowed_mentions=NONE,
        )

    @privacy.command(
        name=locale_str("delete-member"),
        description=locale_str("Moderators: delete a member's data (a request made elsewhere)"),
    )
    @app_commands.describe(user=locale_str("The member whose data to delete"))
    @moderator_only
    async def delete_member(self, interaction: discord.Interaction, user: discord.User) -> None:
        """/privacy delete-member user: the same erase, confirmed by the moderator."""
        tr = tr_for(interaction)
        await interaction.response.send_message(
            tr._(
                "This erases {member}'s prompts, images, video links and message links in "
                "this server, and their own allowance; unfinished videos are cancelled and "
                "refunded first. The moderator log records that you did it, without the "
                "erased content. This cannot be undone.",
                member=f"<@{user.id}>",
            ),
            view=confirm_view(user.id, tr),
            ephemeral=True,
            allowed_mentions=NONE,
        )


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Privacy(bot))
