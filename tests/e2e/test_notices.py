"""Failure notices survive a crash: a refund whose notice was never sent is told at restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from storage.models import JobState, NewJob
from storage.sqlite import open_store
from tests.e2e.conftest import StartBot, World, eventually


def notices(world: World) -> list[dict[str, Any]]:
    """Failure notices in #videos."""
    return [m for m in world.fake.channel_messages(world.channel) if "refunded" in m["content"]]


async def test_refund_without_its_notice_is_told_once_after_restart(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """A job refunded just before a crash (notice unsent) is told once, by the next run."""
    store = await open_store(tmp_path / "bot.sqlite3", default_daily_credits=10)
    try:
        job = await store.credits.reserve(
            NewJob(
                guild_id=world.guild.id,
                channel_id=world.channel.id,
                user_id=world.alice.id,
                mode="text-to-video",
                prompt="a horse",
                duration=10,
                aspect_ratio="16:9",
                quality="std",
                sound=True,
            )
        )
        assert job is not None
        # What a crash leaves behind: the refund is written, its notice never posted.
        assert await store.jobs.fail_and_refund(
            job.id, "The service lost the task", expected=JobState.RESERVED
        )
    finally:
        await store.close()

    async with start_bot() as running:
        notice = await world.fake.wait_for_message(
            world.channel, lambda m: "refunded" in m["content"], timeout=5
        )
        assert notice["content"] == (
            f"<@{world.alice.id}> your video could not be made: "
            "The service lost the task. 2 credits refunded."
        )
        assert [m["id"] for m in notice["mentions"]] == [str(world.alice.id)]

        async def recorded() -> bool:
            told = await running.store.jobs.get_job(job.id)
            return told is not None and told.notified_at is not None

        await eventually(recorded, what="the notice to be recorded")

    async with start_bot():
        await asyncio.sleep(0.6)  # several delivery-loop ticks
    assert len(notices(world)) == 1
