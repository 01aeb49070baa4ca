"""/config: where the bot may be used, which prompt words it refuses, and the queue limits
(Manage Server)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND, SANDBOX_BANNER
from botkit.launch import reply_private
from botkit.modlog import missing_log_permissions
from botkit.permissions import ModeratorGroup, moderator_only
from core.limits import Limits
from core.modlog import audit_event, moderator_change
from core.prompts import PromptError, normalise_prompt
from storage.models import AuditAction

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

MAX_BLOCKED_WORD = 100
LIMIT_MAXIMA = {
    "member_running": 1000,
    "member_queued": 1000,
    "server_running": 10000,
    "cooldown_seconds": 86400,
}


def _limit(value: int, unit: str = "") -> str:
    return "no limit" if value == 0 else f"{value}{unit}"


def limits_text(limits: Limits) -> str:
    """The effective limits, one per line, for moderators."""
    cooldown = "none" if limits.cooldown_seconds == 0 else f"{limits.cooldown_seconds} s"
    return (
        f"Running per member: {_limit(limits.member_running)}\n"
        f"Queued per member: {_limit(limits.member_queued)}\n"
        f"Running in this server: {_limit(limits.server_running)}\n"
        f"Cool-down between requests: {cooldown}"
    )


class Moderation(commands.Cog):
    """Per-guild generation settings."""

    config = ModeratorGroup(
        name="config",
        description="Moderators: where videos may be made and which words are blocked",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @config.command(name="show", description="Show this server's video settings")
    @moderator_only
    async def show(self, interaction: discord.Interaction) -> None:
        """/config show."""
        assert interaction.guild_id is not None
        settings = await self.bot.store.guilds.get(interaction.guild_id)
        embed = discord.Embed(title="Video settings", colour=BRAND)
        channels = " ".join(f"<#{cid}>" for cid in sorted(settings.allowed_channel_ids))
        embed.add_field(name="Allowed channels", value=channels or "Every channel", inline=False)
        words = ", ".join(f"`{w}`" for w in settings.blocked_words)
        embed.add_field(name="Blocked words", value=(words or "None")[:1024], inline=False)
        embed.add_field(
            name="Log channel",
            value=self._log_channel_status(interaction.guild_id, settings.log_channel_id),
            inline=False,
        )
        embed.add_field(
            name="Limits", value=limits_text(Limits.resolve(settings.limits)), inline=False
        )
        queued = len(await self.bot.store.jobs.queued_jobs(interaction.guild_id))
        status = self.bot.queue.gate.status or "running"
        service = f"{status} · {queued} waiting in the queue"
        if self.bot.settings.sandbox:
            service += (
                f"\n🧪 {SANDBOX_BANNER}. Videos are sandbox test clips; members are "
                "still charged credits, so quotas can be tried out."
            )
        embed.add_field(name="Video service", value=service, inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _log(
        self,
        interaction: discord.Interaction,
        action: AuditAction,
        *,
        old_value: str | None = None,
        new_value: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        self.bot.modlog.post(
            interaction.guild_id,
            moderator_change(interaction.user.id, action, old_value=old_value, new_value=new_value),
        )

    def _log_channel_status(self, guild_id: int, channel_id: int | None) -> str:
        """'Off', or the channel and whether the bot can post there."""
        if channel_id is None:
            return "Off (`/config log-channel` to choose one)"
        text = f"<#{channel_id}>"
        channel = self.bot.get_channel(channel_id)
        missing = missing_log_permissions(channel) if channel is not None else []
        problem = self.bot.modlog.problem(guild_id)
        if channel is None and self.bot.is_ready():
            problem = problem or "I can't see that channel (deleted, or hidden from me)"
        if missing:
            problem = "I am missing " + ", ".join(missing) + " there"
        if problem:
            text += f"\n⚠️ I can't post there: {problem}. Nothing else is affected."
        return text

    @config.command(
        name="log-channel",
        description="Post a log of videos, refunds and moderator changes in a channel",
    )
    @moderator_only
    @app_commands.describe(channel="Where to post the log (leave empty to turn logging off)")
    async def log_channel(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        """/config log-channel [channel]: set or (without a channel) turn off the log."""
        assert interaction.guild_id is not None
        entry = await self.bot.store.guilds.set_log_channel(
            interaction.guild_id, None if channel is None else channel.id, interaction.user.id
        )
        self.bot.modlog.forget_problem(interaction.guild_id)
        if channel is None:
            await reply_private(interaction, "The moderator log is off.")
            return
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        text = (
            f"I'll log every video, failure, refund, cancel and moderator change in "
            f"{channel.mention}."
        )
        missing = missing_log_permissions(channel)
        if missing:
            text += f" ⚠️ But I can't post there yet: I need {', '.join(missing)} in that channel."
        await reply_private(interaction, text)

    @config.command(
        name="limits", description="Show or set running and queued limits and the cool-down"
    )
    @moderator_only
    @app_commands.describe(
        member_running="Videos one member can have in the making at once (0: no limit)",
        member_queued="Videos one member can have waiting in the queue (0: no limit)",
        server_running="Videos this server can have in the making at once (0: no limit)",
        cooldown_seconds="Seconds a member must wait between two requests (0: none)",
    )
    async def limits(
        self,
        interaction: discord.Interaction,
        member_running: app_commands.Range[int, 0, 1000] | None = None,
        member_queued: app_commands.Range[int, 0, 1000] | None = None,
        server_running: app_commands.Range[int, 0, 10000] | None = None,
        cooldown_seconds: app_commands.Range[int, 0, 86400] | None = None,
    ) -> None:
        """/config limits: with no options, show; otherwise change the given ones."""
        assert interaction.guild_id is not None
        current = (await self.bot.store.guilds.get(interaction.guild_id)).limits
        changes = {
            "member_running": member_running,
            "member_queued": member_queued,
            "server_running": server_running,
            "cooldown_seconds": cooldown_seconds,
        }
        given = {name: value for name, value in changes.items() if value is not None}
        if not given:
            await reply_private(
                interaction, "Current limits:\n" + limits_text(Limits.resolve(current))
            )
            return
        for name, value in given.items():
            if not 0 <= value <= LIMIT_MAXIMA[name]:
                await reply_private(
                    interaction, f"{name} must be between 0 and {LIMIT_MAXIMA[name]}."
                )
                return
        updated = dataclasses.replace(current, **given)
        entry = await self.bot.store.guilds.set_limits(
            interaction.guild_id, updated, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        self.bot.queue.wake()  # higher limits may let queued jobs start now
        await reply_private(
            interaction, "Limits updated:\n" + limits_text(Limits.resolve(updated))
        )

    @config.command(
        name="allow-channel", description="Allow videos in a channel (limits to the list)"
    )
    @moderator_only
    @app_commands.describe(channel="A channel where videos may be made")
    async def allow_channel(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | discord.VoiceChannel,
    ) -> None:
        """/config allow-channel."""
        assert interaction.guild_id is not None
        added = await self.bot.store.guilds.add_allowed_channel(
            interaction.guild_id, channel.id, interaction.user.id
        )
        if added:
            self._log(interaction, AuditAction.ADD_ALLOWED_CHANNEL, new_value=str(channel.id))
        text = (
            f"Videos can now be made in {channel.mention}. Channels not on the list are closed."
            if added
            else f"{channel.mention} was already allowed."
        )
        await reply_private(interaction, text)

    @config.command(name="remove-channel", description="Remove a channel from the allowed list")
    @moderator_only
    @app_commands.describe(channel="The channel to remove")
    async def remove_channel(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | discord.VoiceChannel,
    ) -> None:
        """/config remove-channel."""
        assert interaction.guild_id is not None
        removed = await self.bot.store.guilds.remove_allowed_channel(
            interaction.guild_id, channel.id, interaction.user.id
        )
        settings = await self.bot.store.guilds.get(interaction.guild_id)
        if removed:
            self._log(interaction, AuditAction.REMOVE_ALLOWED_CHANNEL, old_value=str(channel.id))
        if not removed:
            text = f"{channel.mention} was not on the allowed list."
        elif settings.allowed_channel_ids:
            text = f"{channel.mention} is no longer allowed."
        else:
            text = f"{channel.mention} removed; the list is empty, so every channel is allowed."
        await reply_private(interaction, text)

    @config.command(name="block-word", description="Refuse prompts containing a word or phrase")
    @moderator_only
    @app_commands.describe(word="A word or short phrase")
    async def block_word(
        self, interaction: discord.Interaction, word: app_commands.Range[str, 1, MAX_BLOCKED_WORD]
    ) -> None:
        """/config block-word."""
        assert interaction.guild_id is not None
        try:
            cleaned = normalise_prompt(word)
        except PromptError as exc:
            await reply_private(interaction, str(exc).replace("prompt", "word"))
            return
        if not cleaned or len(cleaned) > MAX_BLOCKED_WORD:
            await reply_private(
                interaction, f"A blocked word must be 1 to {MAX_BLOCKED_WORD} visible characters."
            )
            return
        added = await self.bot.store.guilds.add_blocked_word(
            interaction.guild_id, cleaned, interaction.user.id
        )
        if added:
            self._log(interaction, AuditAction.ADD_BLOCKED_WORD, new_value=cleaned.lower())
        text = (
            f"Prompts containing `{cleaned.lower()}` are now refused."
            if added
            else f"`{cleaned.lower()}` was already blocked."
        )
        await reply_private(interaction, text)

    @config.command(name="unblock-word", description="Allow a blocked word again")
    @moderator_only
    @app_commands.describe(word="The blocked word or phrase")
    async def unblock_word(
        self, interaction: discord.Interaction, word: app_commands.Range[str, 1, MAX_BLOCKED_WORD]
    ) -> None:
        """/config unblock-word."""
        assert interaction.guild_id is not None
        try:
            cleaned = normalise_prompt(word)
        except PromptError:
            cleaned = word
        removed = await self.bot.store.guilds.remove_blocked_word(
            interaction.guild_id, cleaned, interaction.user.id
        )
        if removed:
            self._log(interaction, AuditAction.REMOVE_BLOCKED_WORD, old_value=cleaned.lower())
        text = (
            f"`{cleaned.lower()}` is allowed again."
            if removed
            else f"`{cleaned.lower()}` was not blocked."
        )
        await reply_private(interaction, text)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Moderation(bot))
