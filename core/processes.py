"""The processes sharing one database: registration, heartbeats, and the status budget.

Every bot process registers in the ``processes`` table under an id naming its host, its
pid namespace and its pid (``host:space:pid:random``), beats every
``PROCESS_HEARTBEAT_SECONDS`` and removes itself when it stops. A process not heard from
for ``PROCESS_LIVENESS_SECONDS`` (by the database's clock) is dead: its leases are void
and the work they held is claimed by the others (``storage.sql.claims``). A process in
the same pid namespace (same host, same boot, same container) whose pid no longer exists
is known dead at once and removed, so a crashed process's work is taken over at the next
beat rather than after the liveness window (a restarted bot on the same machine resumes
at once). The hostname alone does not say that: containers can share one (``--hostname``,
Kubernetes pods of one StatefulSet name on different nodes...) while their pids are
unrelated, and a pid missing here may be a live process there.

One API budget for all processes
--------------------------------
``HAPPYHORSE_STATUS_RATE`` (R) is the budget of every process together. At each beat a
process counts the live processes ``n`` and sets its own status limiter, in place (see
``share``): alone, R with the configured burst, as before; with others, ``R / n - 1``
requests per second (at least ``R / 2n``) with a burst of 1. A burst of 1 spaces one
process's calls at least ``1 / (R/n - 1)`` seconds apart, so it sends fewer than ``R / n``
in any second *at the API*: the one call of headroom per process absorbs calls that
cross the network with different delays (a late call landing in the next second), which
independent senders cannot coordinate. The processes together stay under R (as long as
each share is at least 2 per second; below that, under R on average over a few seconds).
The price is up to ``n`` calls per second of the budget left unused; with a small budget
and many processes, raise ``HAPPYHORSE_STATUS_RATE`` only if the API allows it.

Why shares and not a token bucket in the database: a shared bucket costs a database
round trip (and a contended row lock) per status call and stops every poll when the
database is slow; shares cost one query per heartbeat and keep working from the last
known share if the database is briefly unreachable. The price is the moment membership
changes:

* **A process joins**: the others keep their larger shares until their next beat. So
  when other processes are live, the newcomer's limiter is held (it sends no status
  call) until every other live process has beaten since the newcomer registered, by the
  database's clock: each of those beats counted the newcomer and shrank that process's
  share. Only then does the newcomer spend its own, so the total never exceeds the
  budget, however late a busy process's beat comes. (A process that stops beating
  drops out of the live set after the liveness window, which bounds the wait.) While
  joining, the newcomer looks four times per heartbeat.
* **A process leaves or dies**: the others keep their smaller shares until they see it
  gone (at once for a clean stop or a dead pid on the same host, else after the
  liveness window), and for one second more (``LEAVE_GRACE_SECONDS``): the calls the
  leaver made in its last second still count at the API, which counts the calls of the
  last second whoever made them. The budget is under-used for that long, never exceeded.
  (Growing a share at once after a SIGKILL drew 429s.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import secrets
import socket
from datetime import datetime

from core import metrics
from happyhorse.ratelimit import RateLimiter
from storage.models import Claimant
from storage.store import Store

log = logging.getLogger(__name__)

FORGET_AFTER_LIVENESS = 10
"""Rows of processes silent for this many liveness windows are deleted (housekeeping)."""
LEAVE_GRACE_SECONDS = 1.0
"""How long a process waits before growing its share after others left: the API counts
their calls of the last second (``HAPPYHORSE_STATUS_RATE`` is per second)."""
JOIN_CHECKS_PER_BEAT = 4
"""How often per heartbeat a joining process looks whether the others have all beaten."""


def share(rate: float, burst: int, live: int) -> tuple[float, int]:
    """One process's (rate, burst) of a status budget shared by ``live`` processes."""
    if live <= 1:
        return rate, burst
    return max(rate / live - 1.0, rate / (2 * live)), 1


