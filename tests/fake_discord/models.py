"""The fake's world: users, guilds, roles, channels, members, messages and attachments.

Everything here is plain data plus ``to_dict`` methods that produce the JSON shapes Discord's
REST API and gateway use (API v10), which is what discord.py parses.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import permissions as perms
from .snowflake import SnowflakeGenerator, iso_timestamp

JSON = dict[str, Any]

DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024
#: Upload limit per boost tier, as Discord (and ``discord.Guild.filesize_limit``) define it.
TIER_FILESIZE_LIMITS = {
    0: DEFAULT_FILESIZE_LIMIT,
    1: DEFAULT_FILESIZE_LIMIT,
    2: 50 * 1024 * 1024,
    3: 100 * 1024 * 1024,
}

# Channel types
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12

# Message flags
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Gateway intents that change what the fake sends
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15


class DiscordAPIError(Exception):
    """An error the fake REST API answers with: ``{"message": ..., "code": ...}``."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def to_dict(self) -> JSON:
        """Return the JSON body Discord sends for this error."""
        body: JSON = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class FakeDiscordError(AssertionError):
    """The test used the fake wrongly, or the bot did something Discord would reject.

    It subclasses AssertionError so that pytest reports it as a test failure.
    """


class CommandValidationError(FakeDiscordError):
    """An invocation does not match the commands the bot synced (Discord would not send it)."""


class AckTimeout(FakeDiscordError):
    """The bot did not acknowledge an interaction in time."""


def form_error(path: str, code: str, message: str) -> DiscordAPIError:
    """Return a 400 Invalid Form Body error (50035) for the field at dotted ``path``."""
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return DiscordAPIError(400, 50035, "Invalid Form Body", errors)


@dataclass(eq=False)
class FakeUser:
    """A Discord user (the bot itself is one too)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    dms_blocked: bool = False

    @property
    def mention(self) -> str:
        """The ``<@id>`` mention string."""
        return f"<@{self.id}>"

    def to_dict(self) -> JSON:
        """Return the user object."""
        data: JSON = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class FakeRole:
    """A guild role. The guild id doubles as the @everyone role id, as on Discord."""

    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 1
    managed: bool = False
    bot_id: int | None = None

    @property
    def mention(self) -> str:
        """The ``<@&id>`` mention string."""
        return f"<@&{self.id}>"

    def to_dict(self) -> JSON:
        """Return the role object."""
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class FakeGuild:
    """A guild with its roles, channels and members."""

    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    upload_limit: int | None = None
    preferred_locale: str = "en-US"
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    joined_at: str = field(default_factory=iso_timestamp)

    @property
    def everyone(self) -> FakeRole:
        """The @everyone role."""
        return self.roles[self.id]

    @property
    def filesize_limit(self) -> int:
        """Bytes allowed per uploaded file: the override, else the boost tier's limit."""
        if self.upload_limit is not None:
            return self.upload_limit
        return TIER_FILESIZE_LIMITS.get(self.premium_tier, DEFAULT_FILESIZE_LIMIT)

    def to_dict(self) -> JSON:
        """Return the guild object as REST ``GET /guilds/{id}`` returns it."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [role.to_dict() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": {0: 0, 1: 2, 2: 7, 3: 14}.get(self.premium_tier, 0),
            "premium_progress_bar_enabled": False,
            "preferred_locale": self.preferred_locale,
            "nsfw_level": 0,
            "max_members": 500000,
            "max_video_channel_users": 25,
        }


@dataclass(eq=False)
class FakeMember:
    """A user's membership of a guild. Its ``personal_role`` carries its permissions."""

    guild: FakeGuild
    user: FakeUser
    roles: list[FakeRole]
    personal_role: FakeRole | None = None
    nick: str | None = None
    joined_at: str = field(default_factory=iso_timestamp)

    @property
    def id(self) -> int:
        """The user id."""
        return self.user.id

    @property
    def mention(self) -> str:
        """The ``<@id>`` mention string."""
        return self.user.mention

    @property
    def permissions(self) -> int:
        """Guild-level permissions: @everyone plus every role (ADMINISTRATOR means all)."""
        value = self.guild.everyone.permissions
        for role in self.roles:
            value |= role.permissions
        if self.guild.owner_id == self.user.id:
            value |= perms.ADMINISTRATOR
        return perms.resolve(value)

    def to_dict(self, *, with_user: bool = True) -> JSON:
        """Return the guild member object."""
        data: JSON = {
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(role.id) for role in self.roles],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.to_dict()
        return data


