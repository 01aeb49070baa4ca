"""Start the HappyHorse Discord bot: `python bot.py`.

Reads `.env` and the environment (see `.env.example`), opens the database, connects the
API client (or, with no HAPPYHORSE_API_KEY, starts the built-in sandbox in-process), and
runs the bot until SIGINT or SIGTERM, then closes everything in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urlsplit

import aiohttp
import discord
import yarl
from dotenv import load_dotenv

from botkit.bot import HappyHorseBot
from core import metrics
from core.logs import JobIdFilter, JsonFormatter, text_formatter
from core.loopwatch import LoopWatch, write_report
from core.settings import BotSettings, SettingsError
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from storage.credits import Period
from storage.models import CostTable
from storage.opening import open_store_from_settings
from storage.sql.database import StoreUnavailableError
from storage.sqlite.database import MigrationError, SchemaTooNewError

log = logging.getLogger("happyhorse.bot")


class RedactSecrets(logging.Filter):
    """Replace every secret in a log record (message, arguments, traceback) with ***."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the record's message once, redacted, and drop the raw arguments."""
        if not self._secrets:
            return True
        record.msg = self._clean(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


def log_handler(
    secrets: Iterable[str | None], log_format: str = "text", stream: TextIO | None = None
) -> logging.Handler:
    """A handler writing text lines or JSON objects (to stderr unless `stream` is given).

    Records get the current job id first, then every secret is redacted from the message,
    arguments and traceback before the formatter sees them, in either format.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else text_formatter())
    handler.addFilter(JobIdFilter())
    handler.addFilter(RedactSecrets(secrets))
    return handler


def configure_logging(level: str, secrets: Iterable[str | None], log_format: str = "text") -> None:
    """Send every log record through one `log_handler` on stderr."""
    handler = log_handler(secrets, log_format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord.http").setLevel(max(logging.INFO, root.level))


def database_password(url: str | None) -> str | None:
    """The password inside ``DATABASE_URL``, if any, so logs can redact it."""
    if not url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password else None


def point_discord_at(api_base_url: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST and gateway traffic elsewhere (a local Discord fake)."""
    if api_base_url:
        discord.http.Route.BASE = api_base_url.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def cost_table(settings: BotSettings) -> CostTable:
    """The configured prices: COST_BASE per 5 s, times COST_PRO_MULTIPLIER for pro."""
    return CostTable(
        unit_credits=settings.cost_base,
        unit_seconds=5,
        quality_multipliers={"std": 1, "pro": settings.cost_pro_multiplier},
    )


@contextlib.asynccontextmanager
async def api_endpoint(settings: BotSettings) -> AsyncIterator[BotSettings]:
    """Yield settings whose client points at the real API, or at an in-process sandbox."""
    if not settings.uses_sandbox:
        yield settings
        return
    dialect = settings.client.resolved_dialect
    config = SandboxConfig(
        dialect=dialect,
        complete_after=settings.sandbox_complete_after_seconds,
        processing_after=min(3.0, settings.sandbox_complete_after_seconds / 2),
    )
    async with SandboxServer(config) as sandbox:
        log.warning(
            "HAPPYHORSE_API_KEY is not set: using the built-in SANDBOX at %s. Videos are "
            "test clips (every card and post says so); members are still charged credits. "
            "Set HAPPYHORSE_API_KEY to use the real service, and REQUIRE_API_KEY=1 in "
            "production so a missing key stops the bot instead.",
            sandbox.base_url,
        )
        client = dataclasses.replace(
            settings.client, api_key="sandbox", base_url=sandbox.base_url, dialect=dialect
        )
        yield dataclasses.replace(settings, client=client, sandbox=True)


async def run(settings: BotSettings) -> None:
    """Run the bot until it is closed or a signal arrives; always release resources."""
    point_discord_at(settings.discord_api_base_url, settings.discord_gateway_url)
    async with contextlib.AsyncExitStack() as stack:
        if settings.loop_watch_report is not None:
            stack.push_async_callback(_watch_loop(settings.loop_watch_report))
        settings = await stack.enter_async_context(api_endpoint(settings))
        try:
            store = await open_store_from_settings(
                settings, cost_table=cost_table(settings), period=Period(settings.credit_period)
            )
        except (StoreUnavailableError, SchemaTooNewError, MigrationError) as exc:
            log.error("Could not open the database: %s", exc)
            raise SystemExit(1) from None
        stack.push_async_callback(store.close)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10))
        )
        api = await stack.enter_async_context(
            HappyHorseClient(settings.client, session=session, observer=metrics.observe_api_call)
        )
        bot = HappyHorseBot(settings, store, api)
        stack.push_async_callback(bot.close)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, _request_stop, bot, sig)
        try:
            if settings.gateway_free:
                await bot.run_without_gateway(settings.discord_token)
            else:
                await bot.start(settings.discord_token)
        except discord.LoginFailure:
            log.error(
                "Discord rejected DISCORD_TOKEN. Copy a fresh token from the Developer Portal "
                "(Bot -> Reset Token) into .env."
            )
            raise SystemExit(1) from None
        except discord.PrivilegedIntentsRequired:
            log.error("A privileged intent is required but not enabled in the Developer Portal.")
            raise SystemExit(1) from None
    log.info("Shut down cleanly")


def _watch_loop(report_path: Path) -> Callable[[], Awaitable[None]]:
    """Start the stall monitor; return the callback that stops it and writes its report."""
    watch = LoopWatch()
    watch.start()

    async def finish() -> None:
        report = await watch.stop()
        await asyncio.to_thread(write_report, report, report_path)
        log.info("Event loop: worst stall %.0f ms", report.worst_stall_seconds * 1000)

    return finish


def _request_stop(bot: HappyHorseBot, sig: signal.Signals) -> None:
    log.info("Received %s: shutting down", sig.name)
    task = asyncio.get_running_loop().create_task(bot.close())
    _SHUTDOWN_TASKS.add(task)
    task.add_done_callback(_SHUTDOWN_TASKS.discard)


_SHUTDOWN_TASKS: set[asyncio.Task[None]] = set()


def main() -> int:
    """Entry point: load settings, configure logging, run; return the exit status."""
    load_dotenv()
    try:
        settings = BotSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level,
        [settings.discord_token, settings.client.api_key, database_password(settings.database_url)],
        settings.log_format,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
