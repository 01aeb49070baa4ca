"""A bot run as a separate process, pointed at the fake through environment variables.

This is the snippet bot.py needs: set both URLs before the client connects.
"""

from __future__ import annotations

import asyncio
import os

import discord
import discord.gateway
import discord.http
import yarl


def point_discord_py_at_env() -> None:
    """Use DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL when set (tests), else real Discord."""
    api_base = os.environ.get("DISCORD_API_BASE_URL")
    gateway = os.environ.get("DISCORD_GATEWAY_URL")
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


class Greeter(discord.Client):
    """Says hello in the channel named by GREET_CHANNEL_ID once ready."""

    async def on_ready(self) -> None:
        """Post the greeting."""
        channel = self.get_channel(int(os.environ["GREET_CHANNEL_ID"]))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("hello from another process")


async def main() -> None:
    """Run until killed."""
    point_discord_py_at_env()
    client = Greeter(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with client:
        await client.start(os.environ["DISCORD_TOKEN"])


if __name__ == "__main__":
    asyncio.run(main())
