"""Bot settings, read once at start-up from the environment (and `.env`).

Every setting is documented in `.env.example` with its default. Secrets (the Discord
token, the API key) are held in fields excluded from `repr`, so a settings object can be
logged or shown in a traceback without leaking them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.transcode import default_concurrency
from happyhorse.settings import ClientSettings
from storage.opening import POSTGRES_SCHEMES

DEFAULT_DATABASE_PATH = "data/happyhorse.sqlite3"
TOKEN_HELP = (
    "DISCORD_TOKEN is not set. Create an application at "  # noqa: S105 - help text
    "https://discord.com/developers/applications, open Bot -> Reset Token, and put the "
    "token in .env as DISCORD_TOKEN=... (see README.md, 'Set up on Discord')."
)


REQUIRE_KEY_HELP = (
    "REQUIRE_API_KEY is on but HAPPYHORSE_API_KEY is empty: refusing to start, so members "
    "are not charged credits for sandbox test clips. Put the key from your HappyHorse "
    "dashboard in .env as HAPPYHORSE_API_KEY=..., or set REQUIRE_API_KEY=0 to use the sandbox."
)
# A delivery attempt may take this multiple of its download and upload deadlines.
DELIVERY_MARGIN = 1.25


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is allowed."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value >= 0.5:
        raise SettingsError(f"{name} must be below 0.5, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a numeric Discord id, got {raw!r}") from None


def _optional_positive(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    return _int(env, name, 1, minimum=1)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _optional_str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    return raw or None


# The first name is the documented one; the others are accepted because local Discord
# fakes and proxies commonly use them.
DISCORD_API_BASE_NAMES = ("DISCORD_API_BASE_URL", "DISCORD_API_BASE", "DISCORD_API_URL")
DISCORD_GATEWAY_NAMES = ("DISCORD_GATEWAY_URL", "DISCORD_GATEWAY")


def _shard_ids(env: Mapping[str, str], shard_count: int | None) -> tuple[int, ...] | None:
    """SHARD_IDS: absent = every shard; present but empty = none (background work only)."""
    if "SHARD_IDS" not in env:
        return None
    raw = env["SHARD_IDS"].strip()
    if shard_count is None:
        if raw:
            raise SettingsError(
                f"SHARD_IDS={raw} needs SHARD_COUNT, the total number of shards across "
                "all processes (for example SHARD_COUNT=4 SHARD_IDS=0,1)"
            )
        return None
    if not raw:
        return ()
    ids: list[int] = []
    for part in raw.split(","):
        item = part.strip()
        try:
            shard_id = int(item)
        except ValueError:
            raise SettingsError(
                f"SHARD_IDS must be shard numbers separated by commas (e.g. 0,1), got {raw!r}"
            ) from None
        if not 0 <= shard_id < shard_count:
            raise SettingsError(
                f"SHARD_IDS: shard {shard_id} does not exist with SHARD_COUNT={shard_count} "
                f"(shards are numbered 0 to {shard_count - 1})"
            )
        if shard_id in ids:
            raise SettingsError(f"SHARD_IDS lists shard {shard_id} twice: {raw!r}")
        ids.append(shard_id)
    return tuple(ids)


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a TCP port number, got {raw!r}") from None
    if not 1 <= value <= 65535:
        raise SettingsError(f"{name} must be a TCP port between 1 and 65535, got {value}")
    return value


def _optional_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = _optional_str(env, name)
    return None if raw is None else Path(raw)


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = _optional_str(env, name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class BotSettings:
    """Everything the bot process is configured with."""

    discord_token: str = field(repr=False)
    client: ClientSettings
    database_path: Path = Path(DEFAULT_DATABASE_PATH)
    # A postgresql:// URL selects PostgreSQL (several bot processes on one database);
    # when unset the bot uses the SQLite file at database_path. Excluded from repr: it
    # may carry a password.
    database_url: str | None = field(default=None, repr=False)
    dev_guild_id: int | None = None
    sync_commands: bool = True
    log_level: str = "INFO"
    # Polling (see core/poll_policy.py): the plain cadence used until there is history
    # (first poll, then every interval), the spacing cap, and status calls in flight.
    poll_interval_seconds: float = 5.0
    poll_first_delay_seconds: float = 5.0
    poll_max_interval_seconds: float = 60.0
    poll_batch_size: int = 8
    job_deadline_seconds: float = 1800.0
    # Polls placed from learned completion times: the expected lag they aim under, the
    # closest two polls of one job may be, how many completions a distribution needs and
    # keeps, and the probability mass left to sparse polls before the dense stretch (the
    # fastest jobs) and after it (the slowest). The tail share is smaller: its jobs wait
    # for backed-off polls, and at 5 % they would set the 95th percentile of the lag.
    poll_target_lag_seconds: float = 3.0
    poll_min_interval_seconds: float = 0.5
    poll_min_history: int = 20
    poll_history_size: int = 200
    poll_skip_probability: float = 0.05
    poll_tail_skip_probability: float = 0.02
    # Deliveries: how many run at once, the lease that keeps a second poster off a job,
    # and the total time a download and an upload may take (both well inside the lease).
    delivery_concurrency: int = 4
    delivery_lease_seconds: float = 300.0
    download_deadline_seconds: float = 90.0
    upload_deadline_seconds: float = 90.0
    # Re-encoding a result over the upload limit (core/transcode.py; its deadline is what
    # the delivery attempt has left after reserving the upload's), and how long the
    # service's result URLs are expected to live (the post's "Original" link button).
    transcode_concurrency: int = 1
    result_url_ttl_hours: float = 24.0
    # Background chores: how often reservations are checked for leaks, and how old a
    # failure notice may be and still be sent after an outage.
    stale_sweep_interval_seconds: float = 60.0
    failure_notice_window_seconds: float = 24 * 3600.0
    # Credits.
    default_daily_credits: int = 10
    credit_period: str = "daily"
    cost_base: int = 1
    cost_pro_multiplier: int = 2
    # Input limits.
    max_image_bytes: int = 10 * 1024 * 1024
    # The queue: how long a job may wait, the 402 pause backoff, the safety-check interval.
    queue_max_wait_seconds: float = 1800.0
    queue_pause_backoff_seconds: float = 30.0
    queue_pause_max_backoff_seconds: float = 600.0
    queue_check_interval_seconds: float = 5.0
    # The live status card is edited at most this often.
    status_edit_interval_seconds: float = 5.0
    # Where to reach Discord (only ever changed to point the bot at a local fake).
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None
    # The in-process sandbox, used when HAPPYHORSE_API_KEY is not set.
    sandbox_complete_after_seconds: float = 20.0
    # True when the built-in sandbox stands in for the API (set by bot.py, never read from
    # the environment): cards, posts and /config show then say so.
    sandbox: bool = False
    # Refuse to start without an API key (production).
    require_api_key: bool = False
    # Prompts and URLs of settled jobs are erased after this many days (0 = keep them).
    retention_days: int = 90
    # The video service's price per second of video, in its credits, for /stats' estimate.
    service_price_std: int = 40
    service_price_std_sound: int = 60
    service_price_pro: int = 54
    service_price_pro_sound: int = 80

    def service_price(self, quality: str, sound: bool) -> int:
        """The service's price per second of video at this quality, with or without sound."""
        if quality == "pro":
            return self.service_price_pro_sound if sound else self.service_price_pro
        return self.service_price_std_sound if sound else self.service_price_std

    # Sharding: None = Discord's recommended count, every shard in this process. With a
    # count, `shard_ids` None = all of them here; () = no gateway, background work only.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    # Operators' HTTP endpoint (/healthz, /metrics); None = off (0, only in tests: any port).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # Processes sharing one database (see core/processes.py): how often each one beats in
    # the `processes` table (and re-reads its share of the status budget), and how long
    # without a beat before it counts as dead and its leases are void.
    process_heartbeat_seconds: float = 5.0
    process_liveness_seconds: float = 20.0
    # "text" (human-readable lines) or "json" (one JSON object per line).
    log_format: str = "text"

    @property
    def gateway_free(self) -> bool:
        """True for a process that connects no gateway shard and only does background work."""
        return self.shard_ids == ()

    # Where to write the event-loop stall report on shutdown; None: no watch.
    loop_watch_report: Path | None = None

    def __post_init__(self) -> None:
        """Refuse delivery deadlines that would let a delivery outlive its lease."""
        if self.delivery_time_limit_seconds >= self.delivery_lease_seconds:
            raise SettingsError(
                "DELIVERY_LEASE_SECONDS must exceed 1.25 x (DOWNLOAD_DEADLINE_SECONDS + "
                f"UPLOAD_DEADLINE_SECONDS) = {self.delivery_time_limit_seconds:g}, got "
                f"{self.delivery_lease_seconds:g}: a delivery must end before its lease does"
            )

    @property
    def delivery_time_limit_seconds(self) -> float:
        """The most one delivery attempt may take: download, upload and a margin for the
        channel-history check and the database, all inside the delivery lease."""
        return DELIVERY_MARGIN * (self.download_deadline_seconds + self.upload_deadline_seconds)

    @property
    def uses_sandbox(self) -> bool:
        """True when no API key is configured and the built-in sandbox stands in."""
        return self.client.api_key is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BotSettings:
        """Read the settings from an environment mapping; raise SettingsError on bad values."""
        token = env.get("DISCORD_TOKEN", "").strip()
        if not token:
            raise SettingsError(TOKEN_HELP)
        try:
            client = ClientSettings.from_env(env)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        require_api_key = _bool(env, "REQUIRE_API_KEY", False)
        if require_api_key and client.api_key is None:
            raise SettingsError(REQUIRE_KEY_HELP)
        period = env.get("CREDIT_PERIOD", "daily").strip().lower() or "daily"
        if period not in {"daily", "weekly", "monthly"}:
            raise SettingsError(f"CREDIT_PERIOD must be daily, weekly or monthly, got {period!r}")
        log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(
                f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}"
            )
        database_url = _optional_str(env, "DATABASE_URL")
        if database_url is not None and not database_url.startswith(POSTGRES_SCHEMES):
            raise SettingsError(
                "DATABASE_URL must be a PostgreSQL URL such as "
                "postgresql://user:password@host:5432/happyhorse (leave it empty to use the "
                "SQLite file at DATABASE_PATH)"
            )
        log_format = env.get("LOG_FORMAT", "").strip().lower() or "text"
        if log_format not in {"text", "json"}:
            raise SettingsError(f"LOG_FORMAT must be text or json, got {log_format!r}")
        shard_count = _optional_positive(env, "SHARD_COUNT")
        heartbeat = _float(env, "PROCESS_HEARTBEAT_SECONDS", 5.0, minimum=0.05)
        liveness = _float(env, "PROCESS_LIVENESS_SECONDS", 4 * heartbeat, minimum=0.05)
        if liveness < 2 * heartbeat:
            raise SettingsError(
                "PROCESS_LIVENESS_SECONDS must be at least twice PROCESS_HEARTBEAT_SECONDS "
                f"({2 * heartbeat:g}), got {liveness:g}: a live process would look dead"
            )
        return cls(
            discord_token=token,
            client=client,
            database_path=Path(env.get("DATABASE_PATH", "").strip() or DEFAULT_DATABASE_PATH),
            database_url=database_url,
            dev_guild_id=_optional_int(env, "DEV_GUILD_ID"),
            sync_commands=_bool(env, "SYNC_COMMANDS", True),
            log_level=log_level,
            poll_interval_seconds=_float(env, "POLL_INTERVAL_SECONDS", 5.0, minimum=0.05),
            poll_first_delay_seconds=_float(env, "POLL_FIRST_DELAY_SECONDS", 5.0),
            poll_max_interval_seconds=_float(env, "POLL_MAX_INTERVAL_SECONDS", 60.0, minimum=0.05),
            poll_batch_size=_int(env, "POLL_BATCH_SIZE", 8, minimum=1),
            job_deadline_seconds=_float(env, "JOB_DEADLINE_SECONDS", 1800.0, minimum=1.0),
            poll_target_lag_seconds=_float(env, "POLL_TARGET_LAG_SECONDS", 3.0, minimum=0.01),
            poll_min_interval_seconds=_float(env, "POLL_MIN_INTERVAL_SECONDS", 0.5, minimum=0.01),
            poll_min_history=_int(env, "POLL_MIN_HISTORY", 20, minimum=1),
            poll_history_size=_int(env, "POLL_HISTORY_SIZE", 200, minimum=1),
            poll_skip_probability=_fraction(env, "POLL_SKIP_PROBABILITY", 0.05),
            poll_tail_skip_probability=_fraction(env, "POLL_TAIL_SKIP_PROBABILITY", 0.02),
            delivery_concurrency=_int(env, "DELIVERY_CONCURRENCY", 4, minimum=1),
            delivery_lease_seconds=_float(env, "DELIVERY_LEASE_SECONDS", 300.0, minimum=1.0),
            download_deadline_seconds=_float(
                env, "DOWNLOAD_DEADLINE_SECONDS", 90.0, minimum=0.01
            ),
            upload_deadline_seconds=_float(env, "UPLOAD_DEADLINE_SECONDS", 90.0, minimum=0.01),
            transcode_concurrency=_int(
                env, "TRANSCODE_CONCURRENCY", default_concurrency(), minimum=1
            ),
            result_url_ttl_hours=_float(env, "RESULT_URL_TTL_HOURS", 24.0, minimum=0.0),
            stale_sweep_interval_seconds=_float(
                env, "STALE_SWEEP_INTERVAL_SECONDS", 60.0, minimum=0.01
            ),
            failure_notice_window_seconds=_float(
                env, "FAILURE_NOTICE_WINDOW_SECONDS", 24 * 3600.0, minimum=1.0
            ),
            default_daily_credits=_int(env, "DEFAULT_DAILY_CREDITS", 10),
            credit_period=period,
            cost_base=_int(env, "COST_BASE", 1, minimum=1),
            cost_pro_multiplier=_int(env, "COST_PRO_MULTIPLIER", 2, minimum=1),
            max_image_bytes=_int(env, "MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1),
            status_edit_interval_seconds=_float(env, "STATUS_EDIT_INTERVAL_SECONDS", 5.0),
            queue_max_wait_seconds=_float(env, "QUEUE_MAX_WAIT_SECONDS", 1800.0, minimum=1.0),
            queue_pause_backoff_seconds=_float(
                env, "QUEUE_PAUSE_BACKOFF_SECONDS", 30.0, minimum=0.05
            ),
            queue_pause_max_backoff_seconds=_float(
                env, "QUEUE_PAUSE_MAX_BACKOFF_SECONDS", 600.0, minimum=0.05
            ),
            queue_check_interval_seconds=_float(
                env, "QUEUE_CHECK_INTERVAL_SECONDS", 5.0, minimum=0.05
            ),
            discord_api_base_url=_first(env, DISCORD_API_BASE_NAMES),
            discord_gateway_url=_first(env, DISCORD_GATEWAY_NAMES),
            sandbox_complete_after_seconds=_float(env, "SANDBOX_COMPLETE_AFTER_SECONDS", 20.0),
            require_api_key=require_api_key,
            retention_days=_int(env, "RETENTION_DAYS", 90),
            service_price_std=_int(env, "SERVICE_PRICE_STD", 40),
            service_price_std_sound=_int(env, "SERVICE_PRICE_STD_SOUND", 60),
            service_price_pro=_int(env, "SERVICE_PRICE_PRO", 54),
            service_price_pro_sound=_int(env, "SERVICE_PRICE_PRO_SOUND", 80),
            shard_count=shard_count,
            shard_ids=_shard_ids(env, shard_count),
            metrics_port=_port(env, "METRICS_PORT"),
            metrics_host=env.get("METRICS_HOST", "").strip() or "127.0.0.1",
            log_format=log_format,
            process_heartbeat_seconds=heartbeat,
            process_liveness_seconds=liveness,
            loop_watch_report=_optional_path(env, "LOOP_WATCH_REPORT"),
        )
