"""Fixtures for the API client tests: the real sandbox, a recording server, fast sleeps."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.settings import ClientSettings

API_KEY = "hh-test-SECRET-key-5f1c9a7e"


class SleepRecorder:
    """An injectable sleep that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> SleepRecorder:
    """A fresh SleepRecorder."""
    return SleepRecorder()


def client_settings(base_url: str, **overrides: Any) -> ClientSettings:
    """Settings for tests: short timeouts, zero backoff base, a known key."""
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": base_url,
        "timeout_seconds": 2.0,
        "download_read_timeout_seconds": 2.0,
        "backoff_base_seconds": 0.01,
        "retry_cap_seconds": 60.0,
        "max_retries": 3,
        "status_rate_per_second": 1000.0,
        "status_burst": 50,
    }
    values.update(overrides)
    return ClientSettings(**values)


SandboxFactory = Callable[..., Awaitable[SandboxServer]]


@pytest.fixture
async def start_sandbox() -> AsyncIterator[SandboxFactory]:
    """Start real sandbox servers on loopback: `await start_sandbox(dialect="native")`."""
    servers: list[SandboxServer] = []

    async def start(**config: Any) -> SandboxServer:
        config.setdefault("api_key", API_KEY)
        config.setdefault("processing_after", 0.0)
        config.setdefault("complete_after", 30.0)
        server = SandboxServer(SandboxConfig(**config), shutdown_timeout=0.1)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture(params=["seed", "native"])
def dialect(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per dialect."""
    return str(request.param)


@pytest.fixture
async def sandbox(start_sandbox: SandboxFactory, dialect: str) -> SandboxServer:
    """A running sandbox speaking `dialect`."""
    return await start_sandbox(dialect=dialect)


@pytest.fixture
async def client(
    sandbox: SandboxServer, dialect: str, sleeps: SleepRecorder
) -> AsyncIterator[HappyHorseClient]:
    """A client on the sandbox, in the sandbox's dialect, with recorded (instant) sleeps."""
    settings = client_settings(sandbox.base_url, dialect=dialect)
    async with HappyHorseClient(settings, sleep=sleeps) as hh:
        yield hh


@dataclass
class Recorded:
    """One request seen by the RecordingServer."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordingServer:
    """A tiny aiohttp server that records requests and answers with a settable handler."""

    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    responder: Responder | None = None


@pytest.fixture
async def recording_server() -> AsyncIterator[RecordingServer]:
    """Start a RecordingServer on loopback; set `.responder` to choose its answers."""
    state = RecordingServer()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        state.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        if state.responder is None:
            return web.json_response({"task_id": "t-1", "status": "queued"})
        return await state.responder(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base_url = f"http://{host}:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on a loopback port where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
