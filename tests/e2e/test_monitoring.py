"""The monitoring kit against a running bot: every series the alerts and the dashboard read
is exported, `promtool check metrics` finds nothing to fix, and the container's health
check script tells a healthy bot from an unreachable one."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.monitoring import REPO, alert_rules, dashboard_exprs, promtool, selectors
from tests.e2e.conftest import Running, StartBot, World
from tests.e2e.test_health_metrics import endpoint, order_and_deliver


async def metrics_text(running: Running) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(endpoint(running) + "/metrics") as resp,
    ):
        assert resp.status == 200
        return await resp.text()


def exported(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_every_alerted_and_charted_series_is_exported(
    start_bot: StartBot, world: World
) -> None:
    """Each selector in alerts.yml and the dashboard matches a series on /metrics."""
    async with start_bot(metrics_port=0) as running:
        await order_and_deliver(running, world)
        text = await metrics_text(running)
    samples = exported(text)
    wanted = [
        (name, labels, source)
        for source, exprs in (
            ("alerts.yml", [str(rule["expr"]) for rule in alert_rules()]),
            ("happyhorse.json", dashboard_exprs()),
        )
        for expr in exprs
        for name, labels in selectors(expr)
    ]
    assert len(wanted) > 20
    missing = [
        (name, labels, source)
        for name, labels, source in wanted
        if not any(
            sample == name and labels.items() <= got.items() for sample, got, _ in samples
        )
    ]
    assert not missing, missing


async def test_health_series_describe_the_bot(start_bot: StartBot) -> None:
    """A healthy one-shard bot: every check 1, one shard expected and connected."""
    async with start_bot(metrics_port=0) as running:
        samples = {
            (name, tuple(sorted(labels.items()))): value
            for name, labels, value in exported(await metrics_text(running))
        }
    for check in ("gateway", "database", "scheduler"):
        assert samples[("happyhorse_health_check", (("check", check),))] == 1.0
    assert samples[("happyhorse_gateway_shards", (("state", "expected"),))] == 1.0
    assert samples[("happyhorse_gateway_shards", (("state", "connected"),))] == 1.0


async def test_promtool_check_metrics_is_clean(start_bot: StartBot, world: World) -> None:
    """`promtool check metrics` on a real scrape reports no problem."""
    tool = promtool()
    async with start_bot(metrics_port=0) as running:
        await order_and_deliver(running, world)
        text = await metrics_text(running)
    done = await asyncio.to_thread(
        subprocess.run,
        [tool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
        done.stdout + done.stderr
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "deploy" / "healthcheck.py"), str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_container_health_check_script(start_bot: StartBot) -> None:
    """deploy/healthcheck.py (the image's HEALTHCHECK) exits 0 on a healthy bot, 1 on none."""
    async with start_bot(metrics_port=0) as running:
        port = int(endpoint(running).rsplit(":", 1)[1])
        healthy = await healthcheck(port)
    assert healthy.returncode == 0, healthy.stderr
    gone = await healthcheck(free_port())
    assert gone.returncode == 1
    assert "unreachable" in gone.stderr
