"""/config: where the bot may be used, which prompt words it refuses, the queue limits and
the server's language (Manage Server).

Answers are private, in the moderator's own language; `/config language` sets the
language of the server's public messages (``core.languages``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND, SANDBOX_BANNER
from botkit.i18n import locale_str, tr_for
from botkit.launch import reply_private
from botkit.modlog import missing_log_permissions
from botkit.permissions import ModeratorGroup, moderator_only
from core.i18n import ENGLISH, Number, Tr, locales, native_name
from core.limits import Limits
from core.modlog import audit_event, moderator_change
from core.prompts import PromptError, normalise_prompt
from core.wording import code
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


OPTION_NAMES = (
    locale_str("channel"),
    locale_str("member_running"),
    locale_str("member_queued"),
    locale_str("server_running"),
    locale_str("cooldown_seconds"),
    locale_str("word"),
    locale_str("language"),
)
"""The options' names, marked for pybabel: Discord shows them translated, while the
code and every interaction keep the English ones."""
AUTOMATIC = "auto"
"""The /config language choice that follows the server's Discord language again."""
LANGUAGE_CHOICES = [
    app_commands.Choice(name=native_name(locale), value=locale) for locale in locales()
] + [app_commands.Choice(name=locale_str("Automatic: the server's Discord language"), value=AUTOMATIC)]  # noqa: E501


def _limit(value: int, tr: Tr) -> str:
    return tr._("no limit") if value == 0 else tr.number(value)


def limits_text(limits: Limits, tr: Tr = ENGLISH) -> str:
    """The effective limits, one per line, for moderators."""
    cooldown = (
        tr._("none") if limits.cooldown_seconds == 0 else tr.duration(limits.cooldown_seconds)
    )
    return "\n".join(
        (
            tr._("Running per member: {limit}", limit=_limit(limits.member_running, tr)),
            tr._("Queued per member: {limit}", limit=_limit(limits.member_queued, tr)),
            tr._("Running in this server: {limit}", limit=_limit(limits.server_running, tr)),
            tr._("Cool-down between requests: {cooldown}", cooldown=cooldown),
        )
    )


def language_text(locale: str, chosen: bool, tr: Tr) -> str:
    """'Deutsch (chosen by a moderator)' or '… (the server's Discord language)'."""
    if chosen:
        return tr._("{language} (chosen by a moderator)", language=native_name(locale))
    return tr._("{language} (the server's Discord language)", language=native_name(locale))


