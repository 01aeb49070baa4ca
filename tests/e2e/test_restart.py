"""Restarts with a real bot process: crash (SIGKILL) or stop (SIGTERM) `python bot.py` at
every awkward moment of a job and start it again on the same database.

After every scenario each video is posted exactly once, each delivered job is charged
once, each failed or interrupted job is refunded, and the sandbox saw one generate call
per job (never a second task for the same request).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.fairness import fair_order
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.sandbox.state import Phase
from storage.models import GuildLimits, Job, JobState, NewJob
from storage.sqlite import open_store
from tests.e2e.conftest import API_KEY, StartBot, World, eventually
from tests.e2e.process import BotProcess, bot_env
from tests.fake_discord import FakeDiscord, FakeMember, InteractionRecord

MARKER = re.compile(r"^HappyHorse job #(\d+)$")
MESSAGES = r"^/channels/\d+/messages$"
CREDITS = 10


# -- reading what happened ----------------------------------------------------------------


def job_of(message: dict[str, Any]) -> int | None:
    """The job id in a message's embed footer, if it carries one."""
    for embed in message.get("embeds") or []:
        found = MARKER.match((embed.get("footer") or {}).get("text", ""))
        if found:
            return int(found[1])
    return None


def is_card(message: dict[str, Any]) -> bool:
    """Whether the message is an interaction response (a status card), not a post."""
    return bool(message.get("interaction_metadata"))


def video_posts(fake: FakeDiscord, world: World) -> Counter[int]:
    """How many times each job's video was posted in the channel (cards not counted)."""
    counts: Counter[int] = Counter()
    for message in fake.channel_messages(world.channel):
        job_id = job_of(message)
        if job_id is None or is_card(message):
            continue
        assert any(a["filename"].endswith(".mp4") for a in message["attachments"]), message
        counts[job_id] += 1
    mp4s = [
        m
        for m in fake.channel_messages(world.channel)
        if any(a["filename"].endswith(".mp4") for a in m["attachments"])
    ]
    assert len(mp4s) == sum(counts.values()), "an .mp4 was posted without its job footer"
    return counts


def notices_for(fake: FakeDiscord, world: World, member: FakeMember) -> list[dict[str, Any]]:
    """Failure notices in the channel that ping `member`."""
    return [
        m
        for m in fake.channel_messages(world.channel)
        if "could not be made" in m["content"]
        and [u["id"] for u in m["mentions"]] == [str(member.id)]
    ]


async def all_jobs(db: Path, members: Iterable[FakeMember], guild_id: int) -> list[Job]:
    """Every job of these members, oldest first, read straight from the database."""
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        jobs = [j for m in members for j in await store.jobs.recent_jobs(guild_id, m.id, 50)]
    finally:
        await store.close()
    return sorted(jobs, key=lambda j: j.id)


async def wait_jobs(
    db: Path, world: World, check: Callable[[list[Job]], bool], what: str, timeout: float = 15.0
) -> None:
    """Wait until `check` holds for every job in the database."""

    async def holds() -> bool:
        return check(await all_jobs(db, people(world), world.guild.id))

    await eventually(holds, timeout, what)


async def wait_settled(db: Path, world: World, count: int, timeout: float = 15.0) -> None:
    """Wait until `count` jobs exist and every one is delivered or refunded."""
    await wait_jobs(
        db,
        world,
        lambda jobs: len(jobs) == count and all(j.state.is_terminal for j in jobs),
        f"{count} jobs to be delivered or refunded",
        timeout,
    )


async def wait_cards_recorded(db: Path, world: World, count: int) -> None:
    """Wait until `count` jobs are submitted with their status card's id stored."""
    await wait_jobs(
        db,
        world,
        lambda jobs: (
            len(jobs) == count
            and all(j.task_id is not None and j.progress_message_id for j in jobs)
        ),
        f"{count} submitted jobs with their cards recorded",
        timeout=5.0,
    )


def people(world: World) -> list[FakeMember]:
    """Everyone who can ask for videos in the world."""
    return [world.alice, world.bob, world.mod]


