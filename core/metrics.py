"""What the bot measures, in the Prometheus data model (`prometheus-client`).

All metrics live in `REGISTRY` (not the library's global one, so nothing but the bot's
own series and the standard process ones are exported). Counters are per process;
the backlog gauges describe the shared database and are refreshed on each scrape by
`refresh_backlog`, so every process reports the same values for them (aggregate those
with max, not sum). Call sites use the small functions below, never the metric objects,
so the names and label sets stay in this one file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace

import aiohttp
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    DownloadTooLargeError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from storage.models import UNFINISHED_STATES, Job
from storage.store import Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

API_REQUESTS = Counter(
    "happyhorse_api_requests",
    "Calls to the HappyHorse API, every attempt (operation=status are the polls).",
    ["operation"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "happyhorse_api_errors",
    "Failed HappyHorse API calls by kind (kind=rate_limited are the 429s).",
    ["operation", "kind"],
    registry=REGISTRY,
)
DISCORD_REQUESTS = Counter(
    "happyhorse_discord_requests",
    "HTTP requests to Discord's REST API.",
    registry=REGISTRY,
)
DISCORD_ERRORS = Counter(
    "happyhorse_discord_errors",
    "Discord REST answers that were errors, and requests that got no answer, by kind.",
    ["kind"],
    registry=REGISTRY,
)
CREDITS_RESERVED = Counter(
    "happyhorse_credits_reserved",
    "Credits charged by new reservations.",
    registry=REGISTRY,
)
CREDITS_REFUNDED = Counter(
    "happyhorse_credits_refunded",
    "Credits given back for jobs that failed, expired or could not be delivered.",
    registry=REGISTRY,
)
DELIVERY_LAG = Histogram(
    "happyhorse_delivery_lag_seconds",
    "From a video being found finished to its post in the channel.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
JOBS = Gauge(
    "happyhorse_jobs",
    "Unfinished jobs in the database by state.",
    ["state"],
    registry=REGISTRY,
)
DUE = Gauge(
    "happyhorse_due_jobs",
    "Jobs whose next step is due now: work=poll (status check) or work=delivery (post).",
    ["work"],
    registry=REGISTRY,
)
OLDEST_DUE_AGE = Gauge(
    "happyhorse_oldest_due_age_seconds",
    "How long the oldest due job has been waiting, by work (0 when none is due).",
    ["work"],
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "happyhorse_database_up",
    "1 if the last scrape could read the backlog from the database, else 0.",
    registry=REGISTRY,
)
PROCESSES_LIVE = Gauge(
    "happyhorse_processes_live",
    "Bot processes sharing the database at this process's last heartbeat (itself included).",
    registry=REGISTRY,
)
GATEWAY_SHARDS = Gauge(
    "happyhorse_gateway_shards",
    "Gateway shards of this process at the last scrape: state=expected (it should run them) "
    "or state=connected (identified, socket open). Both 0 for a process without shards.",
    ["state"],
    registry=REGISTRY,
)
HEALTH_CHECK = Gauge(
    "happyhorse_health_check",
    "1 if the /healthz check passed at the last scrape, else 0 (check=gateway, database or "
    "scheduler; see cogs/health.py).",
    ["check"],
    registry=REGISTRY,
)
STATUS_RATE_SHARE = Gauge(
    "happyhorse_status_rate_share",
    "Status calls per second this process may make: its share of HAPPYHORSE_STATUS_RATE.",
    registry=REGISTRY,
)

HEALTH_CHECKS = ("gateway", "database", "scheduler")
"""The checks `/healthz` runs, each exported as `happyhorse_health_check{check=...}`."""
# The error kinds the alerts and the dashboard watch (deploy/) exist from the start at zero,
# so `increase()` sees the first one rather than a series appearing out of nowhere.
ALERTED_API_ERRORS = ("rate_limited", "server_error", "insufficient_credits")

for _operation in ("generate", "status", "download"):
    API_REQUESTS.labels(operation=_operation)
    for _kind in ALERTED_API_ERRORS:
        API_ERRORS.labels(operation=_operation, kind=_kind)
for _discord_kind in ("rate_limited", "server_error"):
    DISCORD_ERRORS.labels(kind=_discord_kind)
for _check in HEALTH_CHECKS:
    HEALTH_CHECK.labels(check=_check)
for _shard_state in ("expected", "connected"):
    GATEWAY_SHARDS.labels(state=_shard_state)
for _state in UNFINISHED_STATES:
    JOBS.labels(state=_state.value)
for _work in ("poll", "delivery"):
    DUE.labels(work=_work)
    OLDEST_DUE_AGE.labels(work=_work)

# -- what the rest of the bot calls ------------------------------------------------------


def count_credits_reserved(credits: int) -> None:
    """A reservation charged `credits`."""
    CREDITS_RESERVED.inc(credits)


def count_credits_refunded(credits: int) -> None:
    """A refund gave `credits` back."""
    CREDITS_REFUNDED.inc(credits)


def observe_delivery_lag(seconds: float) -> None:
    """A video was posted `seconds` after it was found finished."""
    DELIVERY_LAG.observe(max(0.0, seconds))


def job_delivered(job: Job, now: datetime | None = None) -> None:
    """Record the delivery lag of `job`, posted now (or at `now`)."""
    finished = job.completed_at or job.created_at
    observe_delivery_lag(((now or datetime.now(UTC)) - finished).total_seconds())


def api_error_kind(error: HappyHorseError) -> str:
    """A short, bounded label for an API client error."""
    kinds: tuple[tuple[type[HappyHorseError], str], ...] = (
        (RateLimitError, "rate_limited"),
        (AuthenticationError, "unauthorized"),
        (InsufficientCreditsError, "insufficient_credits"),
        (BadRequestError, "bad_request"),
        (ServerError, "server_error"),
        (APITimeoutError, "timeout"),
        (APIConnectionError, "connection"),
        (InvalidResponseError, "invalid_response"),
        (DownloadTooLargeError, "too_large"),
        (DownloadError, "download_failed"),
        (ValidationError, "validation"),
    )
    for cls, kind in kinds:
        if isinstance(error, cls):
            return kind
    if isinstance(error, APIStatusError):
        return f"http_{error.status}"
    return "other"


def observe_api_call(operation: str, error: HappyHorseError | None) -> None:
    """The API client's observer: one attempt of `operation` ended (with `error`, if any)."""
    API_REQUESTS.labels(operation=operation).inc()
    if error is not None:
        API_ERRORS.labels(operation=operation, kind=api_error_kind(error)).inc()


