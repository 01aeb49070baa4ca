"""The fake's REST API (v10), CDN and request recording, on one aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from . import permissions as perms
from .commands import check_modal, store_commands
from .gateway import Gateway
from .interactions import (
    ALLOWED_CALLBACKS,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    MODAL,
    UPDATE_MESSAGE,
    InteractionRecord,
    interaction_metadata,
    response_message_type,
)
from .models import (
    DM,
    EPHEMERAL,
    JSON,
    LOADING,
    DiscordAPIError,
    FakeAttachment,
    FakeChannel,
    FakeState,
    StoredMessage,
    form_error,
)
from .openapi import SpecViolation, load_spec
from .snowflake import iso_timestamp, snowflake_time

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
NONCE_WINDOW_SECONDS = 300.0
"""How long a message nonce sent with ``enforce_nonce`` stays unique (Discord: "the past
few minutes")."""
IS_COMPONENTS_V2 = 1 << 15
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str
    data: bytes
    content_type: str | None

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)


@dataclass
class RecordedRequest:
    """One HTTP request the fake received (Authorization header removed)."""

    method: str
    path: str
    route: str | None
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    at: float
    status: int = 0
    response: Any = None
    #: Set when Discord's OpenAPI spec does not allow this request (answered as Discord would).
    violation: SpecViolation | None = None

    @property
    def file_summary(self) -> list[tuple[str, int]]:
        """``(filename, size)`` of every uploaded file."""
        return [(f.filename, f.size) for f in self.files]


