"""RETENTION_DAYS: the bot's daily task erases prompts and links of old settled jobs only."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.sqlite import open_store
from tests.e2e.conftest import StartBot, World, eventually

PROMPT = "a horse in my neighbour's garden"
IMAGE = "https://cdn.example/horse.png"
VIDEO = "https://cdn.example/horse.mp4"


async def seed(db: Path, world: World, rows: dict[str, tuple[str, float]]) -> dict[str, int]:
    """Write jobs (name -> (state, age in days)) into the bot's database before it starts."""
    store = await open_store(db, default_daily_credits=10)
    ids: dict[str, int] = {}
    now = datetime.now(UTC)
    try:
        for name, (state, age_days) in rows.items():
            created = (now - timedelta(days=age_days)).timestamp()
            row = await store.database.fetch_one(
                """INSERT INTO jobs (guild_id, channel_id, user_id, mode, prompt, image_url,
                       duration, aspect_ratio, quality, sound, cost, state, delivery_nonce,
                       created_at, updated_at, result_url, task_id)
                   VALUES (:guild, :channel, :user, 'image-to-video', :prompt, :image, 5,
                       '16:9', 'std', 1, 1, :state, :nonce, :created, :created, :video, 't')
                   RETURNING id""",
                {
                    "guild": world.guild.id,
                    "channel": world.channel.id,
                    "user": world.alice.id,
                    "prompt": PROMPT,
                    "image": IMAGE,
                    "state": state,
                    "nonce": secrets.token_hex(12),
                    "created": created,
                    "video": VIDEO if state != "submitted" else None,
                },
            )
            assert row is not None
            ids[name] = int(row["id"])
    finally:
        await store.close()
    return ids


async def test_retention_erases_only_old_settled_jobs(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """Delivered and refunded jobs past RETENTION_DAYS lose prompt and URLs; the rest stays."""
    ids = await seed(
        tmp_path / "bot.sqlite3",
        world,
        {
            "old delivered": ("delivered", 31),
            "old refunded": ("refunded", 45),
            "old but unfinished": ("submitted", 40),
            "recent delivered": ("delivered", 29),
        },
    )
    async with start_bot(retention_days=30, job_deadline_seconds=10**9) as running:
        jobs = running.store.jobs

        async def erased() -> bool:
            old = [await jobs.get_job(ids[n]) for n in ("old delivered", "old refunded")]
            return all(j is not None and j.erased_at is not None for j in old)

        await eventually(erased, timeout=10, what="the old settled jobs to be erased")
        for name in ("old delivered", "old refunded"):
            job = await jobs.get_job(ids[name])
            assert job is not None
            assert (job.prompt, job.image_url, job.result_url) == ("", None, None)
            assert job.cost == 1 and job.state.value in {"delivered", "refunded"}
        for name in ("old but unfinished", "recent delivered"):
            job = await jobs.get_job(ids[name])
            assert job is not None and job.erased_at is None
            assert (job.prompt, job.image_url) == (PROMPT, IMAGE)
        cog = running.bot.get_cog("Retention")
        assert cog is not None and cog.erase_daily.is_running()  # type: ignore[attr-defined]
    cog_task = cog.erase_daily  # type: ignore[attr-defined]
    assert not cog_task.is_running(), "the task stops with the bot"


async def test_retention_zero_keeps_everything(start_bot: StartBot, world: World) -> None:
    """RETENTION_DAYS=0: the task is not started at all."""
    async with start_bot(retention_days=0) as running:
        cog = running.bot.get_cog("Retention")
        assert cog is not None and not cog.erase_daily.is_running()  # type: ignore[attr-defined]


async def test_an_erased_video_cannot_be_regenerated(start_bot: StartBot, world: World) -> None:
    """Regenerate on a video whose prompt was erased says why, and charges nothing."""
    from tests.e2e.test_commands import delivered_video, used
    from tests.e2e.test_job_admin import video_posts

    async with start_bot() as running:
        job = await delivered_video(running, world, "a horse")
        await running.store.jobs.erase_settled_before(datetime.now(UTC) + timedelta(days=1))
        [post] = video_posts(running, world, job.id)
        inter = await world.fake.click_button(post, f"hh:regen:{job.id}", world.bob)
        assert await inter.wait_for_ack() == 4
        assert inter.ack_data is not None and "data retention" in inter.ack_data["content"]
        assert await used(running, world.bob.id) == 0
