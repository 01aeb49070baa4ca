"""/privacy through the Discord fake: the export file, the confirmed delete (unfinished
videos cancelled and refunded first, /stats totals unchanged), and the moderators'
delete-member, checked at run time and audited without the erased content."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiohttp
import discord

from storage.models import AuditAction, GuildLimits, JobState
from tests.e2e.conftest import Running, StartBot, World, eventually
from tests.e2e.test_modlog import set_log_channel, wait_log
from tests.fake_discord import FakeMember, InteractionRecord

CARDS: dict[int, InteractionRecord] = {}
"""The /video interaction of each job id (its status card is the original response)."""


async def video(running: Running, world: World, member: FakeMember, prompt: str) -> int:
    """/video as `member`; return the new job's id."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, member, "video", {"prompt": prompt}
    )
    assert await inter.wait_for_ack() == 5

    async def created() -> bool:
        return any(
            j.prompt == prompt
            for j in await running.store.jobs.recent_jobs(world.guild.id, member.id, 20)
        )

    await eventually(created, what=f"the job for {prompt!r}")
    jobs = await running.store.jobs.recent_jobs(world.guild.id, member.id, 20)
    job_id = next(j.id for j in jobs if j.prompt == prompt)
    CARDS[job_id] = inter
    return job_id


async def state_of(running: Running, job_id: int) -> JobState:
    job = await running.store.jobs.get_job(job_id)
    assert job is not None
    return job.state


async def wait_state(running: Running, job_id: int, state: JobState) -> None:
    async def reached() -> bool:
        return await state_of(running, job_id) is state

    await eventually(reached, timeout=15, what=f"job {job_id} to be {state.value}")


async def privacy(world: World, member: FakeMember, sub: str, **options: Any) -> InteractionRecord:
    return await world.fake.invoke_slash(
        world.guild, world.channel, member, f"privacy {sub}", options or None
    )


async def confirm(world: World, inter: InteractionRecord, clicker: FakeMember) -> dict[str, Any]:
    """Press the confirmation button under the ephemeral warning; return the result message."""
    assert await inter.wait_for_ack() == 4
    warning = await inter.wait_for_original()
    assert warning["flags"] & discord.MessageFlags.ephemeral.flag
    [row] = warning["components"]
    [button] = row["components"]
    click = await world.fake.click_button(warning, button["custom_id"], clicker)
    assert await click.wait_for_ack() in (4, 6)
    return await click.wait_for_original(lambda m: "Deleted" in m.get("content", ""))


async def stats_totals(running: Running, world: World) -> tuple[int, ...]:
    now = discord.utils.utcnow()
    stats = await running.store.jobs.guild_stats(
        world.guild.id, now - timedelta(days=1), now + timedelta(days=1)
    )
    return (stats.made, stats.failed, stats.pending, stats.credits_spent, stats.credits_refunded)


async def test_export_sends_the_members_own_data_as_a_private_file(
    start_bot: StartBot, world: World
) -> None:
    """The JSON holds the member's job (prompt, settings, state, times, links) and credits."""
    async with start_bot() as running:
        job_id = await video(running, world, world.alice, "a horse in the export")
        await wait_state(running, job_id, JobState.DELIVERED)
        await video(running, world, world.bob, "bob's own horse")
        inter = await privacy(world, world.alice, "export")
        assert await inter.wait_for_ack() == 5
        reply = await inter.wait_for_followup()
        assert reply["flags"] & discord.MessageFlags.ephemeral.flag
        [attachment] = reply["attachments"]
        assert attachment["filename"].endswith(".json")
        timeout = aiohttp.ClientTimeout(total=15)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(attachment["url"]) as resp,
        ):
            data = json.loads(await resp.read())
    assert data["user_id"] == str(world.alice.id)
    [job] = data["jobs"]
    assert job["id"] == job_id and job["prompt"] == "a horse in the export"
    assert job["state"] == "delivered" and job["settings"]["duration_seconds"] == 5
    assert job["video_message"].startswith(f"https://discord.com/channels/{world.guild.id}/")
    assert job["created_at"] and job["delivered_at"]
    assert data["credits"]["used"] == job["credits"] == 1
    assert "bob's own horse" not in json.dumps(data)


