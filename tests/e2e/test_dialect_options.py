"""The live service's options: in the native dialect /video and /animate offer 3-15 s and
/animate a `last_frame` sent as `image_urls[1]`; the seed dialect registers neither and
refuses such values from a misbehaving client cleanly, before charging anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from botkit.bot import HappyHorseBot
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from storage.sqlite import open_store
from tests.e2e.conftest import API_KEY, PNG_1x1, Running, StartBot, World, bot_settings
from tests.e2e.conftest import with_client as client_changed
from tests.e2e.test_commands import accepted_job, private_text, sandbox_task, settled, used
from tests.fake_discord.fixtures import running_bot


@contextlib.asynccontextmanager
async def native_bot(world: World, tmp_path: Path) -> AsyncIterator[Running]:
    """The real bot speaking the native dialect to a native-dialect sandbox."""
    config = SandboxConfig(
        api_key=API_KEY, dialect="native", processing_after=0.2, complete_after=0.5
    )
    async with SandboxServer(config, shutdown_timeout=0.1) as sandbox:
        settings = client_changed(
            bot_settings(tmp_path / "bot.sqlite3", sandbox, world.guild.id), dialect="native"
        )
        store = await open_store(settings.database_path, default_daily_credits=10)
        try:
            async with HappyHorseClient(settings.client) as client:
                bot = HappyHorseBot(settings, store, client, guild_ready_timeout=0.05)
                async with running_bot(world.fake, bot):
                    yield Running(bot=bot, store=store, sandbox=sandbox, world=world)
        finally:
            await store.close()


def synced_options(running: Running, name: str) -> dict[str, dict[str, Any]]:
    """The options of a command as synced to Discord (the fake), by name."""
    for commands in running.fake.state.commands.values():
        for command in commands.values():
            if command["name"] == name and command["type"] == 1:
                return {o["name"]: o for o in command.get("options", [])}
    raise AssertionError(f"/{name} was not synced")


async def test_native_dialect_offers_3_to_15_seconds_and_a_last_frame(
    world: World, tmp_path: Path
) -> None:
    """Durations 3-15 reach the API and cost in proportion; last_frame is image_urls[1]."""
    fake = world.fake
    async with native_bot(world, tmp_path) as running:
        video = synced_options(running, "video")
        assert (video["duration"]["min_value"], video["duration"]["max_value"]) == (3, 15)
        assert "choices" not in video["duration"]
        animate = synced_options(running, "animate")
        assert animate["last_frame"]["type"] == 11 and not animate["last_frame"].get("required")
        assert (animate["duration"]["min_value"], animate["duration"]["max_value"]) == (3, 15)

        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a pony", "duration": 7}
        )
        seven = await accepted_job(running, inter)
        assert sandbox_task(running, seven).duration == 7
        assert seven.cost == 2, "7 s std: ceil(7 / 5) = 2 credits"
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.bob, "video", {"prompt": "a foal", "duration": 3}
        )  # bob's: alice may have two jobs running at once (the default limit)
        three = await accepted_job(running, inter)
        assert (sandbox_task(running, three).duration, three.cost) == (3, 1)

        first = fake.attachment("first.png", PNG_1x1, "image/png", width=1280, height=720)
        last = fake.attachment("last.png", PNG_1x1, "image/png", width=1280, height=720)
        inter = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.alice,
            "animate",
            {"image": first, "last_frame": last, "duration": 15, "prompt": "it turns around"},
        )
        animated = await accepted_job(running, inter)
        task = sandbox_task(running, animated)
        assert task.image_urls == (first.url, last.url), "first frame, then last frame"
        assert (task.duration, animated.cost) == (15, 3)
        assert animated.last_frame_url == last.url
        await settled(running, animated.id)
        assert await used(running, world.alice.id) == 2 + 3
        assert await used(running, world.bob.id) == 1

        bad = fake.attachment("notes.txt", b"hello", "text/plain")
        inter = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.alice,
            "animate",
            {"image": first, "last_frame": bad},
        )
        assert "PNG, JPEG or WEBP" in await private_text(inter)
        assert await used(running, world.alice.id) == 5, "a refused last frame costs nothing"


async def test_seed_dialect_keeps_5_and_10_and_refuses_other_values_cleanly(
    start_bot: StartBot, world: World
) -> None:
    """Seed: only 5 and 10 are offered, no last_frame; a client sending 7 s is refused."""
    async with start_bot() as running:
        video = synced_options(running, "video")
        assert [c["value"] for c in video["duration"]["choices"]] == [5, 10]
        assert "last_frame" not in synced_options(running, "animate")
        inter = await world.fake.invoke_slash(
            world.guild,
            world.channel,
            world.alice,
            "video",
            {"prompt": "a pony", "duration": 7},
            validate=False,
        )
        text = await private_text(inter)
        assert "duration" in text and "5 or 10" in text
        assert await used(running, world.alice.id) == 0
        assert running.sandbox.state.tasks == {}
