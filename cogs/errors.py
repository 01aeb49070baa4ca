"""One error handler for every application command: friendly, private, logged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.launch import reply_private
from botkit.permissions import NotModerator
from core.errors import Refusal

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Something went wrong on my side. It has been logged; please try again."


def message_for(error: app_commands.AppCommandError) -> str | None:
    """The user's message for an expected failure, or None for a bug."""
    original = getattr(error, "original", None)
    if isinstance(original, Refusal):
        return original.message
    if isinstance(original, ValueError) and original.args:
        # Storage validation (e.g. credits out of range) speaks in plain sentences.
        return str(original.args[0])[:300]
    if isinstance(error, NotModerator):
        return error.message
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server, not in DMs. Use it in a server channel."
    if isinstance(error, app_commands.CommandSignatureMismatch | app_commands.CommandNotFound):
        # The invoker's Discord app still shows an older version of the command.
        return (
            "Your Discord app has an out of date version of this command. Reload Discord "
            "(Ctrl+R, or restart the app) and try again."
        )
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not valid for this option: {str(error.value)[:100]}"
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
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
        message = message_for(error)
        if message is None:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "Command /%s failed for user %s in guild %s",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=error,
            )
            message = GENERIC_FAILURE
        try:
            await reply_private(interaction, message)
        except discord.HTTPException as exc:
            log.info("Could not send the error message: %s", exc)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Errors(bot))
