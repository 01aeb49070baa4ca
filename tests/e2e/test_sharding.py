"""Several real `python bot.py` processes sharing a bot's shards, and one with none.

Two processes run with SHARD_COUNT=2 and SHARD_IDS=0 and 1: each identifies for its own
shard and handles only the interactions of its shard's guilds, end to end (reserve,
submit, deliver). A third, with SHARD_IDS empty, connects no shard, starts its background
work, answers /healthz with the gateway check "n/a", and logs JSON lines (LOG_FORMAT=json)
in which neither the Discord token nor the API key appears.

Each process has its own SQLite file: SQLite is one process per database file.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from happyhorse.sandbox import SandboxServer
from storage.models import JobState
from storage.sqlite import open_store
from tests.e2e.conftest import API_KEY, eventually
from tests.e2e.process import BotProcess, bot_env
from tests.fake_discord import FakeChannel, FakeDiscord, FakeGuild, FakeMember

SHARDS = 2
INTERACTION_CREATE = "INTERACTION_CREATE"


@dataclass
class ShardGuild:
    """A guild on one shard, with its #videos channel and a member."""

    shard_id: int
    guild: FakeGuild
    channel: FakeChannel
    member: FakeMember


@pytest.fixture
def shard_guilds(fake_discord: FakeDiscord) -> list[ShardGuild]:
    """One guild on each of the two shards."""
    made = []
    for shard_id in range(SHARDS):
        guild = fake_discord.add_guild_on_shard(f"Shard {shard_id} Club", shard_id, SHARDS)
        channel = fake_discord.add_text_channel(guild, "videos")
        member = fake_discord.add_member(guild, f"rider{shard_id}")
        made.append(ShardGuild(shard_id, guild, channel, member))
    return made


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[list[BotProcess]]:
    """Bot processes a test starts; killed at teardown if still running."""
    started: list[BotProcess] = []
    yield started
    for process in started:
        await process.ensure_dead()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shard_env(
    fake: FakeDiscord, sandbox: SandboxServer, database: Path, **overrides: str
) -> dict[str, str]:
    """Environment of one process of a sharded bot: global commands, its own database."""
    return bot_env(
        fake, sandbox, API_KEY, database, 0, DEV_GUILD_ID="", SHARD_COUNT=str(SHARDS), **overrides
    )


def video_posts(fake: FakeDiscord, channel: FakeChannel) -> list[dict[str, Any]]:
    """Messages in the channel that post a finished video (not the status card)."""
    return [
        m
        for m in fake.channel_messages(channel)
        if not m.get("interaction_metadata")
        and any(a["filename"].endswith(".mp4") for a in m["attachments"])
    ]



async def job_states(path: Path, guild_id: int, member_id: int) -> list[JobState]:
    """The states of a member's jobs in one process's SQLite database, newest first."""
    store = await open_store(path, default_daily_credits=10)
    try:
        return [j.state for j in await store.jobs.recent_jobs(guild_id, member_id)]
    finally:
        await store.close()

async def test_shards_split_the_guilds_and_a_gateway_free_process_starts(
    fake_discord: FakeDiscord,
    sandbox: SandboxServer,
    shard_guilds: list[ShardGuild],
    processes: list[BotProcess],
    tmp_path: Path,
) -> None:
    """Shard 0's process gets only shard 0's interactions, shard 1's only shard 1's; the
    background-only process identifies nothing and reports itself healthy."""
    fake = fake_discord
    for shard in shard_guilds:
        env = shard_env(fake, sandbox, tmp_path / f"shard{shard.shard_id}.sqlite3")
        env["SHARD_IDS"] = str(shard.shard_id)
        process = BotProcess(env, tmp_path / f"shard{shard.shard_id}.log")
        processes.append(process)
        await process.start(fake)
    identified = [p["d"]["shard"] for p in fake.gateway.received() if p["op"] == 2]
    assert identified == [[0, SHARDS], [1, SHARDS]]
    assert sorted(fake.gateway.shards) == [0, 1]

    port = free_port()
    background_env = shard_env(
        fake,
        sandbox,
        tmp_path / "background.sqlite3",
        SHARD_IDS="",
        SYNC_COMMANDS="false",
        METRICS_PORT=str(port),
        LOG_FORMAT="json",
    )
    background = BotProcess(background_env, tmp_path / "background.log")
    processes.append(background)
    identifies = fake.gateway.identify_count
    await background.start(fake, gateway=False)

    records = []
    for shard in shard_guilds:
        records.append(
            await fake.invoke_slash(
                shard.guild, shard.channel, shard.member, "video", {"prompt": "a horse on a shard"}
            )
        )
    for record in records:
        assert await record.wait_for_ack() == 5

    for shard in shard_guilds:
        await fake.wait_for(
            lambda shard=shard: video_posts(fake, shard.channel),
            timeout=20,
            what=f"the video in shard {shard.shard_id}'s guild",
        )
        # The event went to this shard's session only...
        for shard_id, session in fake.gateway.shards.items():
            guilds = [
                int(e["d"]["guild_id"]) for e in session.events if e["t"] == INTERACTION_CREATE
            ]
            assert (shard.guild.id in guilds) == (shard_id == shard.shard_id)
        # ...and only this shard's process took the job (each has its own database).
        for other in shard_guilds:
            path = tmp_path / f"shard{other.shard_id}.sqlite3"
            if other is shard:
                # The post is recorded a moment after Discord answers it.
                async def delivered(path: Path = path, shard: Any = shard) -> bool:
                    states = await job_states(path, shard.guild.id, shard.member.id)
                    return states == [JobState.DELIVERED]

                await eventually(delivered, timeout=10, what="the job recorded as delivered")
            else:
                assert await job_states(path, shard.guild.id, shard.member.id) == []

    # The background-only process never identified, yet its scheduler runs.
    assert fake.gateway.identify_count == identifies
    base = f"http://127.0.0.1:{port}"

    async def scheduler_beating() -> bool:
        async with aiohttp.ClientSession() as session, session.get(base + "/healthz") as resp:
            body = await resp.json()
        return bool(resp.status == 200 and body["checks"]["scheduler"]["detail"] != "starting")

    await eventually(scheduler_beating, timeout=10, what="the background scheduler to beat")
    async with aiohttp.ClientSession() as session, session.get(base + "/healthz") as resp:
        body = await resp.json()
    assert body["checks"]["gateway"]["detail"].startswith("n/a")
    assert body["checks"]["database"]["ok"] is True

    for process in processes:
        assert await process.stop(timeout=10) == 0

    log = background.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any("without a gateway" in entry["message"] for entry in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert fake.token not in log and API_KEY not in log
    for process in processes[:2]:
        assert "without a gateway" not in process.log()
        # Text log lines about a job carry its id.
        assert "[job 1] " in process.log()
