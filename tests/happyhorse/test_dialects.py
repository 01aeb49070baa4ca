"""Request serialisation per dialect and the shared tolerant answer parser."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest

from happyhorse.dialects import (
    NATIVE,
    SEED,
    api_message,
    get_dialect,
    parse_state,
    parse_status,
    parse_task,
)
from happyhorse.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
)
from happyhorse.models import AspectRatio, GenerationRequest, Mode, Quality, TaskState

TEXT = GenerationRequest(
    prompt="a horse", duration=10, aspect_ratio=AspectRatio.SQUARE, quality=Quality.PRO, sound=True
)
IMAGE = GenerationRequest(
    prompt="it gallops",
    mode=Mode.IMAGE_TO_VIDEO,
    image_url="https://img.example/h.png",
    aspect_ratio=AspectRatio.PORTRAIT,
)

# --- serialisation ------------------------------------------------------------------------


def test_seed_text_body() -> None:
    """Seed: mode is text-to-video, quality its own field, no image field."""
    body = SEED.generate_body(TEXT, image_field="image_url")
    assert body == {
        "model": "happyhorse-1.0/video",
        "prompt": "a horse",
        "mode": "text-to-video",
        "duration": 10,
        "aspect_ratio": "1:1",
        "quality": "pro",
        "sound": True,
    }
    # On the wire: an integer duration and a JSON boolean.
    assert '"duration": 10' in json.dumps(body)
    assert '"sound": true' in json.dumps(body)


def test_seed_image_body_uses_the_configured_field() -> None:
    """Seed: the image URL goes in the configured field."""
    body = SEED.generate_body(IMAGE, image_field="input_reference")
    assert body["mode"] == "image-to-video"
    assert body["input_reference"] == "https://img.example/h.png"
    assert "image_url" not in body
    assert body["sound"] is False


def test_native_text_body() -> None:
    """Native: mode carries the quality and there is no quality field."""
    body = NATIVE.generate_body(TEXT, image_field="image_url")
    assert body == {
        "model": "happyhorse-1.0/video",
        "prompt": "a horse",
        "mode": "pro",
        "duration": 10,
        "aspect_ratio": "1:1",
        "sound": True,
    }


def test_native_image_body() -> None:
    """Native: the image goes in image_urls as a one-element list."""
    body = NATIVE.generate_body(IMAGE, image_field="input_reference")
    assert body["image_urls"] == ["https://img.example/h.png"]
    assert body["mode"] == "std"
    assert "input_reference" not in body


def test_empty_prompt_is_left_out() -> None:
    """An image-to-video request without prompt sends no prompt field."""
    request = GenerationRequest(prompt="", mode=Mode.IMAGE_TO_VIDEO, image_url="https://i/x.png")
    assert "prompt" not in SEED.generate_body(request, image_field="image_url")


def test_model_override() -> None:
    """A configured model replaces the request's."""
    body = NATIVE.generate_body(TEXT, image_field="image_url", model="happyhorse-1.0-t2v")
    assert body["model"] == "happyhorse-1.0-t2v"


def test_get_dialect() -> None:
    """Dialects are found by name; an unknown name is a ValueError."""
    assert get_dialect("seed") is SEED
    assert get_dialect("native") is NATIVE
    with pytest.raises(ValueError, match="klingon"):
        get_dialect("klingon")  # type: ignore[arg-type]


# --- states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "state"),
    [
        (("pending", "queued", "waiting", "submitted", "QUEUED"), TaskState.QUEUED),
        (
            ("running", "in_progress", "IN_PROGRESS", "in-progress", "processing", "generating"),
            TaskState.PROCESSING,
        ),
        (
            ("success", "SUCCESS", "succeeded", "done", "completed", "Finished"),
            TaskState.COMPLETED,
        ),
        (
            ("error", "failure", "failed", "FAILED", "cancelled", "canceled", "timeout"),
            TaskState.FAILED,
        ),
    ],
)
def test_state_synonyms(words: tuple[str, ...], state: TaskState) -> None:
    """Every synonym, in any case, maps to its state."""
    for word in words:
        assert parse_state(word) is state, word


@pytest.mark.parametrize("raw", ["bogus", "", None, 3, ["queued"]])
def test_unknown_state_is_none(raw: object) -> None:
    """Unknown words and non-strings give None."""
    assert parse_state(raw) is None


# --- tolerant status shapes ---------------------------------------------------------------

URL = "https://cdn.example/v.mp4"

