"""Reserve/commit pairs per second on SQLite and PostgreSQL, for any set of cases.

The measurement itself is ``bench/store_throughput.py`` (``python -m bench`` reports one
case of it as a figure); this module runs the cases given on the command line.

Without ``--database-url`` the script starts a throw-away PostgreSQL cluster of its own
(``tests/pg_cluster.py``, crash-safe defaults); pass the URL of an empty database to
measure a real server.

    .venv/bin/python -m bench.store_cases --pairs 2000 --concurrency 1 16 --processes 1 4
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.store_throughput import Result, measure
from tests.pg_cluster import TempCluster


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
