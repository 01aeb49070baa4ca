"""The fake gateway: one websocket session per IDENTIFY, with RESUME and event replay.

What discord.py 2.7 does, and what this answers:

* It connects to ``DEFAULT_GATEWAY`` (or ``resume_gateway_url`` from READY when resuming) with
  ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream`` when the ``zstandard`` package
  or Python 3.14's ``compression.zstd`` is importable). Every payload is then sent as a
  binary frame: one shared zlib stream, each message ended with a Z_SYNC_FLUSH
  (``00 00 ff ff``); or one zstd frame per message.
* HELLO (op 10) -> it heartbeats at once (op 1, answered with op 11) and sends IDENTIFY (op 2)
  or RESUME (op 6).
* IDENTIFY -> READY (with ``session_id`` and ``resume_gateway_url``) then one GUILD_CREATE per
  guild. discord.py waits ``guild_ready_timeout`` (2 s by default) after the last
  GUILD_CREATE before ``on_ready``; interactions are handled before that anyway.
* RESUME -> every event with a sequence number above the client's is replayed, then RESUMED.
* REQUEST_GUILD_MEMBERS (op 8, sent when the members intent makes it chunk guilds) ->
  GUILD_MEMBERS_CHUNK.
* Sharding: IDENTIFY may carry ``shard: [id, count]`` (discord.py's ``AutoShardedClient``
  always sends it). Each shard has its own current session; READY lists and GUILD_CREATE
  sends only the shard's guilds, and every guild event (interactions included) goes to the
  session of shard ``(guild_id >> 22) % count``, DMs to shard 0, as Discord routes them.
  A shard id outside ``0..count-1`` is closed with 4010 (Invalid shard). A new IDENTIFY
  for a shard replaces that shard's session only. ``recommended_shards`` is what
  ``GET /gateway/bot`` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .models import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    JSON,
    FakeGuild,
    FakeState,
    strip_content,
)

log = logging.getLogger(__name__)

# Opcodes
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
INVALID_SHARD = 4010
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"}
_GUILD_EVENTS = {
    "GUILD_CREATE",
    "GUILD_UPDATE",
    "GUILD_DELETE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
}


def _make_compressor(kind: str | None) -> Callable[[bytes], bytes] | None:
    """Return a function compressing one gateway message for ``compress=kind``."""
    if kind is None:
        return None
    if kind == "zlib-stream":
        context = zlib.compressobj()

        def compress_zlib(data: bytes) -> bytes:
            return context.compress(data) + context.flush(zlib.Z_SYNC_FLUSH)

        return compress_zlib
    if kind == "zstd-stream":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            from compression import zstd  # type: ignore[import-not-found]

            compressor = zstd.ZstdCompressor()

            def compress_stdlib(data: bytes) -> bytes:
                return bytes(compressor.compress(data, mode=compressor.FLUSH_BLOCK))

            return compress_stdlib
        obj = zstandard.ZstdCompressor().compressobj()

        def compress_zstd(data: bytes) -> bytes:
            return bytes(obj.compress(data) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

        return compress_zstd
    raise ValueError(f"unsupported gateway compression {kind!r}")


@dataclass(eq=False)
class GatewayConnection:
    """One websocket. Outgoing payloads go through a queue so their order is kept."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    compressor: Callable[[bytes], bytes] | None
    queue: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue)
    received: list[JSON] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None

    def send(self, payload: JSON | None) -> None:
        """Queue a payload for sending (``None`` stops the writer)."""
        self.queue.put_nowait(payload)

    async def run_writer(self) -> None:
        """Send queued payloads until a ``None`` arrives or the socket breaks."""
        while True:
            payload = await self.queue.get()
            if payload is None or self.ws.closed:
                return
            text = json.dumps(payload, separators=(",", ":"))
            try:
                if self.compressor is None:
                    await self.ws.send_str(text)
                else:
                    await self.ws.send_bytes(self.compressor(text.encode()))
            except (ConnectionError, RuntimeError):
                return


def shard_for(guild_id: int, shard_count: int) -> int:
    """The shard a guild's events go to (Discord's formula)."""
    return (guild_id >> 22) % shard_count


