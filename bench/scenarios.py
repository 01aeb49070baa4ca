"""The bench's runs of the real bot (and the minimal one), each producing raw measurements.

Run order: the real bot on a cold database under a 200-command burst (acknowledgement,
cold-start lag, event-loop stalls); the minimal bot under the same burst (the ack
baseline); the real bot on a fresh database for the steady state, the warm burst,
head-of-line blocking and large uploads; the real bot on a database seeded with many
pending jobs (the 1,000-job figure). Every wait is bounded, and every process ends when
its block ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.draws import Spread
from bench.harness import (
    MODERATOR_ID,
    NO_LIMITS,
    Deliveries,
    Stage,
    bot_environment,
    deliveries,
    lift_limits,
    new_tasks,
    sandbox_config,
    wait_acks,
    wait_delivered,
)
from bench.process import Subprocess
from core.loopwatch import LoopReport, read_report
from happyhorse.sandbox import Phase, SandboxServer
from storage.models import NewJob
from storage.sqlite import open_store

log = logging.getLogger("bench")

ACK_WAIT_SECONDS = 10.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """Sizes and times of one bench run (times already multiplied by `scale`)."""

    scale: float
    seed: int = 11
    burst: int = 200
    learn: int = 40
    measured: int = 40
    spacing: float = 0.5
    quick_jobs: int = 5
    stall: float = 45.0
    big_results: int = 20
    big_size: int = 20 * MIB
    many: int = 1000
    status_limit: float = 20.0
    status_rate: float = 16.0
    many_status_limit: float = 10.0
    many_status_rate: float = 9.0

    @property
    def spread(self) -> Spread:
        """The completion-time distribution at this scale."""
        return Spread(self.scale)

    @property
    def quick_completion(self) -> float:
        """The fastest completion the spread allows (the head-of-line and upload jobs)."""
        return self.spread.low * self.scale

    def delivery_timeout(self, jobs: int, rate: float) -> float:
        """A generous bound on how long `jobs` completing jobs can take to deliver."""
        return self.spread.high * self.scale * 2 + jobs / (rate / self.scale) * 3 + 30.0


@dataclass
class Measurements:
    """Everything the runs measured; `report` turns it into figures."""

    acks: list[float] = field(default_factory=list)
    baseline_acks: list[float] = field(default_factory=list)
    cold_draws: list[float] = field(default_factory=list)
    cold: Deliveries | None = None
    cold_rate_limited: int = 0
    loop: LoopReport | None = None
    measured_draws: list[float] = field(default_factory=list)
    steady: Deliveries | None = None
    warm_draws: list[float] = field(default_factory=list)
    warm: Deliveries | None = None
    warm_status_requests: int = 0
    warm_rate_limited: int = 0
    hol_without: Deliveries | None = None
    hol_with: Deliveries | None = None
    rss_before: int = 0
    rss_peak: int = 0
    big_uploaded: int = 0
    many_seconds: float | None = None
    many_delivered: int = 0
    many_rate_limited: int = 0
    errors: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def real_bot(
    stage: Stage, sandbox: SandboxServer, workdir: Path, name: str, plan: Plan, *, rate: float
) -> AsyncIterator[tuple[Subprocess, Path]]:
    """`python bot.py` on a fresh database `name`.sqlite3, ended when the block ends."""
    database = workdir / f"{name}.sqlite3"
    await lift_limits(database, stage.guild.id)
    env = bot_environment(
        stage,
        sandbox,
        database,
        scale=plan.scale,
        status_rate=rate,
        loop_report=workdir / f"{name}-loop.json",
    )
    async with Subprocess(["bot.py"], env, workdir / f"{name}.log") as bot:
        await bot.start(stage.fake)
        yield bot, database


async def cold_burst(stage: Stage, workdir: Path, plan: Plan, out: Measurements) -> None:
    """200 commands at once on a cold bot: acks, cold-start lag, 429s, loop stalls."""
    async with SandboxServer(sandbox_config(plan.status_limit, plan.scale)) as sandbox:
        out.cold_draws = plan.spread.draw(plan.burst, plan.seed)
        sandbox.state.completion_times.extend(out.cold_draws)
        async with real_bot(stage, sandbox, workdir, "cold", plan, rate=plan.status_rate) as (
            _,
            database,
        ):
            records = await stage.order(plan.burst)
            out.acks = await wait_acks(records, ACK_WAIT_SECONDS)
            tasks = await new_tasks(sandbox, 0, plan.burst, ACK_WAIT_SECONDS)
            timeout = plan.delivery_timeout(plan.burst, plan.status_rate)
            delivered = await wait_delivered(database, [t.task_id for t in tasks], timeout)
            out.cold = deliveries(stage, sandbox, tasks, delivered, plan.burst)
            out.cold_rate_limited = sandbox.state.rate_limited["status"]
        report = workdir / "cold-loop.json"
        if report.exists():
            out.loop = read_report(report)
        else:
            out.errors.append("the bot wrote no event-loop report")


async def minimal_burst(stage: Stage, workdir: Path, plan: Plan, out: Measurements) -> None:
    """The same burst against the minimal bot that only defers (adds to the baseline)."""
    async with SandboxServer(sandbox_config(plan.status_limit, plan.scale)) as sandbox:
        env = bot_environment(
            stage, sandbox, workdir / "minimal.sqlite3", scale=plan.scale, status_rate=1.0
        )
        async with Subprocess(["-m", "bench.minimal_bot"], env, workdir / "minimal.log") as bot:
            await bot.start(stage.fake)
            records = await stage.order(plan.burst)
            out.baseline_acks += await wait_acks(records, ACK_WAIT_SECONDS)


async def _jobs(
    stage: Stage,
    sandbox: SandboxServer,
    database: Path,
    plan: Plan,
    draws: list[float],
    *,
    spacing: float = 0.0,
) -> Deliveries:
    """Order len(draws) videos completing after `draws` seconds; wait for all of them."""
    before = len(sandbox.state.tasks)
    sandbox.state.completion_times.extend(draws)
    await stage.order(len(draws), spacing)
    tasks = await new_tasks(sandbox, before, len(draws), ACK_WAIT_SECONDS)
    timeout = plan.delivery_timeout(len(draws), plan.status_rate)
    delivered = await wait_delivered(database, [t.task_id for t in tasks], timeout)
    return deliveries(stage, sandbox, tasks, delivered, len(draws))


async def warm_run(stage: Stage, workdir: Path, plan: Plan, out: Measurements) -> None:
    """Steady state, warm burst, head-of-line blocking and large uploads, on one bot."""
    async with (
        SandboxServer(sandbox_config(plan.status_limit, plan.scale)) as sandbox,
        real_bot(stage, sandbox, workdir, "warm", plan, rate=plan.status_rate) as (bot, database),
    ):
        spread = plan.spread
        spacing = plan.spacing * plan.scale
        learn = spread.draw(plan.learn, plan.seed + 1)
        await _jobs(stage, sandbox, database, plan, learn, spacing=spacing)
        out.measured_draws = spread.draw(plan.measured, plan.seed + 2)
        out.steady = await _jobs(
            stage, sandbox, database, plan, out.measured_draws, spacing=spacing
        )

        out.warm_draws = spread.draw(plan.burst, plan.seed + 3)
        status_before = sandbox.state.request_counts["status"]
        limited_before = sandbox.state.rate_limited["status"]
        out.warm = await _jobs(stage, sandbox, database, plan, out.warm_draws)
        out.warm_status_requests = sandbox.state.request_counts["status"] - status_before
        out.warm_rate_limited = sandbox.state.rate_limited["status"] - limited_before

        quick = [plan.quick_completion] * plan.quick_jobs
        out.hol_without = await _jobs(stage, sandbox, database, plan, quick)
        out.hol_with = await _head_of_line(stage, sandbox, database, plan, quick)

        await _big_uploads(stage, sandbox, database, bot, plan, out)


async def _head_of_line(
    stage: Stage, sandbox: SandboxServer, database: Path, plan: Plan, quick: list[float]
) -> Deliveries:
    """A finished job whose download stalls; once it is stuck, the quick jobs are ordered."""
    before = len(sandbox.state.tasks)
    downloads = sandbox.state.request_counts["download"]
    sandbox.state.completion_times.append(plan.quick_completion)
    await stage.order(1, start=plan.quick_jobs)
    created = await new_tasks(sandbox, before, 1, ACK_WAIT_SECONDS)
    if not created:
        return Deliveries([], len(quick), 0)
    stalled = created[0]
    stalled.download_stall = plan.stall * plan.scale
    deadline = time.monotonic() + plan.delivery_timeout(1, plan.status_rate)
    while sandbox.state.request_counts["download"] == downloads and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    result = await _jobs(stage, sandbox, database, plan, quick)
    await wait_delivered(database, [stalled.task_id], plan.stall * plan.scale + 30.0)
    return result


async def _big_uploads(
    stage: Stage,
    sandbox: SandboxServer,
    database: Path,
    bot: Subprocess,
    plan: Plan,
    out: Measurements,
) -> None:
    """`big_results` results of `big_size` bytes delivered at once; the bot's RSS peak."""
    await asyncio.sleep(1.0)  # let the previous deliveries' buffers settle
    out.rss_before = bot.rss_bytes()
    peak = out.rss_before
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, bot.rss_bytes())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    posts_before = len(stage.fake.find_requests("POST", r"^/channels/\d+/messages$", status=200))
    sandbox.state.result_size = plan.big_size
    try:
        await _jobs(stage, sandbox, database, plan, [plan.quick_completion] * plan.big_results)
    finally:
        sandbox.state.result_size = None
        stop.set()
        await sampler
    out.rss_peak = peak
    posts = stage.fake.find_requests("POST", r"^/channels/\d+/messages$", status=200)
    out.big_uploaded = sum(
        1 for r in posts[posts_before:] if any(f.size >= plan.big_size for f in r.files)
    )
    stage.drop_uploaded_bytes()


