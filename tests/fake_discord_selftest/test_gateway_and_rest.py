"""Gateway compression, resume with replay, rate limits and request recording."""

from __future__ import annotations

import discord

from .conftest import World
from .selftest_bot import SelfTestBot


async def test_gateway_uses_zlib_stream(world: World, bot: SelfTestBot) -> None:
    """discord.py asked for compressed frames and decoded them (it identified, so it did)."""
    conn = world.fake.gateway.connections[0]
    assert conn.query["compress"] in ("zlib-stream", "zstd-stream")
    assert conn.query["v"] == "10" and conn.query["encoding"] == "json"
    identify = next(p for p in world.fake.gateway.received() if p["op"] == 2)
    assert identify["d"]["intents"] == bot.intents.value


async def test_resume_replays_missed_events(world: World, bot: SelfTestBot) -> None:
    """Events sent while the socket is down arrive after RESUME; no new IDENTIFY happens."""
    fake = world.fake
    async with fake.gateway_gap():
        fake.post_user_message(world.channel, world.alice, "sent during the gap")
    await fake.wait_for(lambda: bot.seen_messages, what="the replayed message")
    assert bot.seen_messages[0].content == "sent during the gap"
    assert isinstance(bot.seen_messages[0].author, discord.Member)
    assert fake.gateway.identify_count == 1
    assert fake.gateway.resume_count == 1
    # Interactions still work on the resumed session.
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "ping")
    assert await inter.wait_for_ack() == 4


async def test_plain_disconnect_resumes(world: World, bot: SelfTestBot) -> None:
    """Closing the socket with 4000 makes discord.py resume on resume_gateway_url."""
    fake = world.fake
    await fake.disconnect_gateway(4000)
    await fake.wait_for_resume()
    fake.post_user_message(world.channel, world.alice, "after")
    await fake.wait_for(lambda: bot.seen_messages, what="a message after resuming")


async def test_429_on_edit_is_retried(world: World, bot: SelfTestBot) -> None:
    """discord.py sleeps retry_after and retries a 429'd message edit and webhook edit."""
    fake = world.fake
    channel_edits = fake.rate_limit(
        "PATCH", r"^/channels/\d+/messages/\d+$", count=1, retry_after=0.1
    )
    original_edits = fake.rate_limit("PATCH", r"/messages/@original$", count=1, retry_after=0.1)
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "status")
    await inter.wait_for_original(lambda m: m["content"] == "finished")
    assert channel_edits.hits == 1 and original_edits.hits == 1
    edits = fake.find_requests("PATCH", r"^/channels/")
    assert [r.status for r in edits] == [429, 200]
    assert edits[0].response["retry_after"] == 0.1
    assert edits[1].at - edits[0].at >= 0.1
    contents = [m["content"] for m in fake.channel_messages(world.channel)]
    assert contents == ["finished", "status: done"]


async def test_requests_are_recorded_without_authorization(world: World, bot: SelfTestBot) -> None:
    """Recorded requests keep headers (minus Authorization), JSON payloads and the route."""
    fake = world.fake
    login = fake.find_requests("GET", route="/users/@me")[0]
    assert "Authorization" not in login.headers
    assert login.headers["User-Agent"].startswith("DiscordBot")
    sync = fake.find_requests("PUT", route="/applications/{app_id}/guilds/{guild_id}/commands")
    assert {c["name"] for c in sync[0].json} >= {"render", "quotas"}


async def test_bad_token_is_refused(world: World) -> None:
    """A wrong token fails login with 401, as discord.py's LoginFailure expects."""
    client = discord.Client(intents=discord.Intents.default())
    with world.fake.patch_discord_py():
        try:
            await client.login("wrong")
        except discord.LoginFailure:
            pass
        else:
            raise AssertionError("login with a wrong token succeeded")
        finally:
            await client.close()
