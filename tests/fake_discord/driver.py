"""The test-facing API: build a world, start the fake, drive the bot, inspect what it did."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import yarl
from aiohttp import web

from . import permissions as perms
from .commands import (
    MESSAGE,
    USER,
    build_chat_input_data,
    build_context_menu_data,
    build_modal_submit_components,
    find_component,
)
from .gateway import Gateway, shard_for
from .interactions import (
    APPLICATION_COMMAND,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionRecord,
    build_payload,
)
from .models import (
    GUILD_TEXT,
    JSON,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    FakeAttachment,
    FakeChannel,
    FakeDiscordError,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeState,
    FakeUser,
    StoredMessage,
)
from .openapi import SpecViolation
from .server import API_PREFIX, FakeServer, HeldResponse, InjectedFailure, RecordedRequest

Person = FakeUser | FakeMember
MessageRef = Mapping[str, Any] | int | str


class DiscordPyPatch:
    """Points discord.py's REST base and default gateway at the fake; undone by ``undo()``.

    Applied as soon as it is created, so both ``fake.patch_discord_py()`` and
    ``with fake.patch_discord_py(): ...`` work.
    """

    def __init__(self, api_base: str, gateway_url: str) -> None:
        import discord.gateway
        import discord.http

        self._route = discord.http.Route
        self._ws = discord.gateway.DiscordWebSocket
        self._saved = (self._route.BASE, self._ws.DEFAULT_GATEWAY)
        self._route.BASE = api_base
        self._ws.DEFAULT_GATEWAY = yarl.URL(gateway_url)
        self.active = True

    def undo(self) -> None:
        """Restore discord.py's real URLs."""
        if self.active:
            self._route.BASE, self._ws.DEFAULT_GATEWAY = self._saved
            self.active = False

    def __enter__(self) -> DiscordPyPatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.undo()


