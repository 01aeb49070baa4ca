"""Fault injection, in process (state.faults) and over HTTP (/_sandbox/faults)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from happyhorse.sandbox import FaultQueue, Phase, SandboxServer
from tests.sandbox.conftest import AUTH, SEED_BODY, MakeSandbox, generate, status


async def _completed_task(session: aiohttp.ClientSession, server: SandboxServer) -> str:
    """A task forced to completed, ready to download."""
    task_id = await generate(session, server)
    server.state.force(task_id, Phase.COMPLETED)
    return task_id


async def test_status_fault_fifo_and_count(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """Faults apply in FIFO order, each `count` times, then the real answer returns."""
    task_id = await generate(session, sandbox)
    sandbox.state.faults.add("status", status=503, count=2)
    sandbox.state.faults.add("status", status=500)
    url = f"{sandbox.base_url}/api/status?task_id={task_id}"
    seen = []
    for _ in range(4):
        async with session.get(url, headers=AUTH) as r:
            seen.append(r.status)
            if r.status >= 500:
                body = await r.json()
                assert body["error"]["code"] == r.status
                assert "fault injection" in body["error"]["message"]
    assert seen == [503, 503, 500, 200]
    assert len(sandbox.state.faults) == 0
    assert sandbox.state.request_counts["status"] == 4


async def test_endpoint_any_and_forever(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """endpoint 'any' hits every API endpoint; count=-1 lasts until cleared."""
    sandbox.state.faults.add("any", status=502, count=-1)
    async with session.post(f"{sandbox.base_url}/api/generate", json=SEED_BODY, headers=AUTH) as r:
        assert r.status == 502
    async with session.get(f"{sandbox.base_url}/api/status?task_id=x", headers=AUTH) as r:
        assert r.status == 502
    async with session.get(f"{sandbox.base_url}/files/x.mp4") as r:
        assert r.status == 502
    assert len(sandbox.state.faults) == 1
    sandbox.state.faults.clear()
    assert (await generate(session, sandbox)).startswith("hh_task_")


async def test_fault_does_not_touch_other_endpoints(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A status fault leaves generate alone and stays queued."""
    sandbox.state.faults.add("status", status=500)
    await generate(session, sandbox)
    assert len(sandbox.state.faults) == 1


