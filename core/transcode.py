"""Re-encodes and frame grabs off the event loop, in a bounded pool of worker processes.

PyAV's work is CPU-bound, so it runs in worker processes (``ProcessPoolExecutor``), at
most ``TRANSCODE_CONCURRENCY`` at a time; the event loop only awaits a future. Workers are
started with ``spawn`` (never ``fork``: the bot has threads, and a forked copy of a locked
mutex deadlocks) and replaced after ``max_tasks_per_child`` tasks, so a leak in a codec
cannot grow for ever. They run at a lower CPU priority (``WORKER_NICENESS``, inherited by
the encoder's threads), so on a busy machine the event loop is not starved by them.

Every task has a deadline. The worker checks it between frames and stops itself with
``DeadlineExceededError``; a worker stuck inside a codec call never reaches a check, so
after a grace period the pool is killed and replaced. Killing one worker breaks the whole
executor (``BrokenProcessPool``), so the other tasks that were running in it are
resubmitted once to the new pool, within their own deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from happyhorse import media

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_TASKS_PER_CHILD = 20
#: Workers run at this lower CPU priority (Unix niceness): a re-encode is background
#: work, and the bot's event loop must win the CPU whenever it has something to do.
WORKER_NICENESS = 10
#: How long past its deadline a task may run before its worker is killed.
KILL_GRACE_SECONDS = 5.0


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_concurrency(cpus: int | None = None) -> int:
    """Half the CPUs, at least one: the rest keeps the bot, its polls and uploads going.

    x264 uses several threads per encode, so one encode per two CPUs already keeps
    them busy.
    """
    return max(1, (cpus if cpus is not None else available_cpus()) // 2)


class TranscoderClosedError(RuntimeError):
    """The transcoder was closed (the bot is shutting down)."""


class Transcoder:
    """The bot's one pool of media workers; see the module docstring."""

    def __init__(
        self,
        concurrency: int,
        *,
        max_tasks_per_child: int = DEFAULT_MAX_TASKS_PER_CHILD,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
    ) -> None:
        """At most ``concurrency`` tasks at a time; workers are started on first use."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.max_tasks_per_child = max_tasks_per_child
        self.kill_grace_seconds = kill_grace_seconds
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self.replacements = 0

    def _current_pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise TranscoderClosedError("the transcoder is closed")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.concurrency,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=self.max_tasks_per_child,
                initializer=_lower_priority,
            )
        return self._pool

    def worker_pids(self) -> list[int]:
        """The worker processes alive now (for memory figures)."""
        pool = self._pool
        if pool is None:
            return []
        # The executor keeps its workers in a private map; there is no public accessor.
        return [pid for pid, proc in list(pool._processes.items()) if proc.is_alive()]

    async def fit(
        self, src: Path, dst: Path, max_bytes: int, *, deadline_seconds: float
    ) -> media.FitResult:
        """``media.fit_to_limit`` in a worker; ``DeadlineExceededError`` past the deadline."""
        return await self._run(
            media.fit_to_limit, str(src), str(dst), max_bytes, deadline_seconds=deadline_seconds
        )

    async def last_frame(self, src: Path, *, deadline_seconds: float) -> bytes:
        """``media.last_frame`` (PNG bytes) in a worker."""
        return await self._run(media.last_frame, str(src), deadline_seconds=deadline_seconds)

    async def _run(
        self, work: Callable[..., T], *args: Any, deadline_seconds: float
    ) -> T:
        deadline = time.time() + deadline_seconds
        attempts = 2
        for attempt in range(1, attempts + 1):
            pool = self._current_pool()
            future = pool.submit(work, *args, deadline=deadline)
            left = deadline - time.time()
            try:
                async with asyncio.timeout(max(0.0, left) + self.kill_grace_seconds):
                    return await asyncio.wrap_future(future)
            except TimeoutError:
                log.warning("A media worker ran %.0f s past its deadline; replacing the pool",
                            self.kill_grace_seconds)
                self._replace(pool)
                raise media.DeadlineExceededError(
                    "the re-encode ran past its deadline and was stopped"
                ) from None
            except BrokenProcessPool:
                # A worker died: killed for another task's deadline, or crashed in a codec.
                self._replace(pool)
                if attempt == attempts or time.time() >= deadline:
                    raise media.MediaError("the media worker crashed") from None
                log.info("A media worker died under this task; trying once more")
            except asyncio.CancelledError:
                # Still queued: it never starts. Running: its own deadline stops it.
                future.cancel()
                raise
        raise AssertionError("unreachable")

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        """Kill ``pool``'s workers and start afresh (if nobody replaced it already)."""
        if self._pool is pool:
            self._pool = None
            self.replacements += 1
        _kill(pool)

    async def close(self) -> None:
        """Stop every worker (their tasks are abandoned) and refuse new tasks."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            _kill(pool)
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _lower_priority() -> None:
    """Worker start-up: step back so the bot's own process wins the CPU."""
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)


def _kill(pool: ProcessPoolExecutor) -> None:
    for proc in list(pool._processes.values()):
        if proc.is_alive():
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