class FakeDiscord:
    """A local Discord (REST + gateway + CDN) that real discord.py connects to.

    Use ``async with FakeDiscord() as fake:``; build guilds, channels and members with the
    ``add_*`` methods (before or after the bot connects: later changes are sent over the
    gateway), then drive the bot with ``invoke_slash``, ``click_button``, ``submit_modal``
    and ``post_user_message`` and inspect the results.
    """

    def __init__(
        self,
        token: str = "fake-token",
        *,
        bot_name: str = "HappyHorse",
        ack_deadline: float = 3.0,
        token_lifetime: float = 15 * 60,
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.token = token
        #: Seconds the bot has to acknowledge an interaction (Discord: 3).
        self.ack_deadline = ack_deadline
        #: Seconds an interaction token works, from the interaction's creation (Discord: 900).
        self.token_lifetime = token_lifetime
        self.state = FakeState(token=token, bot_name=bot_name)
        self.gateway = Gateway(self.state, heartbeat_interval_ms=heartbeat_interval_ms)
        self.server = FakeServer(self.state, self.gateway)
        self._runner: web.AppRunner | None = None
        self._patches: list[DiscordPyPatch] = []
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the server on 127.0.0.1 and an ephemeral port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.server.app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://127.0.0.1:{port}"
        self.state.base_url = self.base_url
        self.gateway.url = f"ws://127.0.0.1:{port}/ws"

    async def close(self) -> None:
        """Close gateway sockets, stop the server and undo discord.py patches."""
        for patch in reversed(self._patches):
            patch.undo()
        for hold in self.server.holds:
            hold.release()
        if self.gateway.hold is not None:
            self.gateway.hold.set()
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def api_base(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:PORT/api/v10`` (for ``Route.BASE``)."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """Gateway websocket URL, e.g. ``ws://127.0.0.1:PORT/ws``."""
        return self.gateway.url

    @property
    def application_id(self) -> int:
        """The bot's application id (equal to its user id, as for most bots)."""
        return self.state.application_id

    @property
    def bot_user(self) -> FakeUser:
        """The bot's user."""
        return self.state.bot

    def env(self) -> dict[str, str]:
        """Environment for an out-of-process bot: token, API base and gateway URL."""
        return {
            "DISCORD_TOKEN": self.token,
            "DISCORD_API_BASE_URL": self.api_base,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    def patch_discord_py(self) -> DiscordPyPatch:
        """Point this process's discord.py at the fake (undone on exit or at ``close``)."""
        patch = DiscordPyPatch(self.api_base, self.gateway_url)
        self._patches.append(patch)
        return patch

    # -- building the world ----------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False, global_name: str | None = None) -> FakeUser:
        """Create a user (not yet in any guild)."""
        user = FakeUser(self.state.new_id(), name, global_name, bot=bot)
        self.state.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        premium_tier: int = 0,
        filesize_limit: int | None = None,
        *,
        bot_permissions: int = perms.ALL_TEXT,
        everyone_permissions: int = perms.DEFAULT_MEMBER,
        locale: str = "en-US",
        guild_id: int | None = None,
    ) -> FakeGuild:
        """Create a guild the bot is in (with a fresh id unless ``guild_id`` is given).

        ``filesize_limit`` overrides the per-file upload limit the fake enforces; by default it
        follows ``premium_tier`` exactly as ``discord.Guild.filesize_limit`` does (10 MiB
        for tiers 0-1, 50 MiB for 2, 100 MiB for 3). ``bot_permissions`` are the bot's
        guild-level role permissions; per-channel permissions come from the channels.
        """
        state = self.state
        owner = self.add_user(f"{name}-owner")
        guild = FakeGuild(
            guild_id if guild_id is not None else state.new_id(),
            name,
            owner.id,
            premium_tier=premium_tier,
            upload_limit=filesize_limit,
            preferred_locale=locale,
        )
        guild.roles[guild.id] = FakeRole(guild.id, guild.id, "@everyone", everyone_permissions, 0)
        bot_role = FakeRole(
            state.new_id(), guild.id, state.bot.username, bot_permissions, 1, True, state.bot.id
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[state.bot.id] = FakeMember(guild, state.bot, [bot_role])
        guild.members[owner.id] = FakeMember(guild, owner, [])
        state.guilds[guild.id] = guild
        session = self.gateway.session_for(guild.id)
        if session is not None:
            self.gateway.dispatch("GUILD_CREATE", self.gateway.guild_create(guild, session.intents))
        return guild

    def add_guild_on_shard(self, name: str, shard_id: int, shard_count: int) -> FakeGuild:
        """Create a guild whose events go to ``shard_id`` of ``shard_count`` shards.

        The shard follows from the id's millisecond timestamp, so the id is stamped up to
        ``shard_count - 1`` ms ahead until it lands on the shard.
        """
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} does not exist among {shard_count}")
        now = time.time()
        for ahead_ms in range(2 * shard_count):
            candidate = self.state.snowflakes.next(now + ahead_ms / 1000)
            if shard_for(candidate, shard_count) == shard_id:
                return self.add_guild(name, guild_id=candidate)
        raise FakeDiscordError(f"could not make a guild id for shard {shard_id}")

    def add_role(self, guild: FakeGuild, name: str, permissions: int = 0) -> FakeRole:
        """Create a role in ``guild``."""
        role = FakeRole(self.state.new_id(), guild.id, name, permissions, len(guild.roles))
        guild.roles[role.id] = role
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.to_dict()}
        )
        return role

    def add_text_channel(
        self,
        guild: FakeGuild,
        name: str,
        bot_permissions: int = perms.ALL_TEXT,
        *,
        topic: str | None = None,
    ) -> FakeChannel:
        """Create a text channel in which the bot has exactly ``bot_permissions``."""
        channel = FakeChannel(
            self.state.new_id(),
            GUILD_TEXT,
            name,
            guild,
            bot_permissions,
            position=len(guild.channels),
            topic=topic,
        )
        guild.channels[channel.id] = channel
        self.state.channels[channel.id] = channel
        self.gateway.dispatch("CHANNEL_CREATE", channel.to_dict(self.state.bot.id))
        return channel

    def add_thread(
        self, channel: FakeChannel, name: str, *, private: bool = False, owner: Person | None = None
    ) -> FakeChannel:
        """Create an active thread in ``channel`` (the bot's permissions come from the parent)."""
        assert channel.guild is not None, "threads live in guild channels"
        thread = FakeChannel(
            self.state.new_id(),
            PRIVATE_THREAD if private else PUBLIC_THREAD,
            name,
            channel.guild,
            parent=channel,
            owner_id=_user(owner).id if owner is not None else self.state.bot.id,
        )
        channel.guild.channels[thread.id] = thread
        self.state.channels[thread.id] = thread
        data = thread.to_dict(self.state.bot.id)
        data["newly_created"] = True
        self.gateway.dispatch("THREAD_CREATE", data)
        return thread

    def add_member(
        self,
        guild: FakeGuild,
        name: str | FakeUser,
        permissions: int = perms.DEFAULT_MEMBER,
        *,
        roles: Iterable[FakeRole] = (),
        nick: str | None = None,
    ) -> FakeMember:
        """Add a member (a new user, or an existing ``FakeUser``) with guild ``permissions``.

        The permissions live on a personal role, so ``discord.Member.guild_permissions``
        agrees with ``Interaction.permissions``.
        """
        user = name if isinstance(name, FakeUser) else self.add_user(name)
        personal = FakeRole(self.state.new_id(), guild.id, f"{user.username}-perms", permissions, 1)
        guild.roles[personal.id] = personal
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": personal.to_dict()}
        )
        member = FakeMember(guild, user, [personal, *roles], personal, nick)
        guild.members[user.id] = member
        data = member.to_dict()
        data["guild_id"] = str(guild.id)
        self.gateway.dispatch("GUILD_MEMBER_ADD", data)
        return member

    def set_member_permissions(self, member: FakeMember, permissions: int) -> None:
        """Change a member's guild permissions."""
        role = member.personal_role
        assert role is not None, "members made by add_member have a personal role"
        role.permissions = permissions
        self.gateway.dispatch(
            "GUILD_ROLE_UPDATE", {"guild_id": str(member.guild.id), "role": role.to_dict()}
        )

    def set_bot_permissions(self, channel: FakeChannel, permissions: int) -> None:
        """Set the bot's permissions in a channel (threads follow their parent)."""
        target = channel.parent or channel
        target.own_bot_permissions = permissions
        self.gateway.dispatch("CHANNEL_UPDATE", target.to_dict(self.state.bot.id))

    def set_upload_limit(self, guild: FakeGuild, limit: int | None) -> None:
        """Override the per-file upload limit (None: back to the boost tier's limit).

        ``discord.Guild.filesize_limit`` follows the tier only, so a custom value here is
        not what the bot reads there; use :meth:`set_premium_tier` for a consistent limit.
        """
        guild.upload_limit = limit

    def set_premium_tier(self, guild: FakeGuild, tier: int) -> None:
        """Change the boost tier (and so the default upload limit); sends GUILD_UPDATE."""
        guild.premium_tier = tier
        self.gateway.dispatch("GUILD_UPDATE", guild.to_dict())

    def delete_channel(self, channel: FakeChannel) -> None:
        """Delete a channel: later REST calls for it get 404 Unknown Channel (10003)."""
        channel.deleted = True
        event = "THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE"
        self.gateway.dispatch(event, channel.to_dict(self.state.bot.id))

    def block_dms(self, user: Person, blocked: bool = True) -> None:
        """Make DMs to ``user`` fail with 403 Cannot send messages to this user (50007)."""
        _user(user).dms_blocked = blocked

    def attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
    ) -> FakeAttachment:
        """Put a file on the fake CDN, for command options and user messages."""
        return self.state.store_attachment(
            0, filename, data, content_type, width=width, height=height
        )

    # -- failure injection -----------------------------------------------------------------

    def rate_limit(
        self,
        method: str,
        path_regex: str,
        count: int = 1,
        retry_after: float = 0.2,
        *,
        is_global: bool = False,
    ) -> InjectedFailure:
        """Answer the next ``count`` matching requests with Discord's 429.

        ``path_regex`` is searched in the path after ``/api/v10``, e.g.
        ``r"^/channels/\\d+/messages/\\d+$"``; ``method`` may be ``"*"``. discord.py sleeps
        ``retry_after`` and retries (it needs the ``Via`` header Cloudflare adds; sent here).
        """
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fake" + format(abs(hash((method, path_regex))), "x"),
            "X-RateLimit-Scope": "global" if is_global else "user",
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        return self._inject(method, path_regex, count, 429, body, headers)

    def fail_requests(
        self,
        method: str,
        path_regex: str,
        status: int,
        code: int,
        message: str,
        count: int = 1,
    ) -> InjectedFailure:
        """Answer the next ``count`` matching requests with ``{"code": code, ...}``."""
        return self._inject(
            method, path_regex, count, status, {"message": message, "code": code}, {}
        )

    def hold_responses(
        self, method: str, path_regex: str, seconds: float = 10.0, count: int = 1
    ) -> HeldResponse:
        """Act on the next ``count`` matching requests but hold their responses.

        The request is handled and recorded (its ``status`` set, so ``wait_for_request``
        sees it) and only then is the answer delayed by up to ``seconds``, or until
        ``rule.release()``: the client is left not knowing that, say, its message was
        created. Use it to crash a bot between a request's effect and its answer.
        """
        rule = HeldResponse(method.upper(), re.compile(path_regex), count, seconds)
        self.server.holds.append(rule)
        return rule

    def _inject(
        self,
        method: str,
        path_regex: str,
        count: int,
        status: int,
        body: JSON,
        headers: dict[str, str],
    ) -> InjectedFailure:
        rule = InjectedFailure(method.upper(), re.compile(path_regex), count, status, body, headers)
        self.server.failures.append(rule)
        return rule

    # -- gateway control -------------------------------------------------------------------

    async def wait_until_connected(
        self, timeout: float = 10.0, *, require_sync: bool = True
    ) -> None:
        """Wait until the bot has identified (READY and GUILD_CREATEs sent) and, unless
        ``require_sync`` is False, synced its application commands at least once."""

        def ready() -> bool:
            session = self.gateway.session
            connected = session is not None and session.connection is not None
            return connected and (not require_sync or self.state.sync_count > 0)

        await self.state.wait_until(ready, timeout, "the bot to identify and sync commands")

    async def disconnect_gateway(self, code: int = 4000, *, resumable: bool = True) -> None:
        """Close the bot's gateway socket. With a resumable session discord.py reconnects
        to ``resume_gateway_url`` and sends RESUME; missed events are replayed."""
        await self.gateway.disconnect(code, resumable=resumable)

    @contextlib.asynccontextmanager
    async def gateway_gap(self, code: int = 4000, timeout: float = 10.0) -> AsyncIterator[None]:
        """Disconnect the bot and keep it out while the block runs; then let it resume.

        Events dispatched inside the block are certain to go through RESUME's replay.
        """
        resumes = self.gateway.resume_count
        self.gateway.hold = asyncio.Event()
        try:
            await self.gateway.disconnect(code)
            yield
        finally:
            self.gateway.hold.set()
            self.gateway.hold = None
        await self.wait_for_resume(count=resumes + 1, timeout=timeout)

    async def wait_for_resume(self, timeout: float = 10.0, *, count: int = 1) -> None:
        """Wait until the bot has resumed ``count`` times in all."""

        def resumed() -> bool:
            session = self.gateway.session
            return (
                self.gateway.resume_count >= count
                and session is not None
                and session.connection is not None
            )

        await self.state.wait_until(resumed, timeout, f"gateway resume #{count}")

    async def wait_for(
        self, condition: Callable[[], Any], timeout: float = 15.0, what: str = "a condition"
    ) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every change and every 50 ms)
        and return its value; raises :class:`FakeDiscordError` on timeout."""
        return await self.state.wait_until(condition, timeout, what)

    def dispatch(self, event: str, data: JSON) -> int | None:
        """Send a raw gateway event to the bot; returns its sequence number."""
        return self.gateway.dispatch(event, data)

    # -- interactions ----------------------------------------------------------------------

    @property
    def interactions(self) -> list[InteractionRecord]:
        """Every interaction sent so far, oldest first."""
        return list(self.server.interactions.values())

    def commands(self, guild: FakeGuild | None = None) -> list[JSON]:
        """Commands the bot synced (global if ``guild`` is None)."""
        scope = None if guild is None else guild.id
        return copy.deepcopy(list(self.state.commands.get(scope, {}).values()))

    def _dispatch_interaction(
        self,
        kind: int,
        data: JSON,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: FakeUser,
        *,
        message: JSON | None = None,
        source_message_id: int | None = None,
        parent: InteractionRecord | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        if self.gateway.session is None:
            raise FakeDiscordError("the bot has not identified on the gateway")
        if self.gateway.session_for(guild.id if guild is not None else None) is None:
            raise FakeDiscordError("no gateway session holds the shard of this interaction")
        if channel.deleted:
            raise FakeDiscordError(f"channel {channel.name} was deleted")
        if guild is not None and user.id not in guild.members:
            raise FakeDiscordError(f"{user.username} is not a member of {guild.name}")
        interaction_id = self.state.new_id()
        payload = build_payload(
            self.state,
            interaction_id=interaction_id,
            kind=kind,
            data=data,
            guild=guild,
            channel=channel,
            user=user,
            message=message,
            locale=locale,
        )
        record = InteractionRecord(
            self.state,
            interaction_id=interaction_id,
            kind=kind,
            payload=payload,
            guild=guild,
            channel=channel,
            user=user,
            ack_deadline=self.ack_deadline,
            token_lifetime=self.token_lifetime,
            source_message_id=source_message_id,
            parent=parent,
        )
        self.server.interactions[interaction_id] = record
        self.server.by_token[record.token] = record
        self.gateway.dispatch("INTERACTION_CREATE", copy.deepcopy(payload))
        return record

    async def invoke_slash(
        self,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: Person,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Sequence[FakeAttachment] = (),
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionRecord:
        """Invoke ``/command`` (``"group sub"`` for subcommands) as ``user``.

        ``options`` maps option names to values: str/int/float/bool, FakeMember/FakeUser,
        FakeChannel, FakeRole or FakeAttachment. ``attachments`` fill the command's attachment
        options not named in ``options``, in declaration order. Anything Discord's client
        would refuse (unknown command or option, bad choice, missing required option, out of
        range) raises :class:`CommandValidationError`. ``validate=False`` sends such values
        anyway (bad choices, out-of-range numbers, over-long strings, missing required options),
        as a misbehaving client could, to test the bot's own run-time checks; the command,
        option names and value types must still be right.
        """
        data = build_chat_input_data(
            self.state, guild, command, options or {}, attachments, validate=validate
        )
        return self._dispatch_interaction(
            APPLICATION_COMMAND, data, guild, channel, _user(user), locale=locale
        )

    async def invoke_message_command(
        self,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: Person,
        name: str,
        target_message: MessageRef,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Invoke the message context-menu command ``name`` on ``target_message``, as a
        member whose Discord language is ``locale``."""
        target = self._stored(target_message)
        data = build_context_menu_data(self.state, guild, name, MESSAGE, target.data)
        return self._dispatch_interaction(
            APPLICATION_COMMAND, data, guild, channel, _user(user), locale=locale
        )

    async def invoke_user_command(
        self,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: Person,
        name: str,
        target: Person,
    ) -> InteractionRecord:
        """Invoke the user context-menu command ``name`` on ``target``."""
        data = build_context_menu_data(self.state, guild, name, USER, target)
        return self._dispatch_interaction(APPLICATION_COMMAND, data, guild, channel, _user(user))

    async def click_button(
        self, message: MessageRef, custom_id: str, user: Person, *, locale: str = "en-US"
    ) -> InteractionRecord:
        """Click the button ``custom_id`` on ``message`` (its current version) as ``user``,
        whose Discord client is in ``locale``."""
        return self._component(message, custom_id, user, None, locale=locale)

    async def select_options(
        self, message: MessageRef, custom_id: str, user: Person, values: Sequence[str]
    ) -> InteractionRecord:
        """Choose ``values`` in the select menu ``custom_id`` on ``message``."""
        return self._component(message, custom_id, user, list(values))

    def _component(
        self,
        message: MessageRef,
        custom_id: str,
        user: Person,
        values: list[str] | None,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        stored = self._stored(message)
        component = find_component(stored.data.get("components", []), custom_id)
        if component is None:
            raise FakeDiscordError(f"message {stored.id} has no component {custom_id!r}")
        if component.get("disabled"):
            raise FakeDiscordError(f"component {custom_id!r} is disabled")
        if stored.ephemeral and stored.interaction_id is not None:
            owner = self.server.interactions[stored.interaction_id].user
            if owner.id != _user(user).id:
                raise FakeDiscordError("only the invoker can see an ephemeral message")
        data: JSON = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] == 2:
            if values is not None:
                raise FakeDiscordError(f"{custom_id!r} is a button, not a select")
            if component.get("style") == 5 or "url" in component:
                raise FakeDiscordError(f"{custom_id!r} is a link button")
        else:
            if values is None:
                raise FakeDiscordError(f"{custom_id!r} is a select: use select_options")
            data["values"] = values
        channel = stored.channel
        return self._dispatch_interaction(
            MESSAGE_COMPONENT,
            data,
            channel.guild,
            channel,
            _user(user),
            message=copy.deepcopy(stored.data),
            source_message_id=stored.id,
            locale=locale,
        )

    async def submit_modal(
        self,
        interaction: InteractionRecord,
        values: Mapping[str, Any],
        *,
        user: Person | None = None,
    ) -> InteractionRecord:
        """Submit the modal ``interaction`` answered with, filling ``{custom_id: value}``
        (in the Discord language of the interaction that opened it, as Discord sends it)."""
        if interaction.modal is None:
            raise FakeDiscordError(f"interaction {interaction.id} was not answered with a modal")
        components = build_modal_submit_components(interaction.modal, values)
        data: JSON = {"custom_id": interaction.modal["custom_id"], "components": components}
        message = None
        if interaction.source_message_id is not None:
            stored = self.state.messages.get(interaction.source_message_id)
            message = copy.deepcopy(stored.data) if stored is not None else None
        return self._dispatch_interaction(
            MODAL_SUBMIT,
            data,
            interaction.guild,
            interaction.channel,
            _user(user) if user is not None else interaction.user,
            message=message,
            source_message_id=interaction.source_message_id,
            parent=interaction,
            locale=str(interaction.payload.get("locale") or "en-US"),
        )

    # -- user messages ---------------------------------------------------------------------

    def post_user_message(
        self,
        channel: FakeChannel,
        user: Person,
        content: str = "",
        *,
        attachments: Sequence[FakeAttachment] = (),
        embeds: list[JSON] | None = None,
        reply_to: MessageRef | None = None,
    ) -> JSON:
        """Post a message as ``user`` and dispatch MESSAGE_CREATE; return the message."""
        author = _user(user)
        if channel.deleted:
            raise FakeDiscordError(f"channel {channel.name} was deleted")
        if channel.guild is not None and author.id not in channel.guild.members:
            raise FakeDiscordError(f"{author.username} is not a member of {channel.guild.name}")
        reference = None
        if reply_to is not None:
            target = self._stored(reply_to)
            reference = {
                "type": 0,
                "message_id": str(target.id),
                "channel_id": str(target.channel.id),
            }
        stored = self.state.new_message(
            channel,
            author,
            content=content,
            attachments=list(attachments),
            embeds=embeds,
            message_type=19 if reference else 0,
            message_reference=reference,
        )
        self.gateway.dispatch("MESSAGE_CREATE", self.state.gateway_message(stored))
        return copy.deepcopy(stored.data)

    def edit_user_message(self, message: MessageRef, content: str) -> JSON:
        """Edit a message's content (as its author) and dispatch MESSAGE_UPDATE."""
        stored = self._stored(message)
        stored.data["content"] = content
        stored.data["edited_timestamp"] = time.strftime(
            "%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime()
        )
        self.gateway.dispatch("MESSAGE_UPDATE", self.state.gateway_message(stored))
        self.state.notify()
        return copy.deepcopy(stored.data)

    def delete_message(self, message: MessageRef) -> None:
        """Delete a message (as a moderator would) and dispatch MESSAGE_DELETE."""
        stored = self._stored(message)
        stored.deleted = True
        data: JSON = {"id": str(stored.id), "channel_id": str(stored.channel.id)}
        if stored.channel.guild is not None:
            data["guild_id"] = str(stored.channel.guild.id)
        self.gateway.dispatch("MESSAGE_DELETE", data)
        self.state.notify()

    # -- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received, oldest first."""
        return self.server.requests

    @property
    def unhandled_requests(self) -> list[RecordedRequest]:
        """Requests for routes the fake does not implement (answered 404/405)."""
        return self.server.unhandled

    @property
    def spec_violations(self) -> list[SpecViolation]:
        """Requests Discord's OpenAPI spec does not allow (each was answered as Discord
        would, usually 400/50035), outside ``expect_spec_violations`` blocks."""
        return self.server.spec_violations

    @contextlib.contextmanager
    def expect_spec_violations(self) -> Iterator[list[SpecViolation]]:
        """Collect the spec violations of requests made in this block into the list yielded.

        For tests that send Discord a request it refuses on purpose; the test asserts on the
        list. Violations collected here do not fail the ``fake_discord`` fixture.
        """
        collected: list[SpecViolation] = []
        self.server.expected_violations.append(collected)
        try:
            yield collected
        finally:
            self.server.expected_violations.remove(collected)

    def find_requests(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        route: str | None = None,
        status: int | None = None,
    ) -> list[RecordedRequest]:
        """Recorded requests filtered by method, path regex, route template and status."""
        pattern = re.compile(path) if path is not None else None
        return [
            r
            for r in self.server.requests
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path))
            and (route is None or r.route == route)
            and (status is None or r.status == status)
        ]

    def message(self, message: MessageRef) -> JSON | None:
        """Current state of any message (ephemeral ones too); None if deleted or unknown."""
        try:
            return copy.deepcopy(self._stored(message).data)
        except FakeDiscordError:
            return None

    def channel_messages(self, channel: FakeChannel) -> list[JSON]:
        """Current messages in ``channel``, oldest first (not ephemeral, not deleted)."""
        return [copy.deepcopy(m.data) for m in self.state.visible_messages(channel)]

    def dm_channel(self, user: Person) -> FakeChannel | None:
        """The bot's DM channel with ``user``, if the bot opened one."""
        return self.state.dm_channels.get(_user(user).id)

    def dm_messages(self, user: Person) -> list[JSON]:
        """Messages in the bot's DM channel with ``user``, oldest first."""
        channel = self.dm_channel(user)
        return [] if channel is None else self.channel_messages(channel)

    async def wait_for_message(
        self,
        channel: FakeChannel,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 15.0,
        *,
        include_existing: bool = False,
    ) -> JSON:
        """Wait for a message in ``channel`` matching ``predicate`` and return it.

        Only messages created after the call count unless ``include_existing``.
        """
        known = set() if include_existing else {m.id for m in self.state.visible_messages(channel)}

        def find() -> JSON | None:
            for stored in self.state.visible_messages(channel):
                if stored.id in known:
                    continue
                if predicate is None or predicate(stored.data):
                    return copy.deepcopy(stored.data)
            return None

        result: JSON = await self.state.wait_until(find, timeout, f"a message in #{channel.name}")
        return result

    async def wait_for_dm(
        self,
        user: Person,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 15.0,
    ) -> JSON:
        """Wait for a DM from the bot to ``user`` matching ``predicate``."""
        target = _user(user)

        def find() -> JSON | None:
            channel = self.state.dm_channels.get(target.id)
            if channel is None:
                return None
            for stored in self.state.visible_messages(channel):
                if predicate is None or predicate(stored.data):
                    return copy.deepcopy(stored.data)
            return None

        result: JSON = await self.state.wait_until(find, timeout, f"a DM to {target.username}")
        return result

    async def wait_for_request(
        self,
        method: str,
        path: str,
        timeout: float = 15.0,
        *,
        status: int | None = None,
    ) -> RecordedRequest:
        """Wait for a request matching ``method`` and ``path`` (regex) and return it."""

        def find() -> RecordedRequest | None:
            found = self.find_requests(method, path, status=status)
            return found[0] if found and found[0].status else None

        result: RecordedRequest = await self.state.wait_until(find, timeout, f"{method} {path}")
        return result

    def _stored(self, message: MessageRef) -> StoredMessage:
        message_id = int(message["id"]) if isinstance(message, Mapping) else int(message)
        stored = self.state.messages.get(message_id)
        if stored is None or stored.deleted:
            raise FakeDiscordError(f"message {message_id} does not exist")
        return stored


def _user(person: Person) -> FakeUser:
    return person.user if isinstance(person, FakeMember) else person
