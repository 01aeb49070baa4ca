"""/jobs: a member's recent videos with their state (queued ones with their position),
settings and links."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from botkit.cards import BRAND, job_line
from botkit.i18n import locale_str, tr_for
from storage.models import JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

RECENT_JOBS = 10


class History(commands.Cog):
    """The /jobs command."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    @app_commands.command(name=locale_str("jobs"), description=locale_str("Your recent videos and their status"))  # noqa: E501
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        """/jobs: the invoker's latest jobs in this server, newest first."""
        if interaction.guild_id is None:  # Discord enforces guild_only; a lax client may not
            raise app_commands.NoPrivateMessage()
        tr = tr_for(interaction)
        jobs = await self.bot.store.jobs.recent_jobs(
            interaction.guild_id, interaction.user.id, RECENT_JOBS
        )
        if not jobs:
            await interaction.response.send_message(
                tr._("You have no videos here yet. Try `/video` or `/animate`."), ephemeral=True
            )
            return
        where = (
            await self.bot.queue.queue_positions(interaction.guild_id)
            if any(job.state is JobState.QUEUED for job in jobs)
            else {}
        )
        lines = [job_line(job, interaction.guild_id, where.get(job.id), tr=tr) for job in jobs]
        description = ""
        for line in lines:
            if len(description) + len(line) + 1 > 4000:
                break
            description += line + "\n"
        embed = discord.Embed(
            title=tr._("Your recent videos"), description=description, colour=BRAND
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(History(bot))
