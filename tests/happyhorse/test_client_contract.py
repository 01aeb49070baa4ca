"""The real client against the real sandbox over loopback, in both dialects.

Shapes the sandbox cannot produce (a dropped connection after the request was sent, a
path-prefixed base URL's exact wire request, headers the client sends) use a small
recording aiohttp server from conftest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from happyhorse.client import HappyHorseClient
from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    DownloadTooLargeError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from happyhorse.models import AspectRatio, GenerationRequest, Mode, Quality, TaskState
from happyhorse.sandbox import Phase, SandboxConfig, SandboxServer, create_app
from happyhorse.settings import USER_AGENT
from tests.happyhorse.conftest import (
    API_KEY,
    RecordingServer,
    SandboxFactory,
    SleepRecorder,
    client_settings,
)
from tests.happyhorse.test_dialects import STATUS_SHAPES

REQUEST = GenerationRequest(prompt="A silver horse runs through a neon alley", quality=Quality.PRO)


async def new_task(client: HappyHorseClient) -> str:
    """Create a task on the sandbox and return its id."""
    return (await client.generate(REQUEST)).task_id


# --- the happy path -------------------------------------------------------------------------


async def test_generate_poll_download(
    client: HappyHorseClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Generate, poll to completion and download a real MP4."""
    task = await client.generate(REQUEST)
    assert task.task_id.startswith("hh_task_")
    assert task.state in (TaskState.QUEUED, TaskState.PROCESSING)
    stored = sandbox.state.tasks[task.task_id]
    assert (stored.quality, stored.duration, stored.mode) == ("pro", 5, "text-to-video")

    running = await client.status(task.task_id)
    assert running.state is TaskState.PROCESSING
    assert running.result_urls == ()

    sandbox.state.force(task.task_id, Phase.COMPLETED)
    done = await client.status(task.task_id)
    assert done.state is TaskState.COMPLETED
    assert done.task_id == task.task_id
    assert done.video_url is not None and done.video_url.endswith(f"/{task.task_id}.mp4")

    dest = tmp_path / "out" / "clip.mp4"
    size = await client.download(done.video_url, dest, max_bytes=20_000_000)
    data = dest.read_bytes()
    assert size == len(data) > 1000
    assert data[4:8] == b"ftyp"
    assert list(dest.parent.iterdir()) == [dest]


@pytest.mark.parametrize("key", ["k", "task", "sandbox"])
async def test_short_api_key_never_corrupts_answers(
    start_sandbox: SandboxFactory, dialect: str, key: str
) -> None:
    """A key that occurs inside the JSON ("task" in "task_id") is scrubbed after parsing."""
    server = await start_sandbox(dialect=dialect, api_key=key)
    settings = client_settings(server.base_url, api_key=key, dialect=dialect)
    async with HappyHorseClient(settings) as client:
        task = await client.generate(REQUEST)
        assert task.task_id in server.state.tasks
        status = await client.status(task.task_id)
        assert status.task_id == task.task_id


async def test_image_to_video_reaches_the_sandbox(
    client: HappyHorseClient, sandbox: SandboxServer
) -> None:
    """An image-to-video request is accepted in both dialects with its image."""
    request = GenerationRequest(
        prompt="",
        mode=Mode.IMAGE_TO_VIDEO,
        image_url="https://img.example/horse.png",
        duration=10,
        aspect_ratio=AspectRatio.SQUARE,
    )
    task = await client.generate(request)
    stored = sandbox.state.tasks[task.task_id]
    assert stored.image_urls == ("https://img.example/horse.png",)
    assert (stored.mode, stored.duration, stored.aspect_ratio) == ("image-to-video", 10, "1:1")


async def test_failed_task_carries_the_reason(
    client: HappyHorseClient, sandbox: SandboxServer
) -> None:
    """A failed task reads as FAILED with the API's reason."""
    task_id = await new_task(client)
    sandbox.state.force(task_id, Phase.FAILED, "content policy violation")
    status = await client.status(task_id)
    assert status.state is TaskState.FAILED
    assert status.message == "content policy violation"
    assert status.result_urls == ()