async def assert_books_balance(
    db: Path, world: World, sandbox: SandboxServer, *, delivered: int, refunded: int
) -> list[Job]:
    """Every video posted once, every charge matched, one API task per submitted job."""
    fake = world.fake
    jobs = await all_jobs(db, people(world), world.guild.id)
    by_state = Counter(j.state for j in jobs)
    assert by_state == Counter({JobState.DELIVERED: delivered, JobState.REFUNDED: refunded}), [
        (j.id, j.state, j.last_error) for j in jobs
    ]
    posts = video_posts(fake, world)
    assert posts == Counter({j.id: 1 for j in jobs if j.state is JobState.DELIVERED})
    post_ids = {
        job_of(m): int(m["id"]) for m in fake.channel_messages(world.channel) if not is_card(m)
    }
    for job in jobs:
        if job.state is JobState.DELIVERED:
            assert job.delivered_message_id == post_ids[job.id]
            assert job.refunded_at is None
        else:
            assert job.refunded_at is not None and job.delivered_message_id is None
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        for member in people(world):
            balance = await store.credits.balance(world.guild.id, member.id)
            spent = sum(
                j.cost for j in jobs if j.user_id == member.id and j.state is JobState.DELIVERED
            )
            assert balance.remaining == CREDITS - spent, (member.user.username, balance)
    finally:
        await store.close()
    submitted = [j.task_id for j in jobs if j.task_id is not None]
    assert len(set(submitted)) == len(submitted), "two jobs share one task"
    assert set(submitted) == set(sandbox.state.tasks), "a task was made twice or lost"
    assert sandbox.state.request_counts["generate"] == len(submitted)
    return jobs


# -- driving the bot ----------------------------------------------------------------------


@dataclass
class Harness:
    """The world, a sandbox of our choosing and the bot processes run on one database."""

    world: World
    tmp_path: Path
    db: Path
    sandbox: SandboxServer | None = None
    runs: list[BotProcess] = field(default_factory=list)

    @property
    def fake(self) -> FakeDiscord:
        return self.world.fake

    async def start(self, **overrides: str) -> BotProcess:
        """Start `python bot.py` on the shared database and wait until it is logged in."""
        assert self.sandbox is not None
        env = bot_env(self.fake, self.sandbox, API_KEY, self.db, self.world.guild.id, **overrides)
        run = BotProcess(env, self.tmp_path / f"bot-{len(self.runs) + 1}.log")
        self.runs.append(run)
        await run.start(self.fake)
        return run

    async def books(self, *, delivered: int, refunded: int = 0) -> list[Job]:
        """The end-of-scenario checks (see `assert_books_balance`)."""
        assert self.sandbox is not None
        return await assert_books_balance(
            self.db, self.world, self.sandbox, delivered=delivered, refunded=refunded
        )


@pytest.fixture
async def harness(world: World, tmp_path: Path) -> AsyncIterator[Harness]:
    """A harness whose bot processes are killed at teardown; logs are shown on failure."""
    h = Harness(world=world, tmp_path=tmp_path, db=tmp_path / "bot.sqlite3")
    try:
        yield h
    finally:
        for number, run in enumerate(h.runs, 1):
            await run.ensure_dead()
            print(f"----- bot.py run {number} (exit {run.returncode}) -----\n{run.log()}")
        if h.sandbox is not None:
            await h.sandbox.close()


async def use_sandbox(h: Harness, processing_after: float, complete_after: float) -> None:
    """Give the harness a sandbox with this lifecycle."""
    config = SandboxConfig(
        api_key=API_KEY, processing_after=processing_after, complete_after=complete_after
    )
    h.sandbox = SandboxServer(config, shutdown_timeout=0.1)
    await h.sandbox.start()


async def ask(
    fake: FakeDiscord, world: World, member: FakeMember, prompt: str, **options: Any
) -> InteractionRecord:
    """/video as `member`; the bot must defer within Discord's 3 s."""
    inter = await fake.invoke_slash(
        world.guild, world.channel, member, "video", {"prompt": prompt, **options}
    )
    assert await inter.wait_for_ack() == 5
    return inter


