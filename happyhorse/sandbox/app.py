"""The sandbox's HTTP face: routes, bearer auth, request validation and the task lifecycle.

The sandbox is an independent server that speaks the HappyHorse wire contract; it never
imports the client. One instance speaks one dialect:

``seed`` (``docs/../happyhorse-api.txt``)
    ``POST /api/generate`` -> ``{"task_id", "status": "queued", "message"}``;
    ``GET /api/status?task_id=`` -> ``{"task_id", "status", "message", "data": {"model",
    "mode", "duration", "aspect_ratio"[, "resultUrls", "video_url"]}}`` with status
    ``queued | processing | completed | failed`` (result fields only once completed).
    Errors: ``{"error": {"code": <HTTP status>, "type": <snake_case name>, "message": ...,
    "field": <request field, validation errors only>}}``.

``native`` (the live service)
    Every answer is ``{"code", "message", "data"}``. Generate: ``data = {"task_id"}``;
    status: ``data = {"task_id", "status": IN_PROGRESS | SUCCESS | FAILED, "response":
    {"resultUrls": [...]} (SUCCESS only), "error_message" (FAILED only)}``. Errors repeat
    the HTTP status in ``code`` and carry ``"data": null``.

Both dialects also answer ``GET /api/status/{task_id}`` (the reseller form). Result files
are served without auth at ``GET /files/{task_id}.mp4``. ``GET /healthz`` answers
``{"status": "ok"}``. The control plane for tests (no auth): ``GET|POST|DELETE
/_sandbox/faults``, ``GET /_sandbox/tasks`` and ``POST /_sandbox/tasks/{id}/complete|fail``.

Order of checks on an API request: count it in ``state.request_counts``, read the body,
apply the next matching fault (which answers before auth, like a failing gateway), check
the bearer token, count it against the rate limit, validate, charge credits, answer.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from aiohttp import web

from happyhorse.sandbox.state import (
    Endpoint,
    Fault,
    Phase,
    SandboxConfig,
    SandboxState,
    SandboxTask,
    StatusCall,
    task_cost,
)
from happyhorse.sandbox.video import FRAME_SIZES, VideoCache, pad_mp4

MODEL = "happyhorse-1.0/video"
SEED_MODES = ("text-to-video", "image-to-video")
SEED_DURATIONS = (5, 10)
QUALITIES = ("std", "pro")
ASPECT_RATIOS = tuple(FRAME_SIZES)
SEED_PROMPT_MAX = 2000
NATIVE_PROMPT_MAX = 2500
NATIVE_DURATION_RANGE = (3, 15)

STATE_KEY = web.AppKey("happyhorse_sandbox_state", SandboxState)
VIDEOS_KEY = web.AppKey("happyhorse_sandbox_videos", VideoCache)

_NATIVE_STATUS = {
    Phase.QUEUED: "IN_PROGRESS",
    Phase.PROCESSING: "IN_PROGRESS",
    Phase.COMPLETED: "SUCCESS",
    Phase.FAILED: "FAILED",
}
_ERROR_TYPES = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "insufficient_credits",
    404: "not_found",
    429: "rate_limited",
}


class APIError(Exception):
    """An error answer: HTTP ``status``, readable ``message``, the offending ``field``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Describe the error answer to send."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_body(dialect: str, status: int, message: str, field: str | None = None) -> Any:
    """The JSON body of an error answer in ``dialect``."""
    if dialect == "native":
        return {"code": status, "message": message, "data": None}
    error: dict[str, Any] = {
        "code": status,
        "type": _ERROR_TYPES.get(status, "server_error" if status >= 500 else "error"),
        "message": message,
    }
    if field is not None:
        error["field"] = field
    return {"error": error}


def _error_response(dialect: str, exc: APIError) -> web.Response:
    """Turn ``exc`` into a JSON response in ``dialect``."""
    return web.json_response(
        error_body(dialect, exc.status, exc.message, exc.field),
        status=exc.status,
        headers=exc.headers,
    )


