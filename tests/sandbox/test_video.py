"""The result files: real H.264 MP4s whose shape and length follow the request."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import av
import pytest

from happyhorse.sandbox import Phase, SandboxServer
from happyhorse.sandbox.app import VIDEOS_KEY
from happyhorse.sandbox.video import encode_mp4, frame_size, pad_mp4
from tests.sandbox.conftest import NATIVE_BODY, SEED_BODY, generate


def _probe(data: bytes) -> dict[str, Any]:
    """Open MP4 bytes with PyAV and report what a player would see."""
    with av.open(io.BytesIO(data), "r") as container:
        assert container.duration is not None
        video = container.streams.video[0]
        frames = [bytes(frame.planes[0]) for frame in container.decode(video=0)]
        return {
            "width": video.width,
            "height": video.height,
            "codec": video.codec_context.name,
            "pix_fmt": video.format.name,
            "duration": container.duration / 1_000_000,
            "frames": frames,
            "audio": len(container.streams.audio),
        }


@pytest.mark.parametrize(
    ("aspect", "duration", "sound", "size"),
    [
        ("16:9", 5, False, (320, 180)),
        ("9:16", 10, True, (180, 320)),
        ("1:1", 5, True, (240, 240)),
    ],
)
async def test_seed_download_matches_request(
    session: aiohttp.ClientSession,
    sandbox: SandboxServer,
    aspect: str,
    duration: int,
    sound: bool,
    size: tuple[int, int],
) -> None:
    """The served clip is playable H.264 with the requested aspect, duration and audio."""
    body = {**SEED_BODY, "aspect_ratio": aspect, "duration": duration, "sound": sound}
    task_id = await generate(session, sandbox, body)
    sandbox.state.force(task_id, Phase.COMPLETED)
    async with session.get(f"{sandbox.base_url}/files/{task_id}.mp4") as r:
        assert r.status == 200
        assert r.content_type == "video/mp4"
        data = await r.read()
        assert r.content_length == len(data)
    info = _probe(data)
    assert (info["width"], info["height"]) == size
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["duration"] == pytest.approx(duration, abs=0.05)
    assert len(info["frames"]) == 12 * duration
    assert info["frames"][0] != info["frames"][len(info["frames"]) // 2]  # visible motion
    assert info["audio"] == (1 if sound else 0)
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: index first, streams


async def test_native_duration_any_length_and_cache(
    session: aiohttp.ClientSession, native: SandboxServer
) -> None:
    """A 3 s native task gets a 3 s clip; a second identical request reuses the cache."""
    body = {**NATIVE_BODY, "duration": 3, "aspect_ratio": "9:16", "sound": False}
    first = await generate(session, native, body)
    second = await generate(session, native, body)
    for task_id in (first, second):
        native.state.force(task_id, Phase.COMPLETED)
    payloads = []
    for task_id in (first, second):
        async with session.get(f"{native.base_url}/files/{task_id}.mp4") as r:
            payloads.append(await r.read())
    assert payloads[0] == payloads[1]
    assert native.app[VIDEOS_KEY].encodes == 1
    info = _probe(payloads[0])
    assert (info["width"], info["height"], round(info["duration"], 2)) == (180, 320, 3.0)


async def test_download_unknown_or_unfinished_is_404(
    session: aiohttp.ClientSession, make_sandbox: Any
) -> None:
    """No file for an unknown task, a non-.mp4 name, or a task still running."""
    server: SandboxServer = await make_sandbox(processing_after=30, complete_after=60)
    task_id = await generate(session, server)
    for name in ("hh_task_nope.mp4", f"{task_id}.webm", f"{task_id}.mp4"):
        async with session.get(f"{server.base_url}/files/{name}") as r:
            assert r.status == 404
            assert "error" in await r.json()


def test_encode_rejects_bad_input() -> None:
    """encode_mp4 refuses an unknown aspect ratio and a zero duration."""
    with pytest.raises(ValueError, match="aspect"):
        frame_size("4:3")
    with pytest.raises(ValueError, match="duration"):
        encode_mp4("1:1", 0, False)


def test_pad_mp4_sizes() -> None:
    """pad_mp4 cuts or pads to exactly the size asked, keeping a valid free box."""
    data = b"x" * 100
    assert b"".join(pad_mp4(data, 40)) == data[:40]
    assert b"".join(pad_mp4(data, 104)) == data + bytes(4)
    grown = b"".join(pad_mp4(data, 200_000))
    assert len(grown) == 200_000
    assert grown[100:108] == (199_900).to_bytes(4, "big") + b"free"


def test_padded_clip_stays_playable() -> None:
    """A clip padded with a free box still opens with the same duration."""
    data = encode_mp4("1:1", 1, False)
    padded = b"".join(pad_mp4(data, len(data) + 5000))
    assert _probe(padded)["duration"] == pytest.approx(1.0, abs=0.05)


async def test_big_word_serves_a_large_busy_clip(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A prompt holding BIGCLIP gets a real clip over Discord's 10 MiB limit: twice the frame
    size, 24 fps, the requested length and sound; other prompts keep the tiny clip."""
    body = {**SEED_BODY, "prompt": "a BIGCLIP horse", "duration": 5, "sound": True}
    task_id = await generate(session, sandbox, body)
    sandbox.state.force(task_id, Phase.COMPLETED)
    async with session.get(f"{sandbox.base_url}/files/{task_id}.mp4") as r:
        assert r.status == 200
        data = await r.read()
    assert len(data) > 10 * 1024 * 1024
    info = _probe(data)
    assert (info["width"], info["height"], info["codec"]) == (640, 360, "h264")
    assert info["duration"] == pytest.approx(5, abs=0.1)
    assert len(info["frames"]) == 24 * 5
    assert info["audio"] == 1
