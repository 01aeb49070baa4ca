"""/stats: figures checked against a seeded ledger, and a chart PNG that opens."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from core.chart import CHART_HEIGHT, CHART_WIDTH, SERIES
from tests.e2e.conftest import Running, StartBot, World
from tests.e2e.test_commands import EPHEMERAL, fields, private_text

WEBHOOK = r"^/webhooks/\d+/[^/]+$"


async def seed(
    running: Running,
    *,
    user_id: int,
    at: datetime,
    state: str,
    duration: int = 5,
    quality: str = "std",
    sound: bool = True,
    cost: int = 1,
    guild_id: int | None = None,
) -> None:
    """Write one job straight into the ledger, as the bot would have left it."""
    made = state == "delivered"
    created = at.timestamp()
    await running.store.database.execute(
        """INSERT INTO jobs (guild_id, channel_id, user_id, mode, prompt, duration,
               aspect_ratio, quality, sound, cost, state, delivery_nonce, created_at,
               updated_at, completed_at, delivered_at, refunded_at, task_id)
           VALUES (:guild, :channel, :user, 'text-to-video', 'seeded', :duration, '16:9',
               :quality, :sound, :cost, :state, :nonce, :created, :created, :completed,
               :delivered, :refunded, 'seeded-task')""",
        {
            "guild": guild_id or running.world.guild.id,
            "channel": running.world.channel.id,
            "user": user_id,
            "duration": duration,
            "quality": quality,
            "sound": int(sound),
            "cost": cost,
            "state": state,
            "nonce": secrets.token_hex(12),
            "created": created,
            "completed": created + 20 if made else None,
            "delivered": created + 30 if made else None,
            "refunded": created + 30 if state == "refunded" else None,
        },
    )


async def run_stats(running: Running, world: World, **options: Any) -> tuple[dict[str, Any], Any]:
    """/stats as the moderator: the private follow-up's embed and its uploaded chart."""
    before = len(world.fake.find_requests("POST", WEBHOOK))
    inter = await world.fake.invoke_slash(world.guild, world.channel, world.mod, "stats", options)
    assert await inter.wait_for_ack() == 5, "slow work must be deferred"
    assert inter.ack_data is not None and inter.ack_data.get("flags", 0) & EPHEMERAL
    followup = await inter.wait_for_followup(timeout=10)
    [embed] = followup["embeds"]
    [request] = world.fake.find_requests("POST", WEBHOOK)[before:]
    [upload] = request.files
    assert upload.filename == "stats.png"
    assert embed["image"]["url"] == "attachment://stats.png"
    return embed, upload


async def test_stats_match_a_seeded_ledger_and_attach_a_chart(
    start_bot: StartBot, world: World
) -> None:
    """Made, failed, refunded, credits, top members, busy hours and the cost estimate."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    alice, bob = world.alice.id, world.bob.id
    async with start_bot() as running:
        six_days_ago = midnight - timedelta(days=6) + timedelta(hours=10)
        three_days_ago = midnight - timedelta(days=3) + timedelta(hours=10)
        await seed(running, user_id=alice, at=six_days_ago, state="delivered")
        await seed(
            running,
            user_id=alice,
            at=six_days_ago,
            state="delivered",
            duration=10,
            quality="pro",
            sound=False,
            cost=4,
        )
        await seed(running, user_id=bob, at=three_days_ago, state="delivered")
        await seed(running, user_id=bob, at=three_days_ago, state="refunded", duration=10, cost=2)
        await seed(running, user_id=alice, at=midnight + (now - midnight) / 2, state="submitted")
        # Outside the period, and another server: never counted.
        await seed(running, user_id=alice, at=midnight - timedelta(days=8), state="delivered")
        await seed(running, user_id=alice, at=six_days_ago, state="delivered", guild_id=1)

        embed, upload = await run_stats(running, world)
        assert embed["title"] == "Video stats: the last 7 days"
        values = fields(embed)
        assert values["Videos"] == "3 made · 1 failed · 1 in progress"
        assert values["Credits"] == "7 credits spent · 1 refunds (2 credits refunded)"
        assert values["Top members"] == (
            f"1. <@{alice}>: 2 videos (5 credits)\n2. <@{bob}>: 1 video (1 credit)"
        )
        assert values["Busiest hours (UTC)"].startswith("10:00–11:00: ")
        estimate = values["Estimated cost at the video service"]
        # 10 s std with sound x 60 + 10 s pro without sound x 54.
        assert estimate.startswith("≈ 1,140 service credits for 20 s of video.")
        assert "estimate" in estimate

        chart = Image.open(io.BytesIO(upload.data))
        assert chart.format == "PNG"
        assert chart.size == (CHART_WIDTH, CHART_HEIGHT)
        colours = {colour for _, colour in chart.convert("RGB").getcolors(1 << 20) or []}
        made, failed, pending = (colour for _, colour in SERIES)
        assert {made, failed, pending} <= colours, "each outcome has a bar segment"

        today, _ = await run_stats(running, world, days=1)
        assert today["title"] == "Video stats: the last 1 day"
        assert fields(today)["Videos"] == "0 made · 0 failed · 1 in progress"


async def test_stats_is_for_moderators_and_at_most_90_days(
    start_bot: StartBot, world: World
) -> None:
    """Members are refused at run time; a client sending 91 days is refused too."""
    async with start_bot():
        member = await world.fake.invoke_slash(world.guild, world.channel, world.alice, "stats")
        assert "Manage Server" in await private_text(member)
        too_long = await world.fake.invoke_slash(
            world.guild, world.channel, world.mod, "stats", {"days": 91}, validate=False
        )
        assert "90" in await private_text(too_long)