# --- validation before the network ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": "  "}, "prompt"),
        ({"prompt": "x" * 51}, "prompt"),
        ({"duration": 7}, "duration"),
        ({"duration": True}, "duration"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"quality": "ultra"}, "quality"),
        ({"sound": "yes"}, "sound"),
        ({"mode": "image-to-video"}, "image_url"),
        ({"mode": "image-to-video", "image_url": "javascript:alert(1)"}, "image_url"),
        ({"model": ""}, "model"),
    ],
)
async def test_invalid_request_never_reaches_the_server(
    start_sandbox: SandboxFactory, kwargs: dict[str, Any], field: str
) -> None:
    """Invalid fields raise ValidationError naming the field, with no request sent."""
    server = await start_sandbox()
    settings = client_settings(server.base_url, max_prompt_length=50)
    async with HappyHorseClient(settings) as client:
        with pytest.raises(ValidationError) as info:
            await client.generate(GenerationRequest(**{"prompt": "a horse", **kwargs}))
        with pytest.raises(ValidationError):
            await client.status("   ")
    assert info.value.field == field
    assert server.state.request_counts == {"generate": 0, "status": 0, "download": 0}


# --- error statuses ---------------------------------------------------------------------------

STATUS_CLASSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (402, InsufficientCreditsError),
    (429, RateLimitError),
    (500, ServerError),
    (503, ServerError),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
async def test_generate_error_statuses(
    client: HappyHorseClient,
    sandbox: SandboxServer,
    sleeps: SleepRecorder,
    status: int,
    cls: type[APIStatusError],
) -> None:
    """Each status raises its exception with the API's message; only 429 is retried."""
    sandbox.state.faults.add("generate", status=status, count=-1)
    with pytest.raises(cls) as info:
        await client.generate(REQUEST)
    assert info.value.status == status
    assert f"Sandbox fault injection: HTTP {status}." in info.value.message
    attempts = client.settings.max_retries + 1 if status == 429 else 1
    assert sandbox.state.request_counts["generate"] == attempts
    assert len(sleeps.delays) == attempts - 1


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
async def test_status_error_statuses(
    client: HappyHorseClient,
    sandbox: SandboxServer,
    sleeps: SleepRecorder,
    status: int,
    cls: type[APIStatusError],
) -> None:
    """Each status raises its exception; 429 and 5xx are retried max_retries times."""
    task_id = await new_task(client)
    sandbox.state.faults.add("status", status=status, count=-1)
    with pytest.raises(cls) as info:
        await client.status(task_id)
    assert info.value.status == status
    assert f"Sandbox fault injection: HTTP {status}." in info.value.message
    attempts = client.settings.max_retries + 1 if status in (429, 500, 503) else 1
    assert sandbox.state.request_counts["status"] == attempts
    assert len(sleeps.delays) == attempts - 1


async def test_status_recovers_after_transient_errors(
    client: HappyHorseClient, sandbox: SandboxServer, sleeps: SleepRecorder
) -> None:
    """Two 503s then success: the caller sees success; backoff is jittered exponential."""
    task_id = await new_task(client)
    sandbox.state.faults.add("status", status=503, count=2)
    status = await client.status(task_id)
    assert status.state is TaskState.PROCESSING
    assert sandbox.state.request_counts["status"] == 3
    base = client.settings.backoff_base_seconds
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= base
    assert 0 <= sleeps.delays[1] <= base * 2


