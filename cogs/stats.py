"""/stats: what the server made, spent and was refunded, with a chart (Manage Server)."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND
from botkit.permissions import moderator_only
from core.chart import outcome_chart
from core.stats import DEFAULT_DAYS, MAX_DAYS, StatsReport, guild_report
from core.wording import credits_text

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

CHART_NAME = "stats.png"


def _hour(hour: int) -> str:
    return f"{hour:02d}:00–{(hour + 1) % 24:02d}:00"


def stats_embed(report: StatsReport, bot: HappyHorseBot) -> discord.Embed:
    """The /stats answer's embed (the chart is attached as its image)."""
    stats = report.stats
    settings = bot.settings
    plural = "day" if report.days == 1 else "days"
    embed = discord.Embed(title=f"Video stats: the last {report.days} {plural}", colour=BRAND)
    embed.description = f"From <t:{int(stats.since.timestamp())}:D> to now (days in UTC)."
    embed.add_field(
        name="Videos",
        value=f"{stats.made} made · {stats.failed} failed · {stats.pending} in progress",
        inline=False,
    )
    embed.add_field(
        name="Credits",
        value=(
            f"{credits_text(stats.credits_spent)} spent · {stats.refunded} refunds "
            f"({credits_text(stats.credits_refunded)} refunded)"
        ),
        inline=False,
    )
    top = "\n".join(
        f"{rank}. <@{m.user_id}>: {m.videos} video{'s' if m.videos != 1 else ''} "
        f"({credits_text(m.credits)})"
        for rank, m in enumerate(stats.top_members, start=1)
    )
    embed.add_field(name="Top members", value=top or "Nobody yet", inline=True)
    hours = "\n".join(f"{_hour(h)}: {n} job{'s' if n != 1 else ''}" for h, n in stats.busiest_hours)
    embed.add_field(name="Busiest hours (UTC)", value=hours or "No jobs yet", inline=True)
    estimate = (
        f"≈ {report.estimated_service_credits:,} service credits for "
        f"{report.priced_seconds:,} s of video. This is an estimate: seconds made × the "
        f"price per second in the bot's settings (std {settings.service_price_std}, "
        f"std with sound {settings.service_price_std_sound}, pro {settings.service_price_pro}, "
        f"pro with sound {settings.service_price_pro_sound}); your invoice is what counts."
    )
    if settings.sandbox:
        estimate += " Sandbox test clips cost nothing and are not counted."
    embed.add_field(name="Estimated cost at the video service", value=estimate, inline=False)
    embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed


class Stats(commands.Cog):
    """The /stats command."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @app_commands.command(name="stats", description="Moderators: videos, credits and costs")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(days=f"How many days back (default {DEFAULT_DAYS}, at most {MAX_DAYS})")
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
                f"Days must be between 1 and {MAX_DAYS}.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await guild_report(
            self.bot.store, self.bot.settings, interaction.guild_id, days, discord.utils.utcnow()
        )
        png = await asyncio.to_thread(outcome_chart, report.stats.days)
        await interaction.followup.send(
            embed=stats_embed(report, self.bot),
            file=discord.File(io.BytesIO(png), filename=CHART_NAME),
            ephemeral=True,
        )


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Stats(bot))
