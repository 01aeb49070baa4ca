"""The command sync the real bot sends satisfies Discord's OpenAPI spec (no Discord needed).

The bulk overwrite of application commands is one request: if Discord refuses any part of
it (say an integer option's ``max_value`` above 2**53 - 1), a server gets no commands at
all. This runs the bot's own ``setup_hook`` sync, captures the payload discord.py's
``CommandTree.sync`` hands to its HTTP client, and validates it against the operation in
``tests/fake_discord/spec/openapi.json``, for a development guild and globally.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import bot as bot_module
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from storage.sqlite import open_store
from tests.fake_discord.openapi import load_spec

APPLICATION_ID = 1234567890123456789
GUILD_ID = 2345678901234567890
TOKEN = "MTIzNDU2Nzg5.discord-secret-token"
API_KEY = "hh-live-secret-key-0123456789"

Synced = list[tuple[str, str, Any]]
SyncPayloads = Callable[[dict[str, str]], Any]


@pytest.fixture
async def sync_payloads(tmp_path: Path) -> AsyncIterator[SyncPayloads]:
    """``await sync_payloads(env)``: the (method, path, JSON payload) the bot's sync sends."""
    async with SandboxServer(SandboxConfig()) as sandbox:

        async def run(env: dict[str, str]) -> Synced:
            settings = BotSettings.from_env(
                {"DISCORD_TOKEN": TOKEN, "HAPPYHORSE_API_KEY": API_KEY, **env}
            )
            settings = settings.model_copy(
                update={"client": dataclasses.replace(settings.client, base_url=sandbox.base_url)}
            )
            store = await open_store(tmp_path / "db.sqlite3", default_daily_credits=3)
            sent: Synced = []

            # discord.py's CommandTree.sync builds the payload and calls one of these two;
            # only the HTTP round trip is replaced. JSON round trip: what goes on the wire.
            async def guild_sync(app_id: int, guild_id: int, *, payload: Any) -> list[Any]:
                path = f"/applications/{app_id}/guilds/{guild_id}/commands"
                sent.append(("PUT", path, json.loads(json.dumps(payload))))
                return []

            async def global_sync(app_id: int, *, payload: Any) -> list[Any]:
                sent.append(
                    ("PUT", f"/applications/{app_id}/commands", json.loads(json.dumps(payload)))
                )
                return []

            try:
                async with HappyHorseClient(settings.client) as client:
                    # The Bot class bot.py starts, wherever the package layout keeps it.
                    bot = bot_module.HappyHorseBot(
                        settings, store, client, application_id=APPLICATION_ID
                    )
                    async with bot:  # initialises the client without logging in
                        bot.http.bulk_upsert_guild_commands = guild_sync  # type: ignore[method-assign]
                        bot.http.bulk_upsert_global_commands = global_sync  # type: ignore[method-assign]
                        await bot.setup_hook()
            finally:
                await store.close()
            return sent

        yield run


@pytest.mark.parametrize(
    ("env", "operation"),
    [
        ({"DEV_GUILD_ID": str(GUILD_ID)}, "bulk_set_guild_application_commands"),
        ({}, "bulk_set_application_commands"),
    ],
    ids=["guild", "global"],
)
async def test_command_sync_payload_is_valid_for_discord(
    sync_payloads: SyncPayloads, env: dict[str, str], operation: str
) -> None:
    """Every command, option and bound the bot syncs is one Discord's spec accepts."""
    [(method, path, payload)] = await sync_payloads(env)
    assert {"video", "job"} <= {command["name"] for command in payload}
    spec = load_spec()
    matched, _, _ = spec.match(method, path)
    assert matched is not None and matched.operation_id == operation
    violation = spec.check_request(method, path, {}, "application/json", payload, has_body=True)
    assert violation is None, str(violation)
