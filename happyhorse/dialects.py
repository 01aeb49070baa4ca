"""Request serialisation and tolerant answer parsing for each API dialect.

Two dialects share the endpoints `POST {base}/api/generate` and
`GET {base}/api/status?task_id=ID` but differ in the request body:

- `seed` (the published contract): `mode` is text-to-video / image-to-video, `quality` is
  std / pro, and the image URL goes in a configurable field (default `image_url`).
- `native` (the live happyhorse.app service): `mode` carries the quality (std / pro), the
  image goes in `image_urls: [url]`, and text vs image is implied by its presence.

Answers are read the same way in both dialects, accepting every shape seen in the wild:
the task id top-level or under `data` (`task_id`, `taskId`, or `id` unless it is an
envelope's request id beside `data`); the state anywhere in
`data`, the top level or `data.response`, case-insensitive with synonyms; result URLs in
`resultUrls` (list) or `video_url` / `url` at those levels; and `{code, message, data}`
envelopes whose non-success code is an error even when the HTTP status was 200.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, Final

from happyhorse.errors import InvalidResponseError, error_for_status, truncate
from happyhorse.models import (
    DURATIONS,
    NATIVE_DURATIONS,
    GenerationRequest,
    Mode,
    Task,
    TaskState,
    TaskStatus,
    is_http_url,
)
from happyhorse.settings import DialectName

GENERATE_PATH: Final = "/api/generate"
STATUS_PATH: Final = "/api/status"

JSONObject = dict[str, Any]

_STATE_SYNONYMS: Final[dict[str, TaskState]] = {
    **dict.fromkeys(("pending", "queued", "waiting", "submitted"), TaskState.QUEUED),
    **dict.fromkeys(
        ("running", "in_progress", "processing", "generating"), TaskState.PROCESSING
    ),
    **dict.fromkeys(
        ("success", "succeeded", "done", "completed", "finished"), TaskState.COMPLETED
    ),
    **dict.fromkeys(
        ("error", "failure", "failed", "cancelled", "canceled", "timeout"), TaskState.FAILED
    ),
}
# Some services name the task plainly `id`; the specific names win when present.
_NAMED_ID_KEYS: Final = ("task_id", "taskId")
_STATE_KEYS: Final = ("status", "state")
_URL_LIST_KEYS: Final = ("resultUrls", "result_urls", "video_urls", "urls")
_URL_KEYS: Final = ("video_url", "videoUrl", "result_url", "resultUrl", "output_url", "url")
_REASON_KEYS: Final = ("error_message", "error", "message")
_ERROR_KEYS: Final = ("error", "error_message", "message", "detail")


def parse_state(raw: object) -> TaskState | None:
    """Map an API state word (any case, `-` or space for `_`) to a TaskState, else None."""
    if not isinstance(raw, str):
        return None
    key = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return _STATE_SYNONYMS.get(key)


def _text(value: object) -> str | None:
    """A readable string from a message-like value (str, {message: ...}, [{msg: ...}])."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        for key in ("message", "msg", "error", "detail"):
            found = _text(value.get(key))
            if found:
                return found
        return None
    if isinstance(value, list):
        parts = [part for part in (_text(item) for item in value[:5]) if part]
        return "; ".join(parts) or None
    return None


