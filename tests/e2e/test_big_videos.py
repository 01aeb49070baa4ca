"""Big videos stay in Discord, and Continue: the real bot, the Discord fake, the sandbox.

The sandbox makes a real 640x360 clip of about 13 MiB (busy detail in every frame) for a
prompt holding BIGCLIP, so the bot's re-encodes are real ones.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from PIL import Image, ImageChops

from botkit.posting import MAX_DOWNLOAD_TRIES
from core import uploads
from happyhorse import media
from storage.models import JobState
from tests.e2e.conftest import StartBot, World, eventually
from tests.e2e.test_journey import (
    accepted_job,
    assert_no_mention_parsing,
    refused_privately,
    sandbox_task,
    settled,
)
from tests.fake_discord.commands import modal_inputs

MIB = 1024 * 1024
POSTS = r"^/channels/\d+/messages$"


def _video_post(world: World) -> Any:
    return lambda m: bool(m["embeds"]) and "your video is ready" in m["content"]


def _file_of(world: World, message: dict[str, Any]) -> bytes:
    [attachment] = message["attachments"]
    return world.fake.state.attachments[int(attachment["id"])].data


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message["components"] for c in row["components"]]


def _probe(data: bytes, tmp_path: Path, name: str) -> media.ClipInfo:
    path = tmp_path / name
    path.write_bytes(data)
    return media.probe(path)


async def test_a_clip_over_the_limit_is_reencoded_and_attached(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """A 13 MiB result in a 10 MiB server arrives as an H.264 + AAC attachment under 10 MiB,
    saying so, with an "Original" link to the service's file."""
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a BIGCLIP horse"}
        )
        job = await accepted_job(running, inter)
        message = await fake.wait_for_message(world.channel, _video_post(world), timeout=60)
        job = await settled(running, job.id)
        assert job.result_url is not None
        async with aiohttp.ClientSession() as session, session.get(job.result_url) as response:
            original = await response.read()
        assert len(original) > 10 * MIB
        data = _file_of(world, message)
        assert len(data) <= 10 * MIB
        clip = _probe(data, tmp_path, "posted.mp4")
        assert (clip.video_codec, clip.audio_codec) == ("h264", "aac")
        assert abs(clip.duration - 5.0) <= 0.2
        assert "Re-encoded to fit this server's 10 MiB limit (original 1" in message["content"]
        assert not fake.find_requests("POST", POSTS, status=413)
        links = [b for b in _buttons(message) if b.get("style") == 5]
        assert [(b["label"], b["url"]) for b in links] == [("Original", job.result_url)]
        assert job.state is JobState.DELIVERED and job.refunded_at is None


async def test_a_413_with_a_smaller_limit_leads_to_a_smaller_reencode(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """The server takes only 6 MiB while the bot knows 10 MiB: Discord's 413 leads to a
    second, smaller re-encode, which is posted."""
    fake = world.fake
    fake.set_upload_limit(world.guild, 6 * MIB)  # the bot still sees 10 MiB (tier 0)
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a BIGCLIP horse"}
        )
        job = await accepted_job(running, inter)
        message = await fake.wait_for_message(world.channel, _video_post(world), timeout=90)
        await settled(running, job.id)
        [refused] = fake.find_requests("POST", POSTS, status=413)
        [refused_file] = refused.files
        assert 6 * MIB < refused_file.size <= 10 * MIB
        data = _file_of(world, message)
        assert len(data) <= 6 * MIB < refused_file.size
        assert _probe(data, tmp_path, "posted.mp4").video_codec == "h264"
        assert "Re-encoded to fit this server's upload limit" in message["content"]


