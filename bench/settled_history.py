"""Ack p99 and sweep cost with 1,000,000 settled jobs in the store, against an empty store.

The statements that run on every command and every few seconds must cost the same after
a year of history as on the first day (issue 14: the storage target). Two SQLite stores
are measured in the same run, interleaved round by round so that drifting machine load
hits both alike: one empty, one holding ``settled`` delivered and refunded jobs (spread
over 20 guilds of 500 members, the oldest erased by retention, as ``seed_settled``
writes them). Each store also holds the same handful of live jobs.

* **ack**: ``credits.admit_and_reserve`` (the admission and the charge, the whole
  storage side of acknowledging ``/video``) by members with history, ``concurrency`` at
  once (the ack figure's burst), ``admissions`` in all; the p99 of each call's latency.
  The admitted jobs stay queued, as after a burst (the same number in both stores).
* **sweep**: one round of the statements a process runs on its timers: recovery
  (stale leases and reservations, unfinished jobs), failure notices, deliveries due,
  the poll scheduler's candidates, the dispatcher's queue and running counts, the
  heartbeat, the backlog metrics and retention; the median time of one round.

The history is written with the jobs table's indexes dropped and rebuilt afterwards from
their own SQL (building an index from sorted rows is several times faster than growing
it row by row), then checkpointed out of the write-ahead log; the schema the measurement
meets is the migrated one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.draws import percentile
from core.fairness import next_round
from storage import NewJob, SQLStore, open_store
from storage.credits import MAX_CREDITS
from storage.models import Claimant, JobState, MemberAdmission
from tests.storage.history import seed_settled

GUILD = 900_000_000_000_000_000
"""The first seeded guild: the admissions and live jobs are its members'."""
FIRST_MEMBER = 800_000_000_000_000_000
CLAIMANT = Claimant(process_id="bench:1:history")
RETENTION = timedelta(days=30)


@dataclass
class StoreRun:
    """What one store measured."""

    settled: int
    acks: list[float] = field(default_factory=list)
    sweeps: list[float] = field(default_factory=list)
    seed_seconds: float = 0.0


@dataclass(frozen=True)
class HistoryRun:
    """The empty store and the store with history, measured in the same run."""

    empty: StoreRun
    full: StoreRun
    concurrency: int


async def bulk_seed(store: SQLStore, path: Path, settled: int) -> float:
    """Write ``settled`` settled jobs (indexes rebuilt afterwards); return the seconds."""
    db = store.database
    started = time.perf_counter()
    indexes = await db.fetch_all(
        "SELECT name, sql FROM sqlite_master"
        " WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"
    )
    for index in indexes:
        await db.execute(f"DROP INDEX {index['name']}")
    await seed_settled(
        db, settled, now=datetime.now(UTC), first_guild=GUILD, first_user=FIRST_MEMBER
    )
    for index in indexes:
        await db.execute(index["sql"])
    # Copy the history from the write-ahead log into the database file, as SQLite's
    # automatic checkpoints would have over the months it took to write; left in the log,
    # the first commits measured would pay for copying hundreds of megabytes.
    await asyncio.to_thread(_checkpoint, path)
    return time.perf_counter() - started


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def _decide(user_id: int) -> NewJob:
    return NewJob(
        guild_id=GUILD,
        channel_id=GUILD + 1,
        user_id=user_id,
        mode="text-to-video",
        prompt="a horse galloping on a beach",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=False,
        queued=True,
    )


async def _live_jobs(store: SQLStore) -> None:
    """A handful of live jobs, the same in both stores: due polls, a delivery, a notice."""
    now = datetime.now(UTC)
    jobs = []
    for number in range(6):
        job = await store.credits.reserve(_decide(FIRST_MEMBER + 1000 + number))
        assert job is not None
        jobs.append(job)
    for job in jobs[:4]:
        await store.jobs.mark_submitted(job.id, f"live-{job.id}", now)
    await store.jobs.mark_completed(jobs[3].id, "https://cdn.example/live.mp4")
    await store.jobs.fail_and_refund(
        jobs[4].id, "bench failure", expected=(JobState.QUEUED, JobState.RESERVED)
    )