@dataclass(eq=False)
class GatewaySession:
    """An identified session. Events are numbered and kept so that RESUME can replay them."""

    session_id: str
    intents: int
    identify: JSON
    shard_id: int = 0
    shard_count: int = 1
    seq: int = 0
    events: list[JSON] = field(default_factory=list)
    connection: GatewayConnection | None = None
    resumes: int = 0
    invalidated: bool = False

    def dispatch(self, event: str, data: JSON) -> int:
        """Number, store and (if connected) send an event; return its sequence number."""
        self.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.events.append(payload)
        if self.connection is not None:
            self.connection.send(payload)
        return self.seq


class Gateway:
    """The websocket endpoint and the bot's gateway sessions."""

    def __init__(self, state: FakeState, *, heartbeat_interval_ms: int = 41250) -> None:
        self.state = state
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.url = ""
        #: The most recently identified session (the only one for an unsharded bot).
        self.session: GatewaySession | None = None
        #: The current session of each shard id.
        self.shards: dict[int, GatewaySession] = {}
        self.sessions: dict[str, GatewaySession] = {}
        #: The shard count ``GET /gateway/bot`` recommends.
        self.recommended_shards = 1
        self.connections: list[GatewayConnection] = []
        self.identify_count = 0
        self.resume_count = 0
        #: When set, new connections wait for it before HELLO (lets tests hold the gap open).
        self.hold: asyncio.Event | None = None

    # -- sending -------------------------------------------------------------------------

    def wants(self, session: GatewaySession, event: str, data: JSON) -> bool:
        """Whether the session's intents subscribe it to ``event``."""
        intents = session.intents
        if event in _MESSAGE_EVENTS:
            needed = INTENT_GUILD_MESSAGES if "guild_id" in data else INTENT_DIRECT_MESSAGES
            return bool(intents & needed)
        if event in _GUILD_EVENTS:
            return bool(intents & INTENT_GUILDS)
        if event.startswith("GUILD_MEMBER_") and event != "GUILD_MEMBERS_CHUNK":
            return bool(intents & INTENT_GUILD_MEMBERS)
        return True

    def session_for(self, guild_id: int | None) -> GatewaySession | None:
        """The live session that receives a guild's events (DMs: shard 0), if any."""
        for session in self.shards.values():
            if session.invalidated:
                continue
            wanted = 0 if guild_id is None else shard_for(guild_id, session.shard_count)
            if session.shard_id == wanted:
                return session
        return None

    def dispatch(self, event: str, data: JSON) -> int | None:
        """Send an event to the session of its guild's shard; return its sequence number.

        While the socket is down the event is kept and replayed on RESUME.
        """
        raw_guild = data.get("guild_id")
        if raw_guild is None and event in {"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"}:
            raw_guild = data.get("id")
        session = self.session_for(None if raw_guild is None else int(raw_guild))
        if session is None or session.invalidated or not self.wants(session, event, data):
            return None
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            data = strip_content(data, self.state.bot.id, session.intents)
        return session.dispatch(event, data)

    def guild_create(self, guild: FakeGuild, intents: int) -> JSON:
        """The GUILD_CREATE payload (members beyond the bot need the GUILD_MEMBERS intent)."""
        bot_id = self.state.bot.id
        data = guild.to_dict()
        members = list(guild.members.values())
        if not intents & INTENT_GUILD_MEMBERS:
            members = [m for m in members if m.user.id == bot_id]
        channels = [c for c in guild.channels.values() if not c.deleted]
        data.update(
            unavailable=False,
            large=False,
            lazy=True,
            joined_at=guild.joined_at,
            member_count=len(guild.members),
            members=[m.to_dict() for m in members],
            channels=[c.to_dict(bot_id) for c in channels if not c.is_thread],
            threads=[c.to_dict(bot_id) for c in channels if c.is_thread],
            voice_states=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
        )
        return data

    # -- the websocket -------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for the gateway websocket."""
        query = dict(request.query)
        if query.get("encoding", "json") != "json":
            raise web.HTTPBadRequest(text="the fake gateway speaks only encoding=json")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        if self.hold is not None:
            await self.hold.wait()
        conn = GatewayConnection(ws, query, _make_compressor(query.get("compress")))
        conn.writer = asyncio.create_task(conn.run_writer(), name="fake-gateway-writer")
        self.connections.append(conn)
        conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    payload = json.loads(msg.data)
                    conn.received.append(payload)
                    await self._on_payload(conn, payload)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            for session in self.sessions.values():
                if session.connection is conn:
                    session.connection = None
            conn.send(None)
            if conn.writer is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
            self.state.notify()
        return ws

    async def _on_payload(self, conn: GatewayConnection, payload: JSON) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == HEARTBEAT:
            conn.send({"op": HEARTBEAT_ACK})
        elif op == IDENTIFY:
            await self._identify(conn, data or {})
        elif op == RESUME:
            self._resume(conn, data or {})
        elif op == REQUEST_GUILD_MEMBERS:
            self._request_members(conn, data or {})
        elif op in (PRESENCE_UPDATE, VOICE_STATE_UPDATE):
            pass
        else:
            log.warning("fake gateway: unknown opcode %s", op)

    async def _identify(self, conn: GatewayConnection, data: JSON) -> None:
        if data.get("token") not in (self.state.token, f"Bot {self.state.token}"):
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard_id, shard_count = data.get("shard") or (0, 1)
        if not 0 <= int(shard_id) < int(shard_count):
            await conn.ws.close(code=INVALID_SHARD, message=b"Invalid shard.")
            return
        intents = int(data.get("intents", 0))
        session = GatewaySession(
            secrets.token_hex(16), intents, data, int(shard_id), int(shard_count)
        )
        previous = self.shards.get(session.shard_id)
        if previous is not None:
            previous.invalidated = True
        self.shards[session.shard_id] = session
        self.session = session
        self.sessions[session.session_id] = session
        session.connection = conn
        self.identify_count += 1
        bot = self.state.bot.to_dict()
        bot.update(verified=True, mfa_enabled=False, email=None)
        guilds = [
            guild
            for guild in self.state.guilds.values()
            if shard_for(guild.id, session.shard_count) == session.shard_id
        ]
        ready: JSON = {
            "v": 10,
            "user": bot,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(self.state.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        session.dispatch("READY", ready)
        if intents & INTENT_GUILDS:
            for guild in guilds:
                session.dispatch("GUILD_CREATE", self.guild_create(guild, intents))
        self.state.notify()

    def _resume(self, conn: GatewayConnection, data: JSON) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        token_ok = data.get("token") in (self.state.token, f"Bot {self.state.token}")
        if session is None or session.invalidated or not token_ok:
            conn.send({"op": INVALID_SESSION, "d": False})
            return
        old = session.connection
        if old is not None and old is not conn:
            old.send(None)
            asyncio.create_task(old.ws.close(code=4000))  # noqa: RUF006
        session.connection = conn
        last_seen = int(data.get("seq") or 0)
        for event in session.events:
            if event["s"] > last_seen:
                conn.send(event)
        session.resumes += 1
        self.resume_count += 1
        session.dispatch("RESUMED", {"_trace": ["fake-discord"]})
        self.state.notify()

    def _request_members(self, conn: GatewayConnection, data: JSON) -> None:
        session = next((s for s in self.shards.values() if s.connection is conn), None)
        if session is None:
            return
        guild = self.state.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        members = list(guild.members.values())
        user_ids = data.get("user_ids")
        if user_ids:
            wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.id in wanted]
        elif data.get("query"):
            query = str(data["query"]).lower()
            members = [m for m in members if m.user.username.lower().startswith(query)]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [m.to_dict() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # -- control -------------------------------------------------------------------------

    async def disconnect(
        self, code: int = 4000, *, resumable: bool = True, shard_id: int | None = None
    ) -> None:
        """Close the bot's socket (the latest session's, or ``shard_id``'s). The session
        stays resumable unless ``resumable`` is False."""
        session = self.session if shard_id is None else self.shards.get(shard_id)
        if session is None or session.connection is None:
            raise RuntimeError("the bot has no open gateway connection")
        conn = session.connection
        session.connection = None
        if not resumable:
            session.invalidated = True
        conn.send(None)
        await conn.ws.close(code=code, message=b"fake-discord: disconnect requested")

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes the socket itself and resumes."""
        session = self.session
        if session is None or session.connection is None:
            raise RuntimeError("the bot has no open gateway connection")
        session.connection.send({"op": RECONNECT, "d": None})

    async def close_all(self) -> None:
        """Close every open websocket (on shutdown)."""
        for conn in self.connections:
            conn.send(None)
            if not conn.ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=1001), 2.0)

    def matches(self, predicate: Callable[[JSON], bool]) -> list[JSON]:
        """Events of the current session that satisfy ``predicate`` (for assertions)."""
        if self.session is None:
            return []
        return [e for e in self.session.events if predicate(e)]

    def received(self) -> list[Any]:
        """Every payload the bot sent over any connection, in order."""
        return [p for conn in self.connections for p in conn.received]
