"""Interaction payloads without resolved permissions (as some clients and fakes send them).

Discord sends `app_permissions` and `member.permissions` with every interaction; when they
are missing, discord.py reports "no permissions at all". The bot then works them out from
its guild cache instead of refusing everyone, or letting everyone moderate.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import StartBot, World, eventually
from tests.e2e.test_commands import accepted_job, private_text
from tests.fake_discord import driver, permissions


@pytest.fixture
def sparse_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strip the resolved permissions from every interaction the fake sends."""
    original = driver.build_payload

    def without_permissions(*args: Any, **kwargs: Any) -> Any:
        payload = original(*args, **kwargs)
        payload.pop("app_permissions", None)
        if "member" in payload:
            payload["member"].pop("permissions", None)
        payload.get("channel", {}).pop("permissions", None)
        return payload

    monkeypatch.setattr(driver, "build_payload", without_permissions)


@pytest.mark.usefixtures("sparse_payloads")
async def test_video_still_works_without_resolved_permissions(
    start_bot: StartBot, world: World
) -> None:
    """A member's /video is accepted and delivered: the bot's own rights come from its cache."""
    fake = world.fake
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse"}
        )
        job = await accepted_job(running, inter)
        await fake.wait_for_message(world.channel, lambda m: bool(m["attachments"]), timeout=10)

        async def delivered() -> bool:
            fresh = await running.store.jobs.get_job(job.id)
            return fresh is not None and fresh.delivered_message_id is not None

        await eventually(delivered, what="delivery")


@pytest.mark.usefixtures("sparse_payloads")
async def test_moderators_are_recognised_from_their_roles(
    start_bot: StartBot, world: World
) -> None:
    """Without resolved permissions, Manage Server still comes from roles; members stay out."""
    fake = world.fake
    async with start_bot() as running:
        ok = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.mod,
            "quotas set",
            {"user": world.alice, "credits": 3},
        )
        assert "now gets 3 credits" in await private_text(ok)
        refused = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.bob,
            "quotas set",
            {"user": world.bob, "credits": 999},
        )
        assert "Manage Server" in await private_text(refused)
        balance = await running.store.credits.balance(world.guild.id, world.bob.id)
        assert balance.allowance == 10


@pytest.mark.usefixtures("sparse_payloads")
async def test_missing_post_rights_are_still_refused_up_front(
    start_bot: StartBot, world: World
) -> None:
    """A channel where the bot may not post is refused before anything is charged."""
    fake = world.fake
    closed = fake.add_text_channel(
        world.guild, "closed", bot_permissions=permissions.ALL_TEXT & ~permissions.SEND_MESSAGES
    )
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, closed, world.alice, "video", {"prompt": "a horse"}
        )
        assert "Send Messages" in await private_text(inter)
        assert running.sandbox.state.tasks == {}
