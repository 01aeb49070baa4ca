"""Bearer authentication on the API routes."""

from __future__ import annotations

import aiohttp
import pytest

from happyhorse.sandbox import SandboxServer
from tests.sandbox.conftest import SEED_BODY, MakeSandbox


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "Missing Authorization"),
        ({"Authorization": ""}, "Missing Authorization"),
        ({"Authorization": "Bearer"}, "Malformed"),
        ({"Authorization": "Bearer "}, "Malformed"),
        ({"Authorization": "Token abc"}, "Malformed"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Malformed"),
        ({"Authorization": "Bearer two words"}, "Malformed"),
    ],
)
async def test_missing_or_malformed_bearer_is_401(
    session: aiohttp.ClientSession, sandbox: SandboxServer, headers: dict[str, str], words: str
) -> None:
    """A missing or malformed Authorization header gets a 401 JSON error saying which."""
    async with session.post(
        f"{sandbox.base_url}/api/generate", json=SEED_BODY, headers=headers
    ) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        body = await r.json()
    assert body["error"]["code"] == 401
    assert body["error"]["type"] == "invalid_api_key"
    assert words in body["error"]["message"]
    assert sandbox.state.tasks == {}


async def test_any_bearer_accepted_without_configured_key(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """With no api_key configured, any non-empty bearer token is accepted."""
    headers = {"Authorization": "bearer whatever-123"}
    async with session.post(
        f"{sandbox.base_url}/api/generate", json=SEED_BODY, headers=headers
    ) as r:
        assert r.status == 200


async def test_only_configured_key_accepted(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """With api_key set, another token is a 401 and the right one is accepted."""
    server = await make_sandbox(api_key="right-key")
    url = f"{server.base_url}/api/generate"
    async with session.post(url, json=SEED_BODY, headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["message"] == "Invalid API key"
    async with session.post(
        url, json=SEED_BODY, headers={"Authorization": "Bearer right-key"}
    ) as r:
        assert r.status == 200


async def test_status_requires_auth_too(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """Both status forms are behind the same auth."""
    for url in (f"{sandbox.base_url}/api/status?task_id=x", f"{sandbox.base_url}/api/status/x"):
        async with session.get(url) as r:
            assert r.status == 401


async def test_native_401_is_enveloped(
    session: aiohttp.ClientSession, native: SandboxServer
) -> None:
    """Native errors repeat the HTTP status in `code` with `data: null`."""
    async with session.post(f"{native.base_url}/api/generate", json={}) as r:
        assert r.status == 401
        body = await r.json()
    assert body["code"] == 401
    assert body["data"] is None
    assert "Authorization" in body["message"]


async def test_files_and_healthz_need_no_auth(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """The health check answers without a token."""
    async with session.get(f"{sandbox.base_url}/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok", "dialect": "seed"}
