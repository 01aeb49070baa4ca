"""/stats: what the server made, spent and was refunded, with a chart (Manage Server).

The figures are the server's, so they are in the server's language (``public_tr``)."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND
from botkit.i18n import locale_str, locale_text, public_tr, tr_for
from botkit.permissions import moderator_only
from core.chart import outcome_chart
from core.i18n import ENGLISH, Number, Tr
from core.stats import DEFAULT_DAYS, MAX_DAYS, StatsReport, guild_report
from core.wording import credits_text

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

OPTION_NAMES = (locale_str("days"))
"""The options' names, marked for pybabel: Discord shows them translated, while the
code and every interaction keep the English ones."""
CHART_NAME = "stats.png"


def _hour(hour: int) -> str:
    return f"{hour:02d}:00–{(hour + 1) % 24:02d}:00"


def stats_embed(report: StatsReport, bot: HappyHorseBot, tr: Tr = ENGLISH) -> discord.Embed:
    """The /stats answer's embed (the chart is attached as its image)."""
    stats = report.stats
    settings = bot.settings
    embed = discord.Embed(
        title=tr.ngettext(
            "Video stats: the last {count} day",
            "Video stats: the last {count} days",
            report.days,
            count=report.days,
        ),
        colour=BRAND,
    )
    embed.description = tr._(
        "From {date} to now (days in UTC).", date=f"<t:{int(stats.since.timestamp())}:D>"
    )
    embed.add_field(
        name=tr._("Videos"),
        value=tr._(
            "{made} made · {failed} failed · {pending} in progress",
            made=Number(stats.made),
            failed=Number(stats.failed),
            pending=Number(stats.pending),
        ),
        inline=False,
    )
    embed.add_field(
        name=tr._("Credits"),
        value=tr._(
            "{spent} spent · {refunds} refunds ({refunded} refunded)",
            spent=credits_text(stats.credits_spent),
            refunds=Number(stats.refunded),
            refunded=credits_text(stats.credits_refunded),
        ),
        inline=False,
    )
    top = "\n".join(
        f"{rank}. <@{m.user_id}>: "
        + tr.ngettext(
            "{count} video ({credits})",
            "{count} videos ({credits})",
            m.videos,
            count=Number(m.videos),
            credits=credits_text(m.credits),
        )
        for rank, m in enumerate(stats.top_members, start=1)
    )
    embed.add_field(name=tr._("Top members"), value=top or tr._("Nobody yet"), inline=True)
    hours = "\n".join(
        f"{_hour(h)}: " + tr.ngettext("{count} job", "{count} jobs", n, count=Number(n))
        for h, n in stats.busiest_hours
    )
    embed.add_field(
        name=tr._("Busiest hours (UTC)"), value=hours or tr._("No jobs yet"), inline=True
    )
    estimate = tr._(
        "≈ {credits} service credits for {seconds} s of video. This is an estimate: seconds "
        "made × the price per second in the bot's settings (std {std}, std with sound "
        "{std_sound}, pro {pro}, pro with sound {pro_sound}); your invoice is what counts.",
        credits=Number(report.estimated_service_credits),
        seconds=Number(report.priced_seconds),
        std=Number(settings.service_price_std),
        std_sound=Number(settings.service_price_std_sound),
        pro=Number(settings.service_price_pro),
        pro_sound=Number(settings.service_price_pro_sound),
    )
    if settings.sandbox:
        estimate += " " + tr._("Sandbox test clips cost nothing and are not counted.")
    embed.add_field(
        name=tr._("Estimated cost at the video service"), value=estimate, inline=False
    )
    embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed


class Stats(commands.Cog):
    """The /stats command."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @app_commands.command(name=locale_str("stats"), description=locale_str("Moderators: videos, credits and costs"))  # noqa: E501
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(days=locale_text("How many days back (default {default}, at most {max})", default=DEFAULT_DAYS, max=MAX_DAYS))  # noqa: E501
    @moderator_only
    async def stats(
        self,
        interaction: discord.Interaction,
        days: app_commands.Range[int, 1, MAX_DAYS] = DEFAULT_DAYS,
    ) -> None:
        """/stats [days]: the server's figures and a chart of videos per day."""
        assert interaction.guild_id is not None
        if not 1 <= days <= MAX_DAYS:
            await interaction.response.send_message(
                tr_for(interaction)._("Days must be between 1 and {max}.", max=MAX_DAYS),
                ephemeral=True,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        tr = await public_tr(self.bot, interaction)
        report = await guild_report(
            self.bot.store, self.bot.settings, interaction.guild_id, days, discord.utils.utcnow()
        )
        png = await asyncio.to_thread(outcome_chart, report.stats.days, tr=tr)
        await interaction.followup.send(
            embed=stats_embed(report, self.bot, tr),
            file=discord.File(io.BytesIO(png), filename=CHART_NAME),
            ephemeral=True,
        )


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Stats(bot))