async def _admissions(store: SQLStore, count: int, concurrency: int, out: list[float]) -> None:
    """``count`` admissions, ``concurrency`` at a time, by members with history."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            user_id = FIRST_MEMBER + number % 200

            def decide(admission: MemberAdmission, user_id: int = user_id) -> NewJob:
                return replace(_decide(user_id), queue_round=next_round(admission.rounds))

            started = time.perf_counter()
            reservation = await store.credits.admit_and_reserve(GUILD, user_id, (), decide)
            out.append(time.perf_counter() - started)
            if reservation.job is None:
                raise RuntimeError("an admission was refused: raise the allowance")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def sweep(store: SQLStore) -> None:
    """One round of what a process runs on its timers (see the module docstring)."""
    jobs = store.jobs
    now = datetime.now(UTC)
    await jobs.end_stale_leases(CLAIMANT)
    await jobs.stale_reserved(600.0, CLAIMANT)
    await jobs.resumable_jobs()
    await jobs.claim_notices(CLAIMANT, 86_400.0, 30.0)
    await jobs.deliverable_jobs(50)
    await jobs.poll_candidates(CLAIMANT, now)
    await jobs.next_free_poll_at(CLAIMANT)
    # The dispatcher's round (core.queue.dispatch): who may start, their queues, expiry.
    waiting = await jobs.waiting_members(member_running=2, server_running=10)
    await jobs.member_queues([(m.guild_id, m.user_id) for m in waiting][:50])
    await jobs.expire_queued(now - RETENTION, "bench expiry", limit=50)
    processes = store.processes
    await processes.beat(CLAIMANT.process_id)
    await processes.all()
    await processes.forget_silent(600.0)
    await processes.live(60.0)
    await jobs.backlog()
    await jobs.erase_settled_before(now - RETENTION)


async def _sweeps(store: SQLStore, count: int, out: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        await sweep(store)
        out.append(time.perf_counter() - started)


async def measure_history(
    workdir: Path,
    *,
    settled: int = 1_000_000,
    admissions: int = 2000,
    concurrency: int = 200,
    sweeps: int = 100,
    rounds: int = 4,
) -> HistoryRun:
    """Both stores, interleaved over ``rounds`` rounds (see the module docstring)."""
    runs = (StoreRun(0), StoreRun(settled))
    stores: list[SQLStore] = []
    try:
        for run in runs:
            path = workdir / f"history-{run.settled}.sqlite3"
            store = await open_store(path, default_daily_credits=MAX_CREDITS)
            stores.append(store)
            if run.settled:
                run.seed_seconds = await bulk_seed(store, path, run.settled)
            await _live_jobs(store)
            await _sweeps(store, 3, [])  # warm-up
        pairs = list(zip(runs, stores, strict=True))
        # The sweeps first, while each store holds only its handful of live jobs; then the
        # admissions (whose jobs stay queued, the same number in both stores). Each store
        # goes first in every other round: neither always meets a neighbour's burst first.
        for number in range(rounds):
            for run, store in pairs if number % 2 == 0 else pairs[::-1]:
                await _sweeps(store, sweeps // rounds, run.sweeps)
        for store in stores:
            await _admissions(store, concurrency, concurrency, [])  # warm-up
        for number in range(rounds):
            for run, store in pairs if number % 2 == 0 else pairs[::-1]:
                await _admissions(store, admissions // rounds, concurrency, run.acks)
    finally:
        for store in stores:
            await store.close()
    return HistoryRun(empty=runs[0], full=runs[1], concurrency=concurrency)


def ack_p99(run: StoreRun) -> float:
    """The p99 admission latency (seconds)."""
    return percentile(run.acks, 99) if run.acks else float("inf")


def sweep_median(run: StoreRun) -> float:
    """The median time of one sweep (seconds)."""
    return statistics.median(run.sweeps) if run.sweeps else float("inf")

