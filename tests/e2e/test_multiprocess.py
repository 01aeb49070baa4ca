"""Three real `python bot.py` processes sharing one PostgreSQL database and one API budget.

Two processes run the bot's two shards (SHARD_COUNT=2, SHARD_IDS=0 and 1) and a third
(SHARD_IDS= empty) only does background work. 200 requests arrive in both shards' guilds
(some with the sandbox's fail word); one process is SIGKILLed and restarted mid-run, then
another. In the end every job is settled: each delivered video was posted exactly once,
each refund happened once (the credits add up) and was told once, no job was ever polled
by two processes at the same moment (the sandbox's log of status calls never shows two
calls for one task in flight together), and the status calls the sandbox received never
exceeded the configured rate in any second.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from happyhorse.sandbox import SandboxConfig, SandboxServer
from storage import open_store
from storage.models import GuildLimits, Job, JobState
from tests.e2e.conftest import API_KEY
from tests.e2e.process import BotProcess, bot_env
from tests.e2e.test_restart import is_card, job_of
from tests.fake_discord import FakeChannel, FakeDiscord, FakeGuild, FakeMember, permissions

SHARDS = 2
JOBS = 200
MEMBERS = 10  # per guild
CREDITS = 100
RATE = 27  # HAPPYHORSE_STATUS_RATE, shared by the three processes
API_RATE = 30  # the sandbox's own status limit, a tenth above the bot's budget
# The margin is for this harness, not the bot: the sandbox shares one event loop with the
# Discord fake and the test, and a stall there counts calls that arrived over a longer
# span as one second's. The bot is held to its own budget, by arrival second, below.
WAVE = 10  # requests sent at once
FAIL_EVERY = 9  # every ninth prompt holds the sandbox's fail word
MODERATOR = 1


@dataclass
class Club:
    """A guild on one shard, its #videos channel and its members."""

    shard_id: int
    guild: FakeGuild
    channel: FakeChannel
    members: list[FakeMember] = field(default_factory=list)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """One API for every process: status calls limited to API_RATE per second, short jobs."""
    config = SandboxConfig(
        api_key=API_KEY,
        processing_after=0.3,
        complete_after=2.0,
        status_rate_limit=API_RATE,
        status_rate_window=1.0,
    )
    async with SandboxServer(config, shutdown_timeout=0.1) as server:
        draws = random.Random(8)
        server.state.completion_times.extend(draws.uniform(1.0, 3.0) for _ in range(JOBS))
        yield server


@pytest.fixture
async def processes() -> AsyncIterator[list[BotProcess]]:
    """Bot processes a test starts; killed at teardown if still running."""
    started: list[BotProcess] = []
    yield started
    for process in started:
        await process.ensure_dead()


def is_notice(message: dict[str, Any], member: FakeMember) -> bool:
    """A failure notice to ``member`` (in the channel, or a DM): it says what was refunded."""
    mentions = [u["id"] for u in message.get("mentions") or []]
    in_channel = mentions == [str(member.id)] and not is_card(message)
    return "refunded." in message["content"] and (in_channel or not mentions)


async def settled(url: str, clubs: list[Club]) -> list[Job]:
    """Every job of every member, read from the shared database."""
    store = await open_store(url, default_daily_credits=CREDITS)
    try:
        return [
            job
            for club in clubs
            for member in club.members
            for job in await store.jobs.recent_jobs(club.guild.id, member.id, limit=JOBS)
        ]
    finally:
        await store.close()


