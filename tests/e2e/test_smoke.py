"""The shortest whole journey: /video in, a posted MP4 out."""

from __future__ import annotations

from storage.models import JobState
from tests.e2e.conftest import StartBot, World, eventually


async def test_video_is_posted_once_pinging_only_the_requester(
    start_bot: StartBot, world: World
) -> None:
    """/video defers in time, shows a card, and posts the clip pinging only the requester."""
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse @everyone"}
        )
        assert await inter.wait_for_ack() == 5
        clip = await fake.wait_for_message(
            world.channel, lambda m: bool(m["attachments"]), timeout=10
        )
        assert clip["attachments"][0]["filename"].endswith(".mp4")
        assert clip["content"].startswith(f"<@{world.alice.id}>")
        assert [m["id"] for m in clip["mentions"]] == [str(world.alice.id)]
        [post] = fake.find_requests("POST", r"^/channels/\d+/messages$")
        mentions = post.json["allowed_mentions"]
        assert mentions["parse"] == [] and mentions["users"] == [world.alice.id]
        assert not mentions.get("roles")

        async def delivered() -> bool:
            [job] = await running.store.jobs.recent_jobs(world.guild.id, world.alice.id)
            return job.state is JobState.DELIVERED

        await eventually(delivered, what="the job to be marked delivered")
        [job] = await running.store.jobs.recent_jobs(world.guild.id, world.alice.id)
        assert job.delivered_message_id == int(clip["id"])
