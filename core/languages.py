"""Which language a server's public messages use: the rule in one place, free of Discord.

Public messages (status cards, video posts, refund and failure notices, the moderator
log, /stats) are read by everyone in the server, so they follow the server, not the
member who caused them:

1. the language a moderator chose with ``/config language``;
2. else the server's Discord language (an interaction's ``guild_locale``, recorded when
   seen so that background work posting much later, in any process, knows it);
3. else English.

Private replies follow the member's own Discord language instead (``botkit.i18n``).

Settings are cached per guild for `CACHE_SECONDS`, so a status card's edits do not read
the database each time; a change made by another process shows within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.i18n import SOURCE_LOCALE, Tr, for_locale, locales, resolve
from storage.models import AuditEntry
from storage.store import GuildSettingsStore

CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class GuildLanguage:
    """A guild's language settings as stored."""

    chosen: str | None
    """What a moderator chose (None: follow Discord)."""
    discord_locale: str | None
    """The server's Discord language as last seen."""

    def locale(self, guild_locale: str | None = None) -> str:
        """The locale public messages use (``guild_locale``: one just seen, if any)."""
        if self.chosen is not None and self.chosen in locales():
            return self.chosen
        return resolve(guild_locale or self.discord_locale or SOURCE_LOCALE)


class GuildLanguages:
    """Reads, caches and changes each guild's language for public messages."""

    def __init__(
        self,
        guilds: GuildSettingsStore,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read settings through ``guilds``; keep them ``cache_seconds``."""
        self._guilds = guilds
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[int, tuple[float, GuildLanguage]] = {}
        # Bumped by every change made here, so a read that began before it is not cached.
        self._generation: dict[int, int] = {}
        # Discord languages seen in this process: fresher than the stored ones.
        self._seen: dict[int, str] = {}

    async def settings(self, guild_id: int) -> GuildLanguage:
        """The guild's language settings (from the cache while it is fresh)."""
        cached = self._cache.get(guild_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        generation = self._generation.get(guild_id, 0)
        stored = await self._guilds.get(guild_id)
        language = GuildLanguage(
            stored.language, self._seen.get(guild_id) or stored.discord_locale
        )
        if self._generation.get(guild_id, 0) == generation:
            self._cache[guild_id] = (now, language)
        return language

    def _changed(self, guild_id: int) -> None:
        self._generation[guild_id] = self._generation.get(guild_id, 0) + 1
        self._cache.pop(guild_id, None)

    async def locale(self, guild_id: int | None, guild_locale: str | None = None) -> str:
        """The locale of the guild's public messages (English outside a guild)."""
        if guild_id is None:
            return resolve(guild_locale)
        return (await self.settings(guild_id)).locale(guild_locale)

    async def tr(self, guild_id: int | None, guild_locale: str | None = None) -> Tr:
        """The `Tr` for the guild's public messages."""
        return for_locale(await self.locale(guild_id, guild_locale))

    async def observe(self, guild_id: int, guild_locale: str | None) -> None:
        """Record the server's Discord language when it is new or changed (one write)."""
        if not guild_locale or self._seen.get(guild_id) == guild_locale:
            return
        stored = await self.settings(guild_id)
        self._seen[guild_id] = guild_locale
        self._changed(guild_id)
        if stored.discord_locale != guild_locale:
            await self._guilds.remember_discord_locale(guild_id, guild_locale)

    async def choose(self, guild_id: int, language: str | None, moderator_id: int) -> AuditEntry:
        """A moderator's choice (None: follow Discord again); audited."""
        if language is not None and language not in locales():
            raise ValueError(f"{language} is not one of the bot's languages")
        entry = await self._guilds.set_language(guild_id, language, moderator_id)
        self._changed(guild_id)
        return entry
