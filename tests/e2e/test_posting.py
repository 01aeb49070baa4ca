"""The one poster (`botkit.posting`): Deliver again and the delivery loop post once; a failed
redelivery is not used up; a status card shown final is never redrawn to an older state.

The interleavings are controlled: the Discord fake holds the upload's answer (the message
exists, the poster does not know yet) while the sweep and a second poster run.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from botkit import status_cards
from botkit.posting import Outcome, Poster, post_nonce, send_video
from happyhorse.models import TaskState
from storage.models import Claimant, Job, JobState
from tests.e2e.conftest import Running, StartBot, World, eventually
from tests.e2e.test_api_faults import order_video, wait_for_state
from tests.e2e.test_commands import delivered_video
from tests.e2e.test_job_admin import click, show_job, video_posts

CHANNEL_POST = r"^/channels/\d+/messages$"


async def posting_handed_back(running: Running, job_id: int) -> Job:
    """Wait until nobody holds the job's posting lease; return the job."""

    async def free() -> bool:
        job = await running.store.jobs.get_job(job_id)
        return job is not None and job.delivering_until is None and job.lease_owner is None

    await eventually(free, 10, "the posting lease to be given back")
    job = await running.store.jobs.get_job(job_id)
    assert job is not None
    return job


async def test_deliver_again_holds_its_lease_so_the_loop_cannot_post_a_second_copy(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """Deliver again on a completed job leases it to this process: the sweep does not end
    that lease while the upload is in flight, another process's poster is refused, and
    exactly one post is recorded (on old main the lease had no owner and the sweep ended it)."""
    fake = world.fake
    async with start_bot() as running:
        # The loop's first try is told to wait two minutes: the job stays completed.
        fake.rate_limit("POST", CHANNEL_POST, count=1, retry_after=120)
        await order_video(world)
        job = await wait_for_state(running, JobState.COMPLETED)
        await fake.wait_for(
            lambda: fake.find_requests("POST", CHANNEL_POST, status=429), 10, "the loop's try"
        )
        job = await posting_handed_back(running, job.id)

        held = fake.hold_responses("POST", CHANNEL_POST, seconds=30)
        record = await show_job(world, job.id)
        again = await click(world, record, f"hh:redeliver:{job.id}")
        assert await again.wait_for_ack() == 5
        await fake.wait_for(lambda: held.hits >= 1, 15, "the upload to reach Discord")

        await running.bot.jobs.recover_interrupted()  # the housekeeping sweep
        leased = await running.store.jobs.get_job(job.id)
        assert leased is not None
        assert leased.lease_owner == running.bot.jobs.claimant.process_id
        assert leased.delivering_until is not None
        assert leased.delivering_until > datetime.now(UTC), "the sweep ended a live lease"
        other = Poster(
            running.bot,
            running.store,
            running.bot.api,
            running.bot.jobs,
            running.bot.settings,
            tmp_path,
            transcoder=running.bot.transcoder,
            claimant=Claimant("other-host:2:other"),
        )
        await running.store.processes.beat(other.claimant.process_id)
        assert (await other.post(leased)).outcome is Outcome.BUSY
        assert (await running.bot.poster.post(leased)).outcome is Outcome.BUSY

        held.release()
        answer = (await again.wait_for_followup(timeout=15))["content"]
        [post] = video_posts(running, world, job.id)
        assert answer.endswith(f"/{world.channel.id}/{post['id']}")
        done = await running.store.jobs.get_job(job.id)
        assert done is not None and done.state is JobState.DELIVERED
        assert done.delivered_message_id == int(post["id"])
        assert done.redelivered_at is None, "a first delivery is not a redelivery"


async def test_a_failed_redelivery_is_not_used_up(start_bot: StartBot, world: World) -> None:
    """Discord refuses the repost: the moderator is told, the one redelivery stays
    available, and the next click posts (on old main the failure used it up)."""
    fake = world.fake
    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse in the rain")
        [post] = video_posts(running, world, job.id)
        fake.delete_message(post)
        record = await show_job(world, job.id)
        fake.fail_requests("POST", CHANNEL_POST, 403, 50001, "Missing Access", count=1)
        first = await click(world, record, f"hh:redeliver:{job.id}")
        await first.wait_for_ack()
        answer = (await first.wait_for_followup(timeout=15))["content"]
        assert answer.startswith(f"Could not post job #{job.id}")
        assert "Nothing was used up" in answer
        after = await posting_handed_back(running, job.id)
        assert after.redelivered_at is None
        assert video_posts(running, world, job.id) == []

        second = await click(world, record, f"hh:redeliver:{job.id}")
        await second.wait_for_ack()
        answer = (await second.wait_for_followup(timeout=15))["content"]
        [repost] = video_posts(running, world, job.id)
        assert answer == (
            f"Posted job #{job.id} again: https://discord.com/channels/{world.guild.id}/"
            f"{world.channel.id}/{repost['id']}"
        )
        done = await running.store.jobs.get_job(job.id)
        assert done is not None and done.redelivered_at is not None
        assert done.delivered_message_id == int(repost["id"])


def card_title(message: dict[str, Any] | None) -> str:
    """The title of a status card's embed."""
    assert message is not None
    return str(message["embeds"][0]["title"])


async def test_a_final_card_is_never_redrawn_to_an_older_state(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a card showed "Delivered", a late poll outcome or a queue refresh carrying an
    older state of the job edits nothing, and every worker edit holds the card's lock
    (on old main the worker edited without it, and the late edits redrew the card)."""
    locked_during_edit: list[bool] = []
    original_edit = status_cards.StatusCards._edit

    async def edit(self: status_cards.StatusCards, job: Job, *args: Any) -> None:
        locked_during_edit.append(self.lock(job.id).locked())
        await original_edit(self, job, *args)

    monkeypatch.setattr(status_cards.StatusCards, "_edit", edit)
    async with start_bot() as running:
        inter = await order_video(world)
        job = await wait_for_state(running, JobState.DELIVERED)
        cards = running.bot.cards
        await inter.wait_for_original(lambda m: "Delivered" in card_title(m), 15)
        await cards.idle()
        assert locked_during_edit and all(locked_during_edit)
        shown = inter.original_message()

        stale = dataclasses.replace(job, state=JobState.SUBMITTED, delivered_at=None)
        cards.request(stale, api_state=TaskState.PROCESSING)  # a poll answer arriving late
        async with cards.lock(job.id):  # a refresh that read the job before it settled
            await cards.update(stale, force=True)
        await cards.idle()
        assert "Delivered" in card_title(inter.original_message())
        assert inter.original_message() == shown, "the card was redrawn"


async def test_a_stalled_poster_is_taken_over_and_only_one_post_exists(
    start_bot: StartBot,
    world: World,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bot's poster (A) uploads, and Discord's answer is held: A stalls. Another process
    (B), for which A no longer counts as live, takes the lease over, finds A's post in the
    channel and records it; A's late record is refused. One post, recorded once."""
    fake = world.fake
    caplog.set_level(logging.WARNING, logger="botkit.posting")
    async with start_bot() as running:
        held = fake.hold_responses("POST", CHANNEL_POST, seconds=30)
        await order_video(world)
        await fake.wait_for(lambda: held.hits >= 1, 15, "A's upload to reach Discord")
        completed = await wait_for_state(running, JobState.COMPLETED)
        job = await running.store.jobs.get_job(completed.id)
        assert job is not None and job.lease_owner == running.bot.jobs.claimant.process_id
        # B judges liveness with a window of 0 s: A's beats are too old for it (A stalled).
        b = Poster(
            running.bot,
            running.store,
            running.bot.api,
            running.bot.jobs,
            running.bot.settings,
            tmp_path,
            transcoder=running.bot.transcoder,
            claimant=Claimant("other-host:2:bbbb", live_within=0.0),
        )
        result = await b.post(job)
        assert result.outcome is Outcome.POSTED and result.found
        [post] = video_posts(running, world, job.id)
        assert result.message is not None and result.message.id == int(post["id"])

        held.release()

        async def refused() -> bool:
            return "another process took the post over" in caplog.text

        await eventually(refused, 10, "A to be refused its late record")
        assert len(video_posts(running, world, job.id)) == 1
        done = await running.store.jobs.get_job(job.id)
        assert done is not None and done.state is JobState.DELIVERED
        assert done.delivered_message_id == int(post["id"])


async def test_every_attempt_at_one_posting_sends_its_nonce_and_gets_one_message(
    start_bot: StartBot, world: World
) -> None:
    """Two attempts at one posting (say, a stalled poster and its successor that could not
    read the channel history) send the same nonce with enforce_nonce: Discord returns the
    first message, creates no second. A redelivery has a nonce of its own."""
    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse by the sea")
        channel = running.bot.poster.channel(job)
        again = dataclasses.replace(job, state=JobState.DELIVERED)
        ttl = running.bot.settings.result_url_ttl_hours
        first = await send_video(channel, again, None, again=True, ttl_hours=ttl)
        second = await send_video(channel, again, None, again=True, ttl_hours=ttl)
        assert first.id == second.id
        [request, *_] = world.fake.find_requests("POST", CHANNEL_POST, status=200)
        assert request.json["nonce"] == post_nonce(job, again=False)
        assert request.json["enforce_nonce"] is True
        assert post_nonce(job, again=True) != post_nonce(job, again=False)
        assert len(post_nonce(job, again=True)) <= 25
        assert len(video_posts(running, world, job.id)) == 2  # the delivery and one repost
