"""Reserve/commit pairs per second on SQLite and PostgreSQL, on the same workload.

A pair is the two writes every generation makes before the API answers: ``reserve`` (the
credit check and the charged job, under the member's lock) and ``mark_submitted``. Each
engine runs the same workload: ``pairs`` pairs spread over ``members`` members, with
``concurrency`` pairs in flight in each of ``processes`` OS processes, after a warm-up.
SQLite commits with ``synchronous = FULL``; the bench's PostgreSQL cluster keeps its
crash-safe defaults (fsync on), so both pay for durable commits.

`python -m bench` reports one case as a figure; ``python -m bench.store_cases`` runs any
set of cases from the command line.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage import NewJob, SQLStore, open_store

GUILD = 1_000_000_000_000_000_000
START_DELAY_SECONDS = 2.0
"""Time given to every worker process to start and warm up before the common start."""


@dataclass(frozen=True)
class Result:
    """One measured run."""

    engine: str
    concurrency: int
    pairs: int
    seconds: float
    processes: int = 1

    @property
    def per_second(self) -> float:
        """Pairs per second."""
        return self.pairs / self.seconds if self.seconds > 0 else float("nan")


def _job(member: int) -> NewJob:
    return NewJob(
        guild_id=GUILD,
        channel_id=2,
        user_id=member,
        mode="text-to-video",
        prompt="a horse galloping on a beach",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=False,
    )


async def _pairs(store: SQLStore, count: int, concurrency: int, members: int, first: int) -> None:
    """Run ``count`` reserve+submit pairs, ``concurrency`` at a time, round-robin members."""
    queue = iter(range(first, first + count))
    now = datetime.now(UTC)

    async def worker() -> None:
        for n in queue:
            job = await store.credits.reserve(_job(n % members + 1))
            if job is None:
                raise RuntimeError("a reservation was refused: raise the allowance")
            if not await store.jobs.mark_submitted(job.id, f"task-{n}", now):
                raise RuntimeError(f"job {job.id} could not be marked submitted")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _timed_share(
    location: str | Path, pairs: int, concurrency: int, members: int, first: int, start_at: float
) -> tuple[float, float]:
    """One process's share: warm up, wait for the common start, run; (start, end) wall time."""
    store = await open_store(location, default_daily_credits=1_000_000)
    try:
        await _pairs(store, max(20, pairs // 20), concurrency, members, first=first)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        await _pairs(store, pairs, concurrency, members, first=first + pairs)
        return started, time.time()
    finally:
        await store.close()


def _process_share(
    location: str, pairs: int, concurrency: int, members: int, first: int, start_at: float
) -> tuple[float, float]:
    return asyncio.run(_timed_share(location, pairs, concurrency, members, first, start_at))


async def measure(
    engine: str,
    location: str | Path,
    pairs: int,
    concurrency: int,
    members: int,
    processes: int = 1,
) -> Result:
    """Time ``pairs`` pairs (after a warm-up) split over ``processes`` OS processes.

    ``location`` is an empty database (a SQLite path or a PostgreSQL URL); it is migrated
    first. The clock runs from the first process starting to the last one finishing.
    """
    store = await open_store(location, default_daily_credits=1_000_000)  # migrate once
    await store.close()
    share = pairs // processes
    start_at = time.time() + START_DELAY_SECONDS
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        spans = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool, _process_share, str(location), share, concurrency, members,
                    index * 10 * share, start_at,
                )
                for index in range(processes)
            )
        )  # fmt: skip
    seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    return Result(engine, concurrency, share * processes, seconds, processes)
