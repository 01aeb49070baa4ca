"""Task lifecycle, answer shapes in both dialects, the fail word, credits and rate limits."""

from __future__ import annotations

import asyncio

import aiohttp

from happyhorse.sandbox import SandboxServer
from tests.sandbox.conftest import AUTH, SEED_BODY, MakeSandbox, generate, status


async def _wait_for(
    session: aiohttp.ClientSession, server: SandboxServer, task_id: str, state: str
) -> dict[str, object]:
    """Poll until the seed status equals `state` (at most ~3 s)."""
    for _ in range(150):
        answer = await status(session, server, task_id)
        if answer["status"] == state:
            return answer
        await asyncio.sleep(0.02)
    raise AssertionError(f"task never reached {state}")


async def test_seed_generate_answer_shape(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """Generate answers {task_id: hh_task_<hex>, status: queued, message}."""
    async with session.post(f"{sandbox.base_url}/api/generate", json=SEED_BODY, headers=AUTH) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        answer = await r.json()
    assert set(answer) == {"task_id", "status", "message"}
    assert answer["status"] == "queued"
    assert answer["task_id"].startswith("hh_task_")
    int(answer["task_id"].removeprefix("hh_task_"), 16)
    assert answer["task_id"] in sandbox.state.tasks


async def test_seed_lifecycle_queued_processing_completed(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """A task is queued, then processing, then completed with the contract's exact shape."""
    server = await make_sandbox(processing_after=0.1, complete_after=0.3)
    task_id = await generate(session, server)
    first = await status(session, server, task_id)
    assert first["status"] == "queued"
    assert first["data"] == {
        "model": "happyhorse-1.0/video",
        "mode": "text-to-video",
        "duration": 5,
        "aspect_ratio": "16:9",
    }
    await _wait_for(session, server, task_id, "processing")
    done = await _wait_for(session, server, task_id, "completed")
    url = f"{server.base_url}/files/{task_id}.mp4"
    assert done == {
        "task_id": task_id,
        "status": "completed",
        "message": "Video generation completed.",
        "data": {
            "model": "happyhorse-1.0/video",
            "mode": "text-to-video",
            "duration": 5,
            "aspect_ratio": "16:9",
            "resultUrls": [url],
            "video_url": url,
        },
    }


async def test_reseller_status_path_form(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """GET /api/status/{task_id} answers like the query form."""
    task_id = await generate(session, sandbox)
    async with session.get(f"{sandbox.base_url}/api/status/{task_id}", headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["task_id"] == task_id


async def test_unknown_task_is_404_json(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """An unknown task id is a 404 with a JSON error naming it, in both status forms."""
    for url in (
        f"{sandbox.base_url}/api/status?task_id=hh_task_nope",
        f"{sandbox.base_url}/api/status/hh_task_nope",
    ):
        async with session.get(url, headers=AUTH) as r:
            assert r.status == 404
            answer = await r.json()
        assert answer["error"]["type"] == "not_found"
        assert "hh_task_nope" in answer["error"]["message"]


async def test_status_without_task_id_is_400(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """GET /api/status without task_id names the missing parameter."""
    async with session.get(f"{sandbox.base_url}/api/status", headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["field"] == "task_id"


async def test_fail_word_ends_failed_with_clear_message(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """A prompt holding the fail word (any case, as a word) ends failed, saying why."""
    body = {**SEED_BODY, "prompt": "a horse that will fail, sadly"}
    task_id = await generate(session, sandbox, body)
    answer = await _wait_for(session, sandbox, task_id, "failed")
    assert "fail word 'FAIL'" in str(answer["message"])
    assert "resultUrls" not in answer["data"]  # type: ignore[operator]
    async with session.get(f"{sandbox.base_url}/files/{task_id}.mp4") as r:
        assert r.status == 404


async def test_fail_word_must_be_a_whole_word(
    session: aiohttp.ClientSession, sandbox: SandboxServer
) -> None:
    """'failure' does not trigger the fail word 'FAIL'."""
    body = {**SEED_BODY, "prompt": "a study of failure"}
    task_id = await generate(session, sandbox, body)
    await _wait_for(session, sandbox, task_id, "completed")


async def test_native_lifecycle_and_failure(
    session: aiohttp.ClientSession, native: SandboxServer
) -> None:
    """Native: enveloped answers, IN_PROGRESS then SUCCESS with response.resultUrls; FAILED."""
    async with session.post(
        f"{native.base_url}/api/generate",
        json={"model": "happyhorse-1.0/video", "prompt": "a horse"},
        headers=AUTH,
    ) as r:
        created = await r.json()
    assert created["code"] == 200
    assert created["message"] == "success"
    task_id = created["data"]["task_id"]
    first = await status(session, native, task_id)
    assert first == {
        "code": 200,
        "message": "success",
        "data": {"task_id": task_id, "status": "IN_PROGRESS"},
    }
    await asyncio.sleep(0.25)
    done = await status(session, native, task_id)
    assert done["data"] == {
        "task_id": task_id,
        "status": "SUCCESS",
        "response": {"resultUrls": [f"{native.base_url}/files/{task_id}.mp4"]},
    }
    failing = await generate(
        session, native, {"model": "happyhorse-1.0/video", "prompt": "FAIL please"}
    )
    await asyncio.sleep(0.25)
    failed = (await status(session, native, failing))["data"]
    assert failed["status"] == "FAILED"
    assert "fail word" in failed["error_message"]
    async with session.get(f"{native.base_url}/api/status?task_id=nope", headers=AUTH) as r:
        assert r.status == 404
        assert (await r.json())["code"] == 404


async def test_credits_are_charged_and_402_when_spent(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """Each 5 s costs 1 credit, pro doubles; a request the balance cannot cover is a 402."""
    server = await make_sandbox(credits=5)
    await generate(session, server, {**SEED_BODY, "duration": 10, "quality": "pro"})  # 4
    assert server.state.credits == 1
    url = f"{server.base_url}/api/generate"
    async with session.post(url, json={**SEED_BODY, "duration": 10}, headers=AUTH) as r:
        assert r.status == 402
        answer = await r.json()
    assert answer["error"]["type"] == "insufficient_credits"
    assert "costs 2 credits and 1 remain" in answer["error"]["message"]
    await generate(session, server)  # 1 credit: exactly the balance
    assert server.state.credits == 0
    async with session.post(url, json=SEED_BODY, headers=AUTH) as r:
        assert r.status == 402
    assert len(server.state.tasks) == 2


async def test_rate_limit_429_with_retry_after(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """Over `rate_limit` API requests per window is a 429 carrying Retry-After seconds."""
    server = await make_sandbox(rate_limit=2, rate_window=30)
    task_id = await generate(session, server)
    await status(session, server, task_id)
    url = f"{server.base_url}/api/status?task_id={task_id}"
    async with session.get(url, headers=AUTH) as r:
        assert r.status == 429
        retry_after = int(r.headers["Retry-After"])
        answer = await r.json()
    assert 1 <= retry_after <= 30
    assert answer["error"]["type"] == "rate_limited"
    assert "at most 2 requests per 30 seconds" in answer["error"]["message"]


async def test_rate_limit_window_slides(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """Once the window has passed, requests are allowed again."""
    server = await make_sandbox(rate_limit=1, rate_window=0.2)
    task_id = await generate(session, server)
    url = f"{server.base_url}/api/status?task_id={task_id}"
    async with session.get(url, headers=AUTH) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
    await asyncio.sleep(0.25)
    async with session.get(url, headers=AUTH) as r:
        assert r.status == 200


async def test_control_plane_lists_tasks_and_forces_state(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """/_sandbox/tasks lists tasks and counts; complete|fail pin a task's outcome."""
    server = await make_sandbox(processing_after=30, complete_after=60)
    first = await generate(session, server)
    second = await generate(session, server)
    await status(session, server, first)
    async with session.post(f"{server.base_url}/_sandbox/tasks/{first}/complete") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "completed"
    async with session.post(
        f"{server.base_url}/_sandbox/tasks/{second}/fail", json={"message": "GPU on fire"}
    ) as r:
        assert r.status == 200
    assert (await status(session, server, first))["status"] == "completed"
    failed = await status(session, server, second)
    assert (failed["status"], failed["message"]) == ("failed", "GPU on fire")
    async with session.get(f"{server.base_url}/_sandbox/tasks") as r:
        listing = await r.json()
    assert [t["task_id"] for t in listing["tasks"]] == [first, second]
    assert listing["request_counts"] == {"generate": 2, "status": 3, "download": 0}
    assert listing["credits"] is None
    async with session.post(f"{server.base_url}/_sandbox/tasks/nope/complete") as r:
        assert r.status == 404