class Moderation(commands.Cog):
    """Per-guild generation settings."""

    config = ModeratorGroup(
        name=locale_str("config"),
        description=locale_str("Moderators: where videos may be made and which words are blocked"),
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @config.command(name=locale_str("show"), description=locale_str("Show this server's video settings"))  # noqa: E501
    @moderator_only
    async def show(self, interaction: discord.Interaction) -> None:
        """/config show."""
        assert interaction.guild_id is not None
        tr = tr_for(interaction)
        settings = await self.bot.store.guilds.get(interaction.guild_id)
        embed = discord.Embed(title=tr._("Video settings"), colour=BRAND)
        channels = " ".join(f"<#{cid}>" for cid in sorted(settings.allowed_channel_ids))
        embed.add_field(
            name=tr._("Allowed channels"), value=channels or tr._("Every channel"), inline=False
        )
        words = ", ".join(code(w, MAX_BLOCKED_WORD) for w in settings.blocked_words)
        embed.add_field(
            name=tr._("Blocked words"), value=(words or tr._("None"))[:1024], inline=False
        )
        embed.add_field(
            name=tr._("Log channel"),
            value=self._log_channel_status(interaction.guild_id, settings.log_channel_id, tr),
            inline=False,
        )
        embed.add_field(
            name=tr._("Limits"),
            value=limits_text(Limits.resolve(settings.limits), tr),
            inline=False,
        )
        guild_locale = interaction.guild_locale.value if interaction.guild_locale else None
        language = await self.bot.languages.locale(interaction.guild_id, guild_locale)
        embed.add_field(
            name=tr._("Language of public messages"),
            value=language_text(language, settings.language is not None, tr),
            inline=False,
        )
        queued = len(await self.bot.store.jobs.queued_jobs(interaction.guild_id))
        status = await self.bot.queue.service_status()
        service = tr.ngettext(
            "{status} · {count} waiting in the queue",
            "{status} · {count} waiting in the queue",
            queued,
            status=tr._("running") if status is None else tr(status),
            count=Number(queued),
        )
        if self.bot.settings.sandbox:
            service += "\n🧪 " + tr._(
                "{banner}. Videos are sandbox test clips; members are still charged credits, "
                "so quotas can be tried out.",
                banner=SANDBOX_BANNER,
            )
        embed.add_field(name=tr._("Video service"), value=service, inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @config.command(name=locale_str("language"), description=locale_str("Show or set the language of the server's public messages"))  # noqa: E501
    @moderator_only
    @app_commands.describe(language=locale_str("The language of cards, posts, notices and the log (leave empty to show it)"))  # noqa: E501
    @app_commands.choices(language=LANGUAGE_CHOICES)
    async def language(
        self, interaction: discord.Interaction, language: str | None = None
    ) -> None:
        """/config language [language]: show, or set (audited), the server's language."""
        assert interaction.guild_id is not None
        tr = tr_for(interaction)
        guild_locale = interaction.guild_locale.value if interaction.guild_locale else None
        if language is None:
            settings = await self.bot.store.guilds.get(interaction.guild_id)
            current = await self.bot.languages.locale(interaction.guild_id, guild_locale)
            await reply_private(
                interaction,
                tr._(
                    "Cards, posts, notices, the moderator log and /stats are in {language}. "
                    "Private replies use each member's own Discord language.",
                    language=language_text(current, settings.language is not None, tr),
                ),
            )
            return
        if language != AUTOMATIC and language not in locales():
            await reply_private(
                interaction,
                tr._(
                    "I don't speak that language. Choose one of: {languages}.",
                    languages=", ".join(native_name(locale) for locale in locales()),
                ),
            )
            return
        entry = await self.bot.languages.choose(
            interaction.guild_id,
            None if language == AUTOMATIC else language,
            interaction.user.id,
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        current = await self.bot.languages.locale(interaction.guild_id, guild_locale)
        await reply_private(
            interaction,
            tr._(
                "From now on, cards, posts, notices, the moderator log and /stats are in "
                "{language}.",
                language=language_text(current, language != AUTOMATIC, tr),
            ),
        )

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

    def _log_channel_status(self, guild_id: int, channel_id: int | None, tr: Tr) -> str:
        """'Off', or the channel and whether the bot can post there."""
        if channel_id is None:
            return tr._("Off (`/config log-channel` to choose one)")
        text = f"<#{channel_id}>"
        channel = self.bot.get_channel(channel_id)
        missing = missing_log_permissions(channel) if channel is not None else []
        problem = self.bot.modlog.problem(guild_id)
        if channel is None and self.bot.is_ready():
            problem = problem or tr._("I can't see that channel (deleted, or hidden from me)")
        if missing:
            problem = tr._("I am missing {permissions} there", permissions=", ".join(missing))
        if problem:
            text += "\n⚠️ " + tr._(
                "I can't post there: {problem}. Nothing else is affected.", problem=tr(problem)
            )
        return text

    @config.command(
        name=locale_str("log-channel"),
        description=locale_str("Post a log of videos, refunds and moderator changes in a channel"),
    )
    @moderator_only
    @app_commands.describe(channel=locale_str("Where to post the log (leave empty to turn logging off)"))  # noqa: E501
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
        tr = tr_for(interaction)
        if channel is None:
            await reply_private(interaction, tr._("The moderator log is off."))
            return
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        text = tr._(
            "I'll log every video, failure, refund, cancel and moderator change in {channel}.",
            channel=channel.mention,
        )
        missing = missing_log_permissions(channel)
        if missing:
            text += " ⚠️ " + tr._(
                "But I can't post there yet: I need {permissions} in that channel.",
                permissions=", ".join(missing),
            )
        await reply_private(interaction, text)

    @config.command(
        name=locale_str("limits"), description=locale_str("Show or set running and queued limits and the cool-down")  # noqa: E501
    )
    @moderator_only
    @app_commands.describe(
        member_running=locale_str("Videos one member can have in the making at once (0: no limit)"),
        member_queued=locale_str("Videos one member can have waiting in the queue (0: no limit)"),
        server_running=locale_str("Videos this server can have in the making at once (0: no limit)"),  # noqa: E501
        cooldown_seconds=locale_str("Seconds a member must wait between two requests (0: none)"),
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
        tr = tr_for(interaction)
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
                interaction,
                tr._("Current limits:") + "\n" + limits_text(Limits.resolve(current), tr),
            )
            return
        for name, value in given.items():
            if not 0 <= value <= LIMIT_MAXIMA[name]:
                await reply_private(
                    interaction,
                    tr._(
                        "{option} must be between 0 and {max}.",
                        option=name,
                        max=Number(LIMIT_MAXIMA[name]),
                    ),
                )
                return
        updated = dataclasses.replace(current, **given)
        entry = await self.bot.store.guilds.set_limits(
            interaction.guild_id, updated, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        self.bot.queue.wake()  # higher limits may let queued jobs start now
        await reply_private(
            interaction,
            tr._("Limits updated:") + "\n" + limits_text(Limits.resolve(updated), tr),
        )

    @config.command(
        name=locale_str("allow-channel"), description=locale_str("Allow videos in a channel (limits to the list)")  # noqa: E501
    )
    @moderator_only
    @app_commands.describe(channel=locale_str("A channel where videos may be made"))
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
        tr = tr_for(interaction)
        text = (
            tr._(
                "Videos can now be made in {channel}. Channels not on the list are closed.",
                channel=channel.mention,
            )
            if added
            else tr._("{channel} was already allowed.", channel=channel.mention)
        )
        await reply_private(interaction, text)

    @config.command(name=locale_str("remove-channel"), description=locale_str("Remove a channel from the allowed list"))  # noqa: E501
    @moderator_only
    @app_commands.describe(channel=locale_str("The channel to remove"))
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
        tr = tr_for(interaction)
        if not removed:
            text = tr._("{channel} was not on the allowed list.", channel=channel.mention)
        elif settings.allowed_channel_ids:
            text = tr._("{channel} is no longer allowed.", channel=channel.mention)
        else:
            text = tr._(
                "{channel} removed; the list is empty, so every channel is allowed.",
                channel=channel.mention,
            )
        await reply_private(interaction, text)

    @config.command(name=locale_str("block-word"), description=locale_str("Refuse prompts containing a word or phrase"))  # noqa: E501
    @moderator_only
    @app_commands.describe(word=locale_str("A word or short phrase"))
    async def block_word(
        self, interaction: discord.Interaction, word: app_commands.Range[str, 1, MAX_BLOCKED_WORD]
    ) -> None:
        """/config block-word."""
        assert interaction.guild_id is not None
        tr = tr_for(interaction)
        try:
            cleaned = normalise_prompt(word)
        except PromptError:
            await reply_private(
                interaction,
                tr._("Your word contains a control character. Remove it and try again."),
            )
            return
        if not cleaned or len(cleaned) > MAX_BLOCKED_WORD:
            await reply_private(
                interaction,
                tr._(
                    "A blocked word must be 1 to {max} visible characters.",
                    max=MAX_BLOCKED_WORD,
                ),
            )
            return
        added = await self.bot.store.guilds.add_blocked_word(
            interaction.guild_id, cleaned, interaction.user.id
        )
        if added:
            self._log(interaction, AuditAction.ADD_BLOCKED_WORD, new_value=cleaned.lower())
        shown = code(cleaned.lower(), MAX_BLOCKED_WORD)
        text = (
            tr._("Prompts containing {word} are now refused.", word=shown)
            if added
            else tr._("{word} was already blocked.", word=shown)
        )
        await reply_private(interaction, text)

    @config.command(name=locale_str("unblock-word"), description=locale_str("Allow a blocked word again"))  # noqa: E501
    @moderator_only
    @app_commands.describe(word=locale_str("The blocked word or phrase"))
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
        tr = tr_for(interaction)
        shown = code(cleaned.lower(), MAX_BLOCKED_WORD)
        text = (
            tr._("{word} is allowed again.", word=shown)
            if removed
            else tr._("{word} was not blocked.", word=shown)
        )
        await reply_private(interaction, text)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Moderation(bot))
