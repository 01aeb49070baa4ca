"""Load-test hooks: per-task completion times, a status-only rate limit with 429 counts,
per-task status counts, large results and stalled downloads. The contract answers stay
the same; only timing and sizes change."""

from __future__ import annotations

import aiohttp

from happyhorse.sandbox.state import Phase, SandboxConfig, SandboxState
from tests.sandbox.conftest import AUTH, MakeSandbox, generate, status


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def new_task(state: SandboxState) -> str:
    task = state.create_task(
        model="happyhorse-1.0/video",
        prompt="a horse",
        mode="text-to-video",
        quality="std",
        duration=5,
        aspect_ratio="16:9",
        sound=False,
    )
    return task.task_id


def test_each_task_takes_its_completion_time_in_order() -> None:
    """Queued completion times go to new tasks in creation order, then the config's."""
    clock = Clock()
    state = SandboxState(SandboxConfig(processing_after=2, complete_after=50), clock=clock)
    state.completion_times.extend([3.0, 0.5])
    first, second, third = (state.tasks[new_task(state)] for _ in range(3))
    assert [state.completes_at(t) for t in (first, second, third)] == [103.0, 100.5, 150.0]
    clock.now = 102.5
    assert [state.phase(t)[0] for t in (first, second, third)] == [
        Phase.PROCESSING,
        Phase.COMPLETED,
        Phase.PROCESSING,
    ]


def test_forced_completion_records_when() -> None:
    """A task forced complete completes at the moment it was forced; a failing one never."""
    clock = Clock()
    state = SandboxState(SandboxConfig(complete_after=50), clock=clock)
    task = state.tasks[new_task(state)]
    clock.now = 120.0
    state.force(task.task_id, Phase.COMPLETED)
    assert state.completes_at(task) == 120.0
    state.force(task.task_id, Phase.FAILED)
    assert state.completes_at(task) is None


async def test_status_rate_limit_counts_its_429s(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """The status-only limit refuses status calls over it (429) and counts them; generate
    is not limited by it; answered calls are counted per task."""
    server = await make_sandbox(status_rate_limit=2, status_rate_window=30)
    first = await generate(session, server)
    second = await generate(session, server)
    await generate(session, server)
    await status(session, server, first)
    await status(session, server, first)
    async with session.get(
        f"{server.base_url}/api/status", params={"task_id": second}, headers=AUTH
    ) as r:
        assert r.status == 429
        assert "at most 2 requests per 30 seconds" in (await r.json())["error"]["message"]
    assert server.state.rate_limited == {"generate": 0, "status": 1, "download": 0}
    assert server.state.status_counts == {first: 2}
    async with session.get(f"{server.base_url}/_sandbox/tasks") as r:
        listing = await r.json()
    assert listing["rate_limited"]["status"] == 1
    assert [t["status_requests"] for t in listing["tasks"]] == [2, 0, 0]


async def test_large_result_is_served_at_its_size(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """A task created while `result_size` is set serves a result of exactly that size."""
    server = await make_sandbox(processing_after=0, complete_after=0)
    server.state.result_size = 3 * 1024 * 1024
    task_id = await generate(session, server)
    url = (await status(session, server, task_id))["data"]["video_url"]
    async with session.get(url) as r:
        assert r.status == 200
        assert r.content_length == 3 * 1024 * 1024
        body = await r.read()
    assert len(body) == 3 * 1024 * 1024


async def test_stalled_download_waits_before_the_first_byte(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """A task's download stall holds its result back; the client's timeout gives up first."""
    server = await make_sandbox(processing_after=0, complete_after=0)
    task_id = await generate(session, server)
    server.state.tasks[task_id].download_stall = 30.0
    url = (await status(session, server, task_id))["data"]["video_url"]
    timeout = aiohttp.ClientTimeout(total=0.3)
    try:
        async with session.get(url, timeout=timeout) as r:
            await r.read()
    except TimeoutError:
        stalled = True
    else:
        stalled = False
    assert stalled


async def test_status_calls_are_logged_and_counted_per_second(
    session: aiohttp.ClientSession, make_sandbox: MakeSandbox
) -> None:
    """Every status request is logged (task, arrival, answer, HTTP status), refused ones
    included, and counted per whole second of the sandbox clock."""
    server = await make_sandbox(status_rate_limit=2, status_rate_window=30)
    first = await generate(session, server)
    await status(session, server, first)
    await status(session, server, first)
    async with session.get(
        f"{server.base_url}/api/status", params={"task_id": first}, headers=AUTH
    ) as r:
        assert r.status == 429
    log = server.state.status_log
    assert [(call.task_id, call.status) for call in log] == [
        (first, 200), (first, 200), (first, 429),
    ]  # fmt: skip
    assert all(call.received <= call.answered for call in log)
    assert sorted(call.received for call in log) == [call.received for call in log]
    assert sum(server.state.status_calls_per_second().values()) == 3
