"""``GuildSettingsStore`` in portable SQL: allowed channels and blocked words, audited."""

from __future__ import annotations

from typing import Any, Literal

from storage.models import (
    AuditAction,
    AuditEntry,
    GuildLimits,
    GuildSettings,
)
from storage.sql.common import (
    _ENSURE_GUILD_SQL,
    Clock,
    _normalise_word,
    _ts,
    _write_audit,
)
from storage.sql.database import Database, Program, Row, drive

LIMIT_FIELDS = ("member_running", "member_queued", "server_running", "cooldown_seconds")
LIMIT_MAXIMA = {
    "member_running": 1000,
    "member_queued": 1000,
    "server_running": 10000,
    "cooldown_seconds": 86400,
}
"""The largest value of each limit (the schema's CHECK constraints agree)."""


def _limits(row: Row) -> GuildLimits:
    return GuildLimits(**{name: row[name] for name in LIMIT_FIELDS})


def _limits_text(limits: GuildLimits) -> str:
    return ", ".join(
        f"{name}={'default' if getattr(limits, name) is None else getattr(limits, name)}"
        for name in LIMIT_FIELDS
    )


def read_guild(guild_id: int) -> Program[GuildSettings]:
    """Read a guild's settings (defaults if it never configured anything): a program
    (see ``storage.sql.database``), so a transaction can read them among its statements."""
    guild = (
        yield (
            """SELECT default_credits, log_channel_id, member_running, member_queued,
                      server_running, cooldown_seconds, language, discord_locale
               FROM guild_settings WHERE guild_id = ?""",
            (guild_id,),
        )
    )
    channels = yield ("SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,))
    words = yield ("SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word", (guild_id,))
    row = guild[0] if guild else None
    return GuildSettings(
        guild_id=guild_id,
        default_credits=None if row is None else row["default_credits"],
        allowed_channel_ids=frozenset(r["channel_id"] for r in channels),
        blocked_words=tuple(r["word"] for r in words),
        log_channel_id=None if row is None else row["log_channel_id"],
        limits=GuildLimits() if row is None else _limits(row),
        language=None if row is None else row["language"],
        discord_locale=None if row is None else row["discord_locale"],
    )


class SQLGuildSettingsStore:
    """``GuildSettingsStore`` on either engine; each change and its audit row commit together."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Use ``open_store`` rather than building this directly."""
        self._db = db
        self._clock = clock

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if it never configured anything)."""
        return await drive(read_guild(guild_id), self._db)

    async def set_log_channel(
        self, guild_id: int, channel_id: int | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` turn off) the moderator log channel; audited."""
        return await self._set_setting(
            guild_id, "log_channel_id", channel_id, moderator_id, AuditAction.SET_LOG_CHANNEL
        )

    async def _set_setting(
        self,
        guild_id: int,
        column: Literal["log_channel_id", "language"],
        value: int | str | None,
        moderator_id: int,
        action: AuditAction,
    ) -> AuditEntry:
        """Set one ``guild_settings`` column (named here, never by input), with an audit
        entry from its old value to the new one."""
        now = _ts(self._clock())
        async with self._db.transaction() as tx:
            await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
            old = await tx.fetch_one(
                f"SELECT {column} FROM guild_settings WHERE guild_id = :guild_id",  # noqa: S608
                {"guild_id": guild_id},
            )
            await tx.execute(
                f"UPDATE guild_settings SET {column} = :value, updated_at = :now"  # noqa: S608
                " WHERE guild_id = :guild_id",
                {"guild_id": guild_id, "value": value, "now": now},
            )
            before = None if old is None else old[column]
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                None,
                action,
                None if before is None else str(before),
                None if value is None else str(value),
            )

    async def set_limits(
        self, guild_id: int, limits: GuildLimits, moderator_id: int
    ) -> AuditEntry:
        """Replace the guild's queue limits (``None`` fields: the bot's default); audited."""
        for name in LIMIT_FIELDS:
            value = getattr(limits, name)
            if value is not None and not 0 <= value <= LIMIT_MAXIMA[name]:
                raise ValueError(f"{name} must be between 0 and {LIMIT_MAXIMA[name]}")
        now = _ts(self._clock())
        async with self._db.transaction() as tx:
            await tx.execute(_ENSURE_GUILD_SQL, (guild_id, now))
            old = await tx.fetch_one(
                """SELECT member_running, member_queued, server_running, cooldown_seconds
                   FROM guild_settings WHERE guild_id = ?""",
                (guild_id,),
            )
            assert old is not None  # ensured just above
            await tx.execute(
                """UPDATE guild_settings SET member_running = :member_running,
                       member_queued = :member_queued, server_running = :server_running,
                       cooldown_seconds = :cooldown_seconds, updated_at = :now
                   WHERE guild_id = :guild_id""",
                {
                    "guild_id": guild_id,
                    "now": now,
                    **{name: getattr(limits, name) for name in LIMIT_FIELDS},
                },
            )
            return await _write_audit(
                tx,
                now,
                guild_id,
                moderator_id,
                None,
                AuditAction.SET_LIMITS,
                _limits_text(_limits(old)),
                _limits_text(limits),
            )

    async def set_language(
        self, guild_id: int, language: str | None, moderator_id: int
    ) -> AuditEntry:
        """Set (or with ``None`` clear) the language of public messages; audited."""
        if language is not None and not 1 <= len(language) <= 16:
            raise ValueError("a language is a locale code such as de or pt-BR")
        return await self._set_setting(
            guild_id, "language", language, moderator_id, AuditAction.SET_LANGUAGE
        )

    async def remember_discord_locale(self, guild_id: int, locale: str) -> bool:
        """Record the server's Discord language; ``False`` if it was already recorded."""
        changed = await self._db.execute(
            """INSERT INTO guild_settings (guild_id, default_credits, updated_at, discord_locale)
               VALUES (:guild_id, NULL, :now, :locale)
               ON CONFLICT (guild_id) DO UPDATE SET discord_locale = excluded.discord_locale
               WHERE guild_settings.discord_locale IS NULL
                  OR guild_settings.discord_locale <> excluded.discord_locale""",
            {"guild_id": guild_id, "now": _ts(self._clock()), "locale": locale},
        )
        return changed > 0

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