# (name, payload, task id, state, result URLs, message)
STATUS_SHAPES: list[tuple[str, dict[str, Any], str, TaskState, tuple[str, ...], str | None]] = [
    (
        "plain id, result_url",
        {"id": "t1", "status": "succeeded", "result_url": URL},
        "t1",
        TaskState.COMPLETED,
        (URL,),
        None,
    ),
    (
        "urls list under data",
        {"data": {"id": "t1", "state": "done", "urls": [URL]}},
        "t1",
        TaskState.COMPLETED,
        (URL,),
        None,
    ),
    (
        "seed contract example",
        {
            "task_id": "t1",
            "status": "completed",
            "message": "Video generation completed.",
            "data": {"resultUrls": [URL], "video_url": URL},
        },
        "t1",
        TaskState.COMPLETED,
        (URL,),
        "Video generation completed.",
    ),
    (
        "native success",
        {
            "code": 200,
            "message": "success",
            "data": {"task_id": "t1", "status": "SUCCESS", "response": {"resultUrls": [URL]}},
        },
        "t1",
        TaskState.COMPLETED,
        (URL,),
        "success",
    ),
    (
        "native failed",
        {
            "code": 200,
            "message": "success",
            "data": {"task_id": "t1", "status": "FAILED", "error_message": "content policy"},
        },
        "t1",
        TaskState.FAILED,
        (),
        "content policy",
    ),
    (
        "native in progress, code 0, taskId",
        {"code": 0, "data": {"taskId": "t2", "status": "IN_PROGRESS"}},
        "t2",
        TaskState.PROCESSING,
        (),
        None,
    ),
    (
        "reseller id + state + top-level video_url",
        {"id": "t3", "state": "done", "video_url": URL},
        "t3",
        TaskState.COMPLETED,
        (URL,),
        None,
    ),
    (
        "bare url under data",
        {"data": {"id": "t4", "status": "finished", "url": URL}},
        "t4",
        TaskState.COMPLETED,
        (URL,),
        None,
    ),
    (
        "resultUrls as a string",
        {"task_id": "t1", "status": "succeeded", "resultUrls": URL},
        "t1",
        TaskState.COMPLETED,
        (URL,),
        None,
    ),
    (
        "several urls deduplicated, order kept",
        {
            "task_id": "t1",
            "status": "completed",
            "data": {"resultUrls": [URL, "https://cdn.example/2.mp4"], "video_url": URL},
        },
        "t1",
        TaskState.COMPLETED,
        (URL, "https://cdn.example/2.mp4"),
        None,
    ),
    (
        "error as an object",
        {"task_id": "t1", "status": "error", "error": {"message": "GPU melted"}},
        "t1",
        TaskState.FAILED,
        (),
        "GPU melted",
    ),
    (
        "failure reason in message",
        {"task_id": "t1", "status": "cancelled", "message": "user cancelled"},
        "t1",
        TaskState.FAILED,
        (),
        "user cancelled",
    ),
    ("numeric id, Pending", {"task_id": 42, "status": "Pending"}, "42", TaskState.QUEUED, (), None),
    ("no id in the answer", {"status": "running"}, "asked", TaskState.PROCESSING, (), None),
    (
        "request-level status beside the task's",
        {"status": "success", "data": {"task_id": "t1", "status": "processing"}},
        "t1",
        TaskState.PROCESSING,
        (),
        None,
    ),
    (
        "results ignored until completed",
        {"task_id": "t1", "status": "processing", "video_url": URL},
        "t1",
        TaskState.PROCESSING,
        (),
        None,
    ),
]


@pytest.mark.parametrize(
    ("payload", "task_id", "state", "urls", "message"),
    [shape[1:] for shape in STATUS_SHAPES],
    ids=[shape[0] for shape in STATUS_SHAPES],
)
def test_status_shapes(
    payload: dict[str, Any],
    task_id: str,
    state: TaskState,
    urls: tuple[str, ...],
    message: str | None,
) -> None:
    """Every known status shape is read the same way by both dialects."""
    for dialect in (SEED, NATIVE):
        status = dialect.parse_status(payload, task_id="asked")
        assert status.task_id == task_id
        assert status.state is state
        assert status.result_urls == urls
        assert status.message == message


@pytest.mark.parametrize(
    ("payload", "missing"),
    [
        ([], "not a JSON object"),
        ("queued", "not a JSON object"),
        (None, "not a JSON object"),
        ({}, "no task state"),
        ({"data": None}, "no task state"),
        ({"task_id": "t1", "status": "teleporting"}, "unknown task state 'teleporting'"),
        ({"task_id": "t1", "status": "completed"}, "no result URL"),
        ({"task_id": "t1", "status": "completed", "video_url": "ftp://x/v.mp4"}, "no result URL"),
        ({"task_id": "t1", "status": "completed", "resultUrls": [None, 3]}, "no result URL"),
    ],
)
def test_unreadable_status_says_what_is_missing(payload: object, missing: str) -> None:
    """Unreadable status answers raise InvalidResponseError naming the gap."""
    with pytest.raises(InvalidResponseError, match=missing):
        parse_status(payload, task_id="t1")


