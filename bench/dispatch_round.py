"""Benchmark: one dispatch round over a long queue of servers at their running limit.

The claim it measures: a dispatch round costs what it starts, not the length of the
queue. ``--guilds`` servers each have one job running (their limit) and ``--queued`` more
waiting; then a small server queues one job. One round must start the small server's job,
and the number of SQL statements it sends stays the same however long the queue is.
Runs on SQLite in a temporary folder, against the sandbox over loopback.

Run: .venv/bin/python -m bench.dispatch_round [--guilds 500] [--queued 40]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from core.jobs import JobService
from core.queue import QueueService
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.settings import ClientSettings
from storage import open_store
from storage.models import GuildLimits, NewJob

MODERATOR = 9


def queued_job(guild_id: int, user_id: int, queue_round: int) -> NewJob:
    """A queued text-to-video job of this member, in this round."""
    return NewJob(
        guild_id=guild_id,
        channel_id=1,
        user_id=user_id,
        mode="text-to-video",
        prompt="a horse",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=False,
        queued=True,
        queue_round=queue_round,
    )


def count_statements(db: Any) -> list[int]:
    """Count every statement ``db`` runs from now on (a one-item list, updated in place)."""
    count = [0]
    for name in ("execute", "fetch_all", "fetch_one"):
        original = getattr(db, name)

        async def counted(*args: Any, _run: Any = original, **kwargs: Any) -> Any:
            count[0] += 1
            return await _run(*args, **kwargs)

        setattr(db, name, counted)
    return count


async def main() -> None:
    """Build the queue, run one round, print what it started and what it cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=500)
    parser.add_argument("--queued", type=int, default=40, help="waiting jobs per server")
    args = parser.parse_args()
    config = SandboxConfig(processing_after=5, complete_after=10)
    async with SandboxServer(config) as sandbox:
        client_settings = ClientSettings(
            api_key="benchmark-key-123", base_url=sandbox.base_url, timeout_seconds=5
        )
        settings = BotSettings(discord_token="benchmark-token-abc", client=client_settings)
        path = Path(tempfile.mkdtemp()) / "dispatch.sqlite3"
        store = await open_store(path, default_daily_credits=1_000_000)
        small = args.guilds + 1
        for guild in range(1, small + 1):
            limits = GuildLimits(server_running=1, member_running=0)
            await store.guilds.set_limits(guild, limits, MODERATOR)
        for guild in range(1, small):
            jobs = [queued_job(guild, 100 + n % 20, n // 20) for n in range(args.queued + 1)]
            made = await asyncio.gather(*(store.credits.reserve(job) for job in jobs))
            first = made[0]
            assert first is not None and await store.jobs.claim_queued(first.id)
        waiting = await store.credits.reserve(queued_job(small, 5, 0))
        assert waiting is not None
        async with HappyHorseClient(settings.client) as client:
            service = JobService(store, client, settings)
            await store.processes.beat(service.claimant.process_id)
            queue = QueueService(store, service, settings)
            statements = count_statements(store.database)
            began = time.perf_counter()
            report = await queue.dispatch()
            took = time.perf_counter() - began
        await store.close()
    started = waiting.id in {job.id for job in report.started}
    print(
        f"{args.guilds} servers at their limit, {args.guilds * args.queued} jobs waiting: "
        f"the small server's job started: {started}; one round: {statements[0]} "
        f"statements, {took * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
