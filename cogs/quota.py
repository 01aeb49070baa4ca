"""/quota for everyone, /quotas for moderators: credits, allowances and their resets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND
from botkit.launch import reply_private
from botkit.permissions import ModeratorGroup, is_moderator, member_role_ids, moderator_only
from core.modlog import audit_event
from core.wording import credits_text
from storage.credits import MAX_CREDITS
from storage.models import AllowanceSource, AuditAction, AuditEntry, Balance

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

AUDIT_SCAN = 100
AUDIT_SHOWN = 5
PERIOD_NOUNS = {"daily": "day", "weekly": "week", "monthly": "month"}
_SOURCES = {
    AllowanceSource.USER: "set for this member by a moderator",
    AllowanceSource.GUILD: "this server's default",
    AllowanceSource.DEFAULT: "the bot's default",
}


def allowance_source(balance: Balance) -> str:
    """Where the allowance comes from, for members: 'from role @Booster', ..."""
    if balance.source is AllowanceSource.ROLE and balance.role_id is not None:
        return f"from role <@&{balance.role_id}> (the highest of this member's roles)"
    return _SOURCES.get(balance.source, balance.source.value)


def cost_table_text(bot: HappyHorseBot) -> str:
    """The price list, one line per duration and quality."""
    lines = []
    durations = bot.api.dialect.durations
    shown = sorted({durations[0], 5, 10, durations[-1]} & set(durations))
    for quality in ("std", "pro"):
        for duration in shown:
            cost = bot.store.credits.cost(duration, quality)
            lines.append(f"{duration} s {quality}: {credits_text(cost)}")
    return "\n".join(lines)


def balance_embed(bot: HappyHorseBot, member: discord.abc.User, balance: Balance) -> discord.Embed:
    """Credits left, allowance, reset time and the cost table, as an embed."""
    embed = discord.Embed(title=f"Credits of {member.display_name}", colour=BRAND)
    embed.add_field(name="Left", value=f"**{balance.remaining}** of {balance.allowance}")
    embed.add_field(name="Used", value=str(balance.used))
    embed.add_field(
        name="Resets",
        value=f"<t:{int(balance.resets_at.timestamp())}:R> ({bot.store.credits.period.value})",
    )
    embed.add_field(name="Allowance", value=allowance_source(balance), inline=False)
    embed.add_field(name="Costs", value=cost_table_text(bot), inline=False)
    return embed


class Quota(commands.Cog):
    """Credit commands."""

    quotas = ModeratorGroup(
        name="quotas",
        description="Moderators: set members' video credits",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @app_commands.command(name="quota", description="See your video credits and what videos cost")
    @app_commands.guild_only()
    @app_commands.describe(user="Another member (needs Manage Server)")
    async def quota(
        self, interaction: discord.Interaction, user: discord.Member | None = None
    ) -> None:
        """/quota: the invoker's (or, for moderators, another member's) balance."""
        if interaction.guild_id is None:  # Discord enforces guild_only; a lax client may not
            raise app_commands.NoPrivateMessage()
        target: discord.abc.User = user or interaction.user
        if target.id != interaction.user.id and not is_moderator(interaction):
            await reply_private(
                interaction,
                "Looking at another member's credits needs the Manage Server permission.",
            )
            return
        balance = await self.bot.store.credits.balance(
            interaction.guild_id, target.id, member_role_ids(target)
        )
        await interaction.response.send_message(
            embed=balance_embed(self.bot, target, balance), ephemeral=True
        )

    @quotas.command(name="set", description="Set a member's credits per period")
    @moderator_only
    @app_commands.describe(user="The member", credits=f"Credits per period (0 to {MAX_CREDITS:,})")
    async def quotas_set(
        self,
        interaction: discord.Interaction,
        user: discord.Member,
        credits: app_commands.Range[int, 0, MAX_CREDITS],
    ) -> None:
        """/quotas set: a per-member override."""
        assert interaction.guild_id is not None
        if not 0 <= credits <= MAX_CREDITS:
            await reply_private(interaction, f"Credits must be between 0 and {MAX_CREDITS:,}.")
            return
        entry = await self.bot.store.credits.set_user_allowance(
            interaction.guild_id, user.id, credits, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        await reply_private(
            interaction,
            f"{user.mention} now gets {credits_text(credits)} per "
            f"{PERIOD_NOUNS[self.bot.store.credits.period.value]} "
            f"(was {entry.old_value or 'the default'}).",
        )

    @quotas.command(name="default", description="Set this server's default credits per period")
    @moderator_only
    @app_commands.describe(credits=f"Credits per period for every member (0 to {MAX_CREDITS:,})")
    async def quotas_default(
        self, interaction: discord.Interaction, credits: app_commands.Range[int, 0, MAX_CREDITS]
    ) -> None:
        """/quotas default: the guild's default allowance."""
        assert interaction.guild_id is not None
        if not 0 <= credits <= MAX_CREDITS:
            await reply_private(interaction, f"Credits must be between 0 and {MAX_CREDITS:,}.")
            return
        entry = await self.bot.store.credits.set_guild_default(
            interaction.guild_id, credits, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        await reply_private(
            interaction,
            f"Members without their own allowance now get {credits_text(credits)} per "
            f"{PERIOD_NOUNS[self.bot.store.credits.period.value]} "
            f"(was {entry.old_value or self.bot.settings.default_daily_credits}).",
        )

    @quotas.command(name="reset", description="Give a member their full credits back now")
    @moderator_only
    @app_commands.describe(user="The member")
    async def quotas_reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        """/quotas reset: restore the member's full allowance for this period."""
        assert interaction.guild_id is not None
        entry = await self.bot.store.credits.reset_usage(
            interaction.guild_id, user.id, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        balance = await self.bot.store.credits.balance(
            interaction.guild_id, user.id, member_role_ids(user)
        )
        await reply_private(
            interaction,
            f"{user.mention}'s credits were reset: "
            f"{balance.remaining} of {balance.allowance} left.",
        )

    @quotas.command(name="show", description="Show a member's credits")
    @moderator_only
    @app_commands.describe(user="The member")
    async def quotas_show(self, interaction: discord.Interaction, user: discord.Member) -> None:
        """/quotas show: another member's balance."""
        assert interaction.guild_id is not None
        balance = await self.bot.store.credits.balance(
            interaction.guild_id, user.id, member_role_ids(user)
        )
        embed = balance_embed(self.bot, user, balance)
        audit = await self.bot.store.credits.list_audit(interaction.guild_id, AUDIT_SCAN)
        changes = [audit_line(e) for e in audit if e.target_user_id == user.id][:AUDIT_SHOWN]
        embed.add_field(
            name="Recent moderator changes", value="\n".join(changes) or "None", inline=False
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @quotas.command(name="role-set", description="Set the credits per period of a role's members")
    @moderator_only
    @app_commands.describe(
        role="Members with this role get this allowance (the highest of their roles counts)",
        credits=f"Credits per period (0 to {MAX_CREDITS:,})",
    )
    async def quotas_role_set(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        credits: app_commands.Range[int, 0, MAX_CREDITS],
    ) -> None:
        """/quotas role-set: an allowance for every member holding a role."""
        assert interaction.guild_id is not None
        if not 0 <= credits <= MAX_CREDITS:
            await reply_private(interaction, f"Credits must be between 0 and {MAX_CREDITS:,}.")
            return
        entry = await self.bot.store.credits.set_role_allowance(
            interaction.guild_id, role.id, credits, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        was = f"was {entry.old_value}" if entry.old_value is not None else "new"
        await reply_private(
            interaction,
            f"Members with {role.mention} now get {credits_text(credits)} per "
            f"{PERIOD_NOUNS[self.bot.store.credits.period.value]} ({was}), unless a "
            "moderator set their own allowance. A member with several such roles gets the "
            "highest.",
        )

    @quotas.command(name="role-remove", description="Remove a role's allowance")
    @moderator_only
    @app_commands.describe(role="The role whose allowance to remove")
    async def quotas_role_remove(
        self, interaction: discord.Interaction, role: discord.Role
    ) -> None:
        """/quotas role-remove: members with the role fall back to the server default."""
        assert interaction.guild_id is not None
        entry = await self.bot.store.credits.set_role_allowance(
            interaction.guild_id, role.id, None, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        if entry.old_value is None:
            text = f"{role.mention} had no allowance of its own."
        else:
            text = (
                f"{role.mention} no longer has its own allowance (was {entry.old_value}); "
                "its members get their other roles' or the server's allowance."
            )
        await reply_private(interaction, text)


def audit_line(entry: AuditEntry) -> str:
    """One audit row for moderators: when, who, what, from and to."""
    action = entry.action.value.replace("_", " ")
    values = f"{entry.old_value or 'default'} → {entry.new_value or 'default'}"
    if entry.action is AuditAction.RESET_USAGE:
        values = "credits restored"
    elif entry.action is AuditAction.SET_ROLE_ALLOWANCE:
        values = (
            f"<@&{entry.target_role_id}> {entry.old_value or 'none'} → "
            f"{entry.new_value or 'none'}"
        )
    return f"<t:{int(entry.created_at.timestamp())}:R> <@{entry.moderator_id}> {action}: {values}"


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Quota(bot))