@dataclass(eq=False)
class FakeChannel:
    """A guild text channel, a thread (``parent`` set) or a DM channel (``recipient`` set)."""

    id: int
    type: int
    name: str
    guild: FakeGuild | None = None
    own_bot_permissions: int = perms.ALL_TEXT
    position: int = 0
    topic: str | None = None
    parent: FakeChannel | None = None
    owner_id: int | None = None
    recipient: FakeUser | None = None
    deleted: bool = False
    last_message_id: int | None = None
    message_count: int = 0

    @property
    def is_thread(self) -> bool:
        """True for threads."""
        return self.type in (PUBLIC_THREAD, PRIVATE_THREAD)

    @property
    def is_dm(self) -> bool:
        """True for DM channels."""
        return self.type == DM

    @property
    def mention(self) -> str:
        """The ``<#id>`` mention string."""
        return f"<#{self.id}>"

    @property
    def bot_permissions(self) -> int:
        """The bot's resolved permissions here (threads use their parent's)."""
        if self.is_dm:
            return perms.ALL_TEXT
        if self.parent is not None:
            return perms.resolve(self.parent.own_bot_permissions)
        return perms.resolve(self.own_bot_permissions)

    def permissions_for(self, member: FakeMember | None) -> int:
        """A member's permissions here (no per-channel overwrites for members are modelled)."""
        if member is None:
            return perms.ALL_TEXT
        return member.permissions

    def to_dict(self, bot_id: int) -> JSON:
        """Return the channel object (with the bot's permission overwrite for guild channels)."""
        data: JSON = {"id": str(self.id), "type": self.type, "flags": 0}
        data["last_message_id"] = (
            str(self.last_message_id) if self.last_message_id is not None else None
        )
        if self.is_dm:
            assert self.recipient is not None
            data["recipients"] = [self.recipient.to_dict()]
            return data
        assert self.guild is not None
        data.update(
            guild_id=str(self.guild.id),
            name=self.name,
            rate_limit_per_user=0,
            nsfw=False,
        )
        if self.is_thread:
            assert self.parent is not None
            data.update(
                parent_id=str(self.parent.id),
                owner_id=str(self.owner_id or bot_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=1,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": iso_timestamp(),
                    "locked": False,
                    "create_timestamp": iso_timestamp(),
                },
            )
            return data
        own = self.own_bot_permissions
        data.update(
            position=self.position,
            topic=self.topic,
            parent_id=None,
            default_thread_rate_limit_per_user=0,
            # discord.py computes channel.permissions_for(guild.me) from roles and overwrites;
            # a member overwrite that allows exactly ``own`` makes its answer match ours.
            permission_overwrites=[
                {
                    "id": str(bot_id),
                    "type": 1,
                    "allow": str(own),
                    "deny": str(perms.ALL & ~own),
                }
            ],
        )
        return data


