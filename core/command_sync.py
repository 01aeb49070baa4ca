"""When to sync the slash commands: ``SYNC_COMMANDS`` and the payload's fingerprint.

Discord limits command creates (200 a day per application) and rate-limits syncs, and
several processes restarting together would multiply them. With ``SYNC_COMMANDS=auto``
(the default) the bot hashes the payload it would send (see ``payload_hash``) per target
and syncs only when the hash differs from the one stored after the last successful sync
(``Store.command_sync``, which also makes it one process at a time). ``always`` syncs at
every start and ``never`` never does (what ``true`` and ``false`` meant before).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any


class SyncMode(StrEnum):
    """``SYNC_COMMANDS``: sync at start-up when the commands changed, always, or never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


_ALIASES = {
    "auto": SyncMode.AUTO,
    "always": SyncMode.ALWAYS,
    "true": SyncMode.ALWAYS,
    "1": SyncMode.ALWAYS,
    "yes": SyncMode.ALWAYS,
    "on": SyncMode.ALWAYS,
    "never": SyncMode.NEVER,
    "false": SyncMode.NEVER,
    "0": SyncMode.NEVER,
    "no": SyncMode.NEVER,
    "off": SyncMode.NEVER,
}


def parse_sync_mode(raw: str) -> SyncMode | None:
    """The mode a ``SYNC_COMMANDS`` value names (true/false keep their old meaning),
    AUTO when empty, None when it names none."""
    text = raw.strip().lower()
    if not text:
        return SyncMode.AUTO
    return _ALIASES.get(text)


def sync_target(application_id: int, guild_id: int | None) -> str:
    """The key a payload hash is stored under: the application and where it syncs to.

    The application is part of it, so a bot moved to another application (a new token)
    syncs there even though its commands did not change.
    """
    where = "global" if guild_id is None else f"guild:{guild_id}"
    return f"app:{application_id}:{where}"


def payload_hash(payload: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the command payload, independent of command and key order.

    ``payload`` is what the sync would send: each command's JSON, localisations
    included. Commands are sorted by type and name (their order means nothing to
    Discord) and keys sorted, so only a real change alters the hash.
    """
    commands = sorted(
        payload, key=lambda command: (int(command.get("type", 1)), str(command.get("name")))
    )
    text = json.dumps(commands, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
