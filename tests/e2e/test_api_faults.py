"""HappyHorse API faults, end to end: the real bot against the fake Discord and the sandbox.

Each test injects one misbehaviour into the sandbox (an error status, a hang, a bad body,
a failed or stuck task, a broken download) and checks what the requester is told, that
nothing is charged for a video that was not made, and that the delivery loop survives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from botkit.launch import NOT_STARTED
from happyhorse.sandbox import SandboxServer
from happyhorse.sandbox.state import Phase
from happyhorse.settings import ClientSettings
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
from tests.fake_discord.driver import FakeDiscord
from tests.fake_discord.interactions import InteractionRecord

EPHEMERAL = 1 << 6
ALLOWANCE = 10  # default_daily_credits in the e2e settings
TEN_MIB = 10 * 1024 * 1024


# -- helpers --------------------------------------------------------------------------------


async def order_video(
    world: World, prompt: str = "a horse galloping on a beach"
) -> InteractionRecord:
    """alice runs /video; the bot must defer publicly within the ack deadline."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.alice, "video", {"prompt": prompt}
    )
    assert await inter.wait_for_ack() == 5
    return inter


async def private_reply(fake: FakeDiscord, inter: InteractionRecord) -> str:
    """The refusal that start_job sends after a failed submit: ephemeral, after a neutral card."""
    reply = await inter.wait_for_followup(timeout=10)
    assert reply["flags"] & EPHEMERAL, "the reason must be for the requester alone"
    assert fake.state.messages[int(reply["id"])].ephemeral
    original = inter.original_message()
    assert original is not None and original["content"] == NOT_STARTED
    assert original["id"] != reply["id"]
    content: str = reply["content"]
    return content


async def the_job(running: Running) -> Job:
    """alice's only job."""
    world = running.world
    [job] = await running.store.jobs.recent_jobs(world.guild.id, world.alice.id)
    return job


async def remaining(running: Running) -> int:
    """alice's credits left."""
    world = running.world
    return (await running.store.credits.balance(world.guild.id, world.alice.id)).remaining


async def wait_for_state(running: Running, state: JobState, timeout: float = 10.0) -> Job:
    """Wait until alice's job reaches `state`; return it."""

    async def reached() -> bool:
        jobs = await running.store.jobs.recent_jobs(running.world.guild.id, running.world.alice.id)
        return bool(jobs) and jobs[0].state is state

    await eventually(reached, timeout, what=f"the job to be {state.value}")
    return await the_job(running)


async def assert_refused_and_refunded(running: Running) -> Job:
    """A submit that failed: the job is refunded and the balance is whole again."""
    job = await wait_for_state(running, JobState.REFUNDED)
    assert job.refunded_at is not None and job.task_id is None
    assert job.last_error and job.last_error.startswith("submit:")
    assert await remaining(running) == ALLOWANCE
    return job


async def first_task_id(running: Running) -> str:
    """The sandbox task the bot created, as soon as it exists."""
    tasks = running.sandbox.state.tasks
    await running.fake.wait_for(lambda: tasks, timeout=5, what="a sandbox task")
    [task_id] = tasks
    return task_id


async def wait_for_video(world: World, timeout: float = 10.0) -> dict[str, Any]:
    """The delivery message carrying an uploaded MP4."""
    return await world.fake.wait_for_message(
        world.channel, lambda m: bool(m["attachments"]), timeout=timeout, include_existing=True
    )


def delivery_loop_running(running: Running) -> bool:
    """Whether the poll scheduler and the delivery housekeeping are still alive."""
    cog = running.bot.get_cog("Delivery")
    return cog is not None and cog.running  # type: ignore[attr-defined]


def short_timeout_client(
    tmp_path: Path, world: World, sandbox: SandboxServer, seconds: float
) -> ClientSettings:
    """The e2e client settings with a shorter request timeout (for start_bot(client=...))."""
    settings = bot_settings(tmp_path / "unused.sqlite3", sandbox, world.guild.id)
    return with_client(
        settings, timeout_seconds=seconds, download_read_timeout_seconds=seconds
    ).client


# -- submit errors --------------------------------------------------------------------------