async def test_raw_string_body_is_sent_as_is(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A str body goes out byte for byte (malformed JSON here) with the content type given."""
    sandbox.state.faults.add("generate", body='{"task_id": ', content_type="application/json")
    sandbox.state.faults.add("generate", status=502, body="<html>Bad gateway</html>")
    url = f"{sandbox.base_url}/api/generate"
    async with session.post(url, json=SEED_BODY, headers=AUTH) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.text() == '{"task_id": '
    async with session.post(url, json=SEED_BODY, headers=AUTH) as r:
        assert r.status == 502
        assert r.content_type == "text/plain"
        assert await r.text() == "<html>Bad gateway</html>"
    assert sandbox.state.tasks == {}


async def test_dict_body_is_sent_as_json(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A dict body replaces the answer as JSON (a wrong-shaped success here)."""
    sandbox.state.faults.add("status", body={"status": "completed"})
    async with session.get(f"{sandbox.base_url}/api/status?task_id=x", headers=AUTH) as r:
        assert r.status == 200
        assert await r.json() == {"status": "completed"}


async def test_rate_limit_fault_with_retry_after_seconds_and_date(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """retry_after sets the Retry-After header verbatim: seconds or an HTTP-date."""
    date = "Wed, 21 Oct 2037 07:28:00 GMT"
    sandbox.state.faults.add("generate", status=429, retry_after="3")
    sandbox.state.faults.add("generate", status=429, retry_after=date)
    url = f"{sandbox.base_url}/api/generate"
    async with session.post(url, json=SEED_BODY, headers=AUTH) as r:
        assert (r.status, r.headers["Retry-After"]) == (429, "3")
        assert (await r.json())["error"]["type"] == "rate_limited"
    async with session.post(url, json=SEED_BODY, headers=AUTH) as r:
        assert (r.status, r.headers["Retry-After"]) == (429, date)


async def test_retry_after_alone_decorates_real_answer(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A fault with only retry_after lets the real answer through with that header."""
    sandbox.state.faults.add("generate", retry_after="7")
    async with session.post(f"{sandbox.base_url}/api/generate", json=SEED_BODY, headers=AUTH) as r:
        assert r.status == 200
        assert r.headers["Retry-After"] == "7"


async def test_delay_then_real_answer_creates_task_anyway(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """delay hangs the answer: a client timing out still leaves the task created (no dedupe)."""
    sandbox.state.faults.add("generate", delay=0.5)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            f"{sandbox.base_url}/api/generate",
            json=SEED_BODY,
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.1),
        ) as r:
            await r.read()
    assert time.monotonic() - started < 0.4
    await asyncio.sleep(0.6)
    assert len(sandbox.state.tasks) == 1
    assert sandbox.state.request_counts["generate"] == 1


async def test_delay_with_status(session: aiohttp.ClientSession, sandbox: SandboxServer) -> None:
    """delay combined with status answers late with that status."""
    sandbox.state.faults.add("status", status=504, delay=0.2)
    started = time.monotonic()
    async with session.get(f"{sandbox.base_url}/api/status?task_id=x", headers=AUTH) as r:
        assert r.status == 504
    assert time.monotonic() - started >= 0.2


async def test_download_truncate_drops_connection(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """truncate announces the full length, sends half, and drops the connection."""
    task_id = await _completed_task(session, sandbox)
    url = f"{sandbox.base_url}/files/{task_id}.mp4"
    async with session.get(url) as r:
        full = await r.read()
    sandbox.state.faults.add("download", truncate=True)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.get(url) as r:
            assert r.content_length == len(full)
            async for chunk in r.content.iter_any():
                received += chunk
    assert 0 < len(received) <= len(full) // 2
    assert full.startswith(received)


async def test_download_pad_to_and_omit_length(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """pad_to serves exactly that many bytes; omit_length streams chunked without a length."""
    task_id = await _completed_task(session, sandbox)
    url = f"{sandbox.base_url}/files/{task_id}.mp4"
    async with session.get(url) as r:
        full = await r.read()
    sandbox.state.faults.add("download", pad_to=3_000_000)
    async with session.get(url) as r:
        assert r.content_length == 3_000_000
        padded = await r.read()
    assert len(padded) == 3_000_000
    assert padded.startswith(full)
    assert padded[len(full) + 4 : len(full) + 8] == b"free"
    sandbox.state.faults.add("download", omit_length=True)
    async with session.get(url) as r:
        assert "Content-Length" not in r.headers
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert await r.read() == full
    sandbox.state.faults.add("download", pad_to=100, omit_length=True)
    async with session.get(url) as r:
        assert r.content_length is None
        assert await r.read() == full[:100]


async def test_download_status_fault(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A download fault with a status answers it instead of the file."""
    task_id = await _completed_task(session, sandbox)
    sandbox.state.faults.add("download", status=403, body="AccessDenied")
    async with session.get(f"{sandbox.base_url}/files/{task_id}.mp4") as r:
        assert r.status == 403
        assert await r.text() == "AccessDenied"
    assert sandbox.state.request_counts["download"] == 1


async def test_faults_over_http(session: aiohttp.ClientSession, make_sandbox: MakeSandbox) -> None:
    """POST/GET/DELETE /_sandbox/faults drive the same queue for out-of-process tests."""
    server = await make_sandbox(dialect="native")
    base = f"{server.base_url}/_sandbox/faults"
    async with session.post(
        base, json={"endpoint": "generate", "status": 500, "count": 2, "retry_after": 4}
    ) as r:
        assert r.status == 201
        assert (await r.json())["pending"] == 1
    async with session.post(
        base, json=[{"endpoint": "status", "delay": 0.01}, {"endpoint": "download", "pad_to": 9}]
    ) as r:
        assert (await r.json())["pending"] == 3
    async with session.get(base) as r:
        pending = (await r.json())["faults"]
    assert [f["endpoint"] for f in pending] == ["generate", "status", "download"]
    assert pending[0]["retry_after"] == "4"
    async with session.post(
        f"{server.base_url}/api/generate", json={"model": "happyhorse-1.0/video"}, headers=AUTH
    ) as r:
        assert r.status == 500
        assert r.headers["Retry-After"] == "4"
        assert (await r.json()) == {
            "code": 500,
            "message": "Sandbox fault injection: HTTP 500.",
            "data": None,
        }
    async with session.delete(base) as r:
        assert (await r.json())["cleared"] == 3
    assert len(server.state.faults) == 0


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"endpoint": "upload"}, "endpoint must be one of"),
        ({"endpoint": "status", "status": "500"}, "status has the wrong type"),
        ({"endpoint": "status", "count": 0}, "count must be"),
        ({"endpoint": "status", "colour": "red"}, "unknown fault field 'colour'"),
        ({"endpoint": "status", "truncate": 1}, "truncate has the wrong type"),
        ({"endpoint": "status", "status": 99}, "status must be an HTTP status"),
    ],
)
async def test_bad_fault_over_http_is_400(
    session: aiohttp.ClientSession, sandbox: SandboxServer, payload: dict[str, object], words: str
) -> None:
    """A malformed fault is refused with a message naming the field."""
    async with session.post(f"{sandbox.base_url}/_sandbox/faults", json=payload) as r:
        assert r.status == 400
        assert words in (await r.json())["error"]
    assert len(sandbox.state.faults) == 0


def test_fault_queue_validation_in_process() -> None:
    """FaultQueue.add rejects impossible faults and take() matches endpoint or 'any'."""
    queue = FaultQueue()
    with pytest.raises(ValueError, match="count"):
        queue.add("status", count=-2)
    with pytest.raises(ValueError, match="delay"):
        queue.add("status", delay=-1)
    queue.add("download", status=500)
    queue.add("any", status=501)
    assert queue.take("status") is not None
    assert queue.take("status") is None
    fault = queue.take("download")
    assert fault is not None
    assert fault.status == 500


async def test_status_counter_counts_faulted_and_real_requests(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """request_counts includes requests answered by a fault."""
    task_id = await generate(session, sandbox)
    sandbox.state.faults.add("status", status=500)
    async with session.get(f"{sandbox.base_url}/api/status?task_id={task_id}", headers=AUTH):
        pass
    await status(session, sandbox, task_id)
    assert sandbox.state.request_counts == {"generate": 1, "status": 2, "download": 0}
