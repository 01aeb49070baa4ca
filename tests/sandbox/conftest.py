"""Fixtures for sandbox tests: a real sandbox on loopback and a plain aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from happyhorse.sandbox import SandboxConfig, SandboxServer

AUTH = {"Authorization": "Bearer test-key"}

SEED_BODY: dict[str, Any] = {
    "model": "happyhorse-1.0/video",
    "prompt": "A silver horse runs through a rain-soaked neon alley.",
    "mode": "text-to-video",
    "duration": 5,
    "aspect_ratio": "16:9",
    "quality": "std",
    "sound": False,
}

NATIVE_BODY: dict[str, Any] = {
    "model": "happyhorse-1.0/video",
    "prompt": "A silver horse runs through a rain-soaked neon alley.",
    "mode": "std",
    "duration": 5,
    "aspect_ratio": "16:9",
}

MakeSandbox = Callable[..., Awaitable[SandboxServer]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def make_sandbox() -> AsyncIterator[MakeSandbox]:
    """Start sandboxes with a fast lifecycle (overridable); all are stopped after the test."""
    servers: list[SandboxServer] = []

    async def make(**overrides: Any) -> SandboxServer:
        options: dict[str, Any] = {"processing_after": 0.05, "complete_after": 0.2}
        options.update(overrides)
        server = SandboxServer(SandboxConfig(**options))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def sandbox(make_sandbox: MakeSandbox) -> SandboxServer:
    """A seed-dialect sandbox accepting any bearer token."""
    return await make_sandbox()


@pytest.fixture
async def native(make_sandbox: MakeSandbox) -> SandboxServer:
    """A native-dialect sandbox accepting any bearer token."""
    return await make_sandbox(dialect="native")


async def generate(
    session: aiohttp.ClientSession, server: SandboxServer, body: dict[str, Any] | None = None
) -> str:
    """Create a task (seed or native by the server's dialect) and return its id."""
    native_dialect = server.config.dialect == "native"
    payload = body if body is not None else (NATIVE_BODY if native_dialect else SEED_BODY)
    async with session.post(f"{server.base_url}/api/generate", json=payload, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        answer = await r.json()
    task_id = answer["data"]["task_id"] if native_dialect else answer["task_id"]
    assert isinstance(task_id, str)
    return task_id


async def status(
    session: aiohttp.ClientSession, server: SandboxServer, task_id: str
) -> dict[str, Any]:
    """Fetch one status answer as JSON (asserting HTTP 200)."""
    url = f"{server.base_url}/api/status"
    async with session.get(url, params={"task_id": task_id}, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
    return answer
