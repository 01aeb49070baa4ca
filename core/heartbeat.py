"""Heartbeats: background loops say they are alive; health checks ask how long ago.

A loop calls `beat(name)` once per round (the delivery loop beats "scheduler"); the
health endpoint calls `age(name)` and compares it with its staleness threshold. A loop
that never beat counts from when the registry was created, so a process gets one
threshold's grace to start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SCHEDULER = "scheduler"
"""The heartbeat of the loop that polls, notifies and delivers."""


class Heartbeats:
    """The last beat of each named loop, on a monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._beats: dict[str, float] = {}

    def beat(self, name: str) -> None:
        """Record that the loop `name` is alive now."""
        self._beats[name] = self._clock()

    def age(self, name: str) -> float:
        """Seconds since `name` last beat (since start-up if it never did)."""
        return self._clock() - self._beats.get(name, self._started)

    def has_beaten(self, name: str) -> bool:
        """Whether `name` has beaten at least once."""
        return name in self._beats

    def is_stale(self, name: str, stale_after: float) -> bool:
        """True when `name` has been silent for longer than `stale_after` seconds."""
        return self.age(name) > stale_after
