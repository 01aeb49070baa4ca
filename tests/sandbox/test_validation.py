"""Request validation: 400 answers naming the offending field, in both dialects."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from happyhorse.sandbox import SandboxServer
from tests.sandbox.conftest import AUTH, NATIVE_BODY, SEED_BODY, MakeSandbox

_DROP = object()


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`base` with fields replaced (or removed when the value is _DROP)."""
    body = dict(base)
    for name, value in changes.items():
        if value is _DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return body


async def _post_raw(
    session: aiohttp.ClientSession, server: SandboxServer, data: bytes
) -> tuple[int, dict[str, Any]]:
    """POST raw bytes to /api/generate; return status and JSON answer."""
    async with session.post(
        f"{server.base_url}/api/generate",
        data=data,
        headers={**AUTH, "Content-Type": "application/json"},
    ) as r:
        return r.status, await r.json()


SEED_CASES: list[tuple[dict[str, Any], str, str]] = [
    (_with(SEED_BODY, model=_DROP), "model", "model is required"),
    (_with(SEED_BODY, model="happyhorse-2.0/video"), "model", "model must be"),
    (_with(SEED_BODY, mode=_DROP), "mode", "mode is required"),
    (_with(SEED_BODY, mode="std"), "mode", "mode must be one of text-to-video, image-to-video"),
    (_with(SEED_BODY, prompt=_DROP), "prompt", "prompt is required for text-to-video"),
    (_with(SEED_BODY, prompt="   "), "prompt", "prompt must not be empty"),
    (_with(SEED_BODY, prompt=42), "prompt", "prompt must be a string"),
    (_with(SEED_BODY, prompt="x" * 2001), "prompt", "prompt is 2001 characters long"),
    (_with(SEED_BODY, duration=_DROP), "duration", "duration is required"),
    (_with(SEED_BODY, duration=7), "duration", "duration must be the integer 5 or 10"),
    (_with(SEED_BODY, duration="5"), "duration", "duration must be the integer 5 or 10"),
    (_with(SEED_BODY, duration=5.0), "duration", "duration must be the integer 5 or 10"),
    (_with(SEED_BODY, duration=True), "duration", "duration must be the integer 5 or 10"),
    (_with(SEED_BODY, aspect_ratio=_DROP), "aspect_ratio", "aspect_ratio is required"),
    (_with(SEED_BODY, aspect_ratio="4:3"), "aspect_ratio", "aspect_ratio must be one of"),
    (_with(SEED_BODY, quality="ultra"), "quality", "quality must be one of std, pro"),
    (_with(SEED_BODY, sound="yes"), "sound", "sound must be a boolean"),
    (_with(SEED_BODY, sound=1), "sound", "sound must be a boolean"),
    (
        _with(SEED_BODY, mode="image-to-video"),
        "image_url",
        "image_url is required for image-to-video",
    ),
    (
        _with(SEED_BODY, mode="image-to-video", image_url="ftp://x/y.png"),
        "image_url",
        "image_url must be an http(s) URL",
    ),
    (
        _with(SEED_BODY, image_url="https://example.com/a.png"),
        "image_url",
        "only allowed with mode 'image-to-video'",
    ),
]


