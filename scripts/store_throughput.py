"""Reserve/commit pairs per second on SQLite and PostgreSQL, in one run.

A pair is the two writes every generation makes before the API answers: ``reserve`` (the
credit check and the charged job, under the member's lock) and ``mark_submitted``. Each
engine runs the same workload: ``--pairs`` pairs spread over ``--members`` members, with
``--concurrency`` pairs in flight in each of ``--processes`` OS processes, after a
warm-up. SQLite commits with
``synchronous = FULL``; the PostgreSQL cluster keeps its crash-safe defaults (fsync on),
so both pay for durable commits.

Without ``--database-url`` the script starts a throw-away PostgreSQL cluster of its own
(``tests/pg_cluster.py``); pass the URL of an empty database to measure a real server.

    .venv/bin/python scripts/store_throughput.py --pairs 2000 --concurrency 1 16 --processes 1 4
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from storage import NewJob, SQLStore, open_store  # noqa: E402
from tests.pg_cluster import TempCluster  # noqa: E402

GUILD = 1_000_000_000_000_000_000


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
        return self.pairs / self.seconds


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

    The clock runs from the first process starting to the last one finishing.
    """
    store = await open_store(location, default_daily_credits=1_000_000)  # migrate once
    await store.close()
    share = pairs // processes
    start_at = time.time() + 2.0
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


def _cases(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(processes, concurrency per process) for every measured row."""
    return [(p, c) for p in args.processes for c in args.concurrency]


async def run(args: argparse.Namespace, pg_url: str, folder: Path) -> list[Result]:
    """Measure every case on both engines, each on a fresh database."""
    results: list[Result] = []
    for n, (processes, concurrency) in enumerate(_cases(args)):
        sqlite_path = folder / f"throughput-{n}.sqlite3"
        results.append(
            await measure("sqlite", sqlite_path, args.pairs, concurrency, args.members, processes)
        )
        url = pg_url.format(n=n) if "{n}" in pg_url else pg_url
        results.append(
            await measure("postgres", url, args.pairs, concurrency, args.members, processes)
        )
    return results


def main() -> int:
    """Parse arguments, run, print a table with PostgreSQL's ratio to SQLite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="pairs per measurement")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16], help="pairs in flight per process"
    )
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1], help="OS processes sharing the work"
    )
    parser.add_argument("--members", type=int, default=100, help="distinct members")
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database (default: start a throw-away cluster); with "
        "several cases, put {n} in the URL for one database per case",
    )
    args = parser.parse_args()
    cluster = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.database_url:
                pg_url = args.database_url
            else:
                cluster = TempCluster.start(durable=True)
                for n in range(len(_cases(args))):
                    cluster.sql(f"CREATE DATABASE throughput_{n}")
                pg_url = cluster.url("throughput_{n}")
            results = asyncio.run(run(args, pg_url, Path(tmp)))
        finally:
            if cluster is not None:
                cluster.stop()
    print(f"reserve+submit pairs per second ({args.pairs} pairs, {args.members} members)")
    print(f"{'processes':>9}  {'in flight':>9}  {'sqlite':>9}  {'postgres':>9}  {'pg/sqlite':>9}")
    for sqlite_result, pg_result in zip(results[::2], results[1::2], strict=True):
        ratio = pg_result.per_second / sqlite_result.per_second
        print(
            f"{sqlite_result.processes:>9}  {sqlite_result.concurrency:>9}  "
            f"{sqlite_result.per_second:>9.0f}  {pg_result.per_second:>9.0f}  {ratio:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
