"""Discord snowflakes generated from the current time.

A snowflake is ``(ms since 2015-01-01 << 22) | (worker << 17) | (process << 12) | increment``.
discord.py derives ``created_at`` (and ``Interaction.expires_at``) from the top bits, so
ids made here give real timestamps.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeGenerator:
    """Makes unique, increasing snowflakes stamped with the current time."""

    def __init__(self, worker: int = 1, process: int = 1) -> None:
        self._worker = worker & 0x1F
        self._process = process & 0x1F
        self._counter = itertools.count()
        self._last = 0

    def next(self, at: float | None = None) -> int:
        """Return a new snowflake for ``at`` (a POSIX time; default: now)."""
        ms = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
        value = (
            (ms << 22)
            | (self._worker << 17)
            | (self._process << 12)
            | (next(self._counter) & 0xFFF)
        )
        # Keep ids strictly increasing even if the counter wraps within one millisecond.
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


def snowflake_time(snowflake: int) -> float:
    """Return the POSIX time (seconds) encoded in ``snowflake``."""
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000


def iso_timestamp(at: float | None = None) -> str:
    """Return an ISO-8601 UTC timestamp like Discord's (``2026-11-28T15:29:00.123000+00:00``)."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, tz=dt.UTC)
    return moment.isoformat()