async def test_real_sandbox_errors(start_sandbox: SandboxFactory, dialect: str) -> None:
    """The sandbox's own 401, 402 and 400 arrive with its messages."""
    server = await start_sandbox(dialect=dialect, credits=1)
    wrong_key = client_settings(server.base_url, dialect=dialect, api_key="wrong-key")
    async with HappyHorseClient(wrong_key) as client:
        with pytest.raises(AuthenticationError, match="Invalid API key"):
            await client.generate(REQUEST)
    async with HappyHorseClient(client_settings(server.base_url, dialect=dialect)) as client:
        with pytest.raises(InsufficientCreditsError, match="Insufficient credits"):
            await client.generate(REQUEST)  # pro, 5 s costs 2 credits
    other_model = client_settings(server.base_url, dialect=dialect, model="horse-9000")
    async with HappyHorseClient(other_model) as client:
        with pytest.raises(BadRequestError, match="model"):
            await client.generate(REQUEST)


# --- Retry-After and rate limiting ------------------------------------------------------------


async def test_generate_429_honours_retry_after_seconds(
    client: HappyHorseClient, sandbox: SandboxServer, sleeps: SleepRecorder
) -> None:
    """A 429 on generate is retried after exactly Retry-After seconds."""
    sandbox.state.faults.add("generate", status=429, retry_after="7")
    task = await client.generate(REQUEST)
    assert task.task_id in sandbox.state.tasks
    assert sleeps.delays == [7.0]
    assert sandbox.state.request_counts["generate"] == 2


async def test_generate_429_honours_retry_after_http_date(
    client: HappyHorseClient, sandbox: SandboxServer, sleeps: SleepRecorder
) -> None:
    """Retry-After given as an HTTP-date is turned into seconds from now."""
    when = datetime.now(UTC) + timedelta(seconds=30)
    sandbox.state.faults.add("generate", status=429, retry_after=format_datetime(when, usegmt=True))
    await client.generate(REQUEST)
    assert len(sleeps.delays) == 1
    assert 28.0 <= sleeps.delays[0] <= 30.0


async def test_rate_limit_error_carries_retry_after(
    start_sandbox: SandboxFactory, dialect: str
) -> None:
    """When retries run out, RateLimitError carries the parsed Retry-After."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, max_retries=0)
    async with HappyHorseClient(settings) as client:
        task_id = await new_task(client)
        server.state.faults.add("status", status=429, retry_after="12")
        with pytest.raises(RateLimitError) as info:
            await client.status(task_id)
    assert info.value.retry_after == 12.0


async def test_retry_after_is_capped(
    start_sandbox: SandboxFactory, dialect: str, sleeps: SleepRecorder
) -> None:
    """A long Retry-After is waited only up to retry_cap_seconds, also by the limiter."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, retry_cap_seconds=0.2)
    async with HappyHorseClient(settings, sleep=sleeps) as client:
        task_id = await new_task(client)
        server.state.faults.add("status", status=429, retry_after="3600")
        start = time.monotonic()
        status = await client.status(task_id)
    assert status.state is TaskState.PROCESSING
    assert sleeps.delays == [0.2]
    # The limiter was paused for the capped time, not an hour.
    assert 0.15 <= time.monotonic() - start < 2.0


async def test_429_penalises_every_status_caller(
    start_sandbox: SandboxFactory, dialect: str
) -> None:
    """A 429 with Retry-After pauses the shared limiter, slowing other callers too."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, max_retries=0)
    async with HappyHorseClient(settings) as client:
        task_id = await new_task(client)
        server.state.faults.add("status", status=429, retry_after="0.4")
        with pytest.raises(RateLimitError):
            await client.status(task_id)
        assert client.status_limiter.paused_for > 0.3
        start = time.monotonic()
        await asyncio.gather(client.status(task_id), client.status(task_id))
        assert time.monotonic() - start >= 0.3


async def test_sandbox_rate_limit(start_sandbox: SandboxFactory, dialect: str) -> None:
    """The sandbox's real rate limit surfaces as RateLimitError with its Retry-After."""
    server = await start_sandbox(dialect=dialect, rate_limit=1, rate_window=60)
    settings = client_settings(server.base_url, dialect=dialect, max_retries=0)
    async with HappyHorseClient(settings) as client:
        await new_task(client)
        with pytest.raises(RateLimitError) as info:
            await new_task(client)
        assert info.value.retry_after is not None and 50 <= info.value.retry_after <= 60
        assert client.status_limiter.paused_for > 50


