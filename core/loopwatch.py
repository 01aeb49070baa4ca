"""An event-loop stall monitor: how long the loop was kept from running its callbacks.

A coroutine sleeps for a short interval over and over; whenever it wakes later than
asked, the loop was busy with something that did not yield (CPU work, blocking I/O).
The lateness of each wake-up is a stall. The worst one is kept, with a count of stalls
over a threshold, and can be written as a JSON report (the bench reads it). Discord-free,
so any asyncio program can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 0.02
DEFAULT_LOG_THRESHOLD_SECONDS = 0.25


@dataclass(frozen=True)
class LoopReport:
    """What the watch saw: the worst stall, when, and how often stalls passed the threshold."""

    worst_stall_seconds: float
    worst_stall_at: float | None
    stalls_over_threshold: int
    threshold_seconds: float
    samples: int
    watched_seconds: float


class LoopWatch:
    """Measures the running loop's stalls until stopped; see the module docstring."""

    def __init__(
        self,
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        log_threshold_seconds: float = DEFAULT_LOG_THRESHOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Sample every `interval_seconds`; log (warning) each stall over the threshold."""
        self.interval_seconds = interval_seconds
        self.log_threshold_seconds = log_threshold_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._stopped: float | None = None
        self.worst_stall_seconds = 0.0
        self.worst_stall_at: float | None = None
        self.stalls_over_threshold = 0
        self.samples = 0

    def record(self, stall_seconds: float) -> None:
        """Count one wake-up that came `stall_seconds` late (negative counts as zero)."""
        stall = max(0.0, stall_seconds)
        self.samples += 1
        if stall > self.worst_stall_seconds:
            self.worst_stall_seconds = stall
            self.worst_stall_at = self._wall_clock()
        if stall >= self.log_threshold_seconds:
            self.stalls_over_threshold += 1
            log.warning("The event loop stalled for %.0f ms", stall * 1000)

    def start(self) -> None:
        """Start watching the running loop (idempotent)."""
        if self._task is None:
            self._started = self._clock()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loopwatch")

    async def stop(self) -> LoopReport:
        """Stop watching and return the report."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._stopped = self._clock()
        return self.report()

    def report(self) -> LoopReport:
        """The figures so far."""
        end = self._stopped if self._stopped is not None else self._clock()
        return LoopReport(
            worst_stall_seconds=self.worst_stall_seconds,
            worst_stall_at=self.worst_stall_at,
            stalls_over_threshold=self.stalls_over_threshold,
            threshold_seconds=self.log_threshold_seconds,
            samples=self.samples,
            watched_seconds=max(0.0, end - self._started) if self._started else 0.0,
        )

    async def _run(self) -> None:
        while True:
            before = self._clock()
            await asyncio.sleep(self.interval_seconds)
            self.record(self._clock() - before - self.interval_seconds)


def write_report(report: LoopReport, path: Path) -> None:
    """Write the report as JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_report(path: Path) -> LoopReport:
    """Read a report written by `write_report`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return LoopReport(**data)