@pytest.mark.parametrize(("body", "field", "words"), SEED_CASES)
async def test_seed_invalid_body_is_400_naming_field(
    session: aiohttp.ClientSession,
    sandbox: SandboxServer,
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    """Each invalid seed field gets a 400 whose message and `field` name it."""
    async with session.post(f"{sandbox.base_url}/api/generate", json=body, headers=AUTH) as r:
        assert r.status == 400
        answer = await r.json()
    assert answer["error"]["type"] == "invalid_request"
    assert answer["error"]["field"] == field
    assert words in answer["error"]["message"]
    assert answer["error"]["message"].startswith(field)
    assert sandbox.state.tasks == {}


NATIVE_CASES: list[tuple[dict[str, Any], str]] = [
    (_with(NATIVE_BODY, model="happyhorse-1.0-t2v"), "model must be"),
    (_with(NATIVE_BODY, prompt=_DROP), "prompt is required"),
    (_with(NATIVE_BODY, prompt="x" * 2501), "prompt is 2501 characters long; the maximum is 2500"),
    (_with(NATIVE_BODY, mode="text-to-video"), "mode must be one of std, pro"),
    (_with(NATIVE_BODY, duration=2), "duration must be an integer from 3 to 15"),
    (_with(NATIVE_BODY, duration=16), "duration must be an integer from 3 to 15"),
    (_with(NATIVE_BODY, duration="5"), "duration must be an integer from 3 to 15"),
    (_with(NATIVE_BODY, duration=False), "duration must be an integer from 3 to 15"),
    (_with(NATIVE_BODY, aspect_ratio="21:9"), "aspect_ratio must be one of"),
    (_with(NATIVE_BODY, sound="true"), "sound must be a boolean"),
    (_with(NATIVE_BODY, image_urls=[]), "image_urls must be an array of 1 or 2"),
    (_with(NATIVE_BODY, image_urls=["https://a/1.png"] * 3), "image_urls must be an array"),
    (_with(NATIVE_BODY, image_urls="https://a/1.png"), "image_urls must be an array"),
    (_with(NATIVE_BODY, image_urls=["not a url"]), "image_urls must hold http(s) URLs"),
]


@pytest.mark.parametrize(("body", "words"), NATIVE_CASES)
async def test_native_invalid_body_is_400_naming_field(
    session: aiohttp.ClientSession, native: SandboxServer, body: dict[str, Any], words: str
) -> None:
    """Each invalid native field gets HTTP 400 and a {code: 400, message, data: null} body."""
    async with session.post(f"{native.base_url}/api/generate", json=body, headers=AUTH) as r:
        assert r.status == 400
        answer = await r.json()
    assert answer["code"] == 400
    assert answer["data"] is None
    assert words in answer["message"]


async def test_native_defaults_and_image_to_video(
    session: aiohttp.ClientSession, native: SandboxServer
) -> None:
    """Native fills defaults (std, 5 s, 16:9, sound on) and treats image_urls as image-to-video."""
    body = {"model": "happyhorse-1.0/video", "image_urls": ["https://example.com/a.png"]}
    async with session.post(f"{native.base_url}/api/generate", json=body, headers=AUTH) as r:
        assert r.status == 200
        task_id = (await r.json())["data"]["task_id"]
    task = native.state.tasks[task_id]
    assert (task.mode, task.quality, task.duration, task.aspect_ratio, task.sound) == (
        "image-to-video",
        "std",
        5,
        "16:9",
        True,
    )
    assert task.image_urls == ("https://example.com/a.png",)


async def test_seed_prompt_limit_is_2000_exactly(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A 2000-character prompt is accepted (the limit is inclusive)."""
    body = _with(SEED_BODY, prompt="x" * 2000)
    async with session.post(f"{sandbox.base_url}/api/generate", json=body, headers=AUTH) as r:
        assert r.status == 200


async def test_seed_image_to_video_with_custom_image_field(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """The seed image field name is configurable; prompt is optional for image-to-video."""
    server = await make_sandbox(image_field="image")
    body = _with(SEED_BODY, mode="image-to-video", prompt=_DROP, image="https://e.com/a.png")
    async with session.post(f"{server.base_url}/api/generate", json=body, headers=AUTH) as r:
        assert r.status == 200, await r.text()
    body = _with(SEED_BODY, mode="image-to-video", image_url="https://e.com/a.png")
    async with session.post(f"{server.base_url}/api/generate", json=body, headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["field"] == "image"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_non_json_body_is_400(
    session: aiohttp.ClientSession, sandbox: SandboxServer, data: bytes, words: str
) -> None:
    """A body that is not a JSON object is a 400 saying so."""
    status, answer = await _post_raw(session, sandbox, data)
    assert status == 400
    assert words in answer["error"]["message"]


async def test_native_non_json_body_is_400(
    session: aiohttp.ClientSession, native: SandboxServer
) -> None:
    """The native dialect envelopes the non-JSON error too."""
    status, answer = await _post_raw(session, native, b"nope")
    assert status == 400
    assert answer["code"] == 400
    assert "not valid JSON" in answer["message"]
