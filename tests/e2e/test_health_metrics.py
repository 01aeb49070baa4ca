"""The operators' endpoint of a running bot, scraped over loopback: /metrics and /healthz."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from cogs.health import scheduler_stale_after
from core.heartbeat import Heartbeats
from storage.models import UNFINISHED_STATES, JobState
from tests.e2e.conftest import Running, StartBot, World, eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def endpoint(running: Running) -> str:
    # The extension's module is loaded apart from this test's import: no isinstance here.
    cog = running.bot.get_cog("Health")
    assert cog is not None, "METRICS_PORT is set, so the Health cog is loaded"
    return f"http://127.0.0.1:{cog.server.port}"  # type: ignore[attr-defined]


async def scrape(running: Running) -> Samples:
    """GET /metrics and parse it as Prometheus text: {(name, labels): value}."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(endpoint(running) + "/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def healthz(running: Running) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(endpoint(running) + "/healthz") as resp,
    ):
        assert resp.headers["Content-Type"].startswith("application/json")
        return resp.status, await resp.json()


async def order_and_deliver(running: Running, world: World) -> int:
    """Run one /video from alice to delivery; return its job id."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.alice, "video", {"prompt": "a horse on the moon"}
    )
    assert await inter.wait_for_ack() == 5
    jobs = running.store.jobs

    async def delivered() -> bool:
        recent = await jobs.recent_jobs(world.guild.id, world.alice.id, 1)
        return bool(recent) and recent[0].state is JobState.DELIVERED

    await eventually(delivered, timeout=15, what="the video to be delivered")
    return (await jobs.recent_jobs(world.guild.id, world.alice.id, 1))[0].id


async def test_no_endpoint_without_metrics_port(start_bot: StartBot) -> None:
    """METRICS_PORT unset: the Health cog is not even loaded."""
    async with start_bot() as running:
        assert running.bot.get_cog("Health") is None


async def test_metrics_count_a_delivered_job(start_bot: StartBot, world: World) -> None:
    """After one video: polls, credits, the delivery lag and the backlog gauges show it."""
    async with start_bot(metrics_port=0) as running:
        before = await scrape(running)
        # Every unfinished state and both kinds of due work are exported, even at zero.
        for state in UNFINISHED_STATES:
            assert ("happyhorse_jobs", (("state", state.value),)) in before
        assert value(before, "happyhorse_database_up") == 1
        await order_and_deliver(running, world)
        after = await scrape(running)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("happyhorse_api_requests_total", operation="generate") == 1
    assert grew("happyhorse_api_requests_total", operation="status") >= 1
    assert grew("happyhorse_api_requests_total", operation="download") == 1
    assert grew("happyhorse_credits_reserved_total") == 1
    assert grew("happyhorse_credits_refunded_total") == 0
    assert grew("happyhorse_delivery_lag_seconds_count") == 1
    assert grew("happyhorse_discord_requests_total") >= 2
    for state in UNFINISHED_STATES:
        assert value(after, "happyhorse_jobs", state=state.value) == 0
    assert value(after, "happyhorse_due_jobs", work="poll") == 0
    assert value(after, "happyhorse_oldest_due_age_seconds", work="delivery") == 0
    assert "process_cpu_seconds_total" in {name for name, _ in after}


async def test_429s_and_refunds_are_counted(start_bot: StartBot, world: World) -> None:
    """A 429 on a status call is an API error of kind rate_limited; a refused submit
    is a bad_request and its refund gives the credit back."""
    async with start_bot(metrics_port=0) as running:
        before = await scrape(running)
        running.sandbox.state.faults.add("status", status=429, retry_after="0")
        await order_and_deliver(running, world)
        running.sandbox.state.faults.add("generate", status=400, body={"message": "No."})
        inter = await world.fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse in the rain"}
        )
        assert await inter.wait_for_ack() == 5
        await inter.wait_for_followup()
        after = await scrape(running)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("happyhorse_api_errors_total", operation="status", kind="rate_limited") == 1
    assert grew("happyhorse_api_errors_total", operation="generate", kind="bad_request") == 1
    assert grew("happyhorse_credits_reserved_total") == 2
    assert grew("happyhorse_credits_refunded_total") == 1


async def test_healthz_is_200_when_everything_works(start_bot: StartBot) -> None:
    """Connected, database answering, scheduler beating: 200 and every check ok."""
    async with start_bot(metrics_port=0) as running:
        await eventually(
            lambda: _async(running.bot.heartbeats.has_beaten("scheduler")),
            what="the scheduler's first beat",
        )
        status, body = await healthz(running)
    assert status == 200, body
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"gateway", "database", "scheduler"}
    assert body["checks"]["gateway"]["detail"] == "1 of 1 shards connected"


async def test_healthz_names_a_stale_scheduler(start_bot: StartBot) -> None:
    """A scheduler silent for longer than its threshold: 503, and only it has failed."""
    async with start_bot(metrics_port=0) as running:
        now = [1000.0]
        def clock() -> float:
            return now[0]
        running.bot.heartbeats = Heartbeats(clock=clock)
        running.bot.heartbeats.beat("scheduler")
        delivery = running.bot.get_cog("Delivery")
        assert delivery is not None
        await delivery.scheduler.close()  # type: ignore[attr-defined]
        delivery._housekeeping.cancel()  # type: ignore[attr-defined]  # the loop that beats
        now[0] += scheduler_stale_after(running.bot.settings.poll_interval_seconds) + 1
        status, body = await healthz(running)
    assert status == 503
    assert body["status"] == "fail" and body["failed"] == ["scheduler"]
    assert "last beat" in body["checks"]["scheduler"]["detail"]


async def test_healthz_names_an_unreachable_database(start_bot: StartBot) -> None:
    """A database that cannot answer: 503 with the database check failed; /metrics still
    answers and says the database is down."""
    async with start_bot(metrics_port=0) as running:
        await running.store.close()
        status, body = await healthz(running)
        samples = await scrape(running)
    assert status == 503
    assert "database" in body["failed"]
    assert body["checks"]["database"]["ok"] is False
    assert value(samples, "happyhorse_database_up") == 0


async def test_healthz_names_a_lost_gateway(start_bot: StartBot, world: World) -> None:
    """While the gateway is down the gateway check fails; after the resume it passes."""
    async with start_bot(metrics_port=0) as running:
        async with world.fake.gateway_gap():
            await eventually(
                lambda: _async(not running.bot.gateway_connected()), what="the bot to notice"
            )
            status, body = await healthz(running)
            assert status == 503
            assert "gateway" in body["failed"]
            assert body["checks"]["gateway"]["detail"].startswith("0 of 1 shards connected")
        await eventually(lambda: _async(running.bot.gateway_connected()), what="the resume")
        status, body = await healthz(running)
        assert body["checks"]["gateway"]["ok"] is True


async def _async(value: bool) -> bool:
    return value
