"""Login, sync and a first interaction."""

from __future__ import annotations

from .conftest import World
from .selftest_bot import SelfTestBot


async def test_login_and_sync(world: World, bot: SelfTestBot) -> None:
    """The bot logs in, identifies, sees the guild and syncs its commands to it."""
    names = sorted(c["name"] for c in world.fake.commands(world.guild))
    assert names == [
        "Animate image",
        "counter",
        "dm",
        "feedback",
        "ping",
        "quotas",
        "render",
        "slow",
        "status",
    ]
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    assert guild.filesize_limit == 10 * 1024 * 1024
    assert guild.get_channel(world.channel.id) is not None
    assert world.fake.unhandled_requests == []