async def test_three_processes_share_the_work_exactly_once(
    fake_discord: FakeDiscord,
    sandbox: SandboxServer,
    pg_database: str,
    processes: list[BotProcess],
    tmp_path: Path,
) -> None:
    """200 jobs across two shards and a background process, two SIGKILLs on the way."""
    fake = fake_discord
    started_at = time.monotonic()
    clubs = []
    for shard_id in range(SHARDS):
        guild = fake.add_guild_on_shard(f"Shard {shard_id} Club", shard_id, SHARDS)
        club = Club(shard_id, guild, fake.add_text_channel(guild, "videos"))
        club.members = [fake.add_member(guild, f"rider{shard_id}-{i}") for i in range(MEMBERS)]
        clubs.append(club)
    store = await open_store(pg_database, default_daily_credits=CREDITS)
    try:  # no running or queue limits: the processes, not the queue, are under test
        for club in clubs:
            await store.guilds.set_limits(club.guild.id, GuildLimits(0, 0, 0, 0), MODERATOR)
    finally:
        await store.close()

    def env(shard_ids: str, **overrides: str) -> dict[str, str]:
        return bot_env(
            fake, sandbox, API_KEY, tmp_path / "unused.sqlite3", 0,
            DEV_GUILD_ID="", SHARD_COUNT=str(SHARDS), SHARD_IDS=shard_ids,
            DATABASE_URL=pg_database, DEFAULT_DAILY_CREDITS=str(CREDITS),
            HAPPYHORSE_STATUS_RATE=str(RATE), HAPPYHORSE_STATUS_BURST="1",
            POLL_INTERVAL_SECONDS="1", POLL_FIRST_DELAY_SECONDS="1",
            POLL_MAX_INTERVAL_SECONDS="1", STALE_SWEEP_INTERVAL_SECONDS="1",
            PROCESS_HEARTBEAT_SECONDS="0.5", PROCESS_LIVENESS_SECONDS="5",
            QUEUE_CHECK_INTERVAL_SECONDS="0.5", STATUS_EDIT_INTERVAL_SECONDS="1",
            LOG_LEVEL="INFO", **overrides,
        )  # fmt: skip

    shard_processes = [
        BotProcess(env(str(club.shard_id)), tmp_path / f"shard{club.shard_id}.log")
        for club in clubs
    ]
    background = BotProcess(env("", SYNC_COMMANDS="false"), tmp_path / "background.log")
    processes.extend([*shard_processes, background])
    for process in shard_processes:
        await process.start(fake, timeout=30)
    await background.start(fake, timeout=30, gateway=False)

    requests: list[tuple[Club, FakeMember, str]] = []
    for index in range(JOBS):
        club = clubs[index % SHARDS]
        member = club.members[(index // SHARDS) % MEMBERS]
        prompt = f"horse number {index}" + (" FAIL" if index % FAIL_EVERY == 0 else "")
        requests.append((club, member, prompt))

    async def send(wave: list[tuple[Club, FakeMember, str]]) -> None:
        records = [
            await fake.invoke_slash(c.guild, c.channel, m, "video", {"prompt": p})
            for c, m, p in wave
        ]
        for record in records:
            assert await record.wait_for_ack() == 5

    events: list[tuple[str, float]] = []
    waves = [requests[i : i + WAVE] for i in range(0, JOBS, WAVE)]
    for number, wave in enumerate(waves):
        await send(wave)
        await asyncio.sleep(0.25)  # arrivals spread over a few seconds of polling
        if number == 6:  # shard 1's process dies with polls and deliveries in flight
            await shard_processes[1].kill()
            events.append(("shard 1 killed", time.monotonic()))
            await shard_processes[1].start(fake, timeout=30)
            events.append(("shard 1 restarted", time.monotonic()))
        if number == 12:  # then the background-only one
            await background.kill()
            events.append(("background killed", time.monotonic()))
            await background.start(fake, timeout=30, gateway=False)
            events.append(("background restarted", time.monotonic()))

    async def all_settled() -> bool:
        jobs = await settled(pg_database, clubs)
        return len(jobs) == JOBS and all(
            job.state is JobState.DELIVERED
            or (job.state is JobState.REFUNDED and job.notified_at is not None)
            for job in jobs
        )

    deadline = time.monotonic() + 150
    while not await all_settled():
        for process in processes:
            assert process.returncode is None, process.log()[-5000:]
        assert time.monotonic() < deadline, "timed out waiting for every job to settle"
        await asyncio.sleep(0.5)
    duration = time.monotonic() - started_at
    for process in processes:
        assert await process.stop(timeout=15) == 0
    jobs = await settled(pg_database, clubs)

    # Every delivered video was posted exactly once; nothing else was posted.
    posts: Counter[int] = Counter()
    for club in clubs:
        for message in fake.channel_messages(club.channel):
            job_id = job_of(message)
            if job_id is not None and not is_card(message):
                posts[job_id] += 1
    delivered = {job.id for job in jobs if job.state is JobState.DELIVERED}
    assert posts == Counter(dict.fromkeys(delivered, 1))
    # Failing prompts were refunded, never delivered.
    failing = {job.id for job in jobs if "FAIL" in job.prompt}
    assert failing and not failing & delivered
    refunded = [job for job in jobs if job.state is JobState.REFUNDED]
    assert {job.id for job in refunded} >= failing

    # Each refund returned the credits once, and each was told once.
    store = await open_store(pg_database, default_daily_credits=CREDITS)
    try:
        for club in clubs:
            for member in club.members:
                charged = sum(j.cost for j in jobs if j.user_id == member.id and j.id in delivered)
                balance = await store.credits.balance(club.guild.id, member.id)
                assert balance.used == charged, member.id
                told = [
                    m
                    for m in [
                        *fake.channel_messages(club.channel),
                        *fake.dm_messages(member),
                    ]
                    if is_notice(m, member)
                ]
                mine = [j for j in refunded if j.user_id == member.id]
                assert len(told) == len(mine), (member.id, [m["content"] for m in told])
    finally:
        await store.close()

    # No job was polled by two processes at the same moment.
    calls = defaultdict(list)
    for call in sandbox.state.status_log:
        calls[call.task_id].append(call)
    for task_calls in calls.values():
        task_calls.sort(key=lambda c: c.received)
        for before, after in itertools.pairwise(task_calls):
            assert after.received >= before.answered, (before, after)
    # Each job made at most one task, and every task of a job was polled.
    task_ids = [job.task_id for job in jobs if job.task_id is not None]
    assert len(task_ids) == len(set(task_ids)) and set(task_ids) <= set(calls)
    assert len(sandbox.state.tasks) <= JOBS

    # The status calls of the three processes together stayed within the budget.
    per_second = sandbox.state.status_calls_per_second()
    assert max(per_second.values()) <= RATE
    log = sandbox.state.status_log
    refused = [round(c.received - started_at, 2) for c in log if c.status == 429]
    assert sandbox.state.rate_limited["status"] == 0, (
        refused,
        [(name, round(at - started_at, 2)) for name, at in events],
    )
    print(  # the figures for the record (pytest -s)
        f"\n{JOBS} jobs in {duration:.1f} s by 3 processes: {len(delivered)} delivered, "
        f"{len(refunded)} refunded ({Counter(j.last_error for j in refunded)}); "
        f"{len(sandbox.state.status_log)} status calls, at most "
        f"{max(per_second.values())} in one second (budget {RATE}/s)"
    )


BIG_VIDEO = 12 * 1024 * 1024
"""Over the 10 MiB default upload limit, under a boost tier 2 guild's 50 MiB."""


async def delivered_by_the_background_process(
    fake: FakeDiscord,
    pg_database: str,
    processes: list[BotProcess],
    tmp_path: Path,
    *,
    bot_permissions: int = permissions.ALL_TEXT,
    result_size: int | None = None,
) -> tuple[dict[str, Any], Job, BotProcess]:
    """A request reaches a shard-0 process; once its job is submitted that process stops,
    so the job is delivered by a process with no gateway (and no guild in its cache).
    Returns the post, the job, and the background process (still running)."""
    guild = fake.add_guild_on_shard("Boosted Club", 0, 1)
    fake.set_premium_tier(guild, 2)
    channel = fake.add_text_channel(guild, "videos", bot_permissions=bot_permissions)
    member = fake.add_member(guild, "rider")
    config = SandboxConfig(api_key=API_KEY, processing_after=0.2, complete_after=4.0)
    async with SandboxServer(config, shutdown_timeout=0.1) as sandbox:
        if result_size is not None:
            sandbox.state.result_size = result_size

        def env(shard_ids: str, **overrides: str) -> dict[str, str]:
            return bot_env(
                fake, sandbox, API_KEY, tmp_path / "unused.sqlite3", 0,
                DEV_GUILD_ID="", SHARD_COUNT="1", SHARD_IDS=shard_ids,
                DATABASE_URL=pg_database, PROCESS_HEARTBEAT_SECONDS="0.5",
                POLL_INTERVAL_SECONDS="0.5", POLL_FIRST_DELAY_SECONDS="0.5",
                LOG_LEVEL="INFO", **overrides,
            )  # fmt: skip

        gateway = BotProcess(env("0"), tmp_path / "gateway.log")
        background = BotProcess(env("", SYNC_COMMANDS="false"), tmp_path / "background.log")
        processes.extend([gateway, background])
        await gateway.start(fake, timeout=30)
        await background.start(fake, timeout=30, gateway=False)
        record = await fake.invoke_slash(guild, channel, member, "video", {"prompt": "a horse"})
        assert await record.wait_for_ack() == 5

        async def submitted() -> bool:
            store = await open_store(pg_database, default_daily_credits=CREDITS)
            try:
                jobs = await store.jobs.recent_jobs(guild.id, member.id)
            finally:
                await store.close()
            return bool(jobs) and jobs[0].state is JobState.SUBMITTED

        deadline = time.monotonic() + 20
        while not await submitted():
            assert time.monotonic() < deadline, gateway.log()
            await asyncio.sleep(0.1)
        assert await gateway.stop(timeout=15) == 0  # only the background process is left

        def posted() -> list[dict[str, Any]]:
            return [
                m
                for m in fake.channel_messages(channel)
                if job_of(m) is not None and not is_card(m)
            ]

        await fake.wait_for(lambda: posted(), timeout=30, what="the video post")
        [post] = posted()
        store = await open_store(pg_database, default_daily_credits=CREDITS)
        try:
            [job] = await store.jobs.recent_jobs(guild.id, member.id)
        finally:
            await store.close()
        return post, job, background


async def test_a_process_without_the_guild_uploads_within_its_recorded_limit(
    fake_discord: FakeDiscord,
    pg_database: str,
    processes: list[BotProcess],
    tmp_path: Path,
) -> None:
    """The upload limit travels with the job: the background process, which has no guild
    in its cache, still uploads a 12 MiB video to a boosted guild instead of a link."""
    post, job, background = await delivered_by_the_background_process(
        fake_discord, pg_database, processes, tmp_path, result_size=BIG_VIDEO
    )
    [attachment] = post["attachments"]
    assert attachment["filename"].endswith(".mp4")
    assert attachment["size"] >= BIG_VIDEO
    assert job.state is JobState.DELIVERED
    assert job.upload_limit == 50 * 1024 * 1024
    assert "downloaded" in background.log()  # by the process without the guild
    assert await background.stop(timeout=15) == 0


async def test_a_process_without_the_guild_posts_a_link_where_files_are_not_allowed(
    fake_discord: FakeDiscord,
    pg_database: str,
    processes: list[BotProcess],
    tmp_path: Path,
) -> None:
    """No Attach Files in the channel: the process without the guild cannot check first,
    so Discord refuses its upload (403, 50013); it posts the link instead of refunding
    (on old main the job was refunded as undeliverable)."""
    post, job, background = await delivered_by_the_background_process(
        fake_discord,
        pg_database,
        processes,
        tmp_path,
        bot_permissions=permissions.ALL_TEXT & ~permissions.ATTACH_FILES,
    )
    assert post["attachments"] == []
    assert job.result_url is not None and job.result_url in post["content"]
    assert job.state is JobState.DELIVERED and job.delivered_message_id == int(post["id"])
    assert job.refunded_at is None
    assert fake_discord.find_requests("POST", r"^/channels/\d+/messages$", status=403)
    assert "posting a link" in background.log()
    assert await background.stop(timeout=15) == 0
