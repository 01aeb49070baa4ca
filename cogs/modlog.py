"""The moderator log's worker: started with this cog, cancelled when it unloads.

The sink itself (`botkit.modlog.ModLog`, reached as `bot.modlog`) is built by the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from discord.ext import commands

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)


class ModLogCog(commands.Cog):
    """Owns the log sink's worker: started with the cog, cancelled when it unloads."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        self._task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        """Start the worker."""
        self._task = asyncio.create_task(self.bot.modlog.run(), name="modlog")
        self._task.add_done_callback(_log_end)

    async def cog_unload(self) -> None:
        """Cancel the worker (events still queued are dropped: the log is a courtesy)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("The moderator log worker stopped", exc_info=task.exception())


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(ModLogCog(bot))