def test_task_answer_shapes() -> None:
    """Generate answers: id anywhere we know, state defaulting to queued."""
    assert parse_task({"task_id": "a"}).state is TaskState.QUEUED
    assert parse_task({"data": {"taskId": "b"}}).task_id == "b"
    assert parse_task({"code": 200, "message": "success", "data": {"task_id": "c"}}).task_id == "c"
    assert parse_task({"id": 7, "status": "processing"}).state is TaskState.PROCESSING
    assert parse_task({"data": {"id": "e"}}).task_id == "e"
    assert parse_task({"id": "ignored", "task_id": "f"}).task_id == "f"
    failed = parse_task({"task_id": "d", "status": "failed", "error": "prompt refused"})
    assert (failed.state, failed.message) == (TaskState.FAILED, "prompt refused")


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "req-abc", "data": {"task_id": "T1"}},
        {"id": "req-abc", "data": {"taskId": "T1"}},
        {"id": "req-abc", "code": 200, "data": {"id": "T1"}},
    ],
)
def test_envelope_request_id_is_never_the_task_id(payload: dict[str, Any]) -> None:
    """A top-level `id` beside a `data` object is the envelope's request id, not the task's."""
    assert parse_task(payload).task_id == "T1"
    assert parse_status({**payload, "status": "processing"}, task_id="asked").task_id == "T1"


def test_task_answer_never_claims_completed() -> None:
    """A generate answer saying "success" is not taken as a finished video."""
    assert parse_task({"status": "success", "data": {"task_id": "x"}}).state is TaskState.PROCESSING


def test_task_answer_without_id_quotes_the_api() -> None:
    """A generate answer without a task id is InvalidResponseError with the API's words."""
    with pytest.raises(InvalidResponseError, match=r"no task id.*the API said: quota exceeded"):
        parse_task({"status": "error", "message": "quota exceeded"})


# --- envelopes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (404, APIStatusError),
        (10001, APIStatusError),
        ("401", AuthenticationError),
    ],
)
def test_envelope_error_codes(code: object, cls: type[APIStatusError]) -> None:
    """A non-success envelope code is an error mapped like an HTTP status."""
    payload = {"code": code, "message": "told you so", "data": None}
    for parse in (lambda p: parse_task(p), lambda p: parse_status(p, task_id="t")):
        with pytest.raises(cls) as info:
            parse(payload)
        assert type(info.value) is cls
        assert info.value.message == "told you so"
        assert info.value.status == int(str(code))


@pytest.mark.parametrize("code", [0, 200, 201, "0"])
def test_envelope_success_codes(code: object) -> None:
    """Codes 0 and 2xx are success."""
    assert parse_task({"code": code, "data": {"task_id": "t"}}).task_id == "t"


def test_api_message_sources() -> None:
    """The API's message is read from error / error_message / message / detail."""
    assert api_message({"message": "m"}) == "m"
    assert api_message({"error": "e"}) == "e"
    assert api_message({"error_message": "em"}) == "em"
    assert api_message({"detail": "d"}) == "d"
    assert api_message({"detail": [{"msg": "duration bad"}, {"msg": "ratio bad"}]}) == (
        "duration bad; ratio bad"
    )
    assert api_message({"error": {"code": 401, "message": "Invalid API key"}}) == "Invalid API key"
    assert api_message({"error": "invalid_request", "message": "duration must be 5"}) == (
        "invalid_request: duration must be 5"
    )
    assert api_message({"data": {"message": "nested"}}) == "nested"
    assert api_message({"nothing": 1}) is None
    assert api_message("text") is None


def test_junk_never_escapes_as_a_bare_exception() -> None:
    """Random JSON-ish junk raises only HappyHorseError subclasses, never KeyError/TypeError."""
    rng = random.Random(1234)
    atoms: list[Any] = [None, True, 0, 200, 401, -1, 1.5, "", "completed", "x", [], {}, [1, "a"]]
    keys = ["task_id", "taskId", "id", "status", "state", "data", "response", "code",
            "message", "error", "resultUrls", "video_url", "url", "error_message"]

    def junk(depth: int) -> Any:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(atoms)
        if rng.random() < 0.2:
            return [junk(depth - 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): junk(depth - 1) for _ in range(rng.randint(0, 5))}

    for _ in range(3000):
        payload = junk(4)
        for parse in (lambda p: parse_task(p), lambda p: parse_status(p, task_id="t")):
            with contextlib.suppress(HappyHorseError):
                parse(payload)