async def test_generate_400_is_refused_privately_and_not_charged(
    start_bot: StartBot, world: World
) -> None:
    """A 400 on generate: ephemeral 'refused' reason, one request, job refunded, no charge."""
    async with start_bot() as running:
        running.sandbox.state.faults.add(
            "generate", status=400, body={"message": "Duration must be 5 or 10."}
        )
        inter = await order_video(world)
        text = await private_reply(world.fake, inter)
        assert "refused this request: Duration must be 5 or 10. " in text
        assert "not charged" in text and ".." not in text
        await assert_refused_and_refunded(running)
        assert running.sandbox.state.request_counts["generate"] == 1
        assert not running.sandbox.state.tasks


async def test_generate_401_blames_configuration_and_never_leaks_the_key(
    start_bot: StartBot, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401: user hears the bot is misconfigured, operator gets an ERROR, key never leaks."""
    caplog.set_level(logging.DEBUG)
    async with start_bot() as running:
        running.sandbox.state.faults.add(
            "generate", status=401, body={"message": f"Invalid API key {API_KEY} for this host"}
        )
        inter = await order_video(world)
        text = await private_reply(world.fake, inter)
        assert "misconfigured" in text and "not charged" in text
        job = await assert_refused_and_refunded(running)
        assert running.sandbox.state.request_counts["generate"] == 1

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("HAPPYHORSE_API_KEY" in r.getMessage() for r in errors), errors
    seen: list[str] = [str(job.last_error)]
    formatter = logging.Formatter()
    for record in caplog.records:
        seen.append(record.getMessage())
        seen.append(repr(record.args))
        if record.exc_info:
            seen.append(formatter.formatException(record.exc_info))
    for request in world.fake.requests:
        seen.append(json.dumps([request.path, request.query, request.headers, request.json]))
        seen.append(json.dumps(request.response, default=str))
    leaks = [s for s in seen if API_KEY in s]
    assert not leaks, leaks[:3]


# A 402 or 429 on generate keeps the job queued: see test_queue.py.


@pytest.mark.parametrize("status", [500, 503])
async def test_generate_5xx_is_not_retried(start_bot: StartBot, world: World, status: int) -> None:
    """A 5xx on generate is reported at once, never retried (no risk of a second paid task)."""
    async with start_bot() as running:
        running.sandbox.state.faults.add("generate", status=status)
        inter = await order_video(world)
        text = await private_reply(world.fake, inter)
        assert "internal error" in text and "not charged" in text
        await assert_refused_and_refunded(running)
        assert running.sandbox.state.request_counts["generate"] == 1


async def test_generate_hang_times_out_cleanly(
    start_bot: StartBot, world: World, tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A generate call that hangs past the client timeout: clear message, no retry, no charge."""
    client = short_timeout_client(tmp_path, world, sandbox, 0.5)
    async with start_bot(client=client) as running:
        running.sandbox.state.faults.add("generate", delay=3.0)
        inter = await order_video(world)
        text = await private_reply(world.fake, inter)
        assert "did not answer in time" in text and "not charged" in text
        await assert_refused_and_refunded(running)
        assert running.sandbox.state.request_counts["generate"] == 1


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("<html><body>502 Bad Gateway</body></html>", "text/html"),
        ({"status": "queued", "message": "accepted"}, None),
    ],
    ids=["not-json", "no-task-id"],
)
async def test_generate_malformed_answer_is_refunded(
    start_bot: StartBot, world: World, body: Any, content_type: str | None
) -> None:
    """A 200 whose body is not JSON, or has no task id: clear message, refund, no retry."""
    async with start_bot() as running:
        running.sandbox.state.faults.add("generate", body=body, content_type=content_type)
        inter = await order_video(world)
        text = await private_reply(world.fake, inter)
        assert "could not read" in text and "not charged" in text
        await assert_refused_and_refunded(running)
        assert running.sandbox.state.request_counts["generate"] == 1


# -- status errors --------------------------------------------------------------------------


async def test_status_429_storm_slows_polling_and_the_job_survives(
    start_bot: StartBot, world: World
) -> None:
    """A 429 storm on status: polling slows a lot, the job is not failed, then it is delivered."""
    window = 3.0
    async with start_bot() as running:
        state = running.sandbox.state
        await order_video(world)
        task_id = await first_task_id(running)
        state.force(task_id, Phase.PROCESSING)
        await asyncio.sleep(0.6)  # past the first quick polls
        before = state.request_counts["status"]
        await asyncio.sleep(window)
        calm = state.request_counts["status"] - before

        state.faults.add("status", status=429, retry_after="3", count=-1)
        before = state.request_counts["status"]
        await asyncio.sleep(window)
        stormy = state.request_counts["status"] - before
        assert calm >= 5, calm
        assert stormy * 2 <= calm, (stormy, calm)
        job = await the_job(running)
        assert job.state is JobState.SUBMITTED and job.refunded_at is None
        assert delivery_loop_running(running)

        state.faults.clear()
        state.force(task_id, Phase.COMPLETED)
        clip = await wait_for_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        assert job.delivered_message_id == int(clip["id"])
        assert await remaining(running) == ALLOWANCE - 1