async def card(inter: InteractionRecord, title: str = "", timeout: float = 15.0) -> int:
    """Wait until the request's status card shows `title`; return its job id."""

    def shows(message: dict[str, Any]) -> bool:
        embeds = message.get("embeds") or []
        return bool(embeds) and title in embeds[0].get("title", "") and job_of(message) is not None

    message = await inter.wait_for_original(shows, timeout)
    job_id = job_of(message)
    assert job_id is not None
    return job_id


async def wait_posts(h: Harness, count: int, timeout: float = 15.0) -> None:
    """Wait until `count` videos are in the channel."""
    await h.fake.wait_for(
        lambda: sum(video_posts(h.fake, h.world).values()) >= count, timeout, f"{count} videos"
    )


async def stop_cleanly(run: BotProcess) -> None:
    """SIGTERM must end the bot with status 0 within a few seconds, saying so."""
    assert await run.stop(timeout=5.0) == 0, run.log()
    log = run.log()
    assert "Received SIGTERM: shutting down" in log
    assert "Shut down cleanly" in log


# -- the scenarios --------------------------------------------------------------------------


async def test_sigterm_shuts_down_cleanly_mid_job_and_the_job_resumes(harness: Harness) -> None:
    """SIGTERM mid-job exits 0 promptly and cleanly; the next run delivers the video once."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=0.2, complete_after=2.5)
    first = await h.start()
    inter = await ask(h.fake, world, world.alice, "a horse trotting on a beach")
    await card(inter)
    await wait_cards_recorded(h.db, world, 1)
    await stop_cleanly(first)
    assert "Traceback" not in first.log()
    assert video_posts(h.fake, world) == Counter()

    second = await h.start()
    await wait_posts(h, 1)
    await wait_settled(h.db, world, 1)
    await stop_cleanly(second)
    await h.books(delivered=1)


async def test_sigkill_while_jobs_are_queued(harness: Harness) -> None:
    """Killed while the API still queues three jobs, the next run posts each video once."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=2.5, complete_after=3.0)
    first = await h.start()
    inters = [
        await ask(h.fake, world, world.alice, "a grey horse in the snow"),
        await ask(h.fake, world, world.bob, "a foal in a meadow", duration=10, quality="pro"),
        await ask(h.fake, world, world.alice, "horses at dawn", duration=10),
    ]
    for inter in inters:
        await card(inter)
    await wait_cards_recorded(h.db, world, 3)
    assert sandbox_phases(h) == [Phase.QUEUED] * 3
    await first.kill()

    second = await h.start()
    await wait_posts(h, 3)
    await wait_settled(h.db, world, 3)
    # The second run redraws the first run's cards (a moment after settling them).
    for inter in inters:
        await card(inter, "Delivered")
    await stop_cleanly(second)
    jobs = await h.books(delivered=3)
    assert sorted(j.cost for j in jobs) == [1, 2, 4]