def _containers(payload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The objects that may hold task fields, most specific first: data.response, data, top."""
    data = payload.get("data")
    if isinstance(data, Mapping):
        response = data.get("response")
        if isinstance(response, Mapping):
            yield response
        yield data
    yield payload


def api_message(payload: object) -> str | None:
    """The API's own error text from `error` / `error_message` / `message` / `detail`.

    Distinct texts are joined ("invalid_request: duration must be 5 or 10") and truncated.
    """
    if not isinstance(payload, Mapping):
        return None
    for container in (payload, payload.get("data")):
        if not isinstance(container, Mapping):
            continue
        parts: list[str] = []
        for key in _ERROR_KEYS:
            found = _text(container.get(key))
            if found and found not in parts:
                parts.append(found)
        if parts:
            return truncate(": ".join(parts))
    return None


def envelope_code(payload: object) -> int | None:
    """The `code` of a `{code, message, data}` envelope, or None when there is none."""
    if not isinstance(payload, Mapping):
        return None
    code = payload.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def raise_for_envelope(payload: object, *, retry_after: float | None = None) -> None:
    """Raise the mapped API error when an envelope's code is not a success (0 or 2xx).

    The code is read like an HTTP status: 401 AuthenticationError, 402
    InsufficientCreditsError, 429 RateLimitError, 5xx ServerError, 400 BadRequestError,
    anything else APIStatusError.
    """
    code = envelope_code(payload)
    if code is None or code == 0 or 200 <= code <= 299:
        return
    message = api_message(payload) or f"API error code {code}"
    raise error_for_status(code, message, retry_after=retry_after)


def _require_object(payload: object, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise InvalidResponseError(
            f"{what} answer is not a JSON object (got {type(payload).__name__})"
        )
    return payload


def _find_task_id(payload: Mapping[str, Any]) -> str | None:
    """The task id: `task_id`/`taskId` at either level, else a plain `id` inside `data`.

    A top-level `id` beside a `data` object belongs to the envelope (a request id), so it
    is only read when the answer has no `data` object at all.
    """
    data = payload.get("data")
    searches: tuple[tuple[Mapping[str, Any], tuple[str, ...]], ...]
    if isinstance(data, Mapping):
        searches = ((payload, _NAMED_ID_KEYS), (data, _NAMED_ID_KEYS), (data, ("id",)))
    else:
        searches = ((payload, _NAMED_ID_KEYS), (payload, ("id",)))
    for level, keys in searches:
        for key in keys:
            value = level.get(key)
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                return str(value)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _find_state(payload: Mapping[str, Any]) -> tuple[TaskState | None, object]:
    """The task's state and the raw value it came from (None, None when absent).

    `data` is searched before the top level, because envelopes sometimes carry a
    request-level `status` beside the task's own.
    """
    data = payload.get("data")
    levels: list[Mapping[str, Any]] = [data] if isinstance(data, Mapping) else []
    levels.append(payload)
    if isinstance(data, Mapping) and isinstance(data.get("response"), Mapping):
        levels.append(data["response"])
    first_raw: object = None
    for level in levels:
        for key in _STATE_KEYS:
            raw = level.get(key)
            if raw is None:
                continue
            state = parse_state(raw)
            if state is not None:
                return state, raw
            if first_raw is None:
                first_raw = raw
    return None, first_raw


def _find_result_urls(payload: Mapping[str, Any]) -> tuple[str, ...]:
    urls: list[str] = []
    for container in _containers(payload):
        candidates: list[object] = []
        for key in _URL_LIST_KEYS:
            value = container.get(key)
            candidates.extend(value if isinstance(value, list) else [value])
        candidates.extend(container.get(key) for key in _URL_KEYS)
        for candidate in candidates:
            if isinstance(candidate, str):
                url = candidate.strip()
                if is_http_url(url) and url not in urls:
                    urls.append(url)
    return tuple(urls)


def _find_message(payload: Mapping[str, Any], state: TaskState) -> str | None:
    keys = _REASON_KEYS if state is TaskState.FAILED else ("message",)
    for key in keys:
        for container in _containers(payload):
            found = _text(container.get(key))
            if found:
                return truncate(found)
    return None


def parse_task(payload: object) -> Task:
    """Read the answer to a generation request.

    A task id is required. The state defaults to queued; a "completed" state is reported as
    processing, because result URLs are only ever read from a status call.
    """
    raise_for_envelope(payload)
    body = _require_object(payload, "generate")
    task_id = _find_task_id(body)
    if task_id is None:
        said = api_message(body)
        hint = f"; the API said: {said}" if said else ""
        raise InvalidResponseError(
            f"generate answer has no task id (task_id, taskId or id, top-level or under data)"
            f"{hint}"
        )
    state, _ = _find_state(body)
    if state is None:
        state = TaskState.QUEUED
    elif state is TaskState.COMPLETED:
        state = TaskState.PROCESSING
    return Task(task_id=task_id, state=state, message=_find_message(body, state))


def parse_status(payload: object, *, task_id: str) -> TaskStatus:
    """Read a status answer for `task_id` (used when the answer does not repeat the id).

    Raises InvalidResponseError naming what is missing: the state, a known state word, or
    the result URL of a completed task.
    """
    raise_for_envelope(payload)
    body = _require_object(payload, "status")
    state, raw = _find_state(body)
    if state is None:
        if raw is None:
            raise InvalidResponseError(
                "status answer has no task state (status or state, top-level or under data)"
            )
        shown = truncate(str(raw), 60)
        raise InvalidResponseError(f"status answer has an unknown task state {shown!r}")
    urls = _find_result_urls(body)
    if state is TaskState.COMPLETED and not urls:
        raise InvalidResponseError(
            "status answer says completed but has no result URL "
            "(resultUrls, video_url or url, top-level, under data or data.response)"
        )
    return TaskStatus(
        task_id=_find_task_id(body) or task_id,
        state=state,
        message=_find_message(body, state),
        result_urls=urls if state is TaskState.COMPLETED else (),
    )


class Dialect(ABC):
    """How one API dialect serialises requests; parsing is shared and tolerant."""

    name: DialectName
    durations: tuple[int, ...] = DURATIONS
    """Clip lengths (seconds) this dialect accepts."""
    supports_last_frame: bool = False
    """Whether image-to-video may name a last frame."""

    generate_path: str = GENERATE_PATH
    status_path: str = STATUS_PATH

    def status_params(self, task_id: str) -> dict[str, str]:
        """Query parameters of a status call."""
        return {"task_id": task_id}

    @abstractmethod
    def generate_body(
        self, request: GenerationRequest, *, image_field: str, model: str | None = None
    ) -> JSONObject:
        """The JSON body of a generation request (`model` overrides the request's)."""

    def parse_task(self, payload: object) -> Task:
        """Read the answer to a generation request (see `parse_task`)."""
        return parse_task(payload)

    def parse_status(self, payload: object, *, task_id: str) -> TaskStatus:
        """Read a status answer (see `parse_status`)."""
        return parse_status(payload, task_id=task_id)


def _common_body(request: GenerationRequest, model: str | None) -> JSONObject:
    body: JSONObject = {"model": model or request.model}
    if request.prompt:
        body["prompt"] = request.prompt
    return body


class SeedDialect(Dialect):
    """The published contract's request shape."""

    name: DialectName = "seed"

    def generate_body(
        self, request: GenerationRequest, *, image_field: str, model: str | None = None
    ) -> JSONObject:
        """`{model, prompt, mode, duration, aspect_ratio, quality, sound, <image_field>}`."""
        body = _common_body(request, model)
        body.update(
            mode=request.mode.value,
            duration=int(request.duration),
            aspect_ratio=request.aspect_ratio.value,
            quality=request.quality.value,
            sound=bool(request.sound),
        )
        if request.mode is Mode.IMAGE_TO_VIDEO and request.image_url:
            body[image_field] = request.image_url
        return body


class NativeDialect(Dialect):
    """The live happyhorse.app request shape."""

    name: DialectName = "native"
    durations: tuple[int, ...] = NATIVE_DURATIONS
    supports_last_frame: bool = True

    def generate_body(
        self, request: GenerationRequest, *, image_field: str, model: str | None = None
    ) -> JSONObject:
        """`{model, prompt, mode: std|pro, duration, aspect_ratio, sound, image_urls}`.

        `image_urls` is `[first frame]` or `[first frame, last frame]`.
        """
        body = _common_body(request, model)
        body.update(
            mode=request.quality.value,
            duration=int(request.duration),
            aspect_ratio=request.aspect_ratio.value,
            sound=bool(request.sound),
        )
        if request.mode is Mode.IMAGE_TO_VIDEO and request.image_url:
            body["image_urls"] = [request.image_url]
            if request.last_frame_url:
                body["image_urls"].append(request.last_frame_url)
        return body


SEED: Final = SeedDialect()
NATIVE: Final = NativeDialect()
_BY_NAME: Final[dict[str, Dialect]] = {"seed": SEED, "native": NATIVE}


def get_dialect(name: DialectName) -> Dialect:
    """The Dialect called `name` ("seed" or "native")."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; expected 'seed' or 'native'") from None