async def test_an_undecodable_clip_falls_back_to_a_link_that_says_it_expires(
    start_bot: StartBot, world: World
) -> None:
    """Junk over the limit cannot be re-encoded: the post is a link, saying when it expires.
    With the link's life over, Continue is refused privately: nothing left to continue from."""
    fake = world.fake
    async with start_bot(result_url_ttl_hours=0.0) as running:
        running.sandbox.state.faults.add("download", body="not a video " * (MIB + 10000))
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a broken horse"}
        )
        job = await accepted_job(running, inter)
        message = await fake.wait_for_message(world.channel, _video_post(world), timeout=30)
        job = await settled(running, job.id)
        assert message["attachments"] == []
        assert job.result_url is not None and job.result_url in message["content"]
        assert "could not be re-encoded to fit (the file is not a readable video" in (
            message["content"]
        )
        assert "this link expires" in message["content"]
        press = await fake.click_button(message, f"hh:continue:{job.id}", world.bob)
        assert "file is gone" in await refused_privately(press)
        assert press.modal is None


def _last_frame_pixels(data: bytes) -> Image.Image:
    with av.open(io.BytesIO(data)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    return frames[-1]


async def test_continue_starts_from_the_last_frame_and_replies_to_the_video(
    start_bot: StartBot, world: World
) -> None:
    """Continue: a form with the prompt; the API gets an image-to-video request whose image
    is the video's last frame (same pixels), with the same settings; the presser pays; the
    result is posted as a reply to the video it continues."""
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.alice,
            "video",
            {"prompt": "a horse trots", "aspect_ratio": "9:16", "duration": 10},
        )
        source = await accepted_job(running, inter)
        video = await fake.wait_for_message(world.channel, _video_post(world))
        source = await settled(running, source.id)
        press = await fake.click_button(video, f"hh:continue:{source.id}", world.bob)
        assert await press.wait_for_ack() == 9
        assert press.modal is not None
        [text_input] = modal_inputs(press.modal)
        assert text_input["value"] == "a horse trots"
        submit = await fake.submit_modal(
            press, {text_input["custom_id"]: "a horse trots, then it rains"}
        )
        job = await accepted_job(running, submit)
        assert (job.user_id, job.mode, job.prompt) == (
            world.bob.id,
            "image-to-video",
            "a horse trots, then it rains",
        )
        assert (job.aspect_ratio, job.duration, job.quality, job.sound) == (
            source.aspect_ratio,
            source.duration,
            source.quality,
            source.sound,
        )
        task = sandbox_task(running, job)
        assert task.mode == "image-to-video" and task.duration == 10
        [image_url] = task.image_urls
        async with aiohttp.ClientSession() as session, session.get(image_url) as response:
            assert response.status == 200
            png = await response.read()
        sent = Image.open(io.BytesIO(png)).convert("RGB")
        expected = _last_frame_pixels(_file_of(world, video))
        assert sent.size == expected.size == (180, 320)
        assert ImageChops.difference(sent, expected).getbbox() is None
        reply = await fake.wait_for_message(
            world.channel,
            lambda m: bool(m["embeds"]) and f"<@{world.bob.id}>" in m["content"],
        )
        await settled(running, job.id)
        assert reply["message_reference"]["message_id"] == video["id"]
        bob = await running.store.credits.balance(world.guild.id, world.bob.id)
        alice = await running.store.credits.balance(world.guild.id, world.alice.id)
        assert (bob.used, alice.used) == (job.cost, source.cost)
        assert assert_no_mention_parsing(running) > 0


async def test_continue_works_after_a_restart_and_applies_blocked_words(
    start_bot: StartBot, world: World
) -> None:
    """A Continue press on a video posted before a restart opens the form; a prompt with a
    blocked word is refused privately and charges nothing."""
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse"}
        )
        source = await accepted_job(running, inter)
        video = await fake.wait_for_message(world.channel, _video_post(world))
        await settled(running, source.id)
        await running.store.guilds.add_blocked_word(world.guild.id, "zebra", world.mod.id)
    async with start_bot() as running:
        press = await fake.click_button(video, f"hh:continue:{source.id}", world.bob)
        assert await press.wait_for_ack() == 9
        assert press.modal is not None
        [text_input] = modal_inputs(press.modal)
        submit = await fake.submit_modal(press, {text_input["custom_id"]: "a zebra"})
        assert re.search("does not allow", await refused_privately(submit))
        balance = await running.store.credits.balance(world.guild.id, world.bob.id)
        assert balance.used == 0

        async def no_new_task() -> bool:
            return len(running.sandbox.state.tasks) == 1

        await eventually(no_new_task)