async def test_status_calls_share_the_limiter(start_sandbox: SandboxFactory, dialect: str) -> None:
    """Every status caller of one client takes tokens from client.status_limiter."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(
        server.base_url, dialect=dialect, status_rate_per_second=10, status_burst=1
    )
    async with HappyHorseClient(settings) as client:
        task_id = await new_task(client)
        start = time.monotonic()
        await asyncio.gather(*(client.status(task_id) for _ in range(4)))
        # One free token, then three at 10/s.
        assert time.monotonic() - start >= 0.28


# --- envelopes, shapes, bodies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [(401, AuthenticationError), (402, InsufficientCreditsError), (400, BadRequestError)],
)
async def test_envelope_error_in_http_200(
    client: HappyHorseClient, sandbox: SandboxServer, code: int, cls: type[APIStatusError]
) -> None:
    """A {code, message, data} envelope with an error code is an error despite HTTP 200."""
    sandbox.state.faults.add("generate", body={"code": code, "message": "told off", "data": None})
    with pytest.raises(cls, match="told off"):
        await client.generate(REQUEST)


async def test_envelope_500_on_generate_is_not_retried(
    client: HappyHorseClient, sandbox: SandboxServer
) -> None:
    """An envelope 5xx on generate may have created a task: raised at once."""
    sandbox.state.faults.add("generate", body={"code": 500, "message": "oops"}, count=-1)
    with pytest.raises(ServerError, match="oops"):
        await client.generate(REQUEST)
    assert sandbox.state.request_counts["generate"] == 1


async def test_envelope_429_on_status_is_retried(
    client: HappyHorseClient, sandbox: SandboxServer, sleeps: SleepRecorder
) -> None:
    """An envelope 429 on status is retried like an HTTP 429."""
    task_id = await new_task(client)
    sandbox.state.faults.add("status", body={"code": 429, "message": "slow", "data": None})
    assert (await client.status(task_id)).state is TaskState.PROCESSING
    assert len(sleeps.delays) == 1


@pytest.mark.parametrize(
    ("payload", "task_id", "state", "urls", "message"),
    [shape[1:] for shape in STATUS_SHAPES],
    ids=[shape[0] for shape in STATUS_SHAPES],
)
async def test_tolerant_shapes_over_the_wire(
    client: HappyHorseClient,
    sandbox: SandboxServer,
    payload: dict[str, Any],
    task_id: str,
    state: TaskState,
    urls: tuple[str, ...],
    message: str | None,
) -> None:
    """Every known status shape, served by the sandbox, is read correctly."""
    sandbox.state.faults.add("status", body=payload)
    status = await client.status("asked")
    assert (status.task_id, status.state, status.result_urls, status.message) == (
        task_id,
        state,
        urls,
        message,
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('{"task_id": "t", "status": "completed"}', "no result URL"),
        ('{"task_id": "t"}', "no task state"),
        ('{"task_id": "t", "status": "levitating"}', "unknown task state 'levitating'"),
        ('["queued"]', "not a JSON object"),
        ('{"task_id": "t", "status": "queued"', "not JSON"),
    ],
)
async def test_unreadable_status_answers(
    client: HappyHorseClient, sandbox: SandboxServer, body: str, match: str
) -> None:
    """Unreadable status answers are InvalidResponseError saying what is missing."""
    sandbox.state.faults.add("status", body=body, content_type="application/json")
    with pytest.raises(InvalidResponseError, match=match):
        await client.status("t")


async def test_generate_answer_without_task_id(
    client: HappyHorseClient, sandbox: SandboxServer
) -> None:
    """A generate answer without a task id is InvalidResponseError, not a KeyError."""
    sandbox.state.faults.add("generate", body={"status": "queued", "message": "hmm"})
    with pytest.raises(InvalidResponseError, match="no task id"):
        await client.generate(REQUEST)


async def test_non_json_success_body(client: HappyHorseClient, sandbox: SandboxServer) -> None:
    """A 200 with an HTML body is InvalidResponseError quoting it."""
    sandbox.state.faults.add(
        "status", body="<html>maintenance</html>", content_type="text/html", count=-1
    )
    with pytest.raises(InvalidResponseError, match=r"not JSON.*maintenance"):
        await client.status("t")
    sandbox.state.faults.clear()
    sandbox.state.faults.add("generate", body="", content_type="application/json")
    with pytest.raises(InvalidResponseError, match="empty"):
        await client.generate(REQUEST)


async def test_non_json_error_body(client: HappyHorseClient, sandbox: SandboxServer) -> None:
    """A 502 with an HTML body is a ServerError carrying the body's text."""
    sandbox.state.faults.add("generate", status=502, body="<h1>Bad gateway</h1>")
    with pytest.raises(ServerError, match="Bad gateway") as info:
        await client.generate(REQUEST)
    assert info.value.status == 502


