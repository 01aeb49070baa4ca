"""/quota for everyone, /quotas for moderators: credits, allowances and their resets.

Every answer is private, so it is in the member's own language (``tr_for``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND
from botkit.i18n import locale_str, locale_text, tr_for
from botkit.launch import reply_private
from botkit.permissions import ModeratorGroup, is_moderator, member_role_ids, moderator_only
from core.i18n import ENGLISH, Message, Number, Tr, _
from core.modlog import audit_event
from core.wording import credits_text, quote
from storage.credits import MAX_CREDITS
from storage.models import AllowanceSource, AuditAction, AuditEntry, Balance

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

AUDIT_SCAN = 100
AUDIT_SHOWN = 5
OPTION_NAMES = (locale_str("user"), locale_str("credits"), locale_str("role"))
"""The options' names, marked for pybabel: Discord shows them translated, while the
code and every interaction keep the English ones."""
PER_PERIOD = {"daily": _("per day"), "weekly": _("per week"), "monthly": _("per month")}
PERIOD_NAMES = {"daily": _("daily"), "weekly": _("weekly"), "monthly": _("monthly")}
_SOURCES = {
    AllowanceSource.USER: _("set for this member by a moderator"),
    AllowanceSource.GUILD: _("this server's default"),
    AllowanceSource.DEFAULT: _("the bot's default"),
}


def allowance_source(balance: Balance, tr: Tr = ENGLISH) -> str:
    """Where the allowance comes from, for members: 'from role @Booster', ..."""
    if balance.source is AllowanceSource.ROLE and balance.role_id is not None:
        return tr._(
            "from role {role} (the highest of this member's roles)",
            role=f"<@&{balance.role_id}>",
        )
    source = _SOURCES.get(balance.source)
    return balance.source.value if source is None else tr(source)


def per_period(bot: HappyHorseBot) -> Message:
    """'per day', 'per week' or 'per month': how often allowances reset."""
    return PER_PERIOD[bot.store.credits.period.value]


def cost_table_text(bot: HappyHorseBot, tr: Tr = ENGLISH) -> str:
    """The price list, one line per duration and quality."""
    lines = []
    durations = bot.api.dialect.durations
    shown = sorted({durations[0], 5, 10, durations[-1]} & set(durations))
    for quality in ("std", "pro"):
        for duration in shown:
            cost = bot.store.credits.cost(duration, quality)
            lines.append(
                tr._(
                    "{seconds} s {quality}: {credits}",
                    seconds=duration,
                    quality=quality,
                    credits=credits_text(cost),
                )
            )
    return "\n".join(lines)


def balance_embed(
    bot: HappyHorseBot, member: discord.abc.User, balance: Balance, tr: Tr = ENGLISH
) -> discord.Embed:
    """Credits left, allowance, reset time and the cost table, as an embed."""
    embed = discord.Embed(
        title=tr._("Credits of {member}", member=quote(member.display_name, 200)), colour=BRAND
    )
    embed.add_field(
        name=tr._("Left"),
        value=tr._(
            "**{left}** of {allowance}",
            left=Number(balance.remaining),
            allowance=Number(balance.allowance),
        ),
    )
    embed.add_field(name=tr._("Used"), value=tr.number(balance.used))
    period = PERIOD_NAMES[bot.store.credits.period.value]
    embed.add_field(
        name=tr._("Resets"),
        value=f"<t:{int(balance.resets_at.timestamp())}:R> ({tr(period)})",
    )
    embed.add_field(name=tr._("Allowance"), value=allowance_source(balance, tr), inline=False)
    embed.add_field(name=tr._("Costs"), value=cost_table_text(bot, tr), inline=False)
    return embed


def _was(old_value: str | None, fallback: object) -> object:
    """The previous allowance for 'was …' (a number, else what applied before)."""
    if old_value is None:
        return fallback
    return Number(int(old_value)) if old_value.isdigit() else old_value


class Quota(commands.Cog):
    """Credit commands."""

    quotas = ModeratorGroup(
        name=locale_str("quotas"),
        description=locale_str("Moderators: set members' video credits"),
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @app_commands.command(name=locale_str("quota"), description=locale_str("See your video credits and what videos cost"))  # noqa: E501
    @app_commands.guild_only()
    @app_commands.describe(user=locale_str("Another member (needs Manage Server)"))
    async def quota(
        self, interaction: discord.Interaction, user: discord.Member | None = None
    ) -> None:
        """/quota: the invoker's (or, for moderators, another member's) balance."""
        if interaction.guild_id is None:  # Discord enforces guild_only; a lax client may not
            raise app_commands.NoPrivateMessage()
        tr = tr_for(interaction)
        target: discord.abc.User = user or interaction.user
        if target.id != interaction.user.id and not is_moderator(interaction):
            await reply_private(
                interaction,
                tr._("Looking at another member's credits needs the Manage Server permission."),
            )
            return
        balance = await self.bot.store.credits.balance(
            interaction.guild_id, target.id, member_role_ids(target)
        )
        await interaction.response.send_message(
            embed=balance_embed(self.bot, target, balance, tr), ephemeral=True
        )

    async def _out_of_range(self, interaction: discord.Interaction, credits: int) -> bool:
        """Refuse credits outside 0..MAX_CREDITS (a client may skip Discord's own check)."""
        if 0 <= credits <= MAX_CREDITS:
            return False
        await reply_private(
            interaction,
            tr_for(interaction)._(
                "Credits must be between 0 and {max}.", max=Number(MAX_CREDITS)
            ),
        )
        return True

    @quotas.command(name=locale_str("set"), description=locale_str("Set a member's credits per period"))  # noqa: E501
    @moderator_only
    @app_commands.describe(user=locale_str("The member"), credits=locale_text("Credits per period (0 to {max})", max=Number(MAX_CREDITS)))  # noqa: E501
    async def quotas_set(
        self,
        interaction: discord.Interaction,
        user: discord.Member,
        credits: app_commands.Range[int, 0, MAX_CREDITS],
    ) -> None:
        """/quotas set: a per-member override."""
        assert interaction.guild_id is not None
        if await self._out_of_range(interaction, credits):
            return
        entry = await self.bot.store.credits.set_user_allowance(
            interaction.guild_id, user.id, credits, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        await reply_private(
            interaction,
            tr_for(interaction)._(
                "{member} now gets {credits} {per_period} (was {was}).",
                member=user.mention,
                credits=credits_text(credits),
                per_period=per_period(self.bot),
                was=_was(entry.old_value, _("the default")),
            ),
        )

    @quotas.command(name=locale_str("default"), description=locale_str("Set this server's default credits per period"))  # noqa: E501
    @moderator_only
    @app_commands.describe(credits=locale_text("Credits per period for every member (0 to {max})", max=Number(MAX_CREDITS)))  # noqa: E501
    async def quotas_default(
        self, interaction: discord.Interaction, credits: app_commands.Range[int, 0, MAX_CREDITS]
    ) -> None:
        """/quotas default: the guild's default allowance."""
        assert interaction.guild_id is not None
        if await self._out_of_range(interaction, credits):
            return
        entry = await self.bot.store.credits.set_guild_default(
            interaction.guild_id, credits, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        await reply_private(
            interaction,
            tr_for(interaction)._(
                "Members without their own allowance now get {credits} {per_period} "
                "(was {was}).",
                credits=credits_text(credits),
                per_period=per_period(self.bot),
                was=_was(entry.old_value, Number(self.bot.settings.default_daily_credits)),
            ),
        )

    @quotas.command(name=locale_str("reset"), description=locale_str("Give a member their full credits back now"))  # noqa: E501
    @moderator_only
    @app_commands.describe(user=locale_str("The member"))
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
            tr_for(interaction)._(
                "{member}'s credits were reset: {left} of {allowance} left.",
                member=user.mention,
                left=Number(balance.remaining),
                allowance=Number(balance.allowance),
            ),
        )

    @quotas.command(name=locale_str("show"), description=locale_str("Show a member's credits"))
    @moderator_only
    @app_commands.describe(user=locale_str("The member"))
    async def quotas_show(self, interaction: discord.Interaction, user: discord.Member) -> None:
        """/quotas show: another member's balance."""
        assert interaction.guild_id is not None
        tr = tr_for(interaction)
        balance = await self.bot.store.credits.balance(
            interaction.guild_id, user.id, member_role_ids(user)
        )
        embed = balance_embed(self.bot, user, balance, tr)
        audit = await self.bot.store.credits.list_audit(interaction.guild_id, AUDIT_SCAN)
        changes = [audit_line(e, tr) for e in audit if e.target_user_id == user.id][:AUDIT_SHOWN]
        embed.add_field(
            name=tr._("Recent moderator changes"),
            value="\n".join(changes) or tr._("None"),
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @quotas.command(name=locale_str("role-set"), description=locale_str("Set the credits per period of a role's members"))  # noqa: E501
    @moderator_only
    @app_commands.describe(
        role=locale_str("Members with this role get this allowance (the highest of their roles counts)"),  # noqa: E501
        credits=locale_text("Credits per period (0 to {max})", max=Number(MAX_CREDITS)),
    )
    async def quotas_role_set(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        credits: app_commands.Range[int, 0, MAX_CREDITS],
    ) -> None:
        """/quotas role-set: an allowance for every member holding a role."""
        assert interaction.guild_id is not None
        if await self._out_of_range(interaction, credits):
            return
        entry = await self.bot.store.credits.set_role_allowance(
            interaction.guild_id, role.id, credits, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        tr = tr_for(interaction)
        was = (
            tr._("was {was}", was=_was(entry.old_value, 0))
            if entry.old_value is not None
            else tr._("new")
        )
        await reply_private(
            interaction,
            tr._(
                "Members with {role} now get {credits} {per_period} ({was}), unless a "
                "moderator set their own allowance. A member with several such roles gets the "
                "highest.",
                role=role.mention,
                credits=credits_text(credits),
                per_period=per_period(self.bot),
                was=was,
            ),
        )

    @quotas.command(name=locale_str("role-remove"), description=locale_str("Remove a role's allowance"))  # noqa: E501
    @moderator_only
    @app_commands.describe(role=locale_str("The role whose allowance to remove"))
    async def quotas_role_remove(
        self, interaction: discord.Interaction, role: discord.Role
    ) -> None:
        """/quotas role-remove: members with the role fall back to the server default."""
        assert interaction.guild_id is not None
        entry = await self.bot.store.credits.set_role_allowance(
            interaction.guild_id, role.id, None, interaction.user.id
        )
        self.bot.modlog.post(interaction.guild_id, audit_event(entry))
        tr = tr_for(interaction)
        if entry.old_value is None:
            text = tr._("{role} had no allowance of its own.", role=role.mention)
        else:
            text = tr._(
                "{role} no longer has its own allowance (was {was}); its members get their "
                "other roles' or the server's allowance.",
                role=role.mention,
                was=_was(entry.old_value, 0),
            )
        await reply_private(interaction, text)


AUDIT_ACTIONS = {
    AuditAction.SET_USER_ALLOWANCE: _("set user allowance"),
    AuditAction.SET_GUILD_DEFAULT: _("set server default"),
    AuditAction.RESET_USAGE: _("reset usage"),
    AuditAction.SET_ROLE_ALLOWANCE: _("set role allowance"),
}


def audit_line(entry: AuditEntry, tr: Tr = ENGLISH) -> str:
    """One audit row for moderators: when, who, what, from and to."""
    known = AUDIT_ACTIONS.get(entry.action)
    action = entry.action.value.replace("_", " ") if known is None else tr(known)
    default = tr.pgettext("audit value", "default")
    none = tr.pgettext("audit value", "none")
    values = f"{entry.old_value or default} → {entry.new_value or default}"
    if entry.action is AuditAction.RESET_USAGE:
        values = tr._("credits restored")
    elif entry.action is AuditAction.SET_ROLE_ALLOWANCE:
        values = f"<@&{entry.target_role_id}> {entry.old_value or none} → {entry.new_value or none}"
    return f"<t:{int(entry.created_at.timestamp())}:R> <@{entry.moderator_id}> {action}: {values}"


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Quota(bot))
