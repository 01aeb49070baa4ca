"""Syncing the command tree at start-up, per ``SYNC_COMMANDS`` (see ``core.command_sync``).

``command_payload`` builds exactly the JSON ``CommandTree.sync`` would send for a target
(the translator's localisations included, once there is one), so its hash changes
exactly when a sync would change something on Discord.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands

from core.command_sync import SyncMode, payload_hash, sync_target
from storage.store import Store

log = logging.getLogger(__name__)

SYNC_TIMEOUT_SECONDS = 60.0
"""Longest a sync may take: the lock that makes it one process at a time is held meanwhile."""


async def command_payload(
    tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None
) -> list[dict[str, Any]]:
    """The payload a sync of ``tree`` to ``guild`` (None: global) would send."""
    commands = tree.get_commands(guild=guild)
    translator = tree.translator
    if translator is not None:
        return [await command.get_translated_payload(tree, translator) for command in commands]
    return [command.to_dict(tree) for command in commands]


async def sync_commands(
    client: discord.Client,
    tree: app_commands.CommandTree[Any],
    store: Store,
    mode: SyncMode,
    dev_guild_id: int | None,
) -> bool:
    """Sync to the dev guild (its commands copied from the global ones) or globally, as
    ``mode`` says; True if a sync was sent."""
    if mode is SyncMode.NEVER:
        return False
    guild = None if dev_guild_id is None else discord.Object(id=dev_guild_id)
    if guild is not None:
        tree.copy_global_to(guild=guild)
    where = "global commands" if guild is None else f"commands to dev guild {guild.id}"

    async def sync() -> None:
        async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
            synced = await tree.sync(guild=guild)
        suffix = " (may take a while to appear)" if guild is None else ""
        log.info("Synced %d %s%s", len(synced), where, suffix)

    if mode is SyncMode.ALWAYS:
        await sync()
        return True
    application_id = client.application_id
    if application_id is None:
        raise discord.app_commands.MissingApplicationID
    target = sync_target(application_id, dev_guild_id)
    fingerprint = payload_hash(await command_payload(tree, guild))
    if await store.command_sync.sync_if_changed(target, fingerprint, sync):
        return True
    log.info("The %s are unchanged since the last sync: not syncing (SYNC_COMMANDS=auto)", where)
    return False