async def test_sigkill_with_a_queue_keeps_it_in_order_and_loses_nothing(
    harness: Harness,
) -> None:
    """Killed while one job runs and three wait (server_running=1), the next run keeps the
    three queued (not refunded), in the same fair order, starts them one at a time and
    posts each video once."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=1.0, complete_after=4.0)
    store = await open_store(h.db, default_daily_credits=CREDITS)
    try:
        await store.guilds.set_limits(
            world.guild.id, GuildLimits(server_running=1, member_queued=5), world.mod.id
        )
    finally:
        await store.close()
    first = await h.start()
    a1 = await card(await ask(h.fake, world, world.alice, "alice one"))
    a2 = await card(await ask(h.fake, world, world.alice, "alice two"), "Queued")
    a3 = await card(await ask(h.fake, world, world.alice, "alice three"), "Queued")
    bob = await ask(h.fake, world, world.bob, "bob one")
    b1 = await card(bob, "Queued: position 1 of 3")
    await wait_jobs(
        h.db,
        world,
        lambda jobs: len(jobs) == 4 and all(j.progress_message_id for j in jobs),
        "four cards recorded",
    )
    await first.kill()

    before = {j.id: j for j in await all_jobs(h.db, people(world), world.guild.id)}
    assert before[a1].state is JobState.SUBMITTED
    assert [before[n].state for n in (a2, a3, b1)] == [JobState.QUEUED] * 3
    assert [j.id for j in fair_order(before[n] for n in (a2, a3, b1))] == [b1, a2, a3]

    second = await h.start()
    await wait_posts(h, 4, timeout=45)
    await wait_settled(h.db, world, 4, timeout=15)
    await card(bob, "Delivered")
    await stop_cleanly(second)
    jobs = await h.books(delivered=4)
    started = sorted(jobs, key=lambda j: j.submitted_at or datetime.max.replace(tzinfo=UTC))
    assert [j.id for j in started] == [a1, b1, a2, a3]
    assert "interrupted by a restart" not in second.log()


def sandbox_phases(h: Harness) -> list[Phase]:
    """The API-side phase of every task, in creation order."""
    assert h.sandbox is not None
    state = h.sandbox.state
    return [state.phase(task)[0] for task in state.tasks.values()]


async def test_sigkill_while_jobs_are_processing(harness: Harness) -> None:
    """Killed while jobs are generating, the next run posts the video and refunds a failure."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=0.1, complete_after=3.5)
    first = await h.start()
    good = await ask(h.fake, world, world.alice, "a horse jumping a fence")
    bad = await ask(h.fake, world, world.bob, "a horse that will FAIL", duration=10)
    await card(good, "Generating")
    await card(bad, "Generating")
    await wait_cards_recorded(h.db, world, 2)
    await first.kill()

    second = await h.start()
    await wait_posts(h, 1)
    await h.fake.wait_for(lambda: notices_for(h.fake, world, world.bob), 10, "bob's notice")
    await wait_settled(h.db, world, 2)
    await card(good, "Delivered")
    await card(bad, "Refunded")
    await stop_cleanly(second)
    await h.books(delivered=1, refunded=1)
    assert len(notices_for(h.fake, world, world.bob)) == 1
    assert "2 credits refunded" in notices_for(h.fake, world, world.bob)[0]["content"]


async def test_sigkill_while_completed_job_holds_a_live_delivery_lease(harness: Harness) -> None:
    """Killed while Discord fails the upload (lease live), the next run posts the video once."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=0.1, complete_after=0.3)
    outage = h.fake.fail_requests("POST", MESSAGES, 500, 0, "Internal Server Error", count=1000)
    first = await h.start()
    inter = await ask(h.fake, world, world.alice, "a horse under the stars")
    job_id = await card(inter)
    await h.fake.wait_for_request("POST", MESSAGES, 10, status=500)
    [job] = await all_jobs(h.db, [world.alice], world.guild.id)
    assert job.id == job_id and job.state is JobState.COMPLETED
    assert job.delivering_until is not None and job.delivering_until > datetime.now(UTC)
    await first.kill()
    outage.remaining = 0

    second = await h.start()
    await wait_posts(h, 1)
    await wait_settled(h.db, world, 1)
    await stop_cleanly(second)
    await h.books(delivered=1)


async def test_sigkill_after_discord_created_the_post_but_before_it_was_recorded(
    harness: Harness,
) -> None:
    """Discord created the post but the bot died unanswered: the next run finds it, no repost."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=0.1, complete_after=0.3)
    stall = h.fake.hold_responses("POST", MESSAGES, seconds=30)
    first = await h.start()
    inter = await ask(h.fake, world, world.alice, "a horse in a thunderstorm")
    job_id = await card(inter)
    await h.fake.wait_for_request("POST", MESSAGES, 10, status=200)
    assert video_posts(h.fake, world) == Counter({job_id: 1})
    [job] = await all_jobs(h.db, [world.alice], world.guild.id)
    assert job.state is JobState.COMPLETED and job.delivered_message_id is None
    await first.kill()
    stall.release()
    [posted] = h.fake.find_requests("POST", MESSAGES)

    second = await h.start()
    await wait_settled(h.db, world, 1)
    await second.wait_for_log(f"Job {job_id} was already posted")
    await card(inter, "Delivered")
    await stop_cleanly(second)
    [job] = await h.books(delivered=1)
    assert job.delivered_message_id == int(posted.response["id"])
    assert len(h.fake.find_requests("POST", MESSAGES)) == 1


