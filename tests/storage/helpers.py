"""Shared test helpers for the storage tests: a movable clock and job builders."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage import Job, JobState, JobStore, NewJob, SQLiteStore, SQLStore
from storage.models import Claimant

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
USER = 333_333_333_333_333_333
OTHER_USER = 444_444_444_444_444_444
MODERATOR = 555_555_555_555_555_555
CHANNEL = 666_666_666_666_666_666
START = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
POSTER = Claimant("test-host:1:poster", live_within=24 * 3600)
"""The process that posts in these tests (its lease counts as live for a day after a beat)."""


async def deliver(jobs: JobStore, job_id: int, message_id: int, who: Claimant = POSTER) -> bool:
    """Claim the job's posting lease for ``who`` (if free) and record the post under it."""
    await jobs.claim_delivery(job_id, 60, who)
    return await jobs.mark_delivered(job_id, message_id, who)


class FakeClock:
    """A clock tests can move; calling it returns the current fake time."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        """Move time forward by a ``timedelta(**kwargs)`` and return the new time."""
        self.now += timedelta(**kwargs)
        return self.now


def new_job(**changes: Any) -> NewJob:
    """A 5-second std text-to-video request (1 credit) with fields overridden."""
    base = NewJob(
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=USER,
        mode="text-to-video",
        prompt="a horse galloping on a beach at sunset",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
        image_url=None,
        interaction_id=777_777_777_777_777_777,
    )
    return replace(base, **changes)


async def reserve(store: SQLiteStore, **changes: Any) -> Job:
    """Reserve a job that must fit in the user's allowance."""
    job = await store.credits.reserve(new_job(**changes))
    assert job is not None, "expected the reservation to fit"
    return job


async def job_in_state(store: SQLiteStore, state: JobState, **changes: Any) -> Job:
    """Reserve a job and walk it along the legal path to ``state``."""
    job = await reserve(store, **({"queued": True} if state is JobState.QUEUED else {}), **changes)
    jobs = store.jobs
    task, url = f"task-{job.id}", f"https://cdn.example/{job.id}.mp4"
    if state in (JobState.SUBMITTED, JobState.COMPLETED, JobState.DELIVERED, JobState.EXPIRED):
        assert await jobs.mark_submitted(job.id, task, datetime.now(UTC))
    if state in (JobState.COMPLETED, JobState.DELIVERED):
        assert await jobs.mark_completed(job.id, url)
    if state is JobState.DELIVERED:
        assert await deliver(jobs, job.id, 999)
    if state is JobState.EXPIRED:
        assert await jobs.mark_expired(job.id, "deadline passed")
    if state in (JobState.FAILED, JobState.REFUNDED):
        assert await jobs.mark_failed(job.id, "boom", expected=JobState.RESERVED)
    if state is JobState.REFUNDED:
        assert await jobs.refund(job.id)
    current = await jobs.get_job(job.id)
    assert current is not None and current.state is state
    return current


REPO = Path(__file__).parents[2]


async def race_processes(script: str, location: str | Path, processes: int) -> list[str]:
    """Run ``script`` in ``processes`` OS processes at once; return each one's stdout.

    The script gets the database location as ``sys.argv[1]``, a wall-clock start time as
    ``sys.argv[2]`` and its index (0, 1, ...) as ``sys.argv[3]``: it should open its store,
    then ``await wait_until(float(argv[2]))``, so that every process has connected before
    any of them starts racing.
    """
    start_at = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(location), repr(start_at), str(index), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for index in range(processes)
    ]  # fmt: skip
    outputs = [await proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    return [out.decode() for out, _ in outputs]


async def wait_until(moment: float, store: SQLStore | None = None) -> None:
    """Sleep until the wall-clock time ``moment`` (a start line for racing processes).

    With ``store``, first open its connections (a pool opens them lazily), so the race
    starts with every connection ready rather than one at a time.
    """
    if store is not None:
        await asyncio.gather(*(store.credits.balance(GUILD, USER) for _ in range(20)))
    await asyncio.sleep(max(0.0, moment - time.time()))
