"""Benchmark: polling many pending tasks against a rate-limited API.

The claim it measures: the client's shared status rate limiter lets the bot poll a large
backlog of pending tasks without a storm of 429 answers, where an unthrottled poller
(with or without retries) gets most of its calls refused and, with retries, multiplies
its traffic. All three pollers run in the same process against the same sandbox (rate
limit: LIMIT requests per WINDOW seconds), so only the ratios between them matter.

Run: .venv/bin/python -m bench.status_polling [--tasks 300] [--limit 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp

from happyhorse.client import HappyHorseClient
from happyhorse.errors import HappyHorseError
from happyhorse.models import GenerationRequest
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.sandbox.state import RateWindow
from happyhorse.settings import ClientSettings

API_KEY = "benchmark-key-0123456789"


@dataclass
class Result:
    """What one poller achieved."""

    name: str
    answered: int
    failed: int
    requests: int
    refused_429: int
    seconds: float


async def make_tasks(server: SandboxServer, count: int) -> list[str]:
    """Create `count` long-running tasks with the rate limit switched off."""
    window, server.state.rate_window = server.state.rate_window, None
    settings = ClientSettings(api_key=API_KEY, base_url=server.base_url)
    async with HappyHorseClient(settings) as client:
        tasks = await asyncio.gather(
            *(client.generate(GenerationRequest(prompt=f"horse {i}")) for i in range(count))
        )
    server.state.rate_window = window
    return [t.task_id for t in tasks]


def reset_window(server: SandboxServer, limit: int, window: float) -> None:
    """Start each poller with an empty rate window, so none inherits another's traffic."""
    server.state.rate_window = RateWindow(limit, window, server.state.clock)


async def naive(server: SandboxServer, ids: list[str]) -> Result:
    """Every status call at once, no limiter, no retries (what a plain gather does)."""
    before = server.state.request_counts["status"]
    started = time.perf_counter()
    refused = answered = 0
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(task_id: str) -> int:
            async with session.get(
                f"{server.base_url}/api/status", params={"task_id": task_id}
            ) as resp:
                await resp.read()
                return resp.status

        for status in await asyncio.gather(*(one(i) for i in ids)):
            refused += status == 429
            answered += status == 200
    return Result(
        "naive gather",
        answered,
        len(ids) - answered,
        server.state.request_counts["status"] - before,
        refused,
        time.perf_counter() - started,
    )


async def with_client(server: SandboxServer, ids: list[str], name: str, rate: float) -> Result:
    """Every status call at once through HappyHorseClient with the given limiter rate."""
    settings = ClientSettings(
        api_key=API_KEY,
        base_url=server.base_url,
        status_rate_per_second=rate,
        status_burst=5,
        max_retries=4,
        backoff_base_seconds=0.2,
        retry_cap_seconds=5.0,
    )
    before = server.state.request_counts["status"]
    started = time.perf_counter()
    async with HappyHorseClient(settings) as client:
        results = await asyncio.gather(*(client.status(i) for i in ids), return_exceptions=True)
    failed = sum(isinstance(r, HappyHorseError) for r in results)
    requests = server.state.request_counts["status"] - before
    return Result(
        name,
        len(ids) - failed,
        failed,
        requests,
        requests - (len(ids) - failed),
        time.perf_counter() - started,
    )


async def main(task_count: int, limit: int, window: float) -> None:
    """Run the three pollers and print the table and the ratios."""
    config = SandboxConfig(
        api_key=API_KEY,
        processing_after=0,
        complete_after=3600,
        rate_limit=limit,
        rate_window=window,
    )
    async with SandboxServer(config) as server:
        ids = await make_tasks(server, task_count)
        runs = []
        reset_window(server, limit, window)
        runs.append(await naive(server, ids))
        await asyncio.sleep(window)
        reset_window(server, limit, window)
        runs.append(await with_client(server, ids, "client, no limiter", rate=1e6))
        await asyncio.sleep(window)
        reset_window(server, limit, window)
        safe_rate = 0.8 * limit / window
        runs.append(await with_client(server, ids, f"client, limiter {safe_rate:g}/s", safe_rate))

    print(f"{task_count} pending tasks, API limit {limit} requests per {window:g} s\n")
    print(f"{'poller':<26}{'answered':>9}{'failed':>8}{'requests':>10}{'429s':>7}{'seconds':>9}")
    for r in runs:
        print(
            f"{r.name:<26}{r.answered:>9}{r.failed:>8}{r.requests:>10}"
            f"{r.refused_429:>7}{r.seconds:>9.2f}"
        )
    ours = runs[-1]
    for base in runs[:-1]:
        print(
            f"\nvs {base.name}: 429s {base.refused_429} -> {ours.refused_429}; "
            f"requests per answered status {base.requests / max(1, base.answered):.2f} -> "
            f"{ours.requests / max(1, ours.answered):.2f}; answered {base.answered} -> "
            f"{ours.answered} of {task_count}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # retries are expected here; keep the table clean
    asyncio.run(main(args.tasks, args.limit, args.window))
