"""This process in the shared registry: registration, the owned heartbeat task, and its
share of the status budget (see `core.processes`).

Loaded first, so the process is registered (and live) before any other cog claims work
or runs start-up recovery. The bot leaves the registry when it closes, after every cog
(and every task holding a lease) has stopped; its leases are then void at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

from core.processes import ProcessRegistry

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot


class Processes(commands.Cog):
    """Owns the heartbeat task; stops it and leaves the registry when it unloads."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        client = bot.settings.client
        self.registry = ProcessRegistry(
            bot.store,
            bot.jobs.claimant,
            heartbeat_seconds=bot.settings.process_heartbeat_seconds,
            limiter=bot.api.status_limiter,
            rate=client.status_rate_per_second,
            burst=client.status_burst,
        )

    async def cog_load(self) -> None:
        """Register (taking this process's share of the budget) and start beating."""
        await self.registry.register()
        self.registry.start()
        self.bot.registry = self.registry

    async def cog_unload(self) -> None:
        """Stop beating; `HappyHorseBot.close` leaves the registry once all work stopped."""
        await self.registry.stop()


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Processes(bot))
