"""Scale-out on PostgreSQL: deliveries per second with 1, 2 and 4 bot processes sharing
one database, and reserve/commit pairs per second on PostgreSQL against SQLite.

One throw-away PostgreSQL cluster (``tests/pg_cluster.py``: initdb in a temporary folder,
a free loopback port, crash-safe defaults) serves every run. For each process count N:
a fresh database is seeded with the same batch of submitted jobs whose tasks wait at the
sandbox, the guild's queue limits are lifted, one gateway process (``SHARD_COUNT=1
SHARD_IDS=0``) and N-1 background-only processes (``SHARD_IDS=`` empty) start against it,
and then every task completes at the API at the same moment. Deliveries per second is
jobs / (the last job's first post - that moment); every video post in the run's own
channel is counted per job, so a job posted twice shows up as a duplicate. The process
counts take turns for `rounds` rounds (1, 2, 4, 1, 2, 4) and each count's rounds are pooled.

The status rate limit is generous (the sandbox allows several times what the bot is
told), so the API is not what limits the figure: the processes, the database and the
Discord fake and sandbox (which share the bench's one event loop) are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import API_KEY, Stage, bot_environment
from bench.process import Subprocess
from bench.store_throughput import Result, measure
from happyhorse.sandbox import Phase, SandboxConfig, SandboxServer
from storage import open_store
from storage.models import GuildLimits, NewJob
from tests.pg_cluster import TempCluster, find_binaries

log = logging.getLogger("bench")

SKIP_NO_POSTGRES = (
    "skipped: PostgreSQL is not installed (no initdb in $PG_BIN, /usr/lib/postgresql/*/bin "
    "or PATH; apt-get install postgresql)"
)
MODERATOR = 1
VIDEO_TITLE = "Your video is ready"
JOB_FOOTER = re.compile(r"job #(\d+)")
NO_LIMITS = GuildLimits(member_running=0, member_queued=0, server_running=0, cooldown_seconds=0)


@dataclass(frozen=True)
class ScalePlan:
    """Sizes of the scale-out runs (times follow the main plan's scale)."""

    jobs: int = 300
    processes: tuple[int, ...] = (1, 2, 4)
    rounds: int = 2
    """Each process count runs this many times, the counts taking turns (1, 2, 4, 1, 2, 4),
    so drifting load on a shared machine hits every count alike; the figure pools them."""
    status_rate: float = 100.0
    """Status calls per (unscaled) second the bot is told it may make, in total."""
    sandbox_headroom: float = 5.0
    """The sandbox allows this many times the bot's rate: the API is never the limit."""
    grace_seconds: float = 2.0
    """How long to keep watching after the last job's first post, for late duplicates."""
    pairs: int = 1000
    pairs_in_flight: int = 16
    pairs_members: int = 100

    @classmethod
    def quick(cls) -> ScalePlan:
        """A smoke plan: every path runs, nothing is a measurement."""
        return cls(jobs=8, rounds=1, grace_seconds=0.5, pairs=60)


@dataclass(frozen=True)
class ScaleRun:
    """One process count's run: how fast and how correctly the batch was delivered."""

    processes: int
    jobs: int
    delivered: int
    seconds: float | None
    duplicates: int
    status_requests: int
    rate_limited: int
    harness_cpu_seconds: float = 0.0
    """CPU the bench's own process (the Discord fake and the sandbox) used meanwhile."""
    bots_cpu_seconds: float = 0.0
    """CPU every bot process used meanwhile, together."""
    first_seconds: float | None = None
    """From the common completion to the first post (how soon delivery got going)."""
    half_seconds: float | None = None
    """From the common completion until half the jobs were posted."""
    max_status_per_second: int = 0
    """The most status calls that reached the sandbox within any one second of the run."""
    status_budget: float = 0.0
    """The status calls per second every process together was told it may make."""

    @property
    def per_second(self) -> float:
        """Jobs delivered per second from their common completion to the last first post."""
        if not self.seconds or self.seconds <= 0:
            return float("nan")
        return self.delivered / self.seconds


@dataclass
class ScaleResults:
    """Everything the scale-out step measured (or why it could not)."""

    runs: list[ScaleRun] = field(default_factory=list)
    sqlite_pairs: Result | None = None
    postgres_pairs: Result | None = None
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)