@dataclass
class InjectedFailure:
    """Answer the next ``remaining`` requests matching ``method`` and ``path`` with an error."""

    method: str
    path: re.Pattern[str]
    remaining: int
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request."""
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and self.path.search(path) is not None
        )


@dataclass
class HeldResponse:
    """Hold the response to the next ``remaining`` matching requests for up to ``seconds``.

    The request takes effect first (a message is created, recorded and dispatched); only
    the answer is delayed, as when a connection stalls after Discord has acted on it.
    ``release()`` lets held (and later) responses go at once.
    """

    method: str
    path: re.Pattern[str]
    remaining: int
    seconds: float
    hits: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request."""
        return (
            self.remaining > 0
            and not self.released.is_set()
            and self.method in ("*", method)
            and self.path.search(path) is not None
        )

    def release(self) -> None:
        """Answer every held request now and hold no more."""
        self.released.set()

    async def hold(self) -> None:
        """Wait until released or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), self.seconds)


BODY = web.RequestKey("fake_discord_body", object)
FILES = web.RequestKey("fake_discord_files", list)


class FakeServer:
    """Routes and behaviour of the REST API. The driver owns one and reads its records."""

    def __init__(self, state: FakeState, gateway: Gateway) -> None:
        self.state = state
        self.gateway = gateway
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        #: Exceptions raised by the fake itself (bugs); answered 400 so discord.py won't retry.
        self.internal_errors: list[BaseException] = []
        self.failures: list[InjectedFailure] = []
        self.holds: list[HeldResponse] = []
        #: Requests Discord's OpenAPI spec does not allow; the ``fake_discord`` fixture
        #: fails a test that leaves any here.
        self.spec_violations: list[SpecViolation] = []
        #: Open ``FakeDiscord.expect_spec_violations`` blocks; the innermost collects.
        self.expected_violations: list[list[SpecViolation]] = []
        self.spec = load_spec()
        self.interactions: dict[int, InteractionRecord] = {}
        self.by_token: dict[str, InteractionRecord] = {}
        self.app = web.Application(
            middlewares=[self._middleware], client_max_size=1024 * 1024 * 1024
        )
        self._add_routes()

    # -- plumbing --------------------------------------------------------------------------

    def _add_routes(self) -> None:
        p = API_PREFIX
        r = self.app.router
        r.add_get("/ws", self.gateway.handle)
        r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self.cdn)
        r.add_get("/attachments/{attachment_id}/{filename}", self.cdn)
        r.add_get("/media/attachments/{channel_id}/{attachment_id}/{filename}", self.cdn)
        r.add_get(p + "/gateway", self.get_gateway)
        r.add_get(p + "/gateway/bot", self.get_gateway_bot)
        r.add_get(p + "/users/@me", self.get_me)
        r.add_post(p + "/users/@me/channels", self.create_dm)
        r.add_get(p + "/users/{user_id}", self.get_user)
        r.add_get(p + "/oauth2/applications/@me", self.get_application)
        r.add_get(p + "/applications/@me", self.get_application)
        for base in (
            p + "/applications/{app_id}/commands",
            p + "/applications/{app_id}/guilds/{guild_id}/commands",
        ):
            r.add_get(base, self.get_commands)
            r.add_put(base, self.put_commands)
            r.add_post(base, self.post_command)
            r.add_get(base + "/{command_id}", self.get_command)
            r.add_patch(base + "/{command_id}", self.patch_command)
            r.add_delete(base + "/{command_id}", self.delete_command)
        r.add_post(p + "/interactions/{interaction_id}/{token}/callback", self.callback)
        r.add_post(p + "/webhooks/{app_id}/{token}", self.followup)
        hook = p + "/webhooks/{app_id}/{token}/messages/{message_id}"
        r.add_get(hook, self.get_webhook_message)
        r.add_patch(hook, self.edit_webhook_message)
        r.add_delete(hook, self.delete_webhook_message)
        r.add_get(p + "/channels/{channel_id}", self.get_channel)
        r.add_get(p + "/channels/{channel_id}/messages", self.get_messages)
        r.add_post(p + "/channels/{channel_id}/messages", self.send_message)
        msg = p + "/channels/{channel_id}/messages/{message_id}"
        r.add_get(msg, self.get_message)
        r.add_patch(msg, self.edit_message)
        r.add_delete(msg, self.delete_message)
        r.add_post(p + "/channels/{channel_id}/typing", self.no_content)
        r.add_put(msg + "/reactions/{emoji}/@me", self.add_reaction)
        r.add_delete(msg + "/reactions/{emoji}/@me", self.no_content)
        r.add_get(p + "/guilds/{guild_id}", self.get_guild)
        r.add_get(p + "/guilds/{guild_id}/channels", self.get_guild_channels)
        r.add_get(p + "/guilds/{guild_id}/roles", self.get_roles)
        r.add_get(p + "/guilds/{guild_id}/members", self.get_members)
        r.add_get(p + "/guilds/{guild_id}/members/{user_id}", self.get_member)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/ws":
            return await handler(request)
        try:
            return await self._handle(request, handler)
        except ConnectionResetError:
            # The client went away mid-request (a bot process killed while uploading):
            # Discord sees the same and drops the request; it is not a fault of the fake.
            log.info("fake discord: client left during %s %s", request.method, request.path)
            raise
        except Exception as exc:
            log.exception("fake discord: internal error on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            return self._json({"message": f"fake-discord internal error: {exc!r}", "code": 0}, 400)

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        has_body = request.body_exists
        body, files = await self._read_body(request)
        request[BODY] = body
        request[FILES] = files
        path = (
            request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else request.path
        )
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        if route is not None and route.startswith(API_PREFIX):
            route = route[len(API_PREFIX) :]
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        record = RecordedRequest(
            method=request.method,
            path=path,
            route=route,
            query=dict(request.query),
            headers=headers,
            json=body,
            files=files,
            at=time.monotonic(),
        )
        self.requests.append(record)
        try:
            response = await self._respond(request, handler, path, record, has_body)
        except DiscordAPIError as exc:
            response = self._json(exc.to_dict(), status=exc.status)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                self.unhandled.append(record)
                log.warning("fake discord: unhandled %s %s", request.method, request.path)
            response = self._json(
                {"message": f"{exc.status}: {exc.reason}", "code": 0}, status=exc.status
            )
        record.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            assert isinstance(response.body, bytes)
            record.response = json.loads(response.body)
        self.state.notify()
        for hold in self.holds:
            if hold.matches(request.method, path):
                hold.remaining -= 1
                hold.hits += 1
                await hold.hold()
                break
        return response

    async def _respond(
        self,
        request: web.Request,
        handler: Handler,
        path: str,
        record: RecordedRequest,
        has_body: bool,
    ) -> web.StreamResponse:
        is_api = request.path.startswith(API_PREFIX)
        token_routes = ("/webhooks/", "/interactions/")
        authorized = request.headers.get("Authorization") == f"Bot {self.state.token}"
        if is_api and not path.startswith(token_routes) and not authorized:
            raise DiscordAPIError(401, 0, "401: Unauthorized")
        if is_api:
            # Checked before injected failures, so a bad request is recorded even when the
            # test answers it with a 429 or 5xx.
            self._check_spec(request, path, record, has_body)
        for rule in self.failures:
            if rule.matches(request.method, path):
                rule.remaining -= 1
                rule.hits += 1
                return self._json(
                    copy.deepcopy(rule.body), status=rule.status, headers=rule.headers
                )
        if record.violation is not None:
            return self._json(record.violation.body(), status=record.violation.status)
        return await handler(request)

    def _check_spec(
        self, request: web.Request, path: str, record: RecordedRequest, has_body: bool
    ) -> None:
        """Validate the request against Discord's OpenAPI spec; record what it breaks."""
        body = record.json
        if request.content_type.startswith("multipart/") and body is None:
            body = {}  # files only, no payload_json
        violation = self.spec.check_request(
            request.method,
            path,
            request.query,
            request.content_type if has_body else None,
            body,
            has_body=has_body,
        )
        if violation is None:
            return
        record.violation = violation
        log.warning("fake discord: Discord would refuse %s", violation)
        collector = self.expected_violations[-1] if self.expected_violations else None
        (self.spec_violations if collector is None else collector).append(violation)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if not request.can_read_body:
            return None, []
        if request.content_type.startswith("multipart/"):
            files: list[UploadedFile] = []
            payload: Any = None
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                raw = bytes(await part.read(decode=False))
                if part.name == "payload_json":
                    payload = json.loads(raw.decode())
                elif part.filename is not None:
                    files.append(
                        UploadedFile(
                            part.name or "",
                            part.filename,
                            raw,
                            part.headers.get("Content-Type"),
                        )
                    )
            return payload, files
        raw_text = await request.text()
        if not raw_text:
            return None, []
        try:
            return json.loads(raw_text), []
        except ValueError:
            raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None

    @staticmethod
    def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        # discord.py parses a body as JSON only if Content-Type is exactly application/json.
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)

    @staticmethod
    def _no_content() -> web.Response:
        return web.Response(status=204)

    def _body(self, request: web.Request) -> JSON:
        body = request[BODY]
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise DiscordAPIError(400, 50035, "Invalid Form Body")
        return body

    # -- messages: parsing and validation --------------------------------------------------

    def _check_message_fields(self, body: JSON, where: str = "") -> None:
        content = body.get("content")
        if content is not None and not isinstance(content, str):
            raise form_error(where + "content", "BASE_TYPE_STRING", "Must be a string")
        if content is not None and len(content) > 2000:
            raise form_error(
                where + "content",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 2000 or fewer in length.",
            )
        embeds = body.get("embeds") or []
        if len(embeds) > 10:
            raise form_error(where + "embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer")
        total = 0
        for index, embed in enumerate(embeds):
            limits = {"title": 256, "description": 4096}
            for key, limit in limits.items():
                text = embed.get(key) or ""
                total += len(text)
                if len(text) > limit:
                    raise form_error(
                        f"{where}embeds.{index}.{key}",
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {limit} or fewer in length.",
                    )
            fields = embed.get("fields") or []
            if len(fields) > 25:
                raise form_error(f"{where}embeds.{index}.fields", "BASE_TYPE_MAX_LENGTH", "25")
            for f_index, embed_field in enumerate(fields):
                name, value = embed_field.get("name", ""), embed_field.get("value", "")
                total += len(name) + len(value)
                if len(name) > 256 or len(value) > 1024 or not name or not value:
                    raise form_error(
                        f"{where}embeds.{index}.fields.{f_index}",
                        "BASE_TYPE_BAD_LENGTH",
                        "Field name 1-256 and value 1-1024 characters",
                    )
            footer = (embed.get("footer") or {}).get("text", "")
            author = (embed.get("author") or {}).get("name", "")
            total += len(footer) + len(author)
            if len(footer) > 2048 or len(author) > 256:
                raise form_error(f"{where}embeds.{index}", "BASE_TYPE_MAX_LENGTH", "Too long")
        if total > 6000:
            raise form_error(where + "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds 6000")
        components = body.get("components") or []
        flags = int(body.get("flags") or 0)
        if not flags & IS_COMPONENTS_V2 and len(components) > 5:
            raise form_error(where + "components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer")
        self._check_custom_ids(components, where + "components")

    def _check_custom_ids(self, components: list[JSON], where: str) -> None:
        for index, component in enumerate(components):
            custom_id = component.get("custom_id")
            if custom_id is not None and not 1 <= len(custom_id) <= 100:
                raise form_error(
                    f"{where}.{index}.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be 1-100 characters"
                )
            children = component.get("components")
            if isinstance(children, list):
                self._check_custom_ids(children, f"{where}.{index}.components")

    def _check_files(self, files: list[UploadedFile], limit: int) -> None:
        for upload in files:
            if upload.size > limit:
                raise DiscordAPIError(413, 40005, "Request entity too large")

    def _new_attachments(
        self, channel: FakeChannel, body: JSON, files: list[UploadedFile]
    ) -> list[FakeAttachment]:
        """Store uploaded files, named by the ``attachments`` metadata where it names them."""
        meta = {str(a.get("id")): a for a in body.get("attachments") or [] if isinstance(a, dict)}
        result = []
        for position, upload in enumerate(files):
            match = re.fullmatch(r"files\[(\d+)\]", upload.field)
            index = match.group(1) if match else str(position)
            info = meta.get(index, {})
            result.append(
                self.state.store_attachment(
                    channel.id,
                    info.get("filename") or upload.filename,
                    upload.data,
                    upload.content_type,
                    description=info.get("description"),
                )
            )
        return result

    @staticmethod
    def _is_empty(data: JSON) -> bool:
        return not (
            data.get("content")
            or data.get("embeds")
            or data.get("attachments")
            or data.get("components")
            or data.get("sticker_ids")
            or data.get("poll")
        )

    def _create_message(
        self,
        channel: FakeChannel,
        body: JSON,
        files: list[UploadedFile],
        *,
        limit: int,
        flags_allowed: int,
        extra: JSON | None = None,
        message_type: int = 0,
        ephemeral: bool = False,
        interaction_id: int | None = None,
        forced_flags: int = 0,
    ) -> StoredMessage:
        self._check_message_fields(body)
        self._check_files(files, limit)
        if self._is_empty(body) and not files:
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        reference = body.get("message_reference")
        if reference:
            target = self.state.messages.get(int(reference.get("message_id", 0)))
            if target is None or target.deleted:
                if reference.get("fail_if_not_exists", True):
                    raise form_error(
                        "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                    )
                reference = None
            else:
                reference = {
                    "type": 0,
                    "message_id": str(target.id),
                    "channel_id": str(target.channel.id),
                }
                if target.channel.guild is not None:
                    reference["guild_id"] = str(target.channel.guild.id)
                message_type = 19 if message_type == 0 else message_type
                extra = dict(extra or {})
                extra["referenced_message"] = copy.deepcopy(target.data)
        attachments = self._new_attachments(channel, body, files)
        flags = (int(body.get("flags") or 0) & flags_allowed) | forced_flags
        return self.state.new_message(
            channel,
            self.state.bot,
            content=body.get("content") or "",
            attachments=attachments,
            embeds=body.get("embeds"),
            components=body.get("components"),
            flags=flags,
            nonce=body.get("nonce"),
            allowed_mentions=body.get("allowed_mentions"),
            message_type=message_type,
            extra=extra,
            ephemeral=ephemeral,
            interaction_id=interaction_id,
            message_reference=reference,
        )

    def _edit_message(
        self, stored: StoredMessage, body: JSON, files: list[UploadedFile], *, limit: int
    ) -> None:
        self._check_message_fields(body)
        self._check_files(files, limit)
        data = copy.deepcopy(stored.data)
        for key in ("content", "embeds", "components"):
            if key in body:
                data[key] = (
                    copy.deepcopy(body[key])
                    if body[key] is not None
                    else ("" if key == "content" else [])
                )
        if "flags" in body and body["flags"] is not None:
            keep = data["flags"] & (EPHEMERAL | IS_COMPONENTS_V2)
            data["flags"] = keep | (int(body["flags"]) & (SUPPRESS_EMBEDS | IS_COMPONENTS_V2))
        if "allowed_mentions" in body or "content" in body:
            mentions, roles, everyone = self.state.mentions_for(
                stored.channel, data["content"], body.get("allowed_mentions")
            )
            data.update(mentions=mentions, mention_roles=roles, mention_everyone=everyone)
        new = self._new_attachments(stored.channel, body, files)
        if "attachments" in body and body["attachments"] is not None:
            existing = {a["id"]: a for a in data["attachments"]}
            kept = [
                existing[str(a["id"])]
                for a in body["attachments"]
                if isinstance(a, dict) and str(a.get("id")) in existing
            ]
            data["attachments"] = kept + [a.to_dict() for a in new]
        else:
            data["attachments"] = data["attachments"] + [a.to_dict() for a in new]
        if self._is_empty(data):
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        data["edited_timestamp"] = iso_timestamp()
        stored.data = data

    def _check_send(self, channel: FakeChannel, body: JSON, files: list[UploadedFile]) -> None:
        if channel.type == DM:
            assert channel.recipient is not None
            if channel.recipient.dms_blocked:
                raise DiscordAPIError(403, 50007, "Cannot send messages to this user")
            return
        allowed = channel.bot_permissions
        if not allowed & perms.VIEW_CHANNEL:
            raise DiscordAPIError(403, 50001, "Missing Access")
        needed = perms.SEND_MESSAGES_IN_THREADS if channel.is_thread else perms.SEND_MESSAGES
        if files:
            needed |= perms.ATTACH_FILES
        if body.get("embeds"):
            needed |= perms.EMBED_LINKS
        if not perms.has(allowed, needed):
            raise DiscordAPIError(403, 50013, "Missing Permissions")

    def _upload_limit(self, channel: FakeChannel) -> int:
        if channel.guild is None:
            return 10 * 1024 * 1024
        return channel.guild.filesize_limit

    def _dispatch_message(self, event: str, stored: StoredMessage) -> None:
        if stored.ephemeral:
            return
        self.gateway.dispatch(event, self.state.gateway_message(stored))

    def _dispatch_delete(self, stored: StoredMessage) -> None:
        if stored.ephemeral:
            return
        data: JSON = {"id": str(stored.id), "channel_id": str(stored.channel.id)}
        if stored.channel.guild is not None:
            data["guild_id"] = str(stored.channel.guild.id)
        self.gateway.dispatch("MESSAGE_DELETE", data)

    # -- users, application, gateway -------------------------------------------------------

    async def get_gateway(self, request: web.Request) -> web.Response:
        """GET /gateway"""
        return self._json({"url": self.gateway.url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        """GET /gateway/bot"""
        return self._json(
            {
                "url": self.gateway.url,
                "shards": self.gateway.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86400000,
                    "max_concurrency": 1,
                },
            }
        )

    async def get_me(self, request: web.Request) -> web.Response:
        """GET /users/@me (discord.py's login)."""
        data = self.state.bot.to_dict()
        data.update(verified=True, mfa_enabled=False, email=None, locale="en-US")
        return self._json(data)

    async def get_user(self, request: web.Request) -> web.Response:
        """GET /users/{user_id}"""
        user = self.state.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise DiscordAPIError(404, 10013, "Unknown User")
        return self._json(user.to_dict())

    async def get_application(self, request: web.Request) -> web.Response:
        """GET /oauth2/applications/@me (discord.py's login asks for it)."""
        state = self.state
        return self._json(
            {
                "id": str(state.application_id),
                "name": state.bot.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": state.owner.to_dict(),
                "team": None,
                "bot": state.bot.to_dict(),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
                "approximate_guild_count": len(state.guilds),
                "integration_types_config": {"0": {}},
            }
        )

    async def create_dm(self, request: web.Request) -> web.Response:
        """POST /users/@me/channels"""
        body = self._body(request)
        try:
            user = self.state.users[int(body.get("recipient_id", 0))]
        except (KeyError, ValueError):
            raise form_error("recipient_id", "INVALID_RECIPIENT", "Invalid Recipient(s)") from None
        channel = self.state.dm_channels.get(user.id)
        if channel is None:
            channel = FakeChannel(self.state.new_id(), DM, "", recipient=user)
            self.state.dm_channels[user.id] = channel
            self.state.channels[channel.id] = channel
        return self._json(channel.to_dict(self.state.bot.id))

    # -- application commands --------------------------------------------------------------

    def _command_scope(self, request: web.Request) -> int | None:
        if int(request.match_info["app_id"]) != self.state.application_id:
            raise DiscordAPIError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        return self.state.get_guild(guild_id).id

    async def get_commands(self, request: web.Request) -> web.Response:
        """GET /applications/{app_id}[/guilds/{guild_id}]/commands"""
        scope = self._command_scope(request)
        return self._json(list(self.state.commands.get(scope, {}).values()))

    async def put_commands(self, request: web.Request) -> web.Response:
        """PUT ...commands: bulk overwrite (what ``CommandTree.sync`` sends)."""
        scope = self._command_scope(request)
        body = request[BODY]
        if not isinstance(body, list):
            raise DiscordAPIError(400, 50035, "Invalid Form Body")
        if len(body) > 100:
            raise form_error("_", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        return self._json(store_commands(self.state, scope, body, replace=True))

    async def post_command(self, request: web.Request) -> web.Response:
        """POST ...commands: create or overwrite one command."""
        scope = self._command_scope(request)
        command = store_commands(self.state, scope, self._body(request), replace=False)[0]
        return self._json(command, status=201)

    def _get_command(self, request: web.Request) -> tuple[int | None, JSON]:
        scope = self._command_scope(request)
        try:
            return scope, self.state.commands.get(scope, {})[int(request.match_info["command_id"])]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10063, "Unknown application command") from None

    async def get_command(self, request: web.Request) -> web.Response:
        """GET ...commands/{command_id}"""
        return self._json(self._get_command(request)[1])

    async def patch_command(self, request: web.Request) -> web.Response:
        """PATCH ...commands/{command_id}"""
        _, command = self._get_command(request)
        command.update({k: v for k, v in self._body(request).items() if k not in ("id", "type")})
        return self._json(command)

    async def delete_command(self, request: web.Request) -> web.Response:
        """DELETE ...commands/{command_id}"""
        scope, command = self._get_command(request)
        del self.state.commands[scope][int(command["id"])]
        return self._no_content()

    # -- interactions ----------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        """POST /interactions/{id}/{token}/callback: the initial response."""
        record = self.interactions.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["token"]:
            raise DiscordAPIError(404, 10062, "Unknown interaction")
        try:
            return self._callback(request, record)
        except DiscordAPIError as exc:
            record.callback_errors.append((exc.status, exc.code))
            raise

    def _callback(self, request: web.Request, record: InteractionRecord) -> web.Response:
        if record.acked:
            raise DiscordAPIError(400, 40060, "Interaction has already been acknowledged.")
        if record.ack_too_late():
            raise DiscordAPIError(404, 10062, "Unknown interaction")
        body = self._body(request)
        files: list[UploadedFile] = request[FILES]
        kind = body.get("type")
        if kind not in ALLOWED_CALLBACKS.get(record.kind, set()):
            raise form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid type {kind}")
        if kind in (UPDATE_MESSAGE, DEFERRED_UPDATE_MESSAGE) and record.source_message_id is None:
            raise DiscordAPIError(400, 40067, "Interaction has no message to update")
        data = body.get("data") or {}
        limit = self._upload_limit(record.channel)
        if not record.channel.is_dm:
            self.state.get_channel(record.channel.id)
        stored: StoredMessage | None = None
        if kind == CHANNEL_MESSAGE:
            ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL)
            stored = self._create_message(
                record.channel,
                data,
                files,
                limit=limit,
                flags_allowed=EPHEMERAL
                | SUPPRESS_EMBEDS
                | SUPPRESS_NOTIFICATIONS
                | IS_COMPONENTS_V2,
                extra=self._interaction_extra(record),
                message_type=response_message_type(record),
                ephemeral=ephemeral,
                interaction_id=record.id,
            )
            record.original_message_id = stored.id
            record.ephemeral_response = ephemeral
            self._dispatch_message("MESSAGE_CREATE", stored)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL)
            stored = self.state.new_message(
                record.channel,
                self.state.bot,
                flags=LOADING | (EPHEMERAL if ephemeral else 0),
                message_type=response_message_type(record),
                extra=self._interaction_extra(record),
                ephemeral=ephemeral,
                interaction_id=record.id,
            )
            record.original_message_id = stored.id
            record.ephemeral_response = ephemeral
            record.loading = True
            self._dispatch_message("MESSAGE_CREATE", stored)
        elif kind == DEFERRED_UPDATE_MESSAGE:
            record.original_message_id = record.source_message_id
        elif kind == UPDATE_MESSAGE:
            assert record.source_message_id is not None
            stored = self.state.messages[record.source_message_id]
            self._edit_message(stored, data, files, limit=limit)
            record.original_message_id = stored.id
            record.ephemeral_response = stored.ephemeral
            self._dispatch_message("MESSAGE_UPDATE", stored)
        elif kind == MODAL:
            record.modal = copy.deepcopy(check_modal(data))
        record.ack_type = kind
        record.ack_at = time.monotonic()
        record.ack_data = copy.deepcopy(data)
        record.initial_response = copy.deepcopy(stored.data) if stored is not None else None
        self.state.notify()
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return self._no_content()
        callback: JSON = {"id": str(record.id), "type": record.kind}
        resource: JSON = {"type": kind}
        if stored is not None:
            callback["response_message_id"] = str(stored.id)
            callback["response_message_loading"] = record.loading
            callback["response_message_ephemeral"] = record.ephemeral_response
            resource["message"] = copy.deepcopy(stored.data)
        return self._json({"interaction": callback, "resource": resource})

    def _interaction_extra(self, record: InteractionRecord) -> JSON:
        extra = interaction_metadata(record)
        extra.update(
            webhook_id=str(self.state.application_id),
            application_id=str(self.state.application_id),
        )
        return extra

    def _token_record(self, request: web.Request) -> InteractionRecord:
        if int(request.match_info["app_id"]) != self.state.application_id:
            raise DiscordAPIError(404, 10015, "Unknown Webhook")
        record = self.by_token.get(request.match_info["token"])
        if record is None:
            raise DiscordAPIError(404, 10015, "Unknown Webhook")
        if record.token_expired():
            raise DiscordAPIError(401, 50027, "Invalid Webhook Token")
        if not record.acked:
            raise DiscordAPIError(404, 10015, "Unknown Webhook")
        return record

    def _webhook_message(self, request: web.Request, record: InteractionRecord) -> StoredMessage:
        raw_id = request.match_info["message_id"]
        if raw_id == "@original":
            stored = record.stored_original()
        else:
            try:
                message_id = int(raw_id)
            except ValueError:
                raise DiscordAPIError(404, 10008, "Unknown Message") from None
            ids = set(record.followup_ids) | {record.original_message_id}
            stored = self.state.messages.get(message_id) if message_id in ids else None
        if stored is None or stored.deleted:
            raise DiscordAPIError(404, 10008, "Unknown Message")
        return stored

    async def followup(self, request: web.Request) -> web.Response:
        """POST /webhooks/{app_id}/{token}: a follow-up message."""
        record = self._token_record(request)
        body = self._body(request)
        files: list[UploadedFile] = request[FILES]
        if not record.channel.is_dm:
            self.state.get_channel(record.channel.id)
        limit = self._upload_limit(record.channel)
        original = record.stored_original()
        if record.loading and original is not None and not original.deleted:
            # The first follow-up after a deferral replaces the "thinking" message and keeps
            # the deferral's visibility: its own ephemeral flag is ignored.
            self._edit_message(original, body, files, limit=limit)
            original.data["flags"] &= ~LOADING
            record.loading = False
            record.followup_ids.append(original.id)
            self._dispatch_message("MESSAGE_UPDATE", original)
            stored = original
        else:
            ephemeral = bool(int(body.get("flags") or 0) & EPHEMERAL)
            stored = self._create_message(
                record.channel,
                body,
                files,
                limit=limit,
                flags_allowed=EPHEMERAL
                | SUPPRESS_EMBEDS
                | SUPPRESS_NOTIFICATIONS
                | IS_COMPONENTS_V2,
                extra=self._interaction_extra(record),
                message_type=response_message_type(record),
                ephemeral=ephemeral,
                interaction_id=record.id,
            )
            record.followup_ids.append(stored.id)
            self._dispatch_message("MESSAGE_CREATE", stored)
        if request.query.get("wait", "false").lower() not in ("1", "true"):
            return self._no_content()
        return self._json(copy.deepcopy(stored.data))

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        """GET /webhooks/{app_id}/{token}/messages/{id|@original}"""
        record = self._token_record(request)
        return self._json(copy.deepcopy(self._webhook_message(request, record).data))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        """PATCH /webhooks/{app_id}/{token}/messages/{id|@original}"""
        record = self._token_record(request)
        stored = self._webhook_message(request, record)
        self._edit_message(
            stored, self._body(request), request[FILES], limit=self._upload_limit(stored.channel)
        )
        if stored.id == record.original_message_id and record.loading:
            stored.data["flags"] &= ~LOADING
            record.loading = False
        self._dispatch_message("MESSAGE_UPDATE", stored)
        return self._json(copy.deepcopy(stored.data))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        """DELETE /webhooks/{app_id}/{token}/messages/{id|@original}"""
        record = self._token_record(request)
        stored = self._webhook_message(request, record)
        stored.deleted = True
        self._dispatch_delete(stored)
        return self._no_content()

    # -- channels and messages -------------------------------------------------------------

    def _readable_channel(self, request: web.Request) -> FakeChannel:
        channel = self.state.get_channel(request.match_info["channel_id"])
        if not channel.is_dm and not channel.bot_permissions & perms.VIEW_CHANNEL:
            raise DiscordAPIError(403, 50001, "Missing Access")
        return channel

    async def get_channel(self, request: web.Request) -> web.Response:
        """GET /channels/{channel_id}"""
        channel = self._readable_channel(request)
        return self._json(channel.to_dict(self.state.bot.id))

    async def get_messages(self, request: web.Request) -> web.Response:
        """GET /channels/{channel_id}/messages (newest first; before/after/around/limit)."""
        channel = self._readable_channel(request)
        if not channel.is_dm and not channel.bot_permissions & perms.READ_MESSAGE_HISTORY:
            return self._json([])
        messages = self.state.visible_messages(channel)
        query = request.query
        limit = max(1, min(100, int(query.get("limit", 50))))
        if "before" in query:
            messages = [m for m in messages if m.id < int(query["before"])]
            messages = messages[-limit:]
        elif "after" in query:
            messages = [m for m in messages if m.id > int(query["after"])][:limit]
        elif "around" in query:
            around = int(query["around"])
            older = [m for m in messages if m.id <= around][-(limit // 2 + 1) :]
            newer = [m for m in messages if m.id > around][: limit - len(older)]
            messages = older + newer
        else:
            messages = messages[-limit:]
        return self._json([copy.deepcopy(m.data) for m in reversed(messages)])

    async def get_message(self, request: web.Request) -> web.Response:
        """GET /channels/{channel_id}/messages/{message_id}"""
        channel = self._readable_channel(request)
        if not channel.is_dm and not channel.bot_permissions & perms.READ_MESSAGE_HISTORY:
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        stored = self.state.get_message(channel, request.match_info["message_id"])
        if stored.ephemeral:
            raise DiscordAPIError(404, 10008, "Unknown Message")
        return self._json(copy.deepcopy(stored.data))

    async def send_message(self, request: web.Request) -> web.Response:
        """POST /channels/{channel_id}/messages (JSON or multipart with files)."""
        channel = self.state.get_channel(request.match_info["channel_id"])
        body = self._body(request)
        files: list[UploadedFile] = request[FILES]
        self._check_send(channel, body, files)
        repeat = self._same_nonce(channel, body)
        if repeat is not None:
            # enforce_nonce: Discord returns the message already created, creates none.
            return self._json(copy.deepcopy(repeat.data))
        stored = self._create_message(
            channel,
            body,
            files,
            limit=self._upload_limit(channel),
            flags_allowed=SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2,
        )
        self._dispatch_message("MESSAGE_CREATE", stored)
        return self._json(copy.deepcopy(stored.data))

    def _same_nonce(self, channel: FakeChannel, body: JSON) -> StoredMessage | None:
        """With ``enforce_nonce``, the bot's message with this nonce created in the last
        few minutes (Discord: "checked for uniqueness in the past few minutes"), if any."""
        nonce = body.get("nonce")
        if not body.get("enforce_nonce") or nonce is None:
            return None
        horizon = time.time() - NONCE_WINDOW_SECONDS
        for message_id in reversed(self.state.channel_messages.get(channel.id, [])):
            stored = self.state.messages[message_id]
            if snowflake_time(message_id) < horizon:
                break
            same_author = stored.data["author"]["id"] == str(self.state.bot.id)
            if same_author and not stored.deleted and str(stored.data.get("nonce")) == str(nonce):
                return stored
        return None

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH /channels/{channel_id}/messages/{message_id}"""
        channel = self._readable_channel(request)
        stored = self.state.get_message(channel, request.match_info["message_id"])
        body = self._body(request)
        if stored.data["author"]["id"] != str(self.state.bot.id) or stored.ephemeral:
            only_flags = set(body) <= {"flags"}
            if not only_flags or not channel.bot_permissions & perms.MANAGE_MESSAGES:
                raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
        self._edit_message(stored, body, request[FILES], limit=self._upload_limit(channel))
        self._dispatch_message("MESSAGE_UPDATE", stored)
        return self._json(copy.deepcopy(stored.data))

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE /channels/{channel_id}/messages/{message_id}"""
        channel = self._readable_channel(request)
        stored = self.state.get_message(channel, request.match_info["message_id"])
        own = stored.data["author"]["id"] == str(self.state.bot.id)
        if not own and not perms.has(channel.bot_permissions, perms.MANAGE_MESSAGES):
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        stored.deleted = True
        self._dispatch_delete(stored)
        return self._no_content()

    async def add_reaction(self, request: web.Request) -> web.Response:
        """PUT .../reactions/{emoji}/@me"""
        channel = self._readable_channel(request)
        stored = self.state.get_message(channel, request.match_info["message_id"])
        if not channel.is_dm and not perms.has(
            channel.bot_permissions, perms.ADD_REACTIONS | perms.READ_MESSAGE_HISTORY
        ):
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        emoji = request.match_info["emoji"]
        reactions = stored.data.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["emoji"].get("name") == emoji:
                if not reaction["me"]:
                    reaction["count"] += 1
                    reaction["me"] = True
                break
        else:
            reactions.append(
                {"count": 1, "me": True, "emoji": {"id": None, "name": emoji}, "burst_colors": []}
            )
        return self._no_content()

    async def no_content(self, request: web.Request) -> web.Response:
        """Routes that only need a 204 (typing, removing a reaction)."""
        self._readable_channel(request)
        return self._no_content()

    # -- guilds ----------------------------------------------------------------------------

    async def get_guild(self, request: web.Request) -> web.Response:
        """GET /guilds/{guild_id}"""
        guild = self.state.get_guild(request.match_info["guild_id"])
        data = guild.to_dict()
        if request.query.get("with_counts", "").lower() in ("1", "true"):
            data.update(
                approximate_member_count=len(guild.members),
                approximate_presence_count=0,
            )
        return self._json(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        """GET /guilds/{guild_id}/channels"""
        guild = self.state.get_guild(request.match_info["guild_id"])
        bot_id = self.state.bot.id
        channels = [c.to_dict(bot_id) for c in guild.channels.values()]
        return self._json([c for c in channels if c["type"] not in (11, 12)])

    async def get_roles(self, request: web.Request) -> web.Response:
        """GET /guilds/{guild_id}/roles"""
        guild = self.state.get_guild(request.match_info["guild_id"])
        return self._json([role.to_dict() for role in guild.roles.values()])

    async def get_members(self, request: web.Request) -> web.Response:
        """GET /guilds/{guild_id}/members"""
        guild = self.state.get_guild(request.match_info["guild_id"])
        limit = int(request.query.get("limit", 1))
        after = int(request.query.get("after", 0))
        members = sorted(guild.members.values(), key=lambda m: m.id)
        return self._json([m.to_dict() for m in members if m.id > after][:limit])

    async def get_member(self, request: web.Request) -> web.Response:
        """GET /guilds/{guild_id}/members/{user_id}"""
        guild = self.state.get_guild(request.match_info["guild_id"])
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise DiscordAPIError(404, 10007, "Unknown Member")
        return self._json(member.to_dict())

    # -- CDN -------------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.Response:
        """GET /attachments/[{channel_id}/]{attachment_id}/{filename}: the file's bytes."""
        try:
            attachment = self.state.attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        if attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=attachment.data,
            content_type=attachment.content_type or "application/octet-stream",
        )