@functools.cache
def pid_space() -> str:
    """A short name for this process's pid namespace on this boot (Linux), or ``"any"``.

    The kernel's boot id and the inode of ``/proc/self/ns/pid`` together name the set of
    pids ``os.kill(pid, 0)`` can see: two processes agree on it exactly when a pid means
    the same process to both. Elsewhere (no ``/proc``) it is ``"any"``: the host is then
    all there is to go by.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id = boot.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "any"
    return hashlib.blake2s(f"{boot_id}/{namespace}".encode(), digest_size=4).hexdigest()


def new_process_id() -> str:
    """A fresh id for this process: ``host:space:pid:random`` (unique across restarts;
    ``space`` is `pid_space`)."""
    return f"{socket.gethostname()}:{pid_space()}:{os.getpid()}:{secrets.token_hex(4)}"


def _local_pid(process_id: str) -> int | None:
    """The pid of a process id in this pid namespace, or ``None`` (another host, another
    container sharing the hostname, an id of an older format, or not an id)."""
    parts = process_id.rsplit(":", 3)
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[1] != pid_space():
        return None
    try:
        return int(parts[2])
    except ValueError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessRegistry:
    """This process's row in the registry, its heartbeat, and its share of the budget."""

    def __init__(
        self,
        store: Store,
        claimant: Claimant,
        *,
        heartbeat_seconds: float,
        limiter: RateLimiter | None = None,
        rate: float | None = None,
        burst: int = 1,
        leave_grace_seconds: float = LEAVE_GRACE_SECONDS,
    ) -> None:
        """``limiter`` (with the total ``rate`` and ``burst``) gets this process's share;
        a larger share (others left) only after ``leave_grace_seconds``."""
        self.store = store
        self.claimant = claimant
        self.heartbeat_seconds = heartbeat_seconds
        self._limiter = limiter
        self._rate = rate if rate is not None else (limiter.rate if limiter else 1.0)
        self._burst = burst
        self.live_count = 1
        self._joined_at: datetime | None = None
        self.leave_grace_seconds = leave_grace_seconds
        self._grow: asyncio.TimerHandle | None = None
        self._grow_to: tuple[float, int] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def process_id(self) -> str:
        """This process's id."""
        return self.claimant.process_id

    async def register(self) -> int:
        """Join the registry; return how many processes are live (this one included).

        When others are live, hold status calls until each of them has beaten since, so
        that they shrink their shares before this process spends its own (see the
        module docstring).
        """
        await self.store.processes.beat(self.process_id)
        joined_at = await self.store.processes.now()
        live = await self.beat()
        if live > 1 and self._limiter is not None:
            self._joined_at = joined_at
            self._limiter.hold(self._join_check_seconds)
            log.info("Holding status calls until the other processes have shrunk their shares")
        log.info("Registered as process %s; %d processes live", self.process_id, live)
        return live

    @property
    def joining(self) -> bool:
        """Whether status calls are held until the others have seen this process."""
        return self._joined_at is not None

    @property
    def _join_check_seconds(self) -> float:
        return self.heartbeat_seconds / JOIN_CHECKS_PER_BEAT

    async def beat(self) -> int:
        """Record that this process is alive, drop dead ones, re-divide the budget."""
        store = self.store.processes
        await store.beat(self.process_id)
        for process in await store.all():
            pid = _local_pid(process.id)
            gone = process.id != self.process_id and pid is not None and not pid_alive(pid)
            if gone and await store.forget(process.id):
                log.info("Process %s is gone (no such pid); its work is free", process.id)
        await store.forget_silent(self.claimant.live_within * FORGET_AFTER_LIVENESS)
        processes = await store.live(self.claimant.live_within)
        live = max(1, len(processes))
        if live != self.live_count:
            log.info("%d bot processes share the work and the status budget", live)
        self.live_count = live
        rate, burst = share(self._rate, self._burst, live)
        if self._limiter is None:
            metrics.observe_processes(live, rate)
            return live
        self._set_share(self._limiter, rate, burst)
        joined_at = self._joined_at
        others = [p for p in processes if p.id != self.process_id]
        if joined_at is not None and all(p.last_seen > joined_at for p in others):
            # Each other live process has beaten, counted this one and shrunk its share.
            self._joined_at = None
            self._limiter.release()
            log.info("Every other process has taken this one into account; polling")
        return live

    def _set_share(self, limiter: RateLimiter, rate: float, burst: int) -> None:
        """Shrink the share at once; grow it only after the leave grace (see the module
        docstring), unless a later beat settles on another share first."""
        if self._grow is not None:
            if self._grow_to == (rate, burst):
                return  # the same growth is already on its way: beats do not postpone it
            self._grow.cancel()
            self._grow = None
        if rate <= limiter.rate and burst <= limiter.burst:
            limiter.set_rate(rate, burst)
            metrics.observe_processes(self.live_count, rate)
            return

        def grow() -> None:
            self._grow = None
            limiter.set_rate(rate, burst)
            metrics.observe_processes(self.live_count, rate)
            log.info("Status share grown to %.3g per second", rate)

        self._grow_to = (rate, burst)
        self._grow = asyncio.get_running_loop().call_later(self.leave_grace_seconds, grow)
        metrics.observe_processes(self.live_count, limiter.rate)

    def start(self) -> None:
        """Beat every heartbeat interval in an owned task (``stop`` ends it)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="process-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(
                self._join_check_seconds if self.joining else self.heartbeat_seconds
            )
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Process heartbeat failed; keeping the last budget share")

    @property
    def running(self) -> bool:
        """Whether the heartbeat task is alive."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop beating (the process stays registered until ``leave``)."""
        if self._grow is not None:
            self._grow.cancel()
            self._grow = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def leave(self) -> None:
        """Stop beating and leave the registry: this process's leases are void at once.

        Call it once every task holding a lease has ended (the bot does, after its cogs
        unloaded), so no other process takes over work still in progress here.
        """
        await self.stop()
        try:
            await self.store.processes.forget(self.process_id)
        except Exception:
            log.exception("Could not remove process %s from the registry", self.process_id)
