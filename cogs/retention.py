"""The daily retention task: owned by this cog, started with it, cancelled when it unloads."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from core.retention import RETENTION_INTERVAL_SECONDS, erase_expired

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)


class Retention(commands.Cog):
    """Erases old prompts and links once at start-up, then daily (RETENTION_DAYS)."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Start the daily task, unless retention is off (RETENTION_DAYS=0)."""
        if self.bot.settings.retention_days > 0:
            self.erase_daily.start()
        else:
            log.info("RETENTION_DAYS is 0: prompts and links are kept for ever")

    async def cog_unload(self) -> None:
        """Cancel the task (an erase in progress is one statement; it commits or not)."""
        self.erase_daily.cancel()

    @tasks.loop(seconds=RETENTION_INTERVAL_SECONDS)
    async def erase_daily(self) -> None:
        """One run. Never raises: a failure is logged and the next day's run tries again."""
        try:
            erased = await erase_expired(
                self.bot.store, self.bot.settings.retention_days, discord.utils.utcnow()
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Retention: erasing old prompts and links failed; retrying tomorrow")
            return
        if erased:
            log.info(
                "Retention: erased prompts and links of %d jobs older than %d days",
                erased,
                self.bot.settings.retention_days,
            )

    @erase_daily.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Retention(bot))
