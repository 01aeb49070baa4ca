"""What every scenario shares: the Discord world, the sandbox, the bot's environment, and
reading back when each job's video was posted.

Times: the sandbox and the Discord fake run in this process and both read
`time.monotonic`, so "completed at the API" (the sandbox) and "posted in the channel"
(the fake's record of the POST) are on one clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.settings import BotSettings
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.sandbox.state import SandboxTask
from storage import open_store
from storage.models import GuildLimits
from tests.e2e.process import bot_env, setting_names
from tests.fake_discord import FakeChannel, FakeDiscord, FakeGuild, FakeMember, InteractionRecord

API_KEY = "hh-bench-key-4b7e0c2a9d"
CHANNEL_POST = r"^/channels/\d+/messages$"
BOOST_TIER_50_MIB = 2
MODERATOR_ID = 1
NOT_SCALED: dict[str, str] = {
    "HAPPYHORSE_TIMEOUT_SECONDS": "a network safety timeout (set to 10 s, unscaled)",
    "HAPPYHORSE_DOWNLOAD_READ_TIMEOUT_SECONDS": "a network safety timeout (10 s, unscaled)",
    "SANDBOX_COMPLETE_AFTER_SECONDS": "the built-in sandbox, which the bench does not use",
}
"""`*_SECONDS` settings the bench leaves unscaled, and why."""
NO_LIMITS = GuildLimits(member_running=0, member_queued=0, server_running=0, cooldown_seconds=0)
"""The bench guild's queue limits (0: none): the figures are about the delivery pipeline,
so the fair queue's default running limits (2 per member, 10 per server) must not hold
the 200-job bursts back; every job starts the moment it is accepted."""


def _default_of(name: str, settings: BotSettings) -> float:
    attribute = name.lower()
    if hasattr(settings, attribute):
        return float(getattr(settings, attribute))
    client = name.removeprefix("HAPPYHORSE_").lower()
    if name.startswith("HAPPYHORSE_") and hasattr(settings.client, client):
        return float(getattr(settings.client, client))
    raise LookupError(f"{name} is documented in .env.example but the bot has no such setting")


def time_settings() -> dict[str, float]:
    """Every timing setting of the bot (each `*_SECONDS` name in `.env.example`) with its
    default, unscaled; the bench multiplies each by the time scale.

    Read from the bot's own defaults, so a new setting or a changed default is picked up
    without editing the bench; the few left unscaled are in `NOT_SCALED`.
    """
    defaults = BotSettings.from_env({"DISCORD_TOKEN": "bench"})
    return {
        name: _default_of(name, defaults)
        for name in sorted(setting_names())
        if name.endswith("_SECONDS") and name not in NOT_SCALED
    }


TIME_SETTINGS: dict[str, float] = time_settings()
"""Default (unscaled) values of the bot's timing settings."""


@dataclass
class Stage:
    """The Discord side: one guild allowing 50 MiB uploads, #videos, many members."""

    fake: FakeDiscord
    guild: FakeGuild
    channel: FakeChannel
    members: list[FakeMember]

    @classmethod
    def build(cls, fake: FakeDiscord, members: int) -> Stage:
        """Create the guild, channel and `members` members on `fake`."""
        guild = fake.add_guild("Bench Stable")
        guild.premium_tier = BOOST_TIER_50_MIB
        channel = fake.add_text_channel(guild, "videos")
        people = [fake.add_member(guild, f"rider{i:03d}") for i in range(members)]
        return cls(fake, guild, channel, people)

    async def order(
        self, count: int, spacing: float = 0.0, start: int = 0, *, locale: str = "en-US"
    ) -> list[InteractionRecord]:
        """`count` members run `/video`, `spacing` seconds apart (0: all at once), their
        Discord clients in `locale`."""
        records = []
        for i in range(count):
            member = self.members[(start + i) % len(self.members)]
            records.append(
                await self.fake.invoke_slash(
                    self.guild,
                    self.channel,
                    member,
                    "video",
                    {"prompt": f"bench horse {i}"},
                    locale=locale,
                )
            )
            if spacing:
                await asyncio.sleep(spacing)
        return records

    def post_times(self) -> dict[int, float]:
        """When each message the bot posted in a channel reached the fake, by message id."""
        times: dict[int, float] = {}
        for request in self.fake.find_requests("POST", CHANNEL_POST, status=200):
            if isinstance(request.response, dict) and "id" in request.response:
                times[int(request.response["id"])] = request.at
        return times

    def drop_uploaded_bytes(self) -> None:
        """Forget uploaded file contents the fake keeps (the 20 MiB results)."""
        for request in self.fake.server.requests:
            request.files = []