async def test_deliver_again_reencodes_a_clip_over_the_limit(
    start_bot: StartBot, world: World
) -> None:
    """/job -> Deliver again takes the same path: the 13 MiB clip is posted re-encoded."""
    from tests.e2e.test_job_admin import click, show_job, video_posts

    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a BIGCLIP horse"}
        )
        job = await accepted_job(running, inter)
        await fake.wait_for_message(world.channel, _video_post(world), timeout=60)
        await settled(running, job.id)
        [post] = video_posts(running, world, job.id)
        fake.delete_message(post)
        record = await show_job(world, job.id)
        again = await click(world, record, f"hh:redeliver:{job.id}")
        assert await again.wait_for_ack() == 5
        assert "Posted job" in (await again.wait_for_followup(timeout=60))["content"]
        [repost] = video_posts(running, world, job.id)
        assert 0 < len(_file_of(world, repost)) <= 10 * MIB
        assert "Re-encoded to fit this server's 10 MiB limit" in repost["content"]


async def test_a_continuation_whose_source_video_is_gone_is_posted_without_the_reply(
    start_bot: StartBot, world: World
) -> None:
    """The video a Continue press continues is deleted before the form is sent: the new
    video is still posted (asking Discord not to fail on the missing reference), as a
    plain message, and the job is delivered, not refunded."""
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse trots"}
        )
        source = await accepted_job(running, inter)
        video = await fake.wait_for_message(world.channel, _video_post(world))
        await settled(running, source.id)
        press = await fake.click_button(video, f"hh:continue:{source.id}", world.bob)
        assert await press.wait_for_ack() == 9
        assert press.modal is not None
        [text_input] = modal_inputs(press.modal)
        fake.delete_message(video)
        submit = await fake.submit_modal(press, {text_input["custom_id"]: "then it rains"})
        job = await accepted_job(running, submit)
        assert job.reply_to_message_id == int(video["id"])
        post = await fake.wait_for_message(
            world.channel, lambda m: bool(m["embeds"]) and f"<@{world.bob.id}>" in m["content"]
        )
        job = await settled(running, job.id)
        assert post.get("message_reference") is None
        assert job.delivered_message_id == int(post["id"]) and job.refunded_at is None
        [sent] = [
            r
            for r in fake.find_requests("POST", POSTS, status=200)
            if r.json.get("message_reference")
        ]
        assert sent.json["message_reference"]["fail_if_not_exists"] is False


async def test_a_reencode_without_time_is_retried_before_a_link_is_posted(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-encode that cannot finish in time (a busy media pool: here no attempt ever has
    enough time left) is not a reason for a link at once: the poster gives the lease back
    and tries again with a fresh budget, and posts the expiring link only after
    MAX_DOWNLOAD_TRIES attempts. The charge stands."""
    monkeypatch.setattr(uploads, "MIN_TRANSCODE_SECONDS", 1e9)
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a BIGCLIP horse"}
        )
        job = await accepted_job(running, inter)
        message = await fake.wait_for_message(world.channel, _video_post(world), timeout=60)
        job = await settled(running, job.id)
        assert running.sandbox.state.request_counts["download"] == MAX_DOWNLOAD_TRIES
        assert message["attachments"] == []
        assert job.result_url is not None and job.result_url in message["content"]
        assert "could not be re-encoded to fit (no time was left to re-encode it)" in (
            message["content"]
        )
        assert "this link expires" in message["content"]
        assert job.last_error == "re-encode: no time was left to re-encode it"
        assert job.refunded_at is None
        assert not fake.find_requests("POST", POSTS, status=413)