def _fault_response(dialect: str, fault: Fault) -> web.Response:
    """The answer an injected fault replaces the real one with."""
    status = fault.status if fault.status is not None else 200
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if isinstance(fault.body, str):
        return web.Response(
            body=fault.body.encode(),
            status=status,
            headers={**headers, "Content-Type": fault.content_type or "text/plain"},
        )
    body: Any = fault.body
    if body is None:
        body = error_body(dialect, status, f"Sandbox fault injection: HTTP {status}.")
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**headers, "Content-Type": fault.content_type or "application/json"},
    )


# --- validation -------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    """A JSON integer (``True``/``False`` are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    """A short JSON rendering of a rejected value for error messages."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_http_url(value: object) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_model(body: dict[str, Any]) -> str:
    """The request's model; only ``happyhorse-1.0/video`` exists."""
    if "model" not in body or body["model"] is None:
        raise APIError(400, f"model is required and must be {MODEL!r}", field="model")
    if body["model"] != MODEL:
        raise APIError(
            400, f"model must be {MODEL!r}, got {_describe(body['model'])}", field="model"
        )
    return MODEL


def _check_prompt(body: dict[str, Any], *, required: bool, limit: int) -> str:
    """The prompt text; required for text-to-video, at most ``limit`` characters."""
    prompt = body.get("prompt")
    if prompt is None:
        if required:
            raise APIError(400, "prompt is required for text-to-video", field="prompt")
        return ""
    if not isinstance(prompt, str):
        raise APIError(400, f"prompt must be a string, got {_describe(prompt)}", field="prompt")
    if required and not prompt.strip():
        raise APIError(400, "prompt must not be empty for text-to-video", field="prompt")
    if len(prompt) > limit:
        raise APIError(
            400,
            f"prompt is {len(prompt)} characters long; the maximum is {limit}",
            field="prompt",
        )
    return prompt


def _check_choice(
    body: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None
) -> str:
    """A string field that must be one of ``choices`` (``default`` when absent)."""
    value = body.get(name)
    if value is None:
        if default is None:
            raise APIError(400, f"{name} is required: one of {', '.join(choices)}", field=name)
        return default
    if value not in choices:
        raise APIError(
            400, f"{name} must be one of {', '.join(choices)}, got {_describe(value)}", field=name
        )
    return str(value)


def _check_sound(body: dict[str, Any], default: bool) -> bool:
    """The optional ``sound`` flag, a JSON boolean."""
    value = body.get("sound")
    if value is None:
        return default
    if not isinstance(value, bool):
        raise APIError(
            400, f"sound must be a boolean (true or false), got {_describe(value)}", field="sound"
        )
    return value


def validate_seed(body: dict[str, Any], image_field: str) -> dict[str, Any]:
    """Validate a seed-dialect generate body; return the task fields or raise ``APIError``."""
    model = _check_model(body)
    mode = _check_choice(body, "mode", SEED_MODES, None)
    prompt = _check_prompt(body, required=mode == "text-to-video", limit=SEED_PROMPT_MAX)
    duration = body.get("duration")
    if duration is None:
        raise APIError(400, "duration is required: 5 or 10 (seconds)", field="duration")
    if not _is_int(duration) or duration not in SEED_DURATIONS:
        raise APIError(
            400,
            f"duration must be the integer 5 or 10 (seconds), got {_describe(duration)}",
            field="duration",
        )
    aspect_ratio = _check_choice(body, "aspect_ratio", ASPECT_RATIOS, None)
    quality = _check_choice(body, "quality", QUALITIES, "std")
    sound = _check_sound(body, default=False)
    image = body.get(image_field)
    if mode == "image-to-video":
        if image is None:
            raise APIError(400, f"{image_field} is required for image-to-video", field=image_field)
        if not _is_http_url(image):
            raise APIError(
                400,
                f"{image_field} must be an http(s) URL, got {_describe(image)}",
                field=image_field,
            )
        images: tuple[str, ...] = (str(image),)
    else:
        if image is not None:
            raise APIError(
                400,
                f"{image_field} is only allowed with mode 'image-to-video'",
                field=image_field,
            )
        images = ()
    return {
        "model": model,
        "prompt": prompt,
        "mode": mode,
        "quality": quality,
        "duration": int(duration),
        "aspect_ratio": aspect_ratio,
        "sound": sound,
        "image_urls": images,
    }


