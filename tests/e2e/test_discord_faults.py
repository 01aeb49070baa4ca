"""Discord faults, end to end: the real bot against the fake Discord and the sandbox.

Each test breaks something on the Discord side while a job is in flight (upload limit,
deleted channel, blocked DMs, missing permissions, gateway drops, 429s, expired tokens)
and checks that the video still lands, or that the requester is told and refunded once.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from botkit import status_cards
from happyhorse.sandbox.state import Phase, SandboxState
from storage.models import JobState
from tests.e2e.conftest import StartBot, World
from tests.e2e.test_api_faults import (
    ALLOWANCE,
    delivery_loop_running,
    first_task_id,
    order_video,
    remaining,
    wait_for_state,
    wait_for_video,
)
from tests.e2e.test_commands import private_text
from tests.fake_discord import permissions

CHANNEL_POST = r"^/channels/\d+/messages$"
WEBHOOK_EDIT = r"^/webhooks/\d+/[^/]+/messages/"
CHANNEL_EDIT = r"^/channels/\d+/messages/\d+$"


def videos_posted(world: World) -> list[dict[str, object]]:
    """Every delivery message in #videos (upload or link)."""
    return [m for m in world.fake.channel_messages(world.channel) if "is ready" in m["content"]]


async def test_upload_refused_as_too_large_posts_a_link(start_bot: StartBot, world: World) -> None:
    """Discord answers the upload 413/40005: the bot posts a link instead and settles the job."""
    fake = world.fake
    fake.set_upload_limit(world.guild, 1024)  # the bot still believes 10 MiB
    async with start_bot() as running:
        await order_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        [refused] = fake.find_requests("POST", CHANNEL_POST, status=413)
        assert refused.files and refused.response["code"] == 40005
        [posted] = videos_posted(world)
        assert not posted["attachments"] and job.result_url
        assert job.result_url in str(posted["content"])
        assert job.delivered_message_id == int(str(posted["id"]))
        assert await remaining(running) == ALLOWANCE - 1
        assert delivery_loop_running(running)


@pytest.mark.parametrize("prompt", ["a horse galloping", "a horse that will FAIL"])
async def test_deleted_channel_dms_the_requester_and_refunds(
    start_bot: StartBot, world: World, prompt: str
) -> None:
    """The channel is deleted mid-job: the requester gets a DM saying why, refunded once."""
    fake = world.fake
    async with start_bot() as running:
        await order_video(world, prompt)
        await first_task_id(running)
        fake.delete_channel(world.channel)
        dm = await fake.wait_for_dm(world.alice, lambda m: "refunded" in m["content"], timeout=10)
        job = await wait_for_state(running, JobState.REFUNDED)
        if "FAIL" in prompt:
            assert "could not be made" in dm["content"] and "fail word" in dm["content"]
        else:
            assert "could not post it" in dm["content"]
            assert "no longer exists" in dm["content"]
            assert job.result_url and job.result_url in dm["content"]
        assert "1 credit refunded" in dm["content"]
        assert job.last_error
        await asyncio.sleep(0.5)
        assert len(fake.dm_messages(world.alice)) == 1
        assert await remaining(running) == ALLOWANCE
        assert delivery_loop_running(running)


async def test_deleted_channel_with_dms_blocked_still_refunds(
    start_bot: StartBot, world: World
) -> None:
    """Channel gone and DMs blocked: no crash, refunded once, the reason recorded."""
    fake = world.fake
    fake.block_dms(world.alice)
    async with start_bot() as running:
        await order_video(world)
        await first_task_id(running)
        fake.delete_channel(world.channel)
        job = await wait_for_state(running, JobState.REFUNDED)
        assert job.last_error and "no longer exists" in job.last_error
        await fake.wait_for(
            lambda: fake.find_requests("POST", CHANNEL_POST, status=403), what="the DM attempt"
        )
        assert fake.dm_messages(world.alice) == []
        await asyncio.sleep(0.5)
        assert await remaining(running) == ALLOWANCE
        assert delivery_loop_running(running)


async def test_missing_send_permission_dms_and_refunds(start_bot: StartBot, world: World) -> None:
    """The bot loses Send Messages mid-job: it does not post, DMs the requester, refunds."""
    fake = world.fake
    async with start_bot() as running:
        await order_video(world)
        await first_task_id(running)
        fake.set_bot_permissions(world.channel, permissions.ALL_TEXT & ~permissions.SEND_MESSAGES)
        dm = await fake.wait_for_dm(world.alice, lambda m: "refunded" in m["content"], timeout=10)
        assert "not allowed to post" in dm["content"]
        job = await wait_for_state(running, JobState.REFUNDED)
        assert job.result_url and job.result_url in dm["content"]
        assert await remaining(running) == ALLOWANCE
        # Checked before sending: no invalid request (they count toward Cloudflare's ban).
        assert not fake.find_requests("POST", CHANNEL_POST, status=403)
        assert videos_posted(world) == []


async def test_missing_attach_permission_posts_a_link(start_bot: StartBot, world: World) -> None:
    """The bot may post but not attach files: the video is delivered as a link."""
    fake = world.fake
    async with start_bot() as running:
        await order_video(world)
        await first_task_id(running)
        fake.set_bot_permissions(world.channel, permissions.ALL_TEXT & ~permissions.ATTACH_FILES)
        job = await wait_for_state(running, JobState.DELIVERED)
        [posted] = videos_posted(world)
        assert not posted["attachments"] and job.result_url
        assert job.result_url in str(posted["content"])
        assert not fake.find_requests("POST", CHANNEL_POST, status=403)
        assert running.sandbox.state.request_counts["download"] == 0
        assert await remaining(running) == ALLOWANCE - 1
        assert fake.dm_messages(world.alice) == []


