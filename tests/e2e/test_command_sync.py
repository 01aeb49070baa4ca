"""SYNC_COMMANDS=auto against the Discord fake: restarts sync only when the commands change."""

from __future__ import annotations

from typing import Any

import pytest
from discord import app_commands

import botkit.bot
from core.command_sync import SyncMode
from storage.sqlite import open_store
from tests.e2e.conftest import StartBot, World

NEW_DESCRIPTION = "What the video shows (in any language)"


def prompt_description(world: World) -> str:
    """The /video prompt option's description as the fake last received it."""
    video = next(c for c in world.fake.commands(world.guild) if c["name"] == "video")
    return str(next(o for o in video["options"] if o["name"] == "prompt")["description"])


async def test_restarts_sync_once_until_a_description_changes(
    start_bot: StartBot, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three starts on one database: one sync. A changed option description: one more."""
    state = world.fake.state
    for _ in range(3):
        async with start_bot(sync_commands=SyncMode.AUTO):
            pass
    assert state.sync_count == 1
    original = prompt_description(world)

    real_sync = botkit.bot.sync_commands

    async def with_new_description(
        client: Any, tree: app_commands.CommandTree[Any], *args: Any
    ) -> bool:
        """The next release's code: /video's prompt option is described differently."""
        command = tree.get_command("video")
        assert isinstance(command, app_commands.Command)
        # discord.py's public Parameter is a read-only view of this CommandParameter.
        command._params["prompt"].description = NEW_DESCRIPTION
        return await real_sync(client, tree, *args)

    monkeypatch.setattr(botkit.bot, "sync_commands", with_new_description)
    for _ in range(2):
        async with start_bot(sync_commands=SyncMode.AUTO):
            pass
    assert state.sync_count == 2
    assert prompt_description(world) == NEW_DESCRIPTION != original


async def test_always_and_never_keep_their_meaning(start_bot: StartBot, world: World) -> None:
    """always syncs at every start whatever is stored; never leaves Discord alone."""
    state = world.fake.state
    async with start_bot(sync_commands=SyncMode.AUTO):
        pass
    async with start_bot(sync_commands=SyncMode.ALWAYS):
        pass
    async with start_bot(sync_commands=SyncMode.ALWAYS):
        pass
    assert state.sync_count == 3
    async with start_bot(sync_commands=SyncMode.NEVER):
        pass
    assert state.sync_count == 3


async def test_the_hash_is_stored_per_target(start_bot: StartBot, world: World) -> None:
    """After a sync to the dev guild, the database holds that target's hash."""
    async with start_bot(sync_commands=SyncMode.AUTO) as running:
        application_id = running.bot.application_id
        db = running.bot.settings.database_path
    store = await open_store(db, default_daily_credits=10)
    try:
        stored = await store.command_sync.stored_hash(
            f"app:{application_id}:guild:{world.guild.id}"
        )
    finally:
        await store.close()
    assert stored is not None and len(stored) == 64
