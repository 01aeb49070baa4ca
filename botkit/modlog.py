"""The moderator log channel: a sink that posts `core.modlog` events as compact embeds.

`bot.modlog.post(guild_id, event)` never waits and never raises: the event is queued and
one owned worker (started and cancelled with `cogs.modlog`) posts it in the guild's log
channel, with every mention neutralised. A post that fails is logged and remembered, so
`/config show` can say the bot cannot post there; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from botkit.permissions import channel_bot_permissions, may_send
from core.i18n import ENGLISH, Tr, _
from core.languages import GuildLanguages
from core.modlog import LogEvent, LogKind
from storage.store import GuildSettingsStore

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
_COLOURS = {
    LogKind.ACCEPTED: discord.Colour.blurple(),
    LogKind.FAILED: discord.Colour.red(),
    LogKind.REFUNDED: discord.Colour.orange(),
    LogKind.CANCELLED: discord.Colour.light_grey(),
    LogKind.MODERATOR: discord.Colour.gold(),
}
_ICONS = {
    LogKind.ACCEPTED: "🎬",
    LogKind.FAILED: "❌",
    LogKind.REFUNDED: "↩️",
    LogKind.CANCELLED: "⏹️",
    LogKind.MODERATOR: "🛠️",
}


NO_CHANNEL = _("the channel no longer exists")
REFUSED = _("Discord refused my post there (missing permissions)")


def log_embed(event: LogEvent, tr: Tr = ENGLISH) -> discord.Embed:
    """The compact embed for one log event, in ``tr``'s language (the server's)."""
    embed = discord.Embed(
        title=f"{_ICONS[event.kind]} {tr(event.title)}"[:256],
        description=tr(event.text)[:1000] or None,
        colour=_COLOURS[event.kind],
        timestamp=discord.utils.utcnow(),
    )
    for name, value in event.fields[:10]:
        embed.add_field(name=tr(name)[:256], value=tr(value)[:1024] or "—", inline=True)
    if event.link:
        embed.add_field(
            name=tr._("Link"), value=tr._("[Open]({url})", url=event.link), inline=True
        )
    return embed


def missing_log_permissions(channel: object) -> list[str]:
    """Permissions the bot lacks to post log embeds in a cached channel (empty if unknown)."""
    perms = channel_bot_permissions(channel)
    if perms is None:
        return []
    needed = {
        "View Channel": perms.view_channel,
        "Send Messages": may_send(channel, perms),
        "Embed Links": perms.embed_links,
    }
    return [name for name, granted in needed.items() if not granted]


class ModLog:
    """The log sink every part of the bot posts to (see the module docstring).

    Per process: each process posts the events it produced itself; the problems it
    remembers are those of its own posts (one entry per guild at most).
    """

    def __init__(
        self,
        client: discord.Client,
        guilds: GuildSettingsStore,
        *,
        languages: GuildLanguages | None = None,
    ) -> None:
        """Post through ``client`` to the log channels in ``guilds``' settings, in each
        server's language (``languages``; English without it)."""
        self._client = client
        self._languages = languages
        self._guilds = guilds
        self._queue: asyncio.Queue[tuple[int, LogEvent]] = asyncio.Queue(QUEUE_LIMIT)
        self._problems: dict[int, str] = {}

    def post(self, guild_id: int, event: LogEvent) -> None:
        """Queue an event for the guild's log channel; returns at once, never raises."""
        try:
            self._queue.put_nowait((guild_id, event))
        except asyncio.QueueFull:
            log.warning(
                "Moderator log queue is full; dropped %r for guild %s", event.title, guild_id
            )

    def problem(self, guild_id: int) -> str | None:
        """Why the last post to the guild's log channel failed, if it did (said in the
        reader's language with ``tr(problem)``)."""
        return self._problems.get(guild_id)

    async def wait_idle(self) -> None:
        """Wait until every queued event was posted or given up on."""
        await self._queue.join()

    async def run(self) -> None:
        """Post queued events one by one, for ever; a failing post never stops the worker."""
        while True:
            guild_id, event = await self._queue.get()
            try:
                await self._send(guild_id, event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Posting to the moderator log of guild %s failed", guild_id)
            finally:
                self._queue.task_done()

    async def _send(self, guild_id: int, event: LogEvent) -> None:
        settings = await self._guilds.get(guild_id)
        channel_id = settings.log_channel_id
        if channel_id is None:
            return
        channel = self._client.get_channel(channel_id)
        target: discord.abc.Messageable
        if isinstance(channel, discord.abc.Messageable):
            target = channel
            missing = missing_log_permissions(channel)
            if missing:
                self._problems[guild_id] = _(
                    "I am missing {permissions} there", permissions=", ".join(missing)
                )
                return
        else:
            target = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        tr = ENGLISH if self._languages is None else await self._languages.tr(guild_id)
        try:
            await target.send(
                embed=log_embed(event, tr), allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.NotFound:
            self._problems[guild_id] = NO_CHANNEL
        except discord.Forbidden:
            self._problems[guild_id] = REFUSED
        except discord.HTTPException as exc:
            self._problems[guild_id] = _(
                "Discord refused my post (HTTP {status})", status=exc.status
            )
        else:
            self._problems.pop(guild_id, None)

    def forget_problem(self, guild_id: int) -> None:
        """Forget a past failure (the log channel was changed)."""
        self._problems.pop(guild_id, None)