async def test_channel_without_attach_files_accepts_and_delivers_a_link(
    start_bot: StartBot, world: World
) -> None:
    """Attach Files missing from the start is no reason to refuse: the video comes as a link."""
    fake = world.fake
    fake.set_bot_permissions(world.channel, permissions.ALL_TEXT & ~permissions.ATTACH_FILES)
    async with start_bot() as running:
        await order_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        [posted] = videos_posted(world)
        assert not posted["attachments"] and job.result_url
        assert job.result_url in str(posted["content"])
        assert await remaining(running) == ALLOWANCE - 1


async def test_channel_without_read_history_is_refused_up_front(
    start_bot: StartBot, world: World
) -> None:
    """Without Read Message History the post-crash duplicate check is impossible: refused."""
    fake = world.fake
    fake.set_bot_permissions(
        world.channel, permissions.ALL_TEXT & ~permissions.READ_MESSAGE_HISTORY
    )
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse"}
        )
        assert "Read Message History" in await private_text(inter)
        assert running.sandbox.state.tasks == {}
        assert await remaining(running) == ALLOWANCE


@pytest.mark.parametrize("resumable", [True, False], ids=["resume", "reidentify"])
async def test_gateway_drop_during_a_job_delivers_once(
    start_bot: StartBot, world: World, resumable: bool
) -> None:
    """The gateway drops (resumed or re-identified) while the job runs: delivered exactly once."""
    fake = world.fake
    async with start_bot() as running:
        await order_video(world)
        await first_task_id(running)
        if resumable:
            async with fake.gateway_gap():
                await asyncio.sleep(1.0)  # the job completes while the bot is off the gateway
        else:
            await fake.disconnect_gateway(resumable=False)
            await fake.wait_until_connected()
        await wait_for_video(world, timeout=10)
        job = await wait_for_state(running, JobState.DELIVERED)
        await asyncio.sleep(0.5)
        [posted] = videos_posted(world)
        assert job.delivered_message_id == int(str(posted["id"]))
        assert len([r for r in fake.find_requests("POST", CHANNEL_POST) if r.files]) == 1
        assert await remaining(running) == ALLOWANCE - 1
        assert delivery_loop_running(running)


async def test_rate_limited_card_edits_are_retried(start_bot: StartBot, world: World) -> None:
    """Discord 429s on message edits: discord.py waits and retries; the video still lands."""
    fake = world.fake
    fake.rate_limit("PATCH", WEBHOOK_EDIT + "|" + CHANNEL_EDIT, count=3, retry_after=0.2)
    async with start_bot() as running:
        inter = await order_video(world)
        await wait_for_video(world, timeout=10)
        job = await wait_for_state(running, JobState.DELIVERED)
        assert len(fake.find_requests("PATCH", None, status=429)) == 3
        assert fake.find_requests("PATCH", WEBHOOK_EDIT, status=200)
        card = await inter.wait_for_original(lambda m: "Delivered" in m["embeds"][0]["title"])
        assert card["embeds"][0]["footer"]["text"].endswith(f"#{job.id}")
        assert len(videos_posted(world)) == 1
        assert delivery_loop_running(running)


async def run_long_job(state: SandboxState, task_id: str) -> None:
    """Move a sandbox task queued -> processing -> completed over about three seconds."""
    state.force(task_id, Phase.QUEUED)
    await asyncio.sleep(1.6)
    state.force(task_id, Phase.PROCESSING)
    await asyncio.sleep(1.0)
    state.force(task_id, Phase.COMPLETED)


async def test_expired_token_is_dropped_after_the_first_refusal(
    start_bot: StartBot, world: World
) -> None:
    """The card's token expires mid-job: at most one 401/50027, then edits go to the channel."""
    fake = world.fake
    fake.token_lifetime = 1.2  # discord.py still believes 15 minutes
    async with start_bot() as running:
        inter = await order_video(world)
        task_id = await first_task_id(running)
        await run_long_job(running.sandbox.state, task_id)
        await wait_for_video(world, timeout=10)
        await wait_for_state(running, JobState.DELIVERED)
        card = await inter.wait_for_original(lambda m: "Delivered" in m["embeds"][0]["title"])
        assert len(fake.find_requests(None, r"^/webhooks/", status=401)) <= 1
        card_edits = fake.find_requests("PATCH", rf"^/channels/\d+/messages/{card['id']}$")
        assert card_edits and all(r.status == 200 for r in card_edits)
        assert len(videos_posted(world)) == 1


async def test_token_inside_the_safety_margin_is_never_used(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token the bot knows is near expiry is never used for card edits: no 401/50027 at all."""
    fake = world.fake
    fake.token_lifetime = 2.0
    # The bot reads expiry from the interaction id (15 min); a margin of all but one second
    # makes its deadline one second after creation, inside the fake's 2 s lifetime.
    monkeypatch.setattr(
        status_cards, "TOKEN_SAFETY_MARGIN", datetime.timedelta(seconds=15 * 60 - 1)
    )
    async with start_bot() as running:
        inter = await order_video(world)
        task_id = await first_task_id(running)
        await run_long_job(running.sandbox.state, task_id)
        await wait_for_video(world, timeout=10)
        await wait_for_state(running, JobState.DELIVERED)
        card = await inter.wait_for_original(lambda m: "Delivered" in m["embeds"][0]["title"])
        assert not fake.find_requests(None, r"^/webhooks/", status=401)
        assert fake.find_requests("PATCH", rf"^/channels/\d+/messages/{card['id']}$", status=200)
