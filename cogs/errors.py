"""One error handler for every application command: friendly, private (in the member's
language), logged (in English)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.i18n import tr_for
from botkit.launch import reply_private
from botkit.permissions import NotModerator
from core.errors import Refusal
from core.i18n import ENGLISH, Tr, _

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

GENERIC_FAILURE = _("Something went wrong on my side. It has been logged; please try again.")


def message_for(error: app_commands.AppCommandError, tr: Tr = ENGLISH) -> str | None:
    """The user's message for an expected failure in ``tr``'s language, or None for a bug."""
    original = getattr(error, "original", None)
    if isinstance(original, Refusal):
        return tr(original.message)
    if isinstance(original, ValueError) and original.args:
        # Storage validation (e.g. credits out of range) speaks in plain sentences.
        reason = original.args[0]
        return (tr(reason) if isinstance(reason, str) else str(reason))[:300]
    if isinstance(error, NotModerator):
        return tr(error.message)
    if isinstance(error, app_commands.NoPrivateMessage):
        return tr._("This command only works in a server, not in DMs. Use it in a server channel.")
    if isinstance(error, app_commands.CommandSignatureMismatch | app_commands.CommandNotFound):
        # The invoker's Discord app still shows an older version of the command.
        return tr._(
            "Your Discord app has an out of date version of this command. Reload Discord "
            "(Ctrl+R, or restart the app) and try again."
        )
    if isinstance(error, app_commands.TransformerError):
        return tr._(
            "That value is not valid for this option: {value}", value=str(error.value)[:100]
        )
    if isinstance(error, app_commands.CheckFailure):
        return tr._("You can't use this command here.")
    return None


class Errors(commands.Cog):
    """Installs the tree's error handler."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        self._previous = bot.tree.on_error

    async def cog_load(self) -> None:
        """Route every command error through `on_app_command_error`."""
        self.bot.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        """Restore the default handler."""
        self.bot.tree.on_error = self._previous  # type: ignore[method-assign]

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Tell the user what went wrong; log bugs with command and user (never secrets)."""
        tr = tr_for(interaction)
        message = message_for(error, tr)
        if message is None:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "Command /%s failed for user %s in guild %s",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=error,
            )
            message = tr(GENERIC_FAILURE)
        try:
            await reply_private(interaction, message)
        except discord.HTTPException as exc:
            log.info("Could not send the error message: %s", exc)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Errors(bot))
