"""Bot settings, read once at start-up from the environment (and `.env`).

Every setting is documented in `.env.example` with its default. Each field below declares
its type and its allowed range once; pydantic-settings maps the environment variables onto
the fields (a field's variable is its name in capitals) and pydantic checks every value, so
a malformed one (`nan`, `inf`, a word where a number belongs, a value out of range) stops
the bot at start-up with a one-line `SettingsError` that names the variable, instead of a
lease that never ends or a traceback an hour later. The same checks run when code or a test
builds `BotSettings(...)` directly.

Secrets (the Discord token, the API key, the database URL) are excluded from `repr`, so a
settings object can be logged or shown in a traceback without leaking them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    InstanceOf,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

from core.command_sync import SyncMode, parse_sync_mode
from core.transcode import default_concurrency
from happyhorse.models import NATIVE_DURATIONS
from happyhorse.settings import ClientSettings
from storage.credits import MAX_CREDITS
from storage.models import CostTable
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
# The longest any time setting may be (100 years). No timing needs more, and every
# deadline and lease computed from one still fits a datetime and both databases'
# timestamps (1e300 seconds would not: an OverflowError on the first lease).
MAX_SECONDS = 100 * 365 * 24 * 3600
MAX_DAYS = 100 * 365
# The largest count any setting may hold (batch sizes, histories, prices, shards).
MAX_COUNT = 1_000_000
DEFAULT_HEARTBEAT_SECONDS = 5.0
# A process is dead after this many missed beats unless PROCESS_LIVENESS_SECONDS says.
LIVENESS_BEATS = 4

# Environment variables whose empty value is a setting in its own right rather than "unset":
# SHARD_IDS= means "no shard in this process" (see `_parse_shard_ids`).
EMPTY_IS_A_VALUE = frozenset({"SHARD_IDS"})
# Fields never read from the environment under their own name: the client settings come
# from the HAPPYHORSE_* variables (`ClientSettings.from_env`), and `sandbox` is set by
# bot.py when the built-in sandbox stands in for the API.
NOT_FROM_ENVIRONMENT = frozenset({"client", "sandbox"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is allowed."""


def _seconds(default: float, minimum: float) -> Any:
    """A time setting in seconds: finite (see `allow_inf_nan`), `minimum` to 100 years."""
    return Field(default, ge=minimum, le=MAX_SECONDS)


def _count(default: int, minimum: int = 1, maximum: int = MAX_COUNT) -> Any:
    """A whole-number setting between `minimum` and `maximum`."""
    return Field(default, ge=minimum, le=maximum)


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _sync_mode(value: object) -> object:
    """SYNC_COMMANDS: auto, always or never (true/false keep their old meanings)."""
    if isinstance(value, bool):
        return SyncMode.ALWAYS if value else SyncMode.NEVER
    if isinstance(value, str):
        mode = parse_sync_mode(value)
        if mode is None:
            raise ValueError(f"SYNC_COMMANDS must be auto, always or never, got {value.strip()!r}")
        return mode
    return value


