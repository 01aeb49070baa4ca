"""``GuildSettingsStore`` on SQLite: allowed channels and blocked words, audited."""

from __future__ import annotations

from typing import Any

from storage.models import (
    AuditAction,
    GuildSettings,
)
from storage.sqlite.common import (
    _ENSURE_GUILD_SQL,
    Clock,
    _normalise_word,
    _read_guild,
    _ts,
    _write_audit,
)
from storage.sqlite.database import Database


class SQLiteGuildSettingsStore:
    """``GuildSettingsStore`` on SQLite; each change and its audit row commit together."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if it never configured anything)."""
        return await _read_guild(self._db, guild_id)

    async def _change(
        self,
        guild_id: int,
        moderator_id: int,
        action: AuditAction,
        sql: str,
        params: tuple[Any, ...],
        *,
        old_value: str | None,
        new_value: str | None,
    ) -> bool:
        now = _ts(self._clock())
        async with self._db.transaction() as tx:
            await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
            if await tx.execute(sql, params) == 0:
                return False
            await _write_audit(tx, now, guild_id, moderator_id, None, action, old_value, new_value)
            return True

    async def add_allowed_channel(self, guild_id: int, channel_id: int, moderator_id: int) -> bool:
        """Allow the bot in a channel; ``False`` if it already was."""
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.ADD_ALLOWED_CHANNEL,
            "INSERT INTO allowed_channels (guild_id, channel_id) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            (guild_id, channel_id),
            old_value=None,
            new_value=str(channel_id),
        )

    async def remove_allowed_channel(
        self, guild_id: int, channel_id: int, moderator_id: int
    ) -> bool:
        """Stop allowing a channel; ``False`` if it was not in the list."""
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.REMOVE_ALLOWED_CHANNEL,
            "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
            (guild_id, channel_id),
            old_value=str(channel_id),
            new_value=None,
        )

    async def add_blocked_word(self, guild_id: int, word: str, moderator_id: int) -> bool:
        """Block a word (stored stripped and lower-case); ``False`` if already blocked."""
        word = _normalise_word(word)
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.ADD_BLOCKED_WORD,
            "INSERT INTO blocked_words (guild_id, word) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (guild_id, word),
            old_value=None,
            new_value=word,
        )

    async def remove_blocked_word(self, guild_id: int, word: str, moderator_id: int) -> bool:
        """Unblock a word; ``False`` if it was not blocked."""
        word = _normalise_word(word)
        return await self._change(
            guild_id,
            moderator_id,
            AuditAction.REMOVE_BLOCKED_WORD,
            "DELETE FROM blocked_words WHERE guild_id = ? AND word = ?",
            (guild_id, word),
            old_value=word,
            new_value=None,
        )

    async def clear(self, guild_id: int, moderator_id: int) -> bool:
        """Drop all allowed channels and blocked words; ``False`` if there were none."""
        now = _ts(self._clock())
        async with self._db.transaction() as tx:
            channels = await tx.fetch_all(
                "SELECT channel_id FROM allowed_channels WHERE guild_id = ? ORDER BY channel_id",
                (guild_id,),
            )
            words = await tx.fetch_all(
                "SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word", (guild_id,)
            )
            if not channels and not words:
                return False
            await tx.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))
            await tx.execute("DELETE FROM blocked_words WHERE guild_id = ?", (guild_id,))
            old = "channels: {}; words: {}".format(
                ", ".join(str(row["channel_id"]) for row in channels) or "-",
                ", ".join(row["word"] for row in words) or "-",
            )
            await _write_audit(
                tx, now, guild_id, moderator_id, None, AuditAction.CLEAR_SETTINGS, old, None
            )
            return True