async def wait_acks(records: list[InteractionRecord], timeout: float) -> list[float]:
    """Acknowledgement delays in seconds; an interaction never acknowledged counts as `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(r.acked for r in records):
        await asyncio.sleep(0.05)
    return [r.ack_delay if r.ack_delay is not None else timeout for r in records]


def sandbox_config(status_limit_per_second: float, scale: float) -> SandboxConfig:
    """A sandbox answering at once, whose status endpoint allows the scaled rate.

    The limit is a sliding window of one second holding `status_limit_per_second / scale`
    requests: time runs `1/scale` times faster, so budgets grow by the same factor.
    """
    return SandboxConfig(
        api_key=API_KEY,
        processing_after=0.0,
        complete_after=60.0 * scale,
        status_rate_limit=max(1, round(status_limit_per_second / scale)),
        status_rate_window=1.0,
    )


def bot_environment(
    stage: Stage,
    sandbox: SandboxServer,
    database: Path,
    *,
    scale: float,
    status_rate: float,
    loop_report: Path | None = None,
) -> dict[str, str]:
    """The real bot's environment: the fake, the sandbox and every timing scaled."""
    env = bot_env(stage.fake, sandbox, API_KEY, database, stage.guild.id)
    env.update({name: f"{seconds * scale:g}" for name, seconds in TIME_SETTINGS.items()})
    env.update(
        LOG_LEVEL="INFO",
        DEFAULT_DAILY_CREDITS="100000",
        HAPPYHORSE_STATUS_RATE=f"{status_rate / scale:g}",
        HAPPYHORSE_STATUS_BURST="2",
        HAPPYHORSE_MAX_RETRIES="4",
        HAPPYHORSE_TIMEOUT_SECONDS="10",
        HAPPYHORSE_DOWNLOAD_READ_TIMEOUT_SECONDS="10",
        LOOP_WATCH_REPORT=str(loop_report) if loop_report is not None else "",
    )
    return env


def delivered_messages(database: Path) -> dict[str, int]:
    """Task id -> message id of every delivered job in the bot's database (read-only)."""
    if not database.exists():
        return {}
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT task_id, delivered_message_id FROM jobs "
            "WHERE task_id IS NOT NULL AND delivered_message_id IS NOT NULL"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {str(task_id): int(message_id) for task_id, message_id in rows}


async def wait_delivered(database: Path, task_ids: Iterable[str], timeout: float) -> dict[str, int]:
    """Wait (bounded) until every task's video is delivered; return those that were."""
    wanted = set(task_ids)
    deadline = time.monotonic() + timeout
    while True:
        delivered = await asyncio.to_thread(delivered_messages, database)
        found = {t: m for t, m in delivered.items() if t in wanted}
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def new_tasks(
    sandbox: SandboxServer, before: int, count: int, timeout: float
) -> list[SandboxTask]:
    """The `count` tasks created after the first `before` (fewer if they never come)."""
    deadline = time.monotonic() + timeout
    while len(sandbox.state.tasks) < before + count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return list(sandbox.state.tasks.values())[before : before + count]


@dataclass(frozen=True)
class Deliveries:
    """How a group of tasks was delivered: per-task lag and what went missing."""

    lags: list[float]
    missing: int
    status_requests: int

    @property
    def requests_per_video(self) -> float:
        """Answered status calls for these tasks per delivered video."""
        return self.status_requests / len(self.lags) if self.lags else float("inf")


async def lift_limits(database: Path, guild_id: int) -> None:
    """Set the bench guild's queue limits to `NO_LIMITS` in the bot's database (created
    here if new), as a moderator's `/config limits` would, before the bot starts."""
    store = await open_store(database, default_daily_credits=100000)
    try:
        await store.guilds.set_limits(guild_id, NO_LIMITS, MODERATOR_ID)
    finally:
        await store.close()


def deliveries(
    stage: Stage,
    sandbox: SandboxServer,
    tasks: list[SandboxTask],
    delivered: dict[str, int],
    ordered: int | None = None,
) -> Deliveries:
    """Lag (posted - completed at the API) for each delivered task.

    `ordered` is how many jobs were asked for: a job whose task was never created counts
    as missing too, so a run that quietly leaves jobs behind cannot pass.
    """
    posts = stage.post_times()
    lags: list[float] = []
    for task in tasks:
        message_id = delivered.get(task.task_id)
        completed = sandbox.state.completes_at(task)
        if message_id is None or completed is None or message_id not in posts:
            continue
        lags.append(max(0.0, posts[message_id] - completed))
    requests = sum(sandbox.state.status_counts.get(t.task_id, 0) for t in tasks)
    expected = max(len(tasks), ordered or 0)
    return Deliveries(lags, expected - len(lags), requests)