def validate_native(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a native-dialect generate body; return the task fields or raise ``APIError``."""
    model = _check_model(body)
    raw_images = body.get("image_urls")
    images: tuple[str, ...] = ()
    if raw_images is not None:
        if not isinstance(raw_images, list) or not 1 <= len(raw_images) <= 2:
            raise APIError(
                400,
                "image_urls must be an array of 1 or 2 image URLs (first frame, last frame)",
                field="image_urls",
            )
        for url in raw_images:
            if not _is_http_url(url):
                raise APIError(
                    400,
                    f"image_urls must hold http(s) URLs, got {_describe(url)}",
                    field="image_urls",
                )
        images = tuple(str(url) for url in raw_images)
    prompt = _check_prompt(body, required=not images, limit=NATIVE_PROMPT_MAX)
    quality = _check_choice(body, "mode", QUALITIES, "std")
    duration = body.get("duration", 5)
    low, high = NATIVE_DURATION_RANGE
    if not _is_int(duration) or not low <= duration <= high:
        raise APIError(
            400,
            f"duration must be an integer from {low} to {high} (seconds), "
            f"got {_describe(duration)}",
            field="duration",
        )
    aspect_ratio = _check_choice(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
    sound = _check_sound(body, default=True)
    return {
        "model": model,
        "prompt": prompt,
        "mode": "image-to-video" if images else "text-to-video",
        "quality": quality,
        "duration": int(duration),
        "aspect_ratio": aspect_ratio,
        "sound": sound,
        "image_urls": images,
    }


# --- request plumbing ---------------------------------------------------------------------


def _state(request: web.Request) -> SandboxState:
    """The sandbox state behind ``request``'s application."""
    return request.app[STATE_KEY]


def check_auth(config: SandboxConfig, header: str | None) -> None:
    """Accept a well-formed bearer token (only ``config.api_key`` if set); else ``APIError`` 401."""
    challenge = {"WWW-Authenticate": 'Bearer realm="happyhorse-sandbox"'}
    if header is None or not header.strip():
        raise APIError(
            401,
            "Missing Authorization header: send 'Authorization: Bearer YOUR_API_KEY'",
            headers=challenge,
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise APIError(
            401,
            "Malformed Authorization header: expected 'Bearer YOUR_API_KEY'",
            headers=challenge,
        )
    if config.api_key is not None and token != config.api_key:
        raise APIError(401, "Invalid API key", headers=challenge)


def _check_rate(state: SandboxState, endpoint: Endpoint) -> None:
    """Count one API request against the rate limits; ``APIError`` 429 when over one."""
    wait = state.check_rate(endpoint)
    if wait is None:
        return
    seconds = max(1, math.ceil(wait))
    limit: int | None = state.config.rate_limit
    window = state.config.rate_window
    if state.status_window is not None and endpoint == "status":
        limit, window = state.config.status_rate_limit, state.config.status_rate_window
    raise APIError(
        429,
        f"Rate limit exceeded: at most {limit} requests per {window:g} seconds; "
        f"retry after {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api_endpoint(endpoint: Endpoint, inner: Handler) -> Handler:
    """Wrap an API handler: count it, apply faults, check auth and rate, render errors."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = _state(request)
        received = state.clock()
        response = await counted(request, state)
        if endpoint == "status":
            task_id = request.match_info.get("task_id") or request.query.get("task_id", "")
            state.status_log.append(StatusCall(task_id, received, state.clock(), response.status))
        return response

    async def counted(request: web.Request, state: SandboxState) -> web.StreamResponse:
        dialect = state.config.dialect
        state.count(endpoint)
        # Take the whole request in before any injected delay: a hung server has still
        # received the request, and acts on it even if the client has given up by then.
        await request.read()
        fault = state.faults.take(endpoint)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None or fault.body is not None:
                return _fault_response(dialect, fault)
        try:
            check_auth(state.config, request.headers.get("Authorization"))
            _check_rate(state, endpoint)
            response = await inner(request)
        except APIError as exc:
            response = _error_response(dialect, exc)
        if fault is not None and fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        return response

    return handler


async def _read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or ``APIError`` 400 saying what is wrong."""
    raw = await request.read()
    if not raw:
        raise APIError(400, "Request body is empty: send a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, "Request body must be a JSON object")
    return body


def _result_url(request: web.Request, task: SandboxTask) -> str:
    """Where the sandbox serves ``task``'s clip, on the host the client used."""
    return f"{request.url.origin()}/files/{task.task_id}.mp4"


async def _generate(request: web.Request) -> web.Response:
    """POST /api/generate: validate, charge credits and create a task."""
    state = _state(request)
    config = state.config
    body = await _read_json_object(request)
    if config.dialect == "native":
        fields = validate_native(body)
    else:
        fields = validate_seed(body, config.image_field)
    cost = task_cost(fields["duration"], fields["quality"])
    if not state.can_afford(cost):
        raise APIError(
            402,
            f"Insufficient credits: this request costs {cost} credits and {state.credits} remain",
        )
    task = state.create_task(**fields)
    if config.dialect == "native":
        return web.json_response(
            {"code": 200, "message": "success", "data": {"task_id": task.task_id}}
        )
    return web.json_response(
        {
            "task_id": task.task_id,
            "status": Phase.QUEUED.value,
            "message": "Task accepted and queued for generation.",
        }
    )


def _status_body(request: web.Request, state: SandboxState, task: SandboxTask) -> Any:
    """The status answer for ``task`` in the configured dialect."""
    phase, message = state.phase(task)
    url = _result_url(request, task)
    if state.config.dialect == "native":
        data: dict[str, Any] = {"task_id": task.task_id, "status": _NATIVE_STATUS[phase]}
        if phase is Phase.COMPLETED:
            data["response"] = {"resultUrls": [url]}
        elif phase is Phase.FAILED:
            data["error_message"] = message
        return {"code": 200, "message": "success", "data": data}
    seed_data: dict[str, Any] = {
        "model": task.model,
        "mode": task.mode,
        "duration": task.duration,
        "aspect_ratio": task.aspect_ratio,
    }
    if phase is Phase.COMPLETED:
        seed_data["resultUrls"] = [url]
        seed_data["video_url"] = url
    return {"task_id": task.task_id, "status": phase.value, "message": message, "data": seed_data}


def _find_task(state: SandboxState, task_id: str) -> SandboxTask:
    """The task with ``task_id`` or ``APIError`` 404."""
    task = state.tasks.get(task_id)
    if task is None:
        raise APIError(404, f"Task {task_id!r} not found")
    return task


async def _status_query(request: web.Request) -> web.Response:
    """GET /api/status?task_id=ID."""
    state = _state(request)
    task_id = request.query.get("task_id", "").strip()
    if not task_id:
        raise APIError(400, "task_id is required as a query parameter", field="task_id")
    task = _find_task(state, task_id)
    state.count_status(task.task_id)
    return web.json_response(_status_body(request, state, task))


async def _status_path(request: web.Request) -> web.Response:
    """GET /api/status/{task_id} (the reseller form)."""
    state = _state(request)
    task = _find_task(state, request.match_info["task_id"])
    state.count_status(task.task_id)
    return web.json_response(_status_body(request, state, task))


async def _download(request: web.Request) -> web.StreamResponse:
    """GET /files/{task_id}.mp4: the finished clip, no auth (like a CDN)."""
    state = _state(request)
    dialect = state.config.dialect
    state.count("download")
    fault = state.faults.take("download")
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.redirect_to is not None:
            raise web.HTTPFound(fault.redirect_to)
        if fault.status is not None or fault.body is not None:
            return _fault_response(dialect, fault)
    name = request.match_info["name"]
    task_id = name.removesuffix(".mp4")
    task = state.tasks.get(task_id) if name.endswith(".mp4") else None
    if task is None:
        return _error_response(dialect, APIError(404, f"File {name!r} not found"))
    phase, _ = state.phase(task)
    if phase is not Phase.COMPLETED:
        return _error_response(
            dialect, APIError(404, f"File {name!r} is not available: the task is {phase.value}")
        )
    if task.download_stall:
        await asyncio.sleep(task.download_stall)
    big = state.config.big_bitrate if state.wants_big_clip(task) else None
    data = await request.app[VIDEOS_KEY].get(task.aspect_ratio, task.duration, task.sound, big)
    headers = {"Content-Type": "video/mp4", "Cache-Control": "public, max-age=86400"}
    if fault is not None and fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault is None and task.result_size is not None:
        fault = Fault("download", pad_to=task.result_size)
    if fault is None or not (fault.truncate or fault.omit_length or fault.pad_to is not None):
        return web.Response(body=data, headers=headers)
    return await _stream_faulty_file(request, fault, data, headers)


async def _stream_faulty_file(
    request: web.Request, fault: Fault, data: bytes, headers: dict[str, str]
) -> web.StreamResponse:
    """Serve ``data`` the way a download fault asks: padded, chunked or cut short."""
    size = fault.pad_to if fault.pad_to is not None else len(data)
    response = web.StreamResponse(headers=headers)
    if fault.omit_length:
        response.enable_chunked_encoding()
    else:
        response.content_length = size
    await response.prepare(request)
    if fault.truncate:
        sent = 0
        for chunk in pad_mp4(data, size):
            piece = chunk[: max(0, size // 2 - sent)]
            if piece:
                await response.write(piece)
                sent += len(piece)
            if sent >= size // 2:
                break
        # Drop the connection mid-body, as a failing CDN would.
        transport = request.transport
        if transport is not None:
            transport.abort()
        return response
    for chunk in pad_mp4(data, size):
        await response.write(chunk)
    await response.write_eof()
    return response


# --- control plane ------------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    """GET /healthz: liveness and the dialect spoken."""
    return web.json_response({"status": "ok", "dialect": _state(request).config.dialect})


async def _list_faults(request: web.Request) -> web.Response:
    """GET /_sandbox/faults: the pending faults, oldest first."""
    return web.json_response({"faults": [f.to_json() for f in _state(request).faults.pending]})


async def _add_faults(request: web.Request) -> web.Response:
    """POST /_sandbox/faults: queue one fault (an object) or several (an array)."""
    state = _state(request)
    try:
        payload = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return web.json_response({"error": f"body is not valid JSON: {exc}"}, status=400)
    items = payload if isinstance(payload, list) else [payload]
    added = []
    for item in items:
        if not isinstance(item, dict):
            return web.json_response({"error": "each fault must be a JSON object"}, status=400)
        try:
            added.append(state.faults.add_from_json(item))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(
        {"added": [f.to_json() for f in added], "pending": len(state.faults)}, status=201
    )


async def _clear_faults(request: web.Request) -> web.Response:
    """DELETE /_sandbox/faults: drop every pending fault."""
    faults = _state(request).faults
    cleared = len(faults)
    faults.clear()
    return web.json_response({"cleared": cleared})


def _task_json(state: SandboxState, task: SandboxTask) -> dict[str, Any]:
    """A task with its current phase, for the control plane."""
    phase, message = state.phase(task)
    return {
        **task.to_json(),
        "status": phase.value,
        "message": message,
        "status_requests": state.status_counts.get(task.task_id, 0),
    }


async def _list_tasks(request: web.Request) -> web.Response:
    """GET /_sandbox/tasks: every task, request counts per endpoint and credits left."""
    state = _state(request)
    return web.json_response(
        {
            "tasks": [_task_json(state, task) for task in state.tasks.values()],
            "request_counts": dict(state.request_counts),
            "rate_limited": dict(state.rate_limited),
            "credits": state.credits,
        }
    )


async def _force_task(request: web.Request) -> web.Response:
    """POST /_sandbox/tasks/{task_id}/complete|fail: pin a task's outcome now."""
    state = _state(request)
    task_id = request.match_info["task_id"]
    if task_id not in state.tasks:
        return web.json_response({"error": f"Task {task_id!r} not found"}, status=404)
    message: str | None = None
    if request.match_info["action"] == "fail":
        raw = await request.read()
        if raw:
            try:
                payload = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("message"), str):
                message = payload["message"]
        task = state.force(task_id, Phase.FAILED, message or "Video generation failed.")
    else:
        task = state.force(task_id, Phase.COMPLETED)
    return web.json_response(_task_json(state, task))


def _wrap(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Handler:
    """Adapt a handler returning ``web.Response`` to the ``Handler`` type."""

    async def adapted(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    return adapted


def create_app(
    config: SandboxConfig | None = None, *, state: SandboxState | None = None
) -> web.Application:
    """Build the sandbox application for ``config``.

    Pass ``state`` instead to serve an existing :class:`SandboxState` (its config wins).
    """
    if state is None:
        state = SandboxState(config or SandboxConfig())
    app = web.Application()
    app[STATE_KEY] = state
    app[VIDEOS_KEY] = VideoCache()
    app.router.add_post("/api/generate", _api_endpoint("generate", _wrap(_generate)))
    app.router.add_get("/api/status", _api_endpoint("status", _wrap(_status_query)))
    app.router.add_get("/api/status/{task_id}", _api_endpoint("status", _wrap(_status_path)))
    app.router.add_get("/files/{name}", _download)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/_sandbox/faults", _list_faults)
    app.router.add_post("/_sandbox/faults", _add_faults)
    app.router.add_delete("/_sandbox/faults", _clear_faults)
    app.router.add_get("/_sandbox/tasks", _list_tasks)
    app.router.add_post("/_sandbox/tasks/{task_id}/{action:complete|fail}", _force_task)
    return app


class SandboxServer:
    """The sandbox on a real loopback socket, as an async context manager.

    ``async with SandboxServer(SandboxConfig(complete_after=0.2)) as server:`` starts it
    (``port=0`` picks a free port); ``server.base_url`` is then ``http://127.0.0.1:PORT``
    and ``server.state`` the live :class:`SandboxState` (tasks, faults, counters).
    """

    def __init__(self, config: SandboxConfig | None = None, *, shutdown_timeout: float = 1.0):
        """Prepare (but do not start) a server for ``config``."""
        self.config = config or SandboxConfig()
        self.app = create_app(self.config)
        self.state: SandboxState = self.app[STATE_KEY]
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server; ``RuntimeError`` before ``start``."""
        if self._base_url is None:
            raise RuntimeError("the sandbox server is not running")
        return self._base_url

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        return int(self.base_url.rsplit(":", 1)[1])

    async def start(self) -> str:
        """Bind and start serving; return the base URL."""
        if self._runner is not None:
            return self.base_url
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{shown}:{port}"
        return self._base_url

    async def close(self) -> None:
        """Stop serving and release the socket (idempotent)."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.close()