async def test_status_5xx_for_a_while_is_retried(start_bot: StartBot, world: World) -> None:
    """Status answering 503 for a while: retried, then the video is delivered."""
    async with start_bot() as running:
        running.sandbox.state.faults.add("status", status=503, count=7)
        await order_video(world)
        await wait_for_video(world)
        await wait_for_state(running, JobState.DELIVERED)
        assert running.sandbox.state.request_counts["status"] > 7
        assert await remaining(running) == ALLOWANCE - 1


async def test_status_hang_is_retried(
    start_bot: StartBot, world: World, tmp_path: Path, sandbox: SandboxServer
) -> None:
    """Status calls that hang past the client timeout are retried; the video still lands."""
    client = short_timeout_client(tmp_path, world, sandbox, 0.4)
    async with start_bot(client=client) as running:
        running.sandbox.state.faults.add("status", delay=2.0, count=2)
        await order_video(world)
        await wait_for_video(world)
        await wait_for_state(running, JobState.DELIVERED)
        assert running.sandbox.state.request_counts["status"] >= 3
        assert await remaining(running) == ALLOWANCE - 1


async def test_malformed_status_is_retried_without_stopping_the_loop(
    start_bot: StartBot, world: World
) -> None:
    """Unreadable status answers (not JSON, no state) are retried; a later good one delivers."""
    async with start_bot() as running:
        faults = running.sandbox.state.faults
        faults.add("status", body="<html>oops</html>", content_type="text/html", count=2)
        faults.add("status", body={"task_id": "x", "message": "no state here"}, count=2)
        faults.add("status", body={"status": "teleporting"}, count=1)
        await order_video(world)
        await wait_for_video(world)
        await wait_for_state(running, JobState.DELIVERED)
        assert running.sandbox.state.request_counts["status"] >= 6
        assert delivery_loop_running(running)
        assert await remaining(running) == ALLOWANCE - 1


# -- failed and stuck tasks -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["fail-word", "forced"])
async def test_failed_task_tells_requester_and_refunds_once(
    start_bot: StartBot, world: World, how: str
) -> None:
    """A task the API fails: requester told in the channel with the reason, refunded once."""
    fake = world.fake
    prompt = "a horse that will FAIL" if how == "fail-word" else "a horse galloping"
    reason = "the sandbox fail word" if how == "fail-word" else "Content policy violation"
    async with start_bot() as running:
        inter = await order_video(world, prompt)
        if how == "forced":
            task_id = await first_task_id(running)
            running.sandbox.state.force(task_id, Phase.FAILED, "Content policy violation")
        notice = await fake.wait_for_message(
            world.channel, lambda m: "refunded" in m["content"], timeout=10
        )
        assert notice["content"].startswith(f"<@{world.alice.id}> your video could not be made")
        assert reason in notice["content"] and "1 credit refunded." in notice["content"]
        assert re.search(r"[.!?] 1 credit refunded\.$", notice["content"]), notice["content"]
        assert [m["id"] for m in notice["mentions"]] == [str(world.alice.id)]
        [sent] = [
            r
            for r in fake.find_requests("POST", r"^/channels/\d+/messages$")
            if "refunded" in (r.json or {}).get("content", "")
        ]
        assert sent.json["allowed_mentions"]["users"] == [world.alice.id]
        assert not sent.json["allowed_mentions"].get("parse")

        job = await wait_for_state(running, JobState.REFUNDED)
        assert reason in (job.last_error or "")
        card = await inter.wait_for_original(
            lambda m: any(reason in f["value"] for e in m["embeds"] for f in e.get("fields", []))
        )
        assert "Refunded" in card["embeds"][0]["title"]
        await asyncio.sleep(0.5)  # a few more ticks: no second refund, no second notice
        assert await remaining(running) == ALLOWANCE
        assert (
            len([m for m in fake.channel_messages(world.channel) if "refunded" in m["content"]])
            == 1
        )
        assert not [m for m in fake.channel_messages(world.channel) if m["attachments"]]