@dataclass(eq=False)
class FakeAttachment:
    """A file stored on the fake's CDN (uploaded by the bot or made by the test)."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    width: int | None = None
    height: int | None = None
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def to_dict(self) -> JSON:
        """Return the attachment object."""
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass(eq=False)
class StoredMessage:
    """A message and where it lives. ``data`` is the REST message object."""

    id: int
    channel: FakeChannel
    data: JSON
    ephemeral: bool = False
    deleted: bool = False
    interaction_id: int | None = None


_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")


class FakeState:
    """All mutable state of one fake Discord, plus a change notifier for waiting."""

    def __init__(self, *, token: str, bot_name: str = "HappyHorse") -> None:
        self.token = token
        self.snowflakes = SnowflakeGenerator()
        self.application_id = self.snowflakes.next()
        self.bot = FakeUser(self.application_id, bot_name, None, bot=True)
        self.owner = FakeUser(self.snowflakes.next(), "app-owner")
        self.users: dict[int, FakeUser] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, StoredMessage] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.dm_channels: dict[int, FakeChannel] = {}
        #: Synced commands: key None for global, else the guild id -> {command id: command}.
        self.commands: dict[int | None, dict[int, JSON]] = {}
        self.command_ids: dict[tuple[int | None, str, int], int] = {}
        self.sync_count = 0
        self.base_url = ""
        self._waiters: list[asyncio.Future[None]] = []

    # -- waiting -------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every ``wait_until`` so it re-checks its condition."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``condition()`` is truthy; return it. FakeDiscordError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FakeDiscordError(f"timed out after {timeout:.1f}s waiting for {what}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            # Wake on changes to the fake, and poll too: conditions may look at the bot.
            try:
                await asyncio.wait_for(waiter, min(remaining, 0.05))
            except TimeoutError:
                continue

    # -- lookups -------------------------------------------------------------------------

    def new_id(self) -> int:
        """Return a fresh snowflake."""
        return self.snowflakes.next()

    def get_channel(self, channel_id: int | str) -> FakeChannel:
        """The live channel, or 404 Unknown Channel (10003)."""
        try:
            channel = self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10003, "Unknown Channel") from None
        if channel.deleted or (channel.parent is not None and channel.parent.deleted):
            raise DiscordAPIError(404, 10003, "Unknown Channel")
        return channel

    def get_guild(self, guild_id: int | str) -> FakeGuild:
        """The guild, or 404 Unknown Guild (10004)."""
        try:
            return self.guilds[int(guild_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10004, "Unknown Guild") from None

    def get_message(self, channel: FakeChannel, message_id: int | str) -> StoredMessage:
        """The message in ``channel``, or 404 Unknown Message (10008)."""
        try:
            stored = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10008, "Unknown Message") from None
        if stored.deleted or stored.channel is not channel:
            raise DiscordAPIError(404, 10008, "Unknown Message")
        return stored

    def member(self, guild: FakeGuild | None, user: FakeUser) -> FakeMember | None:
        """The user's membership of ``guild`` (None outside guilds)."""
        if guild is None:
            return None
        return guild.members.get(user.id)

    # -- attachments ---------------------------------------------------------------------

    def store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        content_type: str | None,
        *,
        width: int | None = None,
        height: int | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> FakeAttachment:
        """Store bytes on the CDN and return the attachment with a signed-looking URL."""
        attachment_id = self.new_id()
        issued = int(time.time())
        expires = issued + 24 * 3600
        digest = hashlib.sha256(f"{attachment_id}:{expires}".encode()).hexdigest()
        query = f"ex={expires:x}&is={issued:x}&hm={digest}&"
        path = f"/attachments/{channel_id}/{attachment_id}/{filename}"
        attachment = FakeAttachment(
            id=attachment_id,
            filename=filename,
            data=data,
            content_type=content_type,
            url=f"{self.base_url}{path}?{query}",
            proxy_url=f"{self.base_url}/media{path}?{query}",
            width=width,
            height=height,
            description=description,
            ephemeral=ephemeral,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    # -- messages ------------------------------------------------------------------------

    def mentions_for(
        self, channel: FakeChannel, content: str, allowed: JSON | None
    ) -> tuple[list[JSON], list[str], bool]:
        """Return (mentions, mention_roles, mention_everyone) honouring ``allowed_mentions``."""
        parse: list[str] = ["users", "roles", "everyone"]
        users_allowed: list[str] = []
        roles_allowed: list[str] = []
        if allowed is not None:
            parse = list(allowed.get("parse", []))
            users_allowed = [str(u) for u in allowed.get("users", [])]
            roles_allowed = [str(r) for r in allowed.get("roles", [])]
        mentions: list[JSON] = []
        seen: set[int] = set()
        for match in _MENTION_RE.finditer(content):
            user_id = int(match.group(1))
            if user_id in seen or user_id not in self.users:
                continue
            if "users" in parse or str(user_id) in users_allowed:
                seen.add(user_id)
                user_data = self.users[user_id].to_dict()
                member = self.member(channel.guild, self.users[user_id])
                if member is not None:
                    user_data["member"] = member.to_dict(with_user=False)
                mentions.append(user_data)
        roles: list[str] = []
        for match in _ROLE_MENTION_RE.finditer(content):
            role_id = match.group(1)
            if ("roles" in parse or role_id in roles_allowed) and role_id not in roles:
                roles.append(role_id)
        everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
        return mentions, roles, everyone

    def new_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        *,
        content: str = "",
        attachments: list[FakeAttachment] | None = None,
        embeds: list[JSON] | None = None,
        components: list[JSON] | None = None,
        flags: int = 0,
        nonce: str | int | None = None,
        allowed_mentions: JSON | None = None,
        message_type: int = 0,
        extra: JSON | None = None,
        ephemeral: bool = False,
        interaction_id: int | None = None,
        message_reference: JSON | None = None,
    ) -> StoredMessage:
        """Create, store and return a message (no gateway dispatch: the caller does that)."""
        message_id = self.new_id()
        mentions, mention_roles, everyone = self.mentions_for(channel, content, allowed_mentions)
        data: JSON = {
            "id": str(message_id),
            "type": message_type,
            "content": content,
            "channel_id": str(channel.id),
            "author": author.to_dict(),
            "attachments": [a.to_dict() for a in attachments or []],
            "embeds": copy.deepcopy(embeds or []),
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": everyone,
            "pinned": False,
            "tts": False,
            "timestamp": iso_timestamp(),
            "edited_timestamp": None,
            "flags": flags,
            "components": copy.deepcopy(components or []),
        }
        if nonce is not None:
            data["nonce"] = nonce
        if channel.is_thread:
            data["position"] = channel.message_count
        if message_reference is not None:
            data["message_reference"] = message_reference
        if extra:
            data.update(extra)
        stored = StoredMessage(
            message_id, channel, data, ephemeral=ephemeral, interaction_id=interaction_id
        )
        self.messages[message_id] = stored
        if not ephemeral:
            self.channel_messages.setdefault(channel.id, []).append(message_id)
            channel.last_message_id = message_id
            channel.message_count += 1
        self.notify()
        return stored

    def visible_messages(self, channel: FakeChannel) -> list[StoredMessage]:
        """Non-deleted, non-ephemeral messages in ``channel``, oldest first."""
        result = []
        for message_id in self.channel_messages.get(channel.id, []):
            stored = self.messages[message_id]
            if not stored.deleted:
                result.append(stored)
        return result

    def gateway_message(self, stored: StoredMessage) -> JSON:
        """The MESSAGE_CREATE/UPDATE payload: the REST object plus guild_id and member."""
        data = copy.deepcopy(stored.data)
        guild = stored.channel.guild
        if guild is not None:
            data["guild_id"] = str(guild.id)
            author_id = int(data["author"]["id"])
            member = guild.members.get(author_id)
            if member is not None and "webhook_id" not in data:
                data["member"] = member.to_dict(with_user=False)
        return data


def strip_content(data: JSON, bot_id: int, intents: int) -> JSON:
    """Blank content like Discord does without the MESSAGE_CONTENT intent.

    Messages in DMs, by the bot, or mentioning the bot keep their content.
    """
    if intents & INTENT_MESSAGE_CONTENT:
        return data
    if "guild_id" not in data or data.get("author", {}).get("id") == str(bot_id):
        return data
    if any(user.get("id") == str(bot_id) for user in data.get("mentions", [])):
        return data
    stripped = dict(data)
    stripped.update(content="", embeds=[], attachments=[], components=[])
    return stripped
