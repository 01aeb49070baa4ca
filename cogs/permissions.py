"""Moderator checks, enforced at run time as well as through default permissions.

`default_member_permissions` only hides commands; server admins can override it and
Discord ignores it on subcommands. Every moderator command therefore also checks the
invoker's resolved permissions in the channel (`Interaction.permissions`).
"""

from __future__ import annotations

import discord
from discord import app_commands

MANAGE_SERVER_REQUIRED = "You need the Manage Server permission to use this command."


class NotModerator(app_commands.CheckFailure):
    """The invoker lacks Manage Server; the message is shown to them privately."""

    def __init__(self, message: str = MANAGE_SERVER_REQUIRED) -> None:
        super().__init__(message)
        self.message = message


def is_moderator(interaction: discord.Interaction) -> bool:
    """True if the invoker has Manage Server (or Administrator) in this guild."""
    if interaction.guild_id is None:
        return False
    perms = interaction.permissions
    return perms.manage_guild or perms.administrator


class ModeratorGroup(app_commands.Group):
    """A command group whose every subcommand requires Manage Server at run time."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Refuse non-moderators whatever the server's command permission overrides say."""
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not is_moderator(interaction):
            raise NotModerator()
        return True