def video_posts(stage: Stage, channel_id: int) -> dict[int, list[float]]:
    """Job id -> when each of its video posts reached the fake, in `channel_id`."""
    posts: dict[int, list[float]] = {}
    path = rf"^/channels/{channel_id}/messages$"
    for request in stage.fake.find_requests("POST", path, status=200):
        response = request.response
        if not isinstance(response, dict):
            continue
        for embed in response.get("embeds") or []:
            footer = (embed.get("footer") or {}).get("text", "")
            found = JOB_FOOTER.search(footer)
            if found and VIDEO_TITLE in (embed.get("title") or ""):
                posts.setdefault(int(found.group(1)), []).append(request.at)
                break
    return posts


def summarize(posts: dict[int, list[float]], completed_at: float) -> tuple[int, float | None, int]:
    """(jobs delivered, seconds from completion to the last first post, duplicate posts)."""
    firsts = [min(times) for times in posts.values() if times]
    duplicates = sum(len(times) - 1 for times in posts.values())
    seconds = max(firsts) - completed_at if firsts else None
    return len(firsts), seconds, duplicates


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals within any one-second window (sliding, not whole clock seconds)."""
    times = sorted(arrivals)
    most = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def progress(
    posts: dict[int, list[float]], completed_at: float, jobs: int
) -> tuple[float | None, float | None]:
    """Seconds from completion to the first post, and until half of `jobs` were posted."""
    firsts = sorted(min(times) - completed_at for times in posts.values() if times)
    first = firsts[0] if firsts else None
    half = firsts[(jobs + 1) // 2 - 1] if len(firsts) >= (jobs + 1) // 2 and jobs else None
    return first, half


async def _seed(url: str, stage: Stage, sandbox: SandboxServer, channel_id: int, jobs: int) -> None:
    """`jobs` submitted jobs in a fresh database, their tasks waiting at the sandbox."""
    store = await open_store(url, default_daily_credits=100_000)
    try:
        await store.guilds.set_limits(stage.guild.id, NO_LIMITS, MODERATOR)
        for i in range(jobs):
            member = stage.members[i % len(stage.members)]
            job = await store.credits.reserve(
                NewJob(
                    guild_id=stage.guild.id,
                    channel_id=channel_id,
                    user_id=member.id,
                    mode="text-to-video",
                    prompt=f"scale-out horse {i}",
                    duration=5,
                    aspect_ratio="16:9",
                    quality="std",
                    sound=False,
                )
            )
            if job is None:
                raise RuntimeError("a scale-out reservation was refused")
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
    finally:
        await store.close()


async def one_run(
    stage: Stage,
    sandbox: SandboxServer,
    cluster: TempCluster,
    workdir: Path,
    *,
    processes: int,
    plan: ScalePlan,
    scale: float,
    attempt: int = 1,
) -> ScaleRun:
    """Deliver the batch with `processes` processes on a fresh database; measure it."""
    name = f"scale_{processes}_{attempt}"
    await asyncio.to_thread(cluster.sql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await asyncio.to_thread(cluster.sql, f"CREATE DATABASE {name}")
    url = cluster.url(name)
    channel = stage.fake.add_text_channel(stage.guild, name.replace("_", "-"))
    await _seed(url, stage, sandbox, channel.id, plan.jobs)
    tasks = list(sandbox.state.tasks.values())[-plan.jobs :]

    env = bot_environment(
        stage, sandbox, workdir / f"{name}.sqlite3", scale=scale, status_rate=plan.status_rate
    )
    env.update(DATABASE_URL=url, SHARD_COUNT="1", SHARD_IDS="0", LOOP_WATCH_REPORT="")
    # The registry's timings scale like every other timing setting (defaults 5 s and 20 s):
    # unscaled, a joining process's hold (until the others beat) would be ten times too long.
    env.update(
        PROCESS_HEARTBEAT_SECONDS=f"{5.0 * scale:g}", PROCESS_LIVENESS_SECONDS=f"{20.0 * scale:g}"
    )
    background_env = {**env, "SHARD_IDS": "", "SYNC_COMMANDS": "false"}
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(
            Subprocess(["bot.py"], env, workdir / f"{name}-gateway.log")
        )
        await gateway.start(stage.fake)
        helpers = [
            await stack.enter_async_context(
                Subprocess(["bot.py"], background_env, workdir / f"{name}-background{i}.log")
            )
            for i in range(1, processes)
        ]
        await asyncio.gather(*(h.start(stage.fake, gateway=False) for h in helpers))

        log_before = len(sandbox.state.status_log)
        status_before = sandbox.state.request_counts["status"]
        limited_before = sandbox.state.rate_limited["status"]
        bots = [gateway, *helpers]
        bots_cpu = sum(bot.cpu_seconds() for bot in bots)
        harness_cpu = time.process_time()
        for task in tasks:
            sandbox.state.force(task.task_id, Phase.COMPLETED)
        completed_at = time.monotonic()
        deadline = completed_at + plan.jobs * 0.5 + 60.0
        while time.monotonic() < deadline:
            if len(video_posts(stage, channel.id)) >= plan.jobs:
                break
            await asyncio.sleep(0.1)
        harness_cpu = time.process_time() - harness_cpu
        bots_cpu = sum(bot.cpu_seconds() for bot in bots) - bots_cpu
        await asyncio.sleep(plan.grace_seconds)
        posts = video_posts(stage, channel.id)
        status_requests = sandbox.state.request_counts["status"] - status_before
        rate_limited = sandbox.state.rate_limited["status"] - limited_before
        arrivals = [call.received for call in sandbox.state.status_log[log_before:]]
    stage.drop_uploaded_bytes()
    delivered, seconds, duplicates = summarize(posts, completed_at)
    first, half = progress(posts, completed_at, plan.jobs)
    log.info(
        "scale-out, %d process(es): %d/%d delivered in %s s, %d duplicate posts",
        processes, delivered, plan.jobs, seconds, duplicates,
    )  # fmt: skip
    return ScaleRun(
        processes,
        plan.jobs,
        delivered,
        seconds,
        duplicates,
        status_requests,
        rate_limited,
        harness_cpu_seconds=harness_cpu,
        bots_cpu_seconds=bots_cpu,
        first_seconds=first,
        half_seconds=half,
        max_status_per_second=busiest_second(arrivals),
        status_budget=plan.status_rate / scale,
    )


async def scale_out(
    stage: Stage, workdir: Path, plan: ScalePlan, scale: float, out: ScaleResults
) -> None:
    """Every process count's run, then the pairs on both engines; skipped without PostgreSQL."""
    binaries = find_binaries()
    if binaries is None:
        out.skipped = SKIP_NO_POSTGRES
        return
    cluster = await asyncio.to_thread(TempCluster.start, binaries, durable=True)
    try:
        bot_rate = plan.status_rate / scale
        config = SandboxConfig(
            api_key=API_KEY,
            processing_after=0.0,
            complete_after=1e9,
            status_rate_limit=max(1, round(bot_rate * plan.sandbox_headroom)),
            status_rate_window=1.0,
        )
        async with SandboxServer(config) as sandbox:
            for attempt in range(1, plan.rounds + 1):
                for processes in plan.processes:
                    try:
                        out.runs.append(
                            await one_run(
                                stage, sandbox, cluster, workdir,
                                processes=processes, plan=plan, scale=scale, attempt=attempt,
                            )
                        )  # fmt: skip
                    except Exception as exc:  # one broken run must not hide the others
                        log.exception("scale-out run with %d processes failed", processes)
                        out.errors.append(f"scale-out, {processes} processes: {exc!r}")
        try:
            await asyncio.to_thread(cluster.sql, "CREATE DATABASE pairs")
            out.sqlite_pairs = await measure(
                "sqlite", workdir / "pairs.sqlite3", plan.pairs, plan.pairs_in_flight,
                plan.pairs_members,
            )  # fmt: skip
            out.postgres_pairs = await measure(
                "postgres", cluster.url("pairs"), plan.pairs, plan.pairs_in_flight,
                plan.pairs_members,
            )  # fmt: skip
        except Exception as exc:
            log.exception("reserve+submit pairs failed")
            out.errors.append(f"reserve+submit pairs: {exc!r}")
    finally:
        await asyncio.to_thread(cluster.stop)
