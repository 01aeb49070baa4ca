"""/job id: the record, Refund (once) and Deliver again (once); Delete marks the message."""

from __future__ import annotations

from typing import Any

from storage.models import AuditAction, JobState, NewJob
from tests.e2e.conftest import Running, StartBot, World
from tests.e2e.test_commands import delivered_video, fields, private_text, used
from tests.fake_discord.interactions import InteractionRecord


def buttons(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's buttons."""
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


def video_posts(running: Running, world: World, job_id: int) -> list[dict[str, Any]]:
    """Channel messages carrying job `job_id`'s video (not its status card)."""
    marker = f"HappyHorse job #{job_id}"
    return [
        m
        for m in running.fake.channel_messages(world.channel)
        if not m.get("interaction_metadata")
        and any((e.get("footer") or {}).get("text") == marker for e in m["embeds"])
    ]


async def show_job(world: World, job_id: int) -> dict[str, Any]:
    """/job as the moderator: the private record message (deferred, then filled in)."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.mod, "job", {"id": job_id}
    )
    assert await inter.wait_for_ack() == 5
    return await inter.wait_for_followup(timeout=10)


async def click(world: World, message: dict[str, Any], custom_id: str) -> InteractionRecord:
    """Click a button on the moderator's /job answer."""
    return await world.fake.click_button(message, custom_id, world.mod)


async def test_job_shows_the_record_and_refunds_once(start_bot: StartBot, world: World) -> None:
    """The full record of a delivered job; Refund returns the credits once, audited."""
    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse on the moon", duration=10)
        assert await used(running, world.alice.id) == 2
        record = await show_job(world, job.id)
        [embed] = record["embeds"]
        assert embed["title"] == f"Job #{job.id}: delivered"
        assert embed["description"] == "a horse on the moon"
        values = fields(embed)
        assert values["Member"] == f"<@{world.alice.id}>"
        assert values["Settings"] == "16:9 · 10 s · std · sound on"
        assert values["Cost"] == "2 credits"
        assert values["Task id"] == f"`{job.task_id}`"
        assert values["Refund"] == "Not refunded"
        assert str(job.delivered_message_id) in values["Delivery message"]
        history = values["History"].splitlines()
        assert [line.split("> ", 1)[1] for line in history] == [
            "Requested (credits reserved)",
            "Sent to the video service",
            "Video finished",
            "Delivered",
        ]
        assert buttons(record) == [f"hh:jobrefund:{job.id}"], "its message still exists"

        first = await click(world, record, f"hh:jobrefund:{job.id}")
        assert await private_text(first) == (
            f"Refunded 2 credits to <@{world.alice.id}> for job #{job.id}."
        )
        second = await click(world, record, f"hh:jobrefund:{job.id}")
        assert await private_text(second) == f"Job #{job.id} was already refunded."
        assert await used(running, world.alice.id) == 0
        refunded = await running.store.jobs.get_job(job.id)
        assert refunded is not None and refunded.state is JobState.REFUNDED
        assert refunded.refunded_by == world.mod.id
        audit = await running.store.credits.list_audit(world.guild.id)
        assert [e.action for e in audit].count(AuditAction.REFUND_JOB) == 1
        assert len(video_posts(running, world, job.id)) == 1, "the video stays posted"

        again = fields((await show_job(world, job.id))["embeds"][0])
        assert values["Refund"] != again["Refund"]
        assert again["Refund"] == f"2 credits refunded by <@{world.mod.id}>"


async def test_deliver_again_posts_once_after_the_message_was_deleted(
    start_bot: StartBot, world: World
) -> None:
    """A deleted delivery message can be posted again, once; /job finds the deletion."""
    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse in the snow")
        [post] = video_posts(running, world, job.id)
        world.fake.delete_message(post)  # deleted by hand, not with the Delete button

        record = await show_job(world, job.id)
        assert fields(record["embeds"][0])["Delivery message"].startswith("deleted")
        assert f"hh:redeliver:{job.id}" in buttons(record)

        first = await click(world, record, f"hh:redeliver:{job.id}")
        assert await first.wait_for_ack() == 5
        answer = (await first.wait_for_followup(timeout=15))["content"]
        [repost] = video_posts(running, world, job.id)
        assert answer == (
            f"Posted job #{job.id} again: https://discord.com/channels/{world.guild.id}/"
            f"{world.channel.id}/{repost['id']}"
        )
        assert any(a["filename"].endswith(".mp4") for a in repost["attachments"])
        assert repost["mentions"] == [], "a repost pings nobody"
        updated = await running.store.jobs.get_job(job.id)
        assert updated is not None and updated.delivered_message_id == int(repost["id"])
        assert updated.message_deleted_at is None and updated.redelivered_at is not None

        still = await click(world, record, f"hh:redeliver:{job.id}")
        await still.wait_for_ack()
        assert "still posted" in (await still.wait_for_followup())["content"]

        world.fake.delete_message(repost)
        twice = await click(world, record, f"hh:redeliver:{job.id}")
        await twice.wait_for_ack()
        assert (await twice.wait_for_followup())["content"] == (
            f"Job #{job.id} can't be delivered again: it was already delivered again once."
        )
        assert video_posts(running, world, job.id) == []
        assert f"hh:redeliver:{job.id}" not in buttons(await show_job(world, job.id))
        assert await used(running, world.alice.id) == 1, "posting again costs nothing"


async def test_job_is_for_moderators_of_this_server(start_bot: StartBot, world: World) -> None:
    """Members are refused; an unknown job (or another server's) is not shown."""
    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse")
        member = await world.fake.invoke_slash(
            world.guild, world.channel, world.alice, "job", {"id": job.id}
        )
        assert "Manage Server" in await private_text(member)
        foreign_job = await running.store.credits.reserve(
            NewJob(
                guild_id=world.guild.id + 1,
                channel_id=1,
                user_id=world.alice.id,
                mode="text-to-video",
                prompt="elsewhere",
                duration=5,
                aspect_ratio="16:9",
                quality="std",
                sound=True,
            )
        )
        assert foreign_job is not None
        foreign = await world.fake.invoke_slash(
            world.guild, world.channel, world.mod, "job", {"id": foreign_job.id}
        )
        assert await private_text(foreign) == f"There is no job #{foreign_job.id} in this server."
        unknown = await world.fake.invoke_slash(
            world.guild, world.channel, world.mod, "job", {"id": 987654}
        )
        assert await private_text(unknown) == "There is no job #987654 in this server."


async def test_delete_button_marks_the_message_so_jobs_stops_linking_it(
    start_bot: StartBot, world: World
) -> None:
    """After Delete, /jobs no longer links the missing message."""
    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse")
        [post] = video_posts(running, world, job.id)
        jobs_before = await world.fake.invoke_slash(world.guild, world.channel, world.alice, "jobs")
        [before] = (await _ephemeral(jobs_before))["embeds"]
        assert f"/{post['id']})" in before["description"]

        delete = await world.fake.click_button(post, f"hh:delete:{job.id}", world.alice)
        assert await delete.wait_for_ack() == 5
        assert (await delete.wait_for_followup())["content"] == "Deleted."
        deleted = await running.store.jobs.get_job(job.id)
        assert deleted is not None and deleted.message_deleted_at is not None

        jobs_after = await world.fake.invoke_slash(world.guild, world.channel, world.alice, "jobs")
        [after] = (await _ephemeral(jobs_after))["embeds"]
        assert post["id"] not in after["description"]
        assert "[message]" not in after["description"]


async def _ephemeral(inter: InteractionRecord) -> dict[str, Any]:
    assert await inter.wait_for_ack() == 4
    assert inter.ack_data is not None
    return inter.ack_data
