"""An honest sandbox: `python bot.py` without an API key says so everywhere, and
`REQUIRE_API_KEY=1` refuses to start without one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from happyhorse.sandbox import SandboxServer
from storage.sqlite import open_store
from tests.e2e.conftest import MOD_PERMISSIONS, World
from tests.e2e.process import REPO, BotProcess, bot_env
from tests.fake_discord import FakeDiscord

BANNER = "Sandbox test clip: no API key is configured"
FOOTER = "HappyHorse job #"


def authors(message: dict[str, Any]) -> list[str]:
    """The author lines of a message's embeds."""
    return [(e.get("author") or {}).get("name", "") for e in message.get("embeds") or []]


async def test_without_a_key_every_card_post_and_config_show_says_sandbox(
    world: World, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """No key: the card, the posted video and /config show carry the banner; still charged."""
    fake = world.fake
    db = tmp_path / "bot.sqlite3"
    env = bot_env(
        fake,
        sandbox,
        "",
        db,
        world.guild.id,
        HAPPYHORSE_BASE_URL="",
        SANDBOX_COMPLETE_AFTER_SECONDS="0.6",
    )
    run = BotProcess(env, tmp_path / "bot.log")
    try:
        await run.start(fake)
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse"}
        )
        assert await inter.wait_for_ack() == 5
        card = await inter.wait_for_original(
            lambda m: any(BANNER in a for a in authors(m)), timeout=10
        )
        assert card["embeds"][0]["footer"]["text"].startswith(FOOTER)
        post = await fake.wait_for_message(
            world.channel,
            lambda m: any(a["filename"].endswith(".mp4") for a in m["attachments"]),
            timeout=20,
        )
        assert any(BANNER in a for a in authors(post)), post["embeds"]
        mod = fake.add_member(world.guild, "mod2", permissions=MOD_PERMISSIONS)
        show = await fake.invoke_slash(world.guild, world.channel, mod, "config show")
        assert await show.wait_for_ack() == 4
        assert show.ack_data is not None
        values = [f["value"] for f in show.ack_data["embeds"][0]["fields"]]
        assert any(BANNER in v for v in values), values
        assert await run.stop() == 0
    finally:
        await run.ensure_dead()
    store = await open_store(db, default_daily_credits=10)
    try:
        [job] = await store.jobs.recent_jobs(world.guild.id, world.alice.id)
        assert job.sandbox
        assert (await store.credits.balance(world.guild.id, world.alice.id)).used == 1
    finally:
        await store.close()


async def test_with_a_key_nothing_says_sandbox(
    fake_discord: FakeDiscord, world: World, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """With a key (here the e2e sandbox posing as the service), no banner appears."""
    from tests.e2e.conftest import API_KEY

    env = bot_env(fake_discord, sandbox, API_KEY, tmp_path / "bot.sqlite3", world.guild.id)
    run = BotProcess(env, tmp_path / "bot.log")
    try:
        await run.start(fake_discord)
        inter = await fake_discord.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse"}
        )
        post = await fake_discord.wait_for_message(
            world.channel,
            lambda m: any(a["filename"].endswith(".mp4") for a in m["attachments"]),
            timeout=20,
        )
        card = await inter.wait_for_original(timeout=5)
        assert not any(BANNER in a for a in authors(post) + authors(card))
    finally:
        await run.ensure_dead()


async def test_require_api_key_refuses_to_start_without_a_key(
    fake_discord: FakeDiscord, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """REQUIRE_API_KEY=1 and no key: bot.py exits non-zero with a clear message."""
    env = bot_env(fake_discord, sandbox, "", tmp_path / "bot.sqlite3", 1, REQUIRE_API_KEY="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "bot.py",
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    text = stderr.decode()
    assert "REQUIRE_API_KEY" in text and "HAPPYHORSE_API_KEY" in text
    assert fake_discord.gateway.identify_count == 0, "it must not even log in"
    assert not (tmp_path / "bot.sqlite3").exists(), "nor open the database"
