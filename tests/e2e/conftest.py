"""End-to-end fixtures: the real bot, in-process, against the Discord fake and the sandbox.

`world` builds a guild with a #videos channel, a member (alice) and a moderator (mod);
`start_bot()` runs the real `HappyHorseBot` against them with a fast delivery loop, on a
real SQLite file, talking to a real sandbox over loopback. A test can start the bot
twice on the same database to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botkit.bot import HappyHorseBot
from core import metrics
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.settings import ClientSettings
from storage.models import GuildLimits
from storage.sqlite import SQLiteStore, open_store
from tests.fake_discord import FakeDiscord, permissions
from tests.fake_discord.fixtures import fake_discord, running_bot
from tests.fake_discord.models import FakeChannel, FakeGuild, FakeMember

__all__ = ["fake_discord"]

API_KEY = "hh-e2e-secret-key-0123456789"
MOD_PERMISSIONS = permissions.DEFAULT_MEMBER | permissions.MANAGE_GUILD
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4a400"
    "00000049454e44ae426082"
)


@dataclass
class World:
    """The Discord side of a test: one guild, its channel and people."""

    fake: FakeDiscord
    guild: FakeGuild
    channel: FakeChannel
    alice: FakeMember
    bob: FakeMember
    mod: FakeMember


@dataclass
class Running:
    """A running bot and everything it talks to."""

    bot: HappyHorseBot
    store: SQLiteStore
    sandbox: SandboxServer
    world: World

    @property
    def fake(self) -> FakeDiscord:
        return self.world.fake


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The API: a real sandbox over loopback, finishing videos in about half a second."""
    config = SandboxConfig(api_key=API_KEY, processing_after=0.2, complete_after=0.5)
    async with SandboxServer(config, shutdown_timeout=0.1) as server:
        yield server


@pytest.fixture
def world(fake_discord: FakeDiscord) -> World:
    """A guild with #videos, two members and a moderator."""
    guild = fake_discord.add_guild("Horse Club")
    channel = fake_discord.add_text_channel(guild, "videos")
    return World(
        fake=fake_discord,
        guild=guild,
        channel=channel,
        alice=fake_discord.add_member(guild, "alice"),
        bob=fake_discord.add_member(guild, "bob"),
        mod=fake_discord.add_member(guild, "mod", permissions=MOD_PERMISSIONS),
    )


def bot_settings(
    db_path: Path, sandbox: SandboxServer, guild_id: int, **overrides: Any
) -> BotSettings:
    """Settings for a fast test run: short poll intervals, throttle and deadlines."""
    client = ClientSettings(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        timeout_seconds=3.0,
        download_read_timeout_seconds=3.0,
        status_rate_per_second=50.0,
        status_burst=10,
        backoff_base_seconds=0.05,
        retry_cap_seconds=1.0,
        max_retries=2,
    )
    values: dict[str, Any] = dict(
        discord_token="fake-token",
        client=client,
        database_path=db_path,
        dev_guild_id=guild_id,
        poll_interval_seconds=0.1,
        poll_first_delay_seconds=0.1,
        poll_max_interval_seconds=0.4,
        status_edit_interval_seconds=0.2,
        default_daily_credits=10,
    )
    values.update(overrides)
    return BotSettings(**values)


StartBot = Callable[..., contextlib.AbstractAsyncContextManager[Running]]


@pytest.fixture
def start_bot(tmp_path: Path, sandbox: SandboxServer, world: World) -> StartBot:
    """`async with start_bot(**setting_overrides) as running:` runs the real bot."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        settings = bot_settings(tmp_path / "bot.sqlite3", sandbox, world.guild.id, **overrides)
        store = await open_store(
            settings.database_path, default_daily_credits=settings.default_daily_credits
        )
        try:
            async with HappyHorseClient(
                settings.client, observer=metrics.observe_api_call
            ) as client:
                bot = HappyHorseBot(settings, store, client, guild_ready_timeout=0.05)
                async with running_bot(world.fake, bot):
                    yield Running(bot=bot, store=store, sandbox=sandbox, world=world)
        finally:
            await store.close()

    return start


def with_client(settings: BotSettings, **changes: Any) -> BotSettings:
    """Settings with some client settings changed."""
    return dataclasses.replace(settings, client=dataclasses.replace(settings.client, **changes))


async def no_limits(running: Running) -> None:
    """Lift the guild's running and queue limits (for tests about other things)."""
    await running.store.guilds.set_limits(
        running.world.guild.id,
        GuildLimits(member_running=0, member_queued=0, server_running=0),
        running.world.mod.id,
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll an async check (say, a store query) until it holds, or fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
