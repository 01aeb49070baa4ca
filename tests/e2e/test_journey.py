"""The journey of a request as Discord sees it: the 3 s acknowledgement, private refusals,
the live status card, the posted video, mentions that ping only the requester, the link
fallback for clips over the upload limit, and throttled card edits.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

import discord
import pytest

from core.wording import quote
from happyhorse.sandbox.state import Phase, SandboxTask
from storage.models import Job, JobState
from tests.e2e.conftest import Running, StartBot, World, eventually
from tests.fake_discord.interactions import InteractionRecord
from tests.fake_discord.server import RecordedRequest

EPHEMERAL = 64
FOOTER = "HappyHorse job #"
ACK_DEADLINE = 3.0
MESSAGE_WRITE = re.compile(
    r"^/channels/\d+/messages(/\d+)?$"
    r"|^/webhooks/\d+/[^/]+(/messages/[^/]+)?$"
    r"|^/interactions/\d+/[^/]+/callback$"
)


# -- helpers ---------------------------------------------------------------------------------


def card_footer(message: dict[str, Any]) -> str:
    """The footer text of a message's first embed ('' if none)."""
    embeds = message.get("embeds") or []
    return str((embeds[0].get("footer") or {}).get("text", "")) if embeds else ""


async def accepted_job(running: Running, inter: InteractionRecord) -> Job:
    """Assert a timely deferral, wait for the status card; return the card's job."""
    assert await inter.wait_for_ack() == 5
    assert inter.ack_delay is not None and inter.ack_delay < ACK_DEADLINE
    card = await inter.wait_for_original(lambda m: card_footer(m).startswith(FOOTER))
    job = await running.store.jobs.get_job(int(card_footer(card).removeprefix(FOOTER)))
    assert job is not None
    return job


async def settled(running: Running, job_id: int, state: JobState = JobState.DELIVERED) -> Job:
    """Wait until a job reaches `state`; return it."""

    async def check() -> bool:
        job = await running.store.jobs.get_job(job_id)
        return job is not None and job.state is state

    await eventually(check, timeout=10, what=f"job {job_id} to be {state.value}")
    job = await running.store.jobs.get_job(job_id)
    assert job is not None
    return job


def sandbox_task(running: Running, job: Job) -> SandboxTask:
    """The sandbox's record of a job's task."""
    assert job.task_id is not None
    return running.sandbox.state.tasks[job.task_id]


def card_edits(running: Running, inter: InteractionRecord) -> list[RecordedRequest]:
    """Successful edits of the interaction's @original (its status card), oldest first."""
    path = rf"^/webhooks/\d+/{re.escape(inter.token)}/messages/@original$"
    return [r for r in running.fake.find_requests("PATCH", path) if r.status == 200]


def message_writes(running: Running) -> list[tuple[RecordedRequest, dict[str, Any]]]:
    """Every request of the bot that created or edited a message, with its message body."""
    found = []
    for request in running.fake.requests:
        if request.method not in {"POST", "PATCH"} or not MESSAGE_WRITE.search(request.path):
            continue
        body = request.json
        if not isinstance(body, dict):
            continue
        if request.path.endswith("/callback"):
            body = body.get("data") or {}
        if "content" in body or "embeds" in body:
            found.append((request, body))
    return found


def assert_no_mention_parsing(running: Running) -> int:
    """Every message the bot wrote disables mention parsing; returns how many there were."""
    writes = message_writes(running)
    for request, body in writes:
        mentions = body.get("allowed_mentions")
        assert mentions is not None, f"{request.method} {request.path} has no allowed_mentions"
        assert mentions.get("parse") == [], f"{request.method} {request.path}: {mentions}"
        assert not mentions.get("roles"), f"{request.method} {request.path}: {mentions}"
    return len(writes)


async def refused_privately(inter: InteractionRecord) -> str:
    """Assert the initial response is an ephemeral message, in time; return its text."""
    assert await inter.wait_for_ack() == 4
    assert inter.ack_delay is not None and inter.ack_delay < ACK_DEADLINE
    assert inter.ack_data is not None and inter.ack_data.get("flags", 0) & EPHEMERAL
    assert inter.ephemeral_response and inter.original_message_id is not None
    content: str = inter.ack_data.get("content") or ""
    return content


