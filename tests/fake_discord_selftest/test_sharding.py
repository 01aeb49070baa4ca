"""Sharding in the fake: /gateway/bot, IDENTIFY with [id, count], guilds routed to shards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fake_discord import FakeDiscord, FakeDiscordError, FakeGuild
from tests.fake_discord.fixtures import running_bot
from tests.fake_discord.gateway import INVALID_SHARD, shard_for


class ShardedBot(discord.AutoShardedClient):
    """A small sharded client: `/where` answers with the shard that received it."""

    def __init__(self, *, sync: bool, **options: Any) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05, **options)
        self.tree = app_commands.CommandTree(self)
        self.sync = sync
        self.handled: list[tuple[int, int | None]] = []

        @self.tree.command(description="Which shard got this?")
        async def where(interaction: discord.Interaction[Any]) -> None:
            shard = interaction.guild.shard_id if interaction.guild else None
            assert interaction.guild_id is not None
            self.handled.append((interaction.guild_id, shard))
            await interaction.response.send_message(f"shard {shard}")

    async def setup_hook(self) -> None:
        if self.sync:
            await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between shards: the fake has no identify rate limit."""


@pytest.fixture
def guilds(fake_discord: FakeDiscord) -> tuple[FakeGuild, FakeGuild]:
    """One guild on shard 0 and one on shard 1 of two, each with #general and a member."""
    made = []
    for shard_id in (0, 1):
        guild = fake_discord.add_guild_on_shard(f"Shard {shard_id} Club", shard_id, 2)
        fake_discord.add_text_channel(guild, "general")
        fake_discord.add_member(guild, f"member{shard_id}")
        made.append(guild)
    return made[0], made[1]


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, client: ShardedBot) -> AsyncIterator[ShardedBot]:
    async with running_bot(fake, client, require_sync=False) as bot:
        assert isinstance(bot, ShardedBot)
        yield bot


def channel_and_member(guild: FakeGuild) -> tuple[Any, Any]:
    channel = next(c for c in guild.channels.values() if c.name == "general")
    member = next(m for m in guild.members.values() if m.user.username.startswith("member"))
    return channel, member


def test_guilds_can_be_placed_on_a_shard(guilds: tuple[FakeGuild, FakeGuild]) -> None:
    """`add_guild_on_shard` gives ids that Discord's formula puts on the asked shard."""
    assert [shard_for(g.id, 2) for g in guilds] == [0, 1]
    assert [(g.id >> 22) % 2 for g in guilds] == [0, 1]


async def test_each_process_gets_only_its_shards_guilds_and_interactions(
    fake_discord: FakeDiscord, guilds: tuple[FakeGuild, FakeGuild]
) -> None:
    """Two clients on shards 0 and 1 of 2: READY, GUILD_CREATE and interactions split."""
    first = ShardedBot(sync=True, shard_count=2, shard_ids=[0])
    second = ShardedBot(sync=False, shard_count=2, shard_ids=[1])
    async with running(fake_discord, first), running(fake_discord, second):
        gateway = fake_discord.gateway
        assert sorted(gateway.shards) == [0, 1]
        assert [p["d"]["shard"] for p in gateway.received() if p["op"] == 2] == [[0, 2], [1, 2]]
        assert [g.id for g in first.guilds] == [guilds[0].id]
        assert [g.id for g in second.guilds] == [guilds[1].id]
        for guild in guilds:
            channel, member = channel_and_member(guild)
            record = await fake_discord.invoke_slash(guild, channel, member, "where")
            assert await record.wait_for_ack() == 4
        assert first.handled == [(guilds[0].id, 0)]
        assert second.handled == [(guilds[1].id, 1)]
        for shard_id, guild in enumerate(guilds):
            events = gateway.shards[shard_id].events
            interactions = [e for e in events if e["t"] == "INTERACTION_CREATE"]
            assert [int(e["d"]["guild_id"]) for e in interactions] == [guild.id]


async def test_a_guild_added_later_goes_to_its_shard(
    fake_discord: FakeDiscord, guilds: tuple[FakeGuild, FakeGuild]
) -> None:
    """GUILD_CREATE for a new guild reaches only the process holding its shard."""
    first = ShardedBot(sync=True, shard_count=2, shard_ids=[0])
    second = ShardedBot(sync=False, shard_count=2, shard_ids=[1])
    async with running(fake_discord, first), running(fake_discord, second):
        late = fake_discord.add_guild_on_shard("Late Club", 1, 2)
        await fake_discord.wait_for(lambda: second.get_guild(late.id), what="the new guild")
        assert first.get_guild(late.id) is None


async def test_automatic_sharding_follows_gateway_bot(
    fake_discord: FakeDiscord, guilds: tuple[FakeGuild, FakeGuild]
) -> None:
    """Without a shard count, discord.py asks /gateway/bot and runs every shard itself."""
    fake_discord.gateway.recommended_shards = 2
    async with running(fake_discord, ShardedBot(sync=True)) as bot:
        assert bot.shard_count == 2
        assert sorted(fake_discord.gateway.shards) == [0, 1]
        assert {g.id for g in bot.guilds} == {g.id for g in guilds}
        for guild in guilds:
            channel, member = channel_and_member(guild)
            record = await fake_discord.invoke_slash(guild, channel, member, "where")
            assert await record.wait_for_ack() == 4
        assert sorted(bot.handled) == sorted((g.id, shard_for(g.id, 2)) for g in guilds)


async def test_interaction_for_an_unconnected_shard_is_refused(
    fake_discord: FakeDiscord, guilds: tuple[FakeGuild, FakeGuild]
) -> None:
    """With only shard 0 connected, the fake cannot deliver shard 1's interaction."""
    async with running(fake_discord, ShardedBot(sync=True, shard_count=2, shard_ids=[0])):
        channel, member = channel_and_member(guilds[1])
        with pytest.raises(FakeDiscordError, match="shard"):
            await fake_discord.invoke_slash(guilds[1], channel, member, "where")


async def test_a_shard_id_outside_the_count_is_closed(fake_discord: FakeDiscord) -> None:
    """IDENTIFY with shard [2, 2] is refused with close code 4010 (Invalid shard)."""
    client = ShardedBot(sync=False, shard_count=2, shard_ids=[2])
    with fake_discord.patch_discord_py():
        try:
            with pytest.raises(discord.ConnectionClosed) as closed:
                await asyncio.wait_for(client.start(fake_discord.token), 10)
        finally:
            await client.close()
    assert closed.value.code == INVALID_SHARD
    assert not fake_discord.gateway.shards