async def test_buttons_on_a_post_from_the_previous_run_still_work(harness: Harness) -> None:
    """Regenerate and Delete on a video posted by the first process work in the second."""
    h, world = harness, harness.world
    fake = h.fake
    await use_sandbox(h, processing_after=0.1, complete_after=0.3)
    first = await h.start()
    inter = await ask(fake, world, world.alice, "a horse on a carousel")
    job_id = await card(inter)
    await wait_posts(h, 1)
    await wait_settled(h.db, world, 1)
    await stop_cleanly(first)
    [post] = [m for m in fake.channel_messages(world.channel) if job_of(m) and not is_card(m)]

    second = await h.start()
    regen = await fake.click_button(post, f"hh:regen:{job_id}", world.bob)
    assert await regen.wait_for_ack() == 5
    new_job = await card(regen)
    assert new_job != job_id
    await wait_posts(h, 2)
    delete = await fake.click_button(post, f"hh:delete:{job_id}", world.alice)
    assert (await delete.wait_for_followup())["content"] == "Deleted."
    await fake.wait_for(lambda: fake.message(post) is None, 5, "the original to be deleted")
    await wait_settled(h.db, world, 2)
    await stop_cleanly(second)

    assert video_posts(fake, world) == Counter({new_job: 1})
    jobs = await all_jobs(h.db, people(world), world.guild.id)
    assert [(j.user_id, j.state) for j in jobs] == [
        (world.alice.id, JobState.DELIVERED),
        (world.bob.id, JobState.DELIVERED),
    ]
    assert h.sandbox is not None and h.sandbox.state.request_counts["generate"] == 2
    store = await open_store(h.db, default_daily_credits=CREDITS)
    try:
        for member in (world.alice, world.bob):
            balance = await store.credits.balance(world.guild.id, member.id)
            assert balance.remaining == CREDITS - 1
    finally:
        await store.close()


async def test_gateway_disconnect_and_resume_during_a_job(
    start_bot: StartBot, world: World
) -> None:
    """A gateway drop mid-job (and a /video sent during the gap) still ends in one post each."""
    fake = world.fake
    async with start_bot() as running:
        first = await ask(fake, world, world.alice, "a horse crossing a river")
        first_job = await card(first)
        async with fake.gateway_gap():
            late = await fake.invoke_slash(
                world.guild, world.channel, world.bob, "video", {"prompt": "a pony in the gap"}
            )
        assert await late.wait_for_ack() == 5
        late_job = await card(late)
        await fake.disconnect_gateway()
        await fake.wait_for_resume(count=2)

        async def delivered() -> bool:
            jobs = [await running.store.jobs.get_job(i) for i in (first_job, late_job)]
            return all(j is not None and j.state is JobState.DELIVERED for j in jobs)

        await eventually(delivered, 10, "both jobs to be delivered")
        assert video_posts(fake, world) == Counter({first_job: 1, late_job: 1})
        assert fake.gateway.identify_count == 1, "the bot re-identified instead of resuming"
        assert running.sandbox.state.request_counts["generate"] == 2


async def test_reserved_but_never_submitted_job_is_refunded_at_start_up(
    harness: Harness,
) -> None:
    """A job a crash left reserved is refunded at start-up, never submitted, and alice told."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=0.1, complete_after=0.3)
    store = await open_store(h.db, default_daily_credits=CREDITS)
    try:
        job = await store.credits.reserve(
            NewJob(
                guild_id=world.guild.id,
                channel_id=world.channel.id,
                user_id=world.alice.id,
                mode="text-to-video",
                prompt="a horse that never left",
                duration=10,
                aspect_ratio="16:9",
                quality="std",
                sound=True,
            )
        )
        assert job is not None and job.cost == 2
        assert (await store.credits.balance(world.guild.id, world.alice.id)).remaining == 8
    finally:
        await store.close()

    run = await h.start()
    notice = await h.fake.wait_for(
        lambda: notices_for(h.fake, world, world.alice), 10, "alice's notice"
    )
    await stop_cleanly(run)
    [message] = notice
    assert message["content"].startswith(f"<@{world.alice.id}>")
    assert "interrupted by a restart" in message["content"]
    assert "2 credits refunded" in message["content"]
    await h.books(delivered=0, refunded=1)
    assert h.sandbox is not None and h.sandbox.state.request_counts["generate"] == 0