# -- the happy path --------------------------------------------------------------------------


async def test_request_card_follows_the_job_and_the_video_is_a_new_message(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/video is deferred in time, its card shows the job's progress and ends Delivered with
    the link, and the clip is a new message with embed, buttons and a ping of the requester."""
    fake, alice = world.fake, world.alice
    prompt = "a silver horse running through neon rain"
    async with start_bot() as running:
        # Stop the sandbox's clock: the task stays queued until the test moves it on.
        frozen = time.monotonic()
        monkeypatch.setattr(running.sandbox.state, "clock", lambda: frozen)
        inter = await fake.invoke_slash(
            world.guild,
            world.channel,
            alice,
            "video",
            {"prompt": prompt, "aspect_ratio": "9:16", "quality": "pro"},
        )
        job = await accepted_job(running, inter)
        assert not inter.ephemeral_response, "the card is for the channel to see"
        card = inter.original_message()
        assert card is not None
        assert card["embeds"][0]["title"] == "⏳ Queued"
        assert card["embeds"][0]["description"] == prompt
        assert card_footer(card) == f"{FOOTER}{job.id}"

        running.sandbox.state.force(job.task_id or "", Phase.PROCESSING)
        await inter.wait_for_original(lambda m: m["embeds"][0]["title"] == "🎬 Generating")
        running.sandbox.state.force(job.task_id or "", Phase.COMPLETED)

        video = await fake.wait_for_message(world.channel, lambda m: bool(m["attachments"]))
        job = await settled(running, job.id)
        final = await inter.wait_for_original(lambda m: m["embeds"][0]["title"] == "✅ Delivered")

        # The card: edited in place, now pointing at the video.
        assert final["id"] == card["id"] == str(job.progress_message_id)
        link = f"https://discord.com/channels/{world.guild.id}/{world.channel.id}/{video['id']}"
        assert any(link in f["value"] for f in final["embeds"][0]["fields"])
        titles = [r.json["embeds"][0]["title"] for r in card_edits(running, inter)]
        assert titles[0] == "⏳ Queued" and "🎬 Generating" in titles
        assert titles[-1] == "✅ Delivered"

        # The video: a new message, not the card, with everything on it.
        assert video["id"] != card["id"] and int(video["id"]) == job.delivered_message_id
        [attachment] = video["attachments"]
        assert attachment["filename"] == f"happyhorse-{job.id}.mp4"
        assert attachment["size"] > 0
        [embed] = video["embeds"]
        assert embed["description"] == prompt
        settings = {f["name"]: f["value"] for f in embed["fields"]}["Settings"]
        assert settings == "9:16 · 5 s · pro · sound on"
        assert card_footer(video) == f"{FOOTER}{job.id}"
        buttons = [c["custom_id"] for row in video["components"] for c in row["components"]]
        assert buttons == [
        f"hh:regen:{job.id}", f"hh:continue:{job.id}", f"hh:delete:{job.id}"
    ]
        assert video["content"].startswith(f"<@{alice.id}>")
        assert [u["id"] for u in video["mentions"]] == [str(alice.id)]
        assert not video["mention_everyone"] and video["mention_roles"] == []
        [post] = fake.find_requests("POST", rf"^/channels/{world.channel.id}/messages$")
        assert post.json["allowed_mentions"]["users"] == [alice.id]
        [upload] = post.files
        assert upload.data[4:8] == b"ftyp", "the upload is the sandbox's MP4"
        assert len(upload.data) == attachment["size"]
        assert assert_no_mention_parsing(running) >= 3


# -- refusals --------------------------------------------------------------------------------


async def test_refusals_are_ephemeral_initial_responses(start_bot: StartBot, world: World) -> None:
    """A refused request is answered at once with an ephemeral message (type 4, flags 64):
    no deferral, no card, no charge, no API call."""
    fake, guild, channel, alice = world.fake, world.guild, world.channel, world.alice
    async with start_bot(default_daily_credits=1) as running:
        await running.store.guilds.add_blocked_word(guild.id, "unicorn", world.mod.id)
        before = len(fake.channel_messages(channel))
        refusals = {
            "empty": await fake.invoke_slash(guild, channel, alice, "video", {"prompt": " \t "}),
            "blocked": await fake.invoke_slash(
                guild, channel, alice, "video", {"prompt": "a Unicorn"}
            ),
            "credits": await fake.invoke_slash(
                guild, channel, alice, "video", {"prompt": "a horse", "duration": 10}
            ),
            "image": await fake.invoke_slash(
                guild,
                channel,
                alice,
                "animate",
                attachments=[fake.attachment("clip.gif", b"GIF89a", "image/gif")],
            ),
        }
        texts = {name: await refused_privately(inter) for name, inter in refusals.items()}
        assert "empty" in texts["empty"]
        assert "does not allow" in texts["blocked"]
        assert "Not enough credits" in texts["credits"]
        assert "PNG, JPEG or WEBP" in texts["image"]
        for inter in refusals.values():
            assert inter.callback_errors == []
            assert inter.followup_ids == []
        assert len(fake.channel_messages(channel)) == before
        assert (await running.store.credits.balance(guild.id, alice.id)).used == 0
        assert running.sandbox.state.tasks == {}
        assert await running.store.jobs.recent_jobs(guild.id, alice.id) == []
        assert_no_mention_parsing(running)


# -- mentions --------------------------------------------------------------------------------


async def test_pings_in_a_prompt_ping_nobody(start_bot: StartBot, world: World) -> None:
    """A prompt full of @everyone, @here, role and user pings pings nobody but the requester,
    and every message the bot writes disables mention parsing."""
    fake, guild, channel = world.fake, world.guild, world.channel
    alice, bob = world.alice, world.bob
    role = fake.add_role(guild, "riders")
    prompt = f"@everyone @here <@&{role.id}> <@{bob.id}> a horse"
    async with start_bot() as running:
        inter = await fake.invoke_slash(guild, channel, alice, "video", {"prompt": prompt})
        job = await accepted_job(running, inter)
        job = await settled(running, job.id)
        failing = await fake.invoke_slash(
            guild, channel, alice, "video", {"prompt": f"{prompt} FAIL"}
        )
        failed = await accepted_job(running, failing)
        await settled(running, failed.id, JobState.REFUNDED)
        notice = await fake.wait_for_message(
            channel, lambda m: "could not be made" in m["content"], include_existing=True
        )
        jobs = await fake.invoke_slash(guild, channel, alice, "jobs")
        assert await jobs.wait_for_ack() == 4
        video = fake.message(job.delivered_message_id or 0)
        assert video is not None and video["embeds"][0]["description"] == quote(prompt, 2000)
        assert "@everyone" not in video["embeds"][0]["description"]  # shown, not a mention

        created = [m for m in fake.channel_messages(channel) if m["author"]["bot"]]
        created += [m for r in fake.interactions if (m := r.original_message()) is not None]
        assert len(created) >= 5
        for message in created:
            assert message["mention_everyone"] is False, message["content"]
            assert message["mention_roles"] == [], message["content"]
            assert {u["id"] for u in message["mentions"]} <= {str(alice.id)}, message["content"]
        assert [u["id"] for u in notice["mentions"]] == [str(alice.id)]

        delete = await fake.click_button(video, f"hh:delete:{job.id}", alice)
        assert (await delete.wait_for_followup())["content"] == "Deleted."
        writers = {(r.method, r.route) for r, _ in message_writes(running)}
        assert len(writers) >= 4, writers  # callbacks, follow-ups, @original edits, posts
        assert_no_mention_parsing(running)


# -- the link fallback -----------------------------------------------------------------------


async def test_clip_refused_as_too_large_is_posted_as_a_link(
    start_bot: StartBot, world: World
) -> None:
    """When Discord refuses the upload (413, 40005) and even a smaller re-encode cannot fit
    its limit (1 KiB), the clip is posted as a link instead: no attachment, job delivered,
    nothing refunded."""
    fake = world.fake
    fake.set_upload_limit(world.guild, 1024)  # the bot still sees 10 MiB (tier 0)
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a big horse"}
        )
        job = await accepted_job(running, inter)
        message = await fake.wait_for_message(world.channel, lambda m: bool(m["embeds"]))
        job = await settled(running, job.id)
        assert fake.find_requests("POST", r"^/channels/\d+/messages$", status=413)
        assert_link_post(message, job, world)
        assert (await running.store.credits.balance(world.guild.id, world.alice.id)).used == 1


async def test_clip_over_the_limit_the_bot_sees_is_never_uploaded(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a guild upload limit below the clip's size, the bot posts a link without trying
    an upload: no attachment, job delivered, nothing refunded."""
    fake = world.fake
    monkeypatch.setattr(discord.Guild, "filesize_limit", property(lambda self: 1024))
    fake.set_upload_limit(world.guild, 1024)  # Discord and the bot agree
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a big horse"}
        )
        job = await accepted_job(running, inter)
        message = await fake.wait_for_message(world.channel, lambda m: bool(m["embeds"]))
        job = await settled(running, job.id)
        assert not fake.find_requests("POST", r"^/channels/\d+/messages$", status=413)
        assert all(not r.files for r in fake.find_requests("POST", r"^/channels/\d+/messages$"))
        assert_link_post(message, job, world)
        assert (await running.store.credits.balance(world.guild.id, world.alice.id)).used == 1