class BotSettings(BaseSettings):
    """Everything the bot process is configured with.

    Build it with `from_env` (start-up) or directly with keyword arguments (tests); both
    check every value. It is immutable: `model_copy(update=...)` makes a changed copy.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        # nan and inf are not numbers any setting can use.
        allow_inf_nan=False,
        case_sensitive=False,
        validate_by_name=True,
        validate_by_alias=True,
    )

    discord_token: str = Field("", repr=False, validate_default=True)
    client: InstanceOf[ClientSettings] = Field(default_factory=ClientSettings)
    database_path: Path = Path(DEFAULT_DATABASE_PATH)
    # A postgresql:// URL selects PostgreSQL (several bot processes on one database);
    # when unset the bot uses the SQLite file at database_path. Excluded from repr: it
    # may carry a password.
    database_url: str | None = Field(None, repr=False)
    dev_guild_id: int | None = Field(None, ge=1, lt=2**63)
    sync_commands: Annotated[SyncMode, BeforeValidator(_sync_mode)] = SyncMode.AUTO
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = "INFO"
    # Polling (see core/poll_policy.py): the plain cadence used until there is history
    # (first poll, then every interval), the spacing cap, and status calls in flight.
    poll_interval_seconds: float = _seconds(5.0, 0.05)
    poll_first_delay_seconds: float = _seconds(5.0, 0.0)
    poll_max_interval_seconds: float = _seconds(60.0, 0.05)
    poll_batch_size: int = _count(8)
    job_deadline_seconds: float = _seconds(1800.0, 1.0)
    # Polls placed from learned completion times: the expected lag they aim under, the
    # closest two polls of one job may be, how many completions a distribution needs and
    # keeps, and the probability mass left to sparse polls before the dense stretch (the
    # fastest jobs) and after it (the slowest). The tail share is smaller: its jobs wait
    # for backed-off polls, and at 5 % they would set the 95th percentile of the lag.
    poll_target_lag_seconds: float = _seconds(3.0, 0.01)
    poll_min_interval_seconds: float = _seconds(0.5, 0.01)
    poll_min_history: int = _count(20)
    poll_history_size: int = _count(200)
    poll_skip_probability: float = Field(0.05, ge=0.0, lt=0.5)
    poll_tail_skip_probability: float = Field(0.02, ge=0.0, lt=0.5)
    # Deliveries: how many run at once, the lease that keeps a second poster off a job,
    # and the total time a download and an upload may take (both well inside the lease).
    delivery_concurrency: int = _count(8)
    delivery_lease_seconds: float = _seconds(300.0, 1.0)
    download_deadline_seconds: float = _seconds(90.0, 0.01)
    upload_deadline_seconds: float = _seconds(90.0, 0.01)
    # Re-encoding a result over the upload limit (core/transcode.py; its deadline is what
    # the delivery attempt has left after reserving the upload's): how many media worker
    # processes (half the CPUs by default), and how long the service's result URLs are
    # expected to live (the post's "Original" link button; 0 leaves the button off).
    transcode_concurrency: int = _count(default_concurrency(), 1, 64)
    result_url_ttl_hours: float = Field(24.0, ge=0.0, le=MAX_SECONDS / 3600)
    # Background chores: how often reservations are checked for leaks, and how old a
    # failure notice may be and still be sent after an outage.
    stale_sweep_interval_seconds: float = _seconds(60.0, 0.01)
    failure_notice_window_seconds: float = _seconds(24 * 3600.0, 1.0)
    # Credits, within what the store accepts: an allowance from 0 to MAX_CREDITS.
    default_daily_credits: int = _count(10, 0, MAX_CREDITS)
    credit_period: Annotated[Literal["daily", "weekly", "monthly"], BeforeValidator(_lower)] = (
        "daily"
    )
    cost_base: int = _count(1, 1, MAX_CREDITS)
    cost_pro_multiplier: int = _count(2, 1, MAX_CREDITS)
    # Input limits.
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1, le=2**40)
    # The queue: how long a job may wait, the 402 pause backoff, the safety-check interval.
    queue_max_wait_seconds: float = _seconds(1800.0, 1.0)
    queue_pause_backoff_seconds: float = _seconds(30.0, 0.05)
    queue_pause_max_backoff_seconds: float = _seconds(600.0, 0.05)
    queue_check_interval_seconds: float = _seconds(5.0, 0.05)
    # The live status card is edited at most this often.
    status_edit_interval_seconds: float = _seconds(5.0, 0.0)
    # Where to reach Discord (only ever changed to point the bot at a local fake). The
    # first name is the documented one; the others are accepted because local Discord
    # fakes and proxies commonly use them.
    discord_api_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "DISCORD_API_BASE_URL", "DISCORD_API_BASE", "DISCORD_API_URL", "discord_api_base_url"
        ),
    )
    discord_gateway_url: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "DISCORD_GATEWAY_URL", "DISCORD_GATEWAY", "discord_gateway_url"
        ),
    )
    # The in-process sandbox, used when HAPPYHORSE_API_KEY is not set.
    sandbox_complete_after_seconds: float = _seconds(20.0, 0.0)
    # True when the built-in sandbox stands in for the API (set by bot.py, never read from
    # the environment): cards, posts and /config show then say so.
    sandbox: bool = False
    # Refuse to start without an API key (production).
    require_api_key: bool = False
    # Prompts and URLs of settled jobs are erased after this many days (0 = keep them).
    retention_days: int = _count(90, 0, MAX_DAYS)
    # The video service's price per second of video, in its credits, for /stats' estimate.
    service_price_std: int = _count(40, 0)
    service_price_std_sound: int = _count(60, 0)
    service_price_pro: int = _count(54, 0)
    service_price_pro_sound: int = _count(80, 0)
    # Sharding: None = Discord's recommended count, every shard in this process. With a
    # count, `shard_ids` None = all of them here; () = no gateway, background work only.
    shard_count: int | None = Field(None, ge=1, le=MAX_COUNT)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None
    # Operators' HTTP endpoint (/healthz, /metrics); None = off (0, only in tests: any port).
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = Field("127.0.0.1", min_length=1)
    # Processes sharing one database (see core/processes.py): how often each one beats in
    # the `processes` table (and re-reads its share of the status budget), and how long
    # without a beat before it counts as dead and its leases are void (unset: 4 beats).
    process_heartbeat_seconds: float = _seconds(DEFAULT_HEARTBEAT_SECONDS, 0.05)
    process_liveness_seconds: float = _seconds(
        LIVENESS_BEATS * DEFAULT_HEARTBEAT_SECONDS, 0.05
    )
    # "text" (human-readable lines) or "json" (one JSON object per line).
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = "text"
    # Where to write the event-loop stall report on shutdown; None: no watch.
    loop_watch_report: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """`BotSettings(...)` takes only its arguments; the environment is read by `from_env`,
        from the mapping it is given, so no test or tool picks up stray variables."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BotSettings:
        """Read the settings from an environment mapping; raise SettingsError on bad values.

        Unset or empty variables take the defaults (but `SHARD_IDS=`, see `.env.example`).
        The error is one line naming the variable, the rule and the value given.
        """
        try:
            client = ClientSettings.from_env(env)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        try:
            values = _EnvironmentMapping(cls, env)()
        except SourceError as exc:
            raise SettingsError(" ".join(str(exc).split())) from None
        try:
            settings = cls.model_validate({**values, "client": client})
        except ValidationError as exc:
            raise SettingsError(_describe(cls, exc)) from None
        if settings.metrics_port == 0:
            # Port 0 (any free port) is for tests that build settings in code; an
            # operator's METRICS_PORT must be a port a scraper can be pointed at.
            raise SettingsError("METRICS_PORT must be a TCP port between 1 and 65535, got 0")
        return settings

    @field_validator("discord_token")
    @classmethod
    def _token_is_set(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(TOKEN_HELP)
        return value.strip()

    @field_validator("database_url", "discord_api_base_url", "discord_gateway_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(POSTGRES_SCHEMES):
            raise ValueError(
                "DATABASE_URL must be a PostgreSQL URL such as "
                "postgresql://user:password@host:5432/happyhorse (leave it empty to use the "
                "SQLite file at DATABASE_PATH)"
            )
        return value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _parse_shard_ids(cls, value: object, info: ValidationInfo) -> object:
        """SHARD_IDS: absent = every shard; present but empty = none (background work only)."""
        if not isinstance(value, str):
            return value
        raw = value.strip()
        count = info.data.get("shard_count")
        if count is None:
            if raw:
                raise ValueError(
                    f"SHARD_IDS={raw} needs SHARD_COUNT, the total number of shards across "
                    "all processes (for example SHARD_COUNT=4 SHARD_IDS=0,1)"
                )
            return None
        if not raw:
            return ()
        try:
            return tuple(int(part.strip()) for part in raw.split(","))
        except ValueError:
            raise ValueError(
                f"SHARD_IDS must be shard numbers separated by commas (e.g. 0,1), got {raw!r}"
            ) from None

    @field_validator("shard_ids")
    @classmethod
    def _shards_exist_once(
        cls, value: tuple[int, ...] | None, info: ValidationInfo
    ) -> tuple[int, ...] | None:
        if value is None:
            return None
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT, the total number of shards")
        seen: set[int] = set()
        for shard_id in value:
            if not 0 <= shard_id < count:
                raise ValueError(
                    f"SHARD_IDS: shard {shard_id} does not exist with SHARD_COUNT={count} "
                    f"(shards are numbered 0 to {count - 1})"
                )
            if shard_id in seen:
                raise ValueError(f"SHARD_IDS lists shard {shard_id} twice: {value}")
            seen.add(shard_id)
        return value

    @model_validator(mode="before")
    @classmethod
    def _liveness_follows_heartbeat(cls, data: Any) -> Any:
        """Unset PROCESS_LIVENESS_SECONDS: four heartbeats."""
        if not isinstance(data, dict) or data.get("process_liveness_seconds") is not None:
            return data
        try:
            heartbeat = float(data.get("process_heartbeat_seconds", DEFAULT_HEARTBEAT_SECONDS))
        except (TypeError, ValueError):
            return data  # the heartbeat's own check names the problem
        if not math.isfinite(heartbeat):
            return data
        return {**data, "process_liveness_seconds": LIVENESS_BEATS * heartbeat}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Checks that span several settings."""
        if self.require_api_key and self.client.api_key is None:
            raise ValueError(REQUIRE_KEY_HELP)
        if self.delivery_time_limit_seconds >= self.delivery_lease_seconds:
            raise ValueError(
                "DELIVERY_LEASE_SECONDS must exceed 1.25 x (DOWNLOAD_DEADLINE_SECONDS + "
                f"UPLOAD_DEADLINE_SECONDS) = {self.delivery_time_limit_seconds:g}, got "
                f"{self.delivery_lease_seconds:g}: a delivery must end before its lease does"
            )
        if self.process_liveness_seconds < 2 * self.process_heartbeat_seconds:
            raise ValueError(
                "PROCESS_LIVENESS_SECONDS must be at least twice PROCESS_HEARTBEAT_SECONDS "
                f"({2 * self.process_heartbeat_seconds:g}), got "
                f"{self.process_liveness_seconds:g}: a live process would look dead"
            )
        if self.poll_min_history > self.poll_history_size:
            raise ValueError(
                f"POLL_MIN_HISTORY ({self.poll_min_history}) must not exceed POLL_HISTORY_SIZE "
                f"({self.poll_history_size}): the history could never hold enough completions"
            )
        longest = max(NATIVE_DURATIONS)
        dearest = CostTable(
            unit_credits=self.cost_base,
            quality_multipliers={"std": 1, "pro": self.cost_pro_multiplier},
        ).cost(longest, "pro")
        if dearest > MAX_CREDITS:
            raise ValueError(
                f"COST_BASE={self.cost_base} with COST_PRO_MULTIPLIER={self.cost_pro_multiplier} "
                f"makes a {longest} s pro video cost {dearest:,} credits, more than any member "
                f"can hold ({MAX_CREDITS:,})"
            )
        return self

    def service_price(self, quality: str, sound: bool) -> int:
        """The service's price per second of video at this quality, with or without sound."""
        if quality == "pro":
            return self.service_price_pro_sound if sound else self.service_price_pro
        return self.service_price_std_sound if sound else self.service_price_std

    @property
    def gateway_free(self) -> bool:
        """True for a process that connects no gateway shard and only does background work."""
        return self.shard_ids == ()

    @property
    def delivery_time_limit_seconds(self) -> float:
        """The most one delivery attempt may take: download, upload and a margin for the
        channel-history check and the database, all inside the delivery lease."""
        return DELIVERY_MARGIN * (self.download_deadline_seconds + self.upload_deadline_seconds)

    @property
    def uses_sandbox(self) -> bool:
        """True when no API key is configured and the built-in sandbox stands in."""
        return self.client.api_key is None


class _EnvironmentMapping(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of `os.environ`.

    Values are stripped, and an empty one counts as unset (but `EMPTY_IS_A_VALUE`).
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        loaded: dict[str, str | None] = {}
        for name, raw in self._mapping.items():
            value = raw.strip()
            if value or name in EMPTY_IS_A_VALUE:
                loaded[name if self.case_sensitive else name.lower()] = value
        return loaded

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The field's variable, or nothing for fields not read from the environment."""
        if field_name in NOT_FROM_ENVIRONMENT:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def variable_name(settings_cls: type[BaseSettings], key: str) -> str:
    """The environment variable behind a field (or alias) name."""
    field = settings_cls.model_fields.get(key)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        first = field.validation_alias.choices[0]
        return first if isinstance(first, str) else key.upper()
    return key.upper()


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bounds(field: FieldInfo | None) -> dict[str, str]:
    """The field's bounds as words, by the pydantic error type that breaks each."""
    words: dict[str, str] = {}
    for item in field.metadata if field is not None else ():
        for attribute, kind, text in (
            ("ge", "greater_than_equal", "at least"),
            ("gt", "greater_than", "greater than"),
            ("le", "less_than_equal", "at most"),
            ("lt", "less_than", "below"),
        ):
            bound = getattr(item, attribute, None)
            if bound is not None:
                words[kind] = f"{text} {_number(bound)}"
    return words


_CAPS = (_number(MAX_SECONDS), _number(MAX_COUNT), _number(2**63))
_KINDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
}


def _describe(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line for the first problem: the variable, what is allowed, and what was given."""
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    if kind == "value_error":
        # Our own checks: the message already names the variables and the rule.
        return str(error["ctx"]["error"])
    key = str(error["loc"][0]) if error["loc"] else ""
    name = variable_name(settings_cls, key)
    given = error.get("input")
    bounds = _bounds(settings_cls.model_fields.get(key))
    if kind in _KINDS:
        # The generic caps (100 years, a million) are named only when a value breaks them.
        shown = [words for words in bounds.values() if not words.endswith(_CAPS)]
        rule = ", ".join([_KINDS[kind], " and ".join(shown)]).rstrip(", ")
    elif kind in bounds:
        rule = bounds[kind]
    elif kind == "literal_error":
        rule = str(error["ctx"]["expected"]).replace("'", "")
    else:
        rule = f"valid ({error['msg']})"
    return f"{name} must be {rule}, got {given!r}"