# --- timeouts and connections -----------------------------------------------------------------


async def test_generate_timeout_is_not_retried(start_sandbox: SandboxFactory, dialect: str) -> None:
    """A hanging server times out quickly; generate is not sent again."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, timeout_seconds=0.3)
    server.state.faults.add("generate", delay=5.0, count=-1)
    async with HappyHorseClient(settings) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match=r"0\.3s"):
            await client.generate(REQUEST)
    assert time.monotonic() - start < 1.5
    assert server.state.request_counts["generate"] == 1


async def test_status_timeout_is_retried(
    start_sandbox: SandboxFactory, dialect: str, sleeps: SleepRecorder
) -> None:
    """A hanging status call times out and is retried, then raises APITimeoutError."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, timeout_seconds=0.3, max_retries=1)
    server.state.faults.add("status", delay=5.0, count=-1)
    async with HappyHorseClient(settings, sleep=sleeps) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            await client.status("t")
    assert time.monotonic() - start < 2.0
    assert server.state.request_counts["status"] == 2


async def test_connection_refused_is_retried(closed_port_url: str, sleeps: SleepRecorder) -> None:
    """A refused connection never reached the server, so even generate is retried."""
    settings = client_settings(closed_port_url)
    async with HappyHorseClient(settings, sleep=sleeps) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.generate(REQUEST)
        assert info.value.request_sent is False
        assert len(sleeps.delays) == settings.max_retries
        with pytest.raises(APIConnectionError):
            await client.status("t")
        assert len(sleeps.delays) == 2 * settings.max_retries


async def test_dropped_connection_after_sending(
    recording_server: RecordingServer, sleeps: SleepRecorder
) -> None:
    """A connection dropped after the request was sent: generate is not retried, status is."""

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    recording_server.responder = drop
    settings = client_settings(recording_server.base_url)
    async with HappyHorseClient(settings, sleep=sleeps) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.generate(REQUEST)
        assert info.value.request_sent is True
        assert len(recording_server.requests) == 1
        with pytest.raises(APIConnectionError):
            await client.status("t")
    # aiohttp itself may resend an idempotent GET once per attempt on a dropped
    # keep-alive connection, so count at least one request per attempt.
    assert len(recording_server.requests) >= 2 + settings.max_retries
    assert [r.method for r in recording_server.requests].count("POST") == 1


# --- the wire ---------------------------------------------------------------------------------


