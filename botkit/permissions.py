"""Moderator checks, enforced at run time as well as through default permissions.

`default_member_permissions` only hides commands; server admins can override it and
Discord ignores it on subcommands. Every moderator command therefore also checks the
invoker's resolved permissions in the channel (`Interaction.permissions`).
"""

from __future__ import annotations

import discord
from discord import app_commands

from core.i18n import _

MANAGE_SERVER_REQUIRED = _("You need the Manage Server permission to use this command.")


class NotModerator(app_commands.CheckFailure):
    """The invoker lacks Manage Server; the message (a `core.i18n.Message`) is shown to them
    privately, in their language."""

    def __init__(self, message: str = MANAGE_SERVER_REQUIRED) -> None:
        super().__init__(message)
        self.message = message


def member_permissions(interaction: discord.Interaction) -> discord.Permissions:
    """The invoker's resolved permissions in the interaction's channel.

    Discord sends them with every interaction; if a payload lacks them (discord.py then
    reports none at all), they are worked out from the cached guild: roles and overwrites.
    """
    perms = interaction.permissions
    channel = interaction.channel
    if (
        perms.value == 0
        and isinstance(interaction.user, discord.Member)
        and isinstance(channel, discord.abc.GuildChannel | discord.Thread)
    ):
        return channel.permissions_for(interaction.user)
    return perms


def channel_bot_permissions(channel: object) -> discord.Permissions | None:
    """The bot's permissions in a cached guild channel or thread; None when not knowable."""
    if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return None
    me = channel.guild.me
    return None if me is None else channel.permissions_for(me)


def may_send(channel: object, permissions: discord.Permissions) -> bool:
    """Whether those permissions allow posting a message in the channel (threads differ)."""
    if isinstance(channel, discord.Thread):
        return permissions.send_messages_in_threads
    return permissions.send_messages


def bot_permissions(interaction: discord.Interaction) -> discord.Permissions | None:
    """The bot's resolved permissions in the interaction's channel; None if unknowable.

    Like `member_permissions`, falls back to the cached guild when the payload has none.
    """
    perms = interaction.app_permissions
    if perms.value != 0:
        return perms
    return channel_bot_permissions(interaction.channel)


def member_role_ids(user: discord.abc.User) -> tuple[int, ...]:
    """The ids of a member's roles, as sent with the interaction (none for a plain user).

    Core decides allowances by role from these; they come from the interaction's member
    object, so they are current even when the guild's member cache is off.
    """
    if not isinstance(user, discord.Member):
        return ()
    return tuple(role.id for role in user.roles)


def is_moderator(interaction: discord.Interaction) -> bool:
    """True if the invoker has Manage Server (or Administrator) in this guild."""
    if interaction.guild_id is None:
        return False
    perms = member_permissions(interaction)
    return perms.manage_guild or perms.administrator


def _require_moderator(interaction: discord.Interaction) -> bool:
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if not is_moderator(interaction):
        raise NotModerator()
    return True


moderator_only = app_commands.check(_require_moderator)
"""Decorator: the command runs only for members with Manage Server, checked at run time."""


class ModeratorGroup(app_commands.Group):
    """A command group whose every subcommand requires Manage Server at run time."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Refuse non-moderators whatever the server's command permission overrides say."""
        return _require_moderator(interaction)
