"""The acknowledgement baseline: a discord.py bot whose `/video` only defers.

It does nothing else (no checks, no database, no API), so its acknowledgement latency is
what the Discord fake, discord.py and this machine cost by themselves. Run by the bench
as `python -m bench.minimal_bot` with the same environment as the real bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import discord
from discord import app_commands

from bot import point_discord_at

log = logging.getLogger("bench.minimal_bot")


class MinimalBot(discord.Client):
    """Registers `/video prompt:<text>` in the dev guild and defers every invocation."""

    def __init__(self, guild_id: int) -> None:
        """Connect with the guilds intent only, like the real bot."""
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.guild_id = guild_id
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="video", description="Make a video (baseline: defers only)")
        @app_commands.describe(prompt="What the video shows")
        async def video(interaction: discord.Interaction, prompt: str) -> None:
            await interaction.response.defer(thinking=True)

    async def setup_hook(self) -> None:
        """Sync the one command to the dev guild."""
        guild = discord.Object(id=self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def on_ready(self) -> None:
        """Say so, in the line the bench waits for."""
        log.info("Logged in as %s", self.user)


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    point_discord_at(os.environ.get("DISCORD_API_BASE_URL"), os.environ.get("DISCORD_GATEWAY_URL"))
    bot = MinimalBot(int(os.environ["DEV_GUILD_ID"]))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: loop.create_task(bot.close()))
    async with bot:
        await bot.start(os.environ["DISCORD_TOKEN"])


def main() -> None:
    """Entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