async def test_a_status_call_failing_every_time_still_ends_at_the_deadline(
    start_bot: StartBot, world: World
) -> None:
    """Regression (only a "pending" answer was checked against JOB_DEADLINE, so a job whose
    status call failed every time was polled forever, holding its slot and credits): the
    scheduler expires it at the deadline, refunds it once and tells the requester, naming
    the service's last answer."""
    fake = world.fake
    async with start_bot(job_deadline_seconds=1.0) as running:
        running.sandbox.state.faults.add("status", status=503, count=-1)
        await order_video(world)
        notice = await fake.wait_for_message(
            world.channel, lambda m: "refunded" in m["content"], timeout=15
        )
        assert "took too long" in notice["content"] and "HTTP 503" in notice["content"]
        assert [m["id"] for m in notice["mentions"]] == [str(world.alice.id)]
        job = await wait_for_state(running, JobState.REFUNDED)
        assert job.last_error and "HTTP 503" in job.last_error
        assert await remaining(running) == ALLOWANCE


async def test_stuck_job_expires_and_is_refunded(start_bot: StartBot, world: World) -> None:
    """A task stuck processing past JOB_DEADLINE: expired, refunded once, requester told."""
    fake = world.fake
    async with start_bot(job_deadline_seconds=1.0) as running:
        await order_video(world)
        task_id = await first_task_id(running)
        running.sandbox.state.force(task_id, Phase.PROCESSING)
        notice = await fake.wait_for_message(
            world.channel, lambda m: "refunded" in m["content"], timeout=10
        )
        assert "took too long" in notice["content"]
        assert [m["id"] for m in notice["mentions"]] == [str(world.alice.id)]
        job = await wait_for_state(running, JobState.REFUNDED)
        assert job.last_error and "took too long" in job.last_error
        await asyncio.sleep(0.5)
        assert await remaining(running) == ALLOWANCE
        assert (
            len([m for m in fake.channel_messages(world.channel) if "refunded" in m["content"]])
            == 1
        )


# -- result downloads -----------------------------------------------------------------------


@pytest.mark.parametrize("omit_length", [False, True], ids=["content-length", "chunked"])
async def test_result_larger_than_the_upload_limit_is_re_encoded_to_fit(
    start_bot: StartBot, world: World, omit_length: bool
) -> None:
    """A result over the guild's upload limit (announced or not) is re-encoded and uploaded
    under the limit, saying so, with the service's original linked (issue 15)."""
    fake = world.fake
    async with start_bot() as running:
        running.sandbox.state.faults.add("download", pad_to=TEN_MIB + 1, omit_length=omit_length)
        await order_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        posted = fake.message(job.delivered_message_id or 0)
        assert posted is not None and len(posted["attachments"]) == 1
        assert posted["attachments"][0]["size"] <= TEN_MIB
        assert "Re-encoded to fit this server's 10 MiB limit" in posted["content"]
        assert await remaining(running) == ALLOWANCE - 1


async def test_cut_off_download_is_retried(start_bot: StartBot, world: World) -> None:
    """A download cut off half-way once is retried and the video is uploaded."""
    async with start_bot() as running:
        running.sandbox.state.faults.add("download", truncate=True)
        await order_video(world)
        clip = await wait_for_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        assert job.delivered_message_id == int(clip["id"])
        assert running.sandbox.state.request_counts["download"] == 2
        assert await remaining(running) == ALLOWANCE - 1


async def test_download_that_keeps_failing_posts_a_link_and_keeps_the_charge(
    start_bot: StartBot, world: World
) -> None:
    """Repeated cut-off downloads: a link is posted; the video exists, so no refund."""
    fake = world.fake
    async with start_bot() as running:
        running.sandbox.state.faults.add("download", truncate=True, count=-1)
        await order_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        posted = fake.message(job.delivered_message_id or 0)
        assert posted is not None and not posted["attachments"]
        assert job.result_url and job.result_url in posted["content"]
        assert running.sandbox.state.request_counts["download"] == 3
        assert job.refunded_at is None
        assert await remaining(running) == ALLOWANCE - 1
        assert (
            len([m for m in fake.channel_messages(world.channel) if "ready" in m["content"]]) == 1
        )