def discord_error_kind(status: int) -> str | None:
    """The label for a Discord HTTP status, or None when it is not an error."""
    if status < 400:
        return None
    named = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        413: "too_large",
        429: "rate_limited",
    }
    if status in named:
        return named[status]
    return "server_error" if status >= 500 else f"http_{status}"


def discord_trace() -> aiohttp.TraceConfig:
    """An aiohttp trace for discord.py's HTTP session that counts requests and errors."""

    async def on_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        DISCORD_REQUESTS.inc()
        kind = discord_error_kind(params.response.status)
        if kind is not None:
            DISCORD_ERRORS.labels(kind=kind).inc()

    async def on_exception(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        DISCORD_REQUESTS.inc()
        kind = "timeout" if isinstance(params.exception, TimeoutError) else "connection"
        DISCORD_ERRORS.labels(kind=kind).inc()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exception)
    return trace


async def refresh_backlog(store: Store, now: datetime | None = None) -> bool:
    """Read the backlog from the store into the gauges; False if the database failed."""
    moment = now or datetime.now(UTC)
    try:
        backlog = await store.jobs.backlog(moment)
    except Exception as exc:
        log.warning("Metrics: could not read the backlog from the database (%s)", exc)
        DATABASE_UP.set(0)
        return False
    for state, count in backlog.by_state.items():
        JOBS.labels(state=state.value).set(count)
    DUE.labels(work="poll").set(backlog.due_polls)
    DUE.labels(work="delivery").set(backlog.due_deliveries)
    for work, oldest in (
        ("poll", backlog.oldest_due_poll),
        ("delivery", backlog.oldest_due_delivery),
    ):
        age = 0.0 if oldest is None else max(0.0, (moment - oldest).total_seconds())
        OLDEST_DUE_AGE.labels(work=work).set(age)
    DATABASE_UP.set(1)
    return True


def observe_processes(live: int, status_rate: float) -> None:
    """Record the live processes and this process's status budget share (at each beat)."""
    PROCESSES_LIVE.set(live)
    STATUS_RATE_SHARE.set(status_rate)


def observe_health(checks: Mapping[str, bool], expected_shards: int, connected_shards: int) -> None:
    """Record the outcome of each /healthz check and this process's shards (at scrape time)."""
    for check in HEALTH_CHECKS:
        HEALTH_CHECK.labels(check=check).set(1 if checks.get(check, False) else 0)
    GATEWAY_SHARDS.labels(state="expected").set(expected_shards)
    GATEWAY_SHARDS.labels(state="connected").set(connected_shards)


def render() -> bytes:
    """Every metric in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)