async def many_pending(stage: Stage, workdir: Path, plan: Plan, out: Measurements) -> None:
    """`many` submitted jobs in the store, their tasks completing together at the API."""
    config = sandbox_config(plan.many_status_limit, plan.scale)
    async with SandboxServer(config) as sandbox:
        database = workdir / "many.sqlite3"
        store = await open_store(database, default_daily_credits=100000)
        try:
            for i in range(plan.many):
                member = stage.members[i % len(stage.members)]
                job = await store.credits.reserve(
                    NewJob(
                        guild_id=stage.guild.id,
                        channel_id=stage.channel.id,
                        user_id=member.id,
                        mode="text-to-video",
                        prompt=f"pending horse {i}",
                        duration=5,
                        aspect_ratio="16:9",
                        quality="std",
                        sound=False,
                    )
                )
                assert job is not None
                task = sandbox.state.create_task(
                    model="happyhorse-1.0/video",
                    prompt=job.prompt,
                    mode="text-to-video",
                    quality="std",
                    duration=5,
                    aspect_ratio="16:9",
                    sound=False,
                )
                task.complete_after = 1e9  # completes only when forced, all together
                await store.jobs.mark_submitted(job.id, task.task_id, datetime.now(UTC))
            await store.guilds.set_limits(stage.guild.id, NO_LIMITS, MODERATOR_ID)
        finally:
            await store.close()
        env = bot_environment(
            stage, sandbox, database, scale=plan.scale, status_rate=plan.many_status_rate
        )
        async with Subprocess(["bot.py"], env, workdir / "many.log") as bot:
            await bot.start(stage.fake)
            tasks = list(sandbox.state.tasks.values())
            for task in tasks:
                sandbox.state.force(task.task_id, Phase.COMPLETED)
            completed_at = time.monotonic()
            limit = plan.many / (plan.many_status_limit / plan.scale)
            delivered = await wait_delivered(database, [t.task_id for t in tasks], limit * 3 + 30.0)
            out.many_delivered = len(delivered)
            posts = stage.post_times()
            times = [posts[m] for m in delivered.values() if m in posts]
            if times and len(delivered) == len(tasks):
                out.many_seconds = max(times) - completed_at
            out.many_rate_limited = sandbox.state.rate_limited["status"]
