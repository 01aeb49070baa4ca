"""The delivery pipeline end to end: nothing waits behind a slow job.

These run the real bot against the Discord fake and a sandbox whose tasks never finish
on their own (`sandbox` below): each test moves its tasks by hand, so the order of events
is fixed and no assertion depends on timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.sandbox.state import Phase
from storage.models import Job, JobState
from tests.e2e.conftest import (
    API_KEY,
    Running,
    StartBot,
    World,
    bot_settings,
    eventually,
    with_client,
)

MESSAGES = r"^/channels/\d+/messages$"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """A sandbox whose tasks stay queued until a test moves them."""
    config = SandboxConfig(api_key=API_KEY, processing_after=3600.0, complete_after=7200.0)
    async with SandboxServer(config, shutdown_timeout=0.1) as server:
        yield server


async def order(world: World, prompt: str) -> None:
    """alice runs /video; the bot defers within the ack deadline."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.alice, "video", {"prompt": prompt}
    )
    assert await inter.wait_for_ack() == 5


async def submitted_task(running: Running, count: int) -> str:
    """The task id of the `count`-th job (1-based), once the sandbox has it."""
    tasks = running.sandbox.state.tasks
    await running.fake.wait_for(lambda: len(tasks) >= count, 5, f"{count} sandbox tasks")
    return list(tasks)[count - 1]


def posted_prompts(world: World) -> list[str]:
    """The prompts of the videos posted in the channel, in posting order."""
    prompts = []
    for message in world.fake.channel_messages(world.channel):
        if message.get("interaction_metadata") or "your video is ready" not in message["content"]:
            continue
        prompts.append(str(message["embeds"][0].get("description", "")))
    return prompts


async def jobs_by_prompt(running: Running) -> dict[str, Job]:
    world = running.world
    jobs = await running.store.jobs.recent_jobs(world.guild.id, world.alice.id, 20)
    return {job.prompt: job for job in jobs}


async def test_a_stalled_download_delays_only_its_own_job(
    start_bot: StartBot, world: World
) -> None:
    """While one finished video's download hangs, a video finished after it is posted
    first; the stalled one follows when its download ends."""
    async with start_bot() as running:
        state = running.sandbox.state
        await order(world, "a slow horse")
        slow = await submitted_task(running, 1)
        await order(world, "a quick horse")
        quick = await submitted_task(running, 2)
        state.faults.add("download", delay=2.5)
        state.force(slow, Phase.COMPLETED)
        await running.fake.wait_for(
            lambda: state.request_counts["download"] >= 1, 5, "the slow download to start"
        )
        state.force(quick, Phase.COMPLETED)
        await running.fake.wait_for(lambda: len(posted_prompts(world)) == 2, 10, "two videos")
        order_posted = posted_prompts(world)
        assert "quick" in order_posted[0] and "slow" in order_posted[1], order_posted

        async def both_delivered() -> bool:
            jobs = await jobs_by_prompt(running)
            return {job.state for job in jobs.values()} == {JobState.DELIVERED}

        await eventually(both_delivered, 5, "both posts to be recorded")


async def test_a_429_on_status_delays_only_polls_never_a_delivery(
    start_bot: StartBot, world: World, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """The status endpoint answers 429 with a long Retry-After while another job waits to
    be posted again: the post goes out at once, the rate-limited poll just waits."""
    fake = world.fake
    # Retry-After is honoured up to 30 s, so a status call sleeps it out for real.
    patient_client = with_client(
        bot_settings(tmp_path / "unused.sqlite3", sandbox, world.guild.id),
        retry_cap_seconds=30.0,
    ).client
    async with start_bot(client=patient_client) as running:
        state = running.sandbox.state
        await order(world, "a patient horse")
        waiting = await submitted_task(running, 1)
        state.force(waiting, Phase.PROCESSING)
        # Four refusals that discord.py does not retry itself: the bot's own retries span
        # several polls of the waiting job.
        outage = fake.fail_requests("POST", MESSAGES, 400, 50035, "Invalid Form Body", count=4)
        await order(world, "a finished horse")
        finished = await submitted_task(running, 2)
        state.force(finished, Phase.COMPLETED)
        await fake.wait_for_request("POST", MESSAGES, 10, status=400)
        state.faults.add("status", status=429, count=-1, retry_after="20")
        await fake.wait_for(
            lambda: any("finished" in p for p in posted_prompts(world)), 5, "the retried post"
        )

        async def delivered() -> bool:
            jobs = await jobs_by_prompt(running)
            return jobs["a finished horse"].state is JobState.DELIVERED

        await eventually(delivered, 5, "the retried post to be recorded")
        assert outage.remaining == 0
        assert (await jobs_by_prompt(running))["a patient horse"].state is JobState.SUBMITTED


async def test_a_long_discord_rate_limit_gives_the_lease_back(
    start_bot: StartBot, world: World
) -> None:
    """A post answered with a rate limit longer than discord.py will wait (RateLimited):
    the job stays completed and its lease is given back, not held for the full lease."""
    fake = world.fake
    async with start_bot() as running:
        state = running.sandbox.state
        fake.rate_limit("POST", MESSAGES, count=1, retry_after=45.0)
        await order(world, "a rate limited horse")
        task = await submitted_task(running, 1)
        state.force(task, Phase.COMPLETED)
        await fake.wait_for_request("POST", MESSAGES, 10, status=429)

        async def released() -> bool:
            job = (await jobs_by_prompt(running))["a rate limited horse"]
            return job.state is JobState.COMPLETED and job.delivering_until is None

        await eventually(released, 5, "the lease to be given back")
        job = (await jobs_by_prompt(running))["a rate limited horse"]
        assert job.refunded_at is None and job.last_error is None
        cog = running.bot.get_cog("Delivery")
        assert cog is not None and cog.running  # type: ignore[attr-defined]
