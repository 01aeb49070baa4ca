"""Heartbeats and the metric labels: small rules the health endpoint and /metrics rely on."""

from __future__ import annotations

import pytest

from core.heartbeat import Heartbeats
from core.metrics import api_error_kind, discord_error_kind
from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DownloadTooLargeError,
    HappyHorseError,
    RateLimitError,
    ServerError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_that_never_beat_gets_one_threshold_of_grace() -> None:
    """Before its first beat a loop is measured from start-up, then it goes stale."""
    clock = Clock()
    beats = Heartbeats(clock)
    clock.now += 50
    assert not beats.has_beaten("scheduler")
    assert not beats.is_stale("scheduler", 60)
    clock.now += 11
    assert beats.is_stale("scheduler", 60)


def test_a_beat_resets_the_age() -> None:
    """Each beat restarts the count; silence longer than the threshold is stale."""
    clock = Clock()
    beats = Heartbeats(clock)
    clock.now += 500
    beats.beat("scheduler")
    assert beats.age("scheduler") == 0 and beats.has_beaten("scheduler")
    clock.now += 30
    assert beats.age("scheduler") == 30
    assert not beats.is_stale("scheduler", 30)
    assert beats.is_stale("scheduler", 29.9)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RateLimitError("slow down"), "rate_limited"),
        (ServerError("oops", status=503), "server_error"),
        (APITimeoutError("late"), "timeout"),
        (APIConnectionError("refused"), "connection"),
        (DownloadTooLargeError(limit=1, size=2), "too_large"),
        (APIStatusError("teapot", status=418), "http_418"),
        (HappyHorseError("odd"), "other"),
    ],
)
def test_api_errors_have_bounded_kinds(error: HappyHorseError, kind: str) -> None:
    """Each client error maps to one short label (429s are `rate_limited`)."""
    assert api_error_kind(error) == kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, None), (204, None), (403, "forbidden"), (429, "rate_limited"), (502, "server_error")],
)
def test_discord_statuses_map_to_kinds(status: int, kind: str | None) -> None:
    """Successes are not errors; failures get a label by status."""
    assert discord_error_kind(status) == kind