async def test_wire_request_and_path_prefix(recording_server: RecordingServer) -> None:
    """Bearer key, User-Agent, JSON types and a base URL path prefix, exactly as sent."""
    settings = client_settings(recording_server.base_url + "/happyhorse/", dialect="seed")
    async with HappyHorseClient(settings) as client:
        await client.generate(REQUEST)

        async def status_answer(request: web.Request) -> web.StreamResponse:
            return web.json_response({"status": "processing"})

        recording_server.responder = status_answer
        await client.status("id with/odd&chars")
    generate, status = recording_server.requests
    assert (generate.method, generate.path) == ("POST", "/happyhorse/api/generate")
    assert generate.headers["Authorization"] == f"Bearer {API_KEY}"
    assert generate.headers["User-Agent"] == USER_AGENT
    assert b'"duration": 5' in generate.body
    assert b'"sound": false' in generate.body
    assert b'"quality": "pro"' in generate.body
    assert (status.method, status.path) == ("GET", "/happyhorse/api/status")
    assert status.query == {"task_id": "id with/odd&chars"}
    assert status.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_sandbox_behind_a_path_prefix(dialect: str) -> None:
    """The real sandbox mounted under /happyhorse is reached through a prefixed base URL."""
    outer = web.Application()
    sandbox_app = create_app(SandboxConfig(api_key=API_KEY, dialect=dialect, processing_after=0))
    outer.add_subapp("/happyhorse", sandbox_app)
    runner = web.AppRunner(outer, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        settings = client_settings(f"http://{host}:{port}/happyhorse", dialect=dialect)
        async with HappyHorseClient(settings) as client:
            task = await client.generate(REQUEST)
            assert (await client.status(task.task_id)).state is TaskState.PROCESSING
    finally:
        await runner.cleanup()


async def test_download_sends_no_api_key(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    """The API key is never sent to a result URL (a third-party CDN)."""

    async def video(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 1000)

    recording_server.responder = video
    async with HappyHorseClient(client_settings(recording_server.base_url)) as client:
        size = await client.download(recording_server.base_url + "/v.mp4", tmp_path / "v", 5000)
    assert size == 1000
    headers = recording_server.requests[0].headers
    assert "Authorization" not in headers
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Accept-Encoding"] == "identity"


async def test_unwritable_destination_is_a_download_error(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    """A destination that cannot be written is a DownloadError and leaves no temp file."""

    async def video(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 1000)

    recording_server.responder = video
    dest = tmp_path / "taken"
    dest.mkdir()
    async with HappyHorseClient(client_settings(recording_server.base_url)) as client:
        with pytest.raises(DownloadError, match="cannot write"):
            await client.download(recording_server.base_url + "/v.mp4", dest, 5000)
    assert list(tmp_path.iterdir()) == [dest]


# --- downloads --------------------------------------------------------------------------------


async def completed_url(client: HappyHorseClient, sandbox: SandboxServer) -> str:
    """A finished task's result URL on the sandbox."""
    task_id = await new_task(client)
    sandbox.state.force(task_id, Phase.COMPLETED)
    url = (await client.status(task_id)).video_url
    assert url is not None
    return url


async def test_download_refused_early_by_content_length(
    client: HappyHorseClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A Content-Length over the limit is refused before the body is read."""
    url = await completed_url(client, sandbox)
    sandbox.state.faults.add("download", pad_to=300_000)
    with pytest.raises(DownloadTooLargeError) as info:
        await client.download(url, tmp_path / "v.mp4", max_bytes=100_000)
    assert (info.value.limit, info.value.size) == (100_000, 300_000)
    assert list(tmp_path.iterdir()) == []


async def test_download_refused_late_without_content_length(
    client: HappyHorseClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Without Content-Length the byte count stops the download; no partial file stays."""
    url = await completed_url(client, sandbox)
    sandbox.state.faults.add("download", pad_to=300_000, omit_length=True)
    with pytest.raises(DownloadTooLargeError) as info:
        await client.download(url, tmp_path / "v.mp4", max_bytes=100_000)
    assert info.value.limit == 100_000
    assert 100_000 < info.value.size <= 100_000 + 64 * 1024
    assert list(tmp_path.iterdir()) == []


async def test_download_exactly_at_the_limit(
    client: HappyHorseClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A file of exactly max_bytes is accepted, with or without Content-Length."""
    url = await completed_url(client, sandbox)
    sandbox.state.faults.add("download", pad_to=120_000, omit_length=True)
    assert await client.download(url, tmp_path / "a.mp4", max_bytes=120_000) == 120_000
    sandbox.state.faults.add("download", pad_to=120_000)
    assert await client.download(url, tmp_path / "b.mp4", max_bytes=120_000) == 120_000
    assert (tmp_path / "b.mp4").stat().st_size == 120_000


async def test_cut_off_download(
    client: HappyHorseClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A connection dropped before Content-Length bytes is a DownloadError, file removed."""
    url = await completed_url(client, sandbox)
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"previous video")
    sandbox.state.faults.add("download", pad_to=200_000, truncate=True)
    with pytest.raises(DownloadError, match="cut off") as info:
        await client.download(url, dest, max_bytes=1_000_000)
    assert not isinstance(info.value, DownloadTooLargeError)
    # The earlier file is untouched and no partial file is left beside it.
    assert dest.read_bytes() == b"previous video"
    assert list(tmp_path.iterdir()) == [dest]


async def test_download_error_status(
    client: HappyHorseClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A 404 result URL is a DownloadError with the status."""
    with pytest.raises(DownloadError) as info:
        await client.download(sandbox.base_url + "/files/nope.mp4", tmp_path / "v", 1000)
    assert info.value.status == 404
    assert "not found" in info.value.message
    assert list(tmp_path.iterdir()) == []


async def test_hanging_download_times_out(
    start_sandbox: SandboxFactory, dialect: str, tmp_path: Path
) -> None:
    """A download that stops sending fails after the per-read timeout."""
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, download_read_timeout_seconds=0.3)
    async with HappyHorseClient(settings) as client:
        url = await completed_url(client, server)
        server.state.faults.add("download", delay=5.0)
        start = time.monotonic()
        with pytest.raises(DownloadError, match="timed out"):
            await client.download(url, tmp_path / "v.mp4", max_bytes=10_000_000)
    assert time.monotonic() - start < 1.5
    assert list(tmp_path.iterdir()) == []


async def test_download_refuses_bad_urls(client: HappyHorseClient, tmp_path: Path) -> None:
    """Only http(s) URLs are fetched."""
    with pytest.raises(DownloadError, match="http"):
        await client.download("file:///etc/passwd", tmp_path / "v", 1000)


async def test_cancelled_download_leaves_no_file(
    start_sandbox: SandboxFactory, dialect: str, tmp_path: Path
) -> None:
    """Cancelling a download mid-way removes the partial file."""
    server = await start_sandbox(dialect=dialect)
    async with HappyHorseClient(client_settings(server.base_url, dialect=dialect)) as client:
        url = await completed_url(client, server)
        server.state.faults.add("download", delay=5.0)
        job = asyncio.create_task(client.download(url, tmp_path / "v.mp4", 10_000_000))
        await asyncio.sleep(0.2)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    assert list(tmp_path.iterdir()) == []


# --- sessions ---------------------------------------------------------------------------------


async def test_owned_session_is_closed(sandbox: SandboxServer, dialect: str) -> None:
    """A client that made its own session closes it on exit."""
    client = HappyHorseClient(client_settings(sandbox.base_url, dialect=dialect))
    async with client:
        await new_task(client)
        session = client._session
        assert session is not None and not session.closed
    assert session.closed


async def test_given_session_is_left_open(sandbox: SandboxServer, dialect: str) -> None:
    """A session passed in belongs to the caller and stays open."""
    async with aiohttp.ClientSession() as session:
        async with HappyHorseClient(
            client_settings(sandbox.base_url, dialect=dialect), session=session
        ) as client:
            await new_task(client)
        assert not session.closed


# --- the API key never leaks ------------------------------------------------------------------


async def test_api_key_never_leaks(
    start_sandbox: SandboxFactory,
    closed_port_url: str,
    dialect: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    sleeps: SleepRecorder,
) -> None:
    """No exception text, repr or log line contains the API key, even when echoed back."""
    caplog.set_level(logging.DEBUG)
    server = await start_sandbox(dialect=dialect)
    settings = client_settings(server.base_url, dialect=dialect, timeout_seconds=0.3)
    faults = server.state.faults
    errors: list[HappyHorseError] = []

    async def collect(call: Any) -> None:
        try:
            await call
        except HappyHorseError as exc:
            errors.append(exc)

    async with HappyHorseClient(settings, sleep=sleeps) as client:
        faults.add("generate", status=401, body={"error": {"message": f"bad key {API_KEY}"}})
        await collect(client.generate(REQUEST))
        faults.add("generate", status=500, body=f"crash while using {API_KEY}")
        await collect(client.generate(REQUEST))
        faults.add("generate", body=f"<html>{API_KEY}</html>", content_type="text/html")
        await collect(client.generate(REQUEST))
        faults.add("generate", body={"code": 402, "message": f"{API_KEY} is broke"})
        await collect(client.generate(REQUEST))
        faults.add("generate", body={"task_id": "", "message": f"key={API_KEY}"})
        await collect(client.generate(REQUEST))
        faults.add("status", status=429, body={"message": API_KEY}, count=-1)
        await collect(client.status("t"))
        faults.clear()
        faults.add("status", delay=2.0, count=-1)
        await collect(client.status("t"))
        faults.clear()
        faults.add("download", status=403, body=f"forbidden for {API_KEY}")
        await collect(client.download(server.base_url + "/files/x.mp4", tmp_path / "v", 10))
        await collect(client.generate(GenerationRequest(prompt=API_KEY, duration=2)))
        client_repr = repr(client)
    async with HappyHorseClient(client_settings(closed_port_url), sleep=sleeps) as client:
        await collect(client.generate(REQUEST))

    assert len(errors) == 10
    for exc in errors:
        for text in (str(exc), repr(exc), exc.message, *map(str, exc.args)):
            assert API_KEY not in text, (type(exc).__name__, text)
    assert any("***" in exc.message for exc in errors)
    assert API_KEY not in caplog.text
    assert "retry" in caplog.text  # retries were logged, without the key
    assert API_KEY not in client_repr
    assert API_KEY not in repr(settings)


async def test_download_deadline_stops_a_trickling_server(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    """Bytes trickling in faster than the read timeout still cannot outlast the deadline."""
    stop = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        for _ in range(1000):
            if stop.is_set():
                break
            await response.write(b"x" * 10)
            await asyncio.sleep(0.05)
        return response

    recording_server.responder = trickle
    settings = client_settings(recording_server.base_url, download_read_timeout_seconds=2.0)
    try:
        async with HappyHorseClient(settings) as client:
            with pytest.raises(APITimeoutError, match=r"within 0\.5 s"):
                await client.download(
                    recording_server.base_url + "/v.mp4",
                    tmp_path / "v.mp4",
                    1_000_000,
                    deadline_seconds=0.5,
                )
    finally:
        stop.set()
    assert list(tmp_path.iterdir()) == []


async def test_download_within_its_deadline_succeeds(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    """A deadline the download meets changes nothing."""

    async def video(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 1000)

    recording_server.responder = video
    async with HappyHorseClient(client_settings(recording_server.base_url)) as client:
        size = await client.download(
            recording_server.base_url + "/v.mp4", tmp_path / "v", 5000, deadline_seconds=10
        )
    assert size == 1000 and (tmp_path / "v").stat().st_size == 1000
