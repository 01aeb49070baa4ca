"""The real bot as a separate process (`python bot.py`), pointed at the fake and a sandbox.

`bot_env()` builds a clean environment: every setting named in `.env.example` (and the
Discord URL aliases) is set explicitly, so a stray `.env` in the repository cannot change
the run (python-dotenv never overrides a variable that is already set, even to "").
`BotProcess` starts the bot, waits until it is logged in, and kills (SIGKILL) or stops
(SIGTERM) it; its stderr goes to a file that a failing test shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from happyhorse.sandbox import SandboxServer
from tests.fake_discord import FakeDiscord

REPO = Path(__file__).resolve().parents[2]
READY_LINE = "Logged in as"
_ALIASES = ("DISCORD_API_BASE", "DISCORD_API_URL", "DISCORD_GATEWAY")
# Documented in `.env.example` but commented out there (an empty value has a meaning).
_COMMENTED = ("SHARD_IDS",)


def setting_names() -> set[str]:
    """Every environment variable the bot reads, as documented in `.env.example`."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    return names | set(_ALIASES) | set(_COMMENTED)


def bot_env(
    fake: FakeDiscord,
    sandbox: SandboxServer,
    api_key: str,
    database: Path,
    guild_id: int,
    **overrides: str,
) -> dict[str, str]:
    """A complete environment for `bot.py`: fake Discord, sandbox API, fast timings."""
    names = setting_names()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in names and not k.startswith(("DISCORD_", "HAPPYHORSE_"))
    }
    env.update(dict.fromkeys(names, ""))
    env.update(fake.env())
    env.update(
        HAPPYHORSE_API_KEY=api_key,
        HAPPYHORSE_BASE_URL=sandbox.base_url,
        HAPPYHORSE_API_DIALECT="seed",
        HAPPYHORSE_TIMEOUT_SECONDS="5",
        HAPPYHORSE_DOWNLOAD_READ_TIMEOUT_SECONDS="5",
        HAPPYHORSE_STATUS_RATE="50",
        HAPPYHORSE_STATUS_BURST="10",
        HAPPYHORSE_BACKOFF_BASE_SECONDS="0.05",
        HAPPYHORSE_RETRY_CAP_SECONDS="1",
        HAPPYHORSE_MAX_RETRIES="2",
        DATABASE_PATH=str(database),
        DEV_GUILD_ID=str(guild_id),
        SYNC_COMMANDS="true",
        DEFAULT_DAILY_CREDITS="10",
        CREDIT_PERIOD="daily",
        COST_BASE="1",
        COST_PRO_MULTIPLIER="2",
        POLL_INTERVAL_SECONDS="0.2",
        POLL_FIRST_DELAY_SECONDS="0.2",
        POLL_MAX_INTERVAL_SECONDS="0.5",
        STATUS_EDIT_INTERVAL_SECONDS="0.2",
        LOG_LEVEL="DEBUG",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


class BotProcess:
    """One run of `python bot.py`; stderr (the log) goes to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._log_offset = 0

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended."""
        return None if self.process is None else self.process.returncode

    def log(self) -> str:
        """This run's log so far."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode("utf-8", "replace")

    async def start(
        self, fake: FakeDiscord, timeout: float = 20.0, *, gateway: bool = True
    ) -> None:
        """Start the bot and wait until it has identified, synced and logged `on_ready`.

        With `gateway=False` (a process with `SHARD_IDS=` empty) wait only until it has
        logged in over REST; it never identifies.
        """
        identifies = fake.gateway.identify_count
        syncs = fake.state.sync_count
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "bot.py",
                cwd=REPO,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )

        def ready() -> bool:
            self._check_alive()
            if not gateway:
                return READY_LINE in self.log()
            session = fake.gateway.session
            return (
                fake.gateway.identify_count > identifies
                and fake.state.sync_count > syncs
                and session is not None
                and session.connection is not None
                and READY_LINE in self.log()
            )

        await self._until(ready, timeout, "the bot process to log in")

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(
                f"bot.py exited with {self.process.returncode}; its log:\n{self.log()}"
            )

    async def _until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}:\n{self.log()}"
                )
            await asyncio.sleep(0.05)

    async def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        """Wait until this run's log contains `text` (the process must stay up)."""

        def found() -> bool:
            if text in self.log():
                return True
            self._check_alive()
            return False

        await self._until(found, timeout, repr(text) + " in the log")

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, in the middle of whatever it was doing."""
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait for the exit status; SIGKILL and fail if it takes too long."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"bot.py did not exit within {timeout} s of SIGTERM; its log:\n{self.log()}"
            ) from None

    async def ensure_dead(self) -> None:
        """Kill the process if it is still running (test teardown)."""
        if self.process is not None and self.process.returncode is None:
            await self.kill()