def assert_link_post(message: dict[str, Any], job: Job, world: World) -> None:
    """The message carries the result URL, no attachment, the buttons and the ping."""
    assert job.result_url and job.result_url in message["content"]
    assert message["attachments"] == []
    assert int(message["id"]) == job.delivered_message_id
    assert job.refunded_at is None and job.state is JobState.DELIVERED
    assert message["embeds"][0]["url"] == job.result_url
    assert [u["id"] for u in message["mentions"]] == [str(world.alice.id)]
    buttons = [c["custom_id"] for row in message["components"] for c in row["components"]]
    assert buttons == [
        f"hh:regen:{job.id}", f"hh:continue:{job.id}", f"hh:delete:{job.id}"
    ]


# -- throttled card edits --------------------------------------------------------------------


async def test_status_card_edits_are_throttled(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a job's state changes at every poll, its card is edited at most once per
    throttle interval, not once per poll."""
    fake = world.fake
    interval = 0.8
    async with start_bot(
        status_edit_interval_seconds=interval, poll_max_interval_seconds=0.2
    ) as running:
        state = running.sandbox.state
        answers = itertools.count()

        def alternating(task: SandboxTask) -> tuple[Phase, str]:
            """Queued and processing in turn: every status answer differs from the last."""
            phase = Phase.PROCESSING if next(answers) % 2 == 0 else Phase.QUEUED
            return phase, f"Task is {phase.value}."

        monkeypatch.setattr(state, "phase", alternating)
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a restless horse"}
        )
        job = await accepted_job(running, inter)
        assert job.task_id is not None
        polls = state.request_counts["status"]
        await asyncio.sleep(3.0)
        polls = state.request_counts["status"] - polls
        flipping = card_edits(running, inter)
        monkeypatch.undo()
        state.force(job.task_id, Phase.COMPLETED)
        await settled(running, job.id)
        await inter.wait_for_original(lambda m: m["embeds"][0]["title"] == "✅ Delivered")

        assert polls >= 8, f"only {polls} polls: the test did not exercise the throttle"
        assert 1 <= len(flipping) <= 3.0 / interval + 1, f"{len(flipping)} edits for {polls} polls"
        gaps = [b.at - a.at for a, b in itertools.pairwise(flipping)]
        assert all(gap >= interval * 0.9 for gap in gaps), gaps
        final = card_edits(running, inter)[-1]
        assert final.json["embeds"][0]["title"] == "✅ Delivered"
