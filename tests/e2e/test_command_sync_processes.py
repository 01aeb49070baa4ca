"""SYNC_COMMANDS=auto across processes: two shard processes of `python bot.py` on one
PostgreSQL database, started together twice, sync the global commands once in all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from happyhorse.sandbox import SandboxConfig, SandboxServer
from tests.e2e.conftest import API_KEY
from tests.e2e.process import BotProcess, bot_env
from tests.fake_discord import FakeDiscord

SHARDS = 2


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(api_key=API_KEY), shutdown_timeout=0.1) as server:
        yield server


@pytest.fixture
async def processes() -> AsyncIterator[list[BotProcess]]:
    """Bot processes a test starts; killed at teardown if still running."""
    started: list[BotProcess] = []
    yield started
    for process in started:
        await process.ensure_dead()
        print(f"----- {process.log_path.name} (exit {process.returncode}) -----\n{process.log()}")


async def test_processes_starting_together_sync_once(
    fake_discord: FakeDiscord,
    sandbox: SandboxServer,
    pg_database: str,
    processes: list[BotProcess],
    tmp_path: Path,
) -> None:
    """Round one: one of the two syncs, the other waits on the lock and skips. Round two:
    neither syncs. Without the stored hash each start would sync (four in all)."""
    fake = fake_discord
    for shard_id in range(SHARDS):
        fake.add_guild_on_shard(f"Shard {shard_id} Club", shard_id, SHARDS)

    def env(shard_id: int) -> dict[str, str]:
        return bot_env(
            fake, sandbox, API_KEY, tmp_path / "unused.sqlite3", 0,
            DEV_GUILD_ID="", SHARD_COUNT=str(SHARDS), SHARD_IDS=str(shard_id),
            DATABASE_URL=pg_database, SYNC_COMMANDS="auto", LOG_LEVEL="INFO",
        )  # fmt: skip

    for round_number in (1, 2):
        runs = [
            BotProcess(env(shard_id), tmp_path / f"round{round_number}-shard{shard_id}.log")
            for shard_id in range(SHARDS)
        ]
        processes.extend(runs)
        # "Logged in as" comes after setup_hook, so after each one's sync decision.
        await asyncio.gather(*(run.start(fake, timeout=30, gateway=False) for run in runs))
        logs = [run.log() for run in runs]
        for run in runs:
            assert await run.stop(timeout=10) == 0
        synced = sum("Synced" in log for log in logs)
        unchanged = sum("unchanged since the last sync" in log for log in logs)
        assert (synced, unchanged) == ((1, 1) if round_number == 1 else (0, 2)), logs
    assert fake.state.sync_count == 1
    assert {c["name"] for c in fake.commands()} >= {"video", "privacy"}