async def test_delete_cancels_and_refunds_then_erases_keeping_stats(
    start_bot: StartBot, world: World
) -> None:
    """A delivered, a running and a queued video: the two unfinished ones are stopped and
    refunded, every prompt and link erased, /stats totals as before the delete."""
    async with start_bot() as running:
        store = running.store
        done = await video(running, world, world.alice, "alice's finished horse")
        await wait_state(running, done, JobState.DELIVERED)
        await store.guilds.set_limits(
            world.guild.id, GuildLimits(member_running=1, member_queued=5), world.mod.id
        )
        # Status checks keep failing: alice's next video stays at the service, running.
        running.sandbox.state.faults.add("status", status=503, count=-1)
        busy = await video(running, world, world.alice, "alice's running horse")
        await wait_state(running, busy, JobState.SUBMITTED)
        queued = await video(running, world, world.alice, "alice's queued horse")
        await wait_state(running, queued, JobState.QUEUED)
        bobs = await video(running, world, world.bob, "bob keeps his horse")
        stats_before = await stats_totals(running, world)

        result = await confirm(world, await privacy(world, world.alice, "delete"), world.alice)

        assert result["content"].startswith("Deleted your data here: 3 videos")
        assert "2 unfinished videos were cancelled and 2 credits refunded" in result["content"]
        assert result["components"] == []
        assert await state_of(running, busy) is JobState.REFUNDED
        assert await state_of(running, queued) is JobState.REFUNDED
        for job_id in (done, busy, queued):
            job = await store.jobs.get_job(job_id)
            assert job is not None and job.prompt == "" and job.erased_at is not None
            assert job.delivered_message_id is None and job.result_url is None
        bob_job = await store.jobs.get_job(bobs)
        assert bob_job is not None and bob_job.prompt == "bob keeps his horse"
        # The stopped videos are now refunded rather than pending; nothing else moved.
        made, failed, pending, spent, refunded = await stats_totals(running, world)
        assert (made, failed + pending, spent + refunded) == (
            stats_before[0],
            stats_before[1] + stats_before[2],
            stats_before[3] + stats_before[4],
        )
        assert refunded == stats_before[4] + 2
        # Only this period's delivered video still names alice (it still counts today).
        assert [j.id for j in await store.privacy.member_jobs(world.guild.id, world.alice.id)] == [
            done
        ]
        assert (await store.credits.balance(world.guild.id, world.alice.id)).used == 1
        # No "could not be made" notice pings her for the videos she had stopped.
        # Their status cards say so, and no longer show the prompt.
        for job_id in (busy, queued):
            card = await CARDS[job_id].wait_for_original(
                lambda m: "data was deleted" in json.dumps(m.get("embeds"))
            )
            assert "alice's" not in json.dumps(card)
        posts = world.fake.channel_messages(world.channel)
        assert not [m for m in posts if "could not be made" in m["content"]]


async def test_delete_member_is_for_moderators_and_audited_without_content(
    start_bot: StartBot, world: World
) -> None:
    """bob may not; mod may (confirmed); the audit entry says who and how many, not what."""
    modlog = world.fake.add_text_channel(world.guild, "mod-log")
    async with start_bot() as running:
        await set_log_channel(running, world, modlog)
        job_id = await video(running, world, world.alice, "a very personal horse")
        await wait_state(running, job_id, JobState.DELIVERED)

        refused = await privacy(world, world.bob, "delete-member", user=world.alice)
        assert await refused.wait_for_ack() == 4
        assert "Manage Server" in (refused.ack_data or {})["content"]

        inter = await privacy(world, world.mod, "delete-member", user=world.alice)
        # Nothing happens before the moderator confirms.
        assert await inter.wait_for_ack() == 4
        job = await running.store.jobs.get_job(job_id)
        assert job is not None and job.prompt == "a very personal horse"

        result = await confirm(world, inter, world.mod)
        assert result["content"].startswith(f"Deleted <@{world.alice.id}>'s data here: 1 video's")
        job = await running.store.jobs.get_job(job_id)
        assert job is not None and job.prompt == ""
        audit = await running.store.privacy.member_audit(world.guild.id, world.alice.id)
        [entry] = [a for a in audit if a.action is AuditAction.ERASE_MEMBER_DATA]
        assert entry.moderator_id == world.mod.id
        assert "horse" not in f"{entry.old_value} {entry.new_value}"
        [posted] = await wait_log(running, modlog, "Member data erased on request")
        assert f"<@{world.mod.id}>" in json.dumps(posted)
        assert "personal" not in json.dumps(posted)
