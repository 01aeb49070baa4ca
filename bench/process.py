"""A bot as a subprocess: start it, wait until it is on the fake, measure it, end it.

The bench owns every process it starts: `Subprocess` is an async context manager whose
exit always ends the process (SIGTERM, then SIGKILL after a grace period), so an error or
a Ctrl-C in the bench never leaves a bot running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.fake_discord import FakeDiscord

REPO = Path(__file__).resolve().parents[1]
READY_LINE = "Logged in as"


class Subprocess:
    """`python <args>` run from the repository root; its output goes to `log_path`."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        """Prepare (but do not start) the process."""
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        """Everything this run of the process has logged so far."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode("utf-8", "replace")

    async def start(
        self, fake: FakeDiscord, timeout: float = 30.0, *, gateway: bool = True
    ) -> None:
        """Start the process and wait until it has identified, synced and logged in.

        With `gateway=False` (a bot with `SHARD_IDS=` empty: background work only) wait
        only until it has logged in over REST; it never identifies.
        """
        identifies = fake.gateway.identify_count
        syncs = fake.state.sync_count
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.args,
                cwd=REPO,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.args[0]} exited early; its log:\n{self.log()[-3000:]}")
            session = fake.gateway.session
            if not gateway and READY_LINE in self.log():
                return
            if (
                gateway
                and fake.gateway.identify_count > identifies
                and fake.state.sync_count > syncs
                and session is not None
                and session.connection is not None
                and READY_LINE in self.log()
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[0]} did not log in within {timeout} s")
            await asyncio.sleep(0.05)

    def rss_bytes(self) -> int:
        """The process's resident set size now (VmRSS), in bytes; 0 once it has ended."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far; 0 once it has ended."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        except OSError:
            return 0.0
        # The command name (field 2) may hold spaces; utime and stime follow its ")".
        after = fields.rsplit(")", 1)[1].split()
        return (int(after[11]) + int(after[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self, grace: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        process = self.process
        if process is None:
            return 0
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return process.returncode if process.returncode is not None else 0

    async def __aenter__(self) -> Subprocess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.shield(self.stop(grace=5.0 if exc is not None else 15.0))
        except asyncio.CancelledError:
            # Cancelled while waiting (Ctrl-C): never leave the process behind.
            self.kill_now()
            raise

    def kill_now(self) -> None:
        """SIGKILL at once, without waiting (safe to call at any time)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
