"""The operators' HTTP endpoint: `/healthz` and `/metrics` (METRICS_PORT; off by default).

`/healthz` answers 200 when every check passes and 503 otherwise, with a JSON body that
names each check and what it found:

* gateway: every shard of this process connected ("n/a" for a process without shards);
* database: a trivial query answers within `DATABASE_TIMEOUT` seconds;
* scheduler: the delivery loop beat within the last `scheduler_stale_after` seconds.

`/metrics` is the Prometheus text format (see core/metrics.py); the backlog gauges are read
from the database at scrape time. The server belongs to this cog: started when the cog
loads, stopped when it unloads (bot shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from discord.ext import commands

from core import metrics
from core.heartbeat import SCHEDULER

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

DATABASE_TIMEOUT = 2.0
# The loop beats once per tick; a tick may legitimately take a while (a batch of uploads).
MIN_SCHEDULER_STALE_AFTER = 120.0


def scheduler_stale_after(poll_interval_seconds: float) -> float:
    """Seconds of silence after which the scheduler counts as dead."""
    return max(MIN_SCHEDULER_STALE_AFTER, 10 * poll_interval_seconds)


class HealthServer:
    """An aiohttp server for /healthz and /metrics about one bot."""

    def __init__(self, bot: HappyHorseBot, host: str, port: int) -> None:
        self.bot = bot
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        self._app = app

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one; `port` then holds it)."""
        runner = web.AppRunner(
            self._app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            log.error(
                "Cannot serve health and metrics on %s:%d (METRICS_HOST/METRICS_PORT): %s",
                self.host,
                self.port,
                exc.strerror or exc,
            )
            raise
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("Health and metrics on http://%s:%d (/healthz, /metrics)", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def checks(self) -> dict[str, dict[str, Any]]:
        """Run every check; each result has `ok` and a human-readable `detail`."""
        return {
            "gateway": self._gateway(),
            "database": await self._database(),
            "scheduler": self._scheduler(),
        }

    def _gateway(self) -> dict[str, Any]:
        bot = self.bot
        if bot.gateway_free:
            return {"ok": True, "detail": "n/a: this process connects no shard"}
        expected = bot.expected_shards
        shards = bot.shards
        up = [i for i in expected if i in shards and not shards[i].is_closed()]
        detail = f"{len(up)} of {len(expected)} shards connected"
        if not bot.is_ready():
            detail += " (not ready yet)"
        return {"ok": bot.gateway_connected(), "detail": detail, "shards": up}

    async def _database(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.bot.store.ping(), DATABASE_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "detail": f"no answer within {DATABASE_TIMEOUT:g} s"}
        except Exception as exc:
            return {"ok": False, "detail": f"query failed: {type(exc).__name__}"}
        return {"ok": True, "detail": "reachable"}

    def _scheduler(self) -> dict[str, Any]:
        heartbeats = self.bot.heartbeats
        limit = scheduler_stale_after(self.bot.settings.poll_interval_seconds)
        age = heartbeats.age(SCHEDULER)
        if heartbeats.is_stale(SCHEDULER, limit):
            if heartbeats.has_beaten(SCHEDULER):
                detail = f"last beat {age:.0f} s ago (limit {limit:g} s)"
            else:
                detail = f"has not started {age:.0f} s after start-up (limit {limit:g} s)"
            return {"ok": False, "detail": detail}
        if not heartbeats.has_beaten(SCHEDULER):
            return {"ok": True, "detail": "starting"}
        return {"ok": True, "detail": f"last beat {age:.1f} s ago"}

    async def healthz(self, request: web.Request) -> web.Response:
        """GET /healthz: 200 if every check passes, else 503; JSON either way."""
        checks = await self.checks()
        failed = [name for name, result in checks.items() if not result["ok"]]
        body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
        return web.json_response(body, status=503 if failed else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics: the Prometheus text format, backlog read from the database now."""
        await metrics.refresh_backlog(self.bot.store)
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


class Health(commands.Cog):
    """Owns the health and metrics server while the bot runs."""

    def __init__(self, bot: HappyHorseBot, port: int) -> None:
        self.server = HealthServer(bot, bot.settings.metrics_host, port)

    async def cog_load(self) -> None:
        """Start listening (a port already in use fails start-up with a clear error)."""
        await self.server.start()

    async def cog_unload(self) -> None:
        """Stop the server."""
        await self.server.stop()


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog when METRICS_PORT is set; without it there is no endpoint at all."""
    if bot.settings.metrics_port is not None:
        await bot.add_cog(Health(bot, bot.settings.metrics_port))
