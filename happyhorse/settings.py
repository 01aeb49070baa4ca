"""Client settings, read from the environment by `ClientSettings.from_env`.

The API key is never shown: `repr()` prints `'***'` in its place, so a settings object can
be logged or appear in a traceback safely. Invalid values raise ValueError naming the
environment variable (or field) and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import metadata
from typing import Literal
from urllib.parse import urlsplit

from happyhorse.models import DEFAULT_MAX_PROMPT_LENGTH

DialectName = Literal["seed", "native"]
DIALECTS: tuple[DialectName, ...] = ("seed", "native")
DEFAULT_BASE_URL = "https://api.happyhorse.ai"
NATIVE_HOST = "happyhorse.app"


def _package_version() -> str:
    try:
        return metadata.version("happyhorse-bot")
    except metadata.PackageNotFoundError:
        return "0.0.0"


VERSION = _package_version()
USER_AGENT = f"happyhorse-bot/{VERSION}"


@dataclass(frozen=True)
class ClientSettings:
    """Everything the HappyHorse client is configured with.

    `dialect` None means "choose by host": `native` for happyhorse.app and its subdomains,
    `seed` otherwise (see `resolved_dialect`). `model`, when set, replaces the model named
    in every request (for a channel whose model names differ).
    """

    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    dialect: DialectName | None = None
    timeout_seconds: float = 30.0
    status_rate_per_second: float = 5.0
    status_burst: int = 2
    max_retries: int = 4
    retry_cap_seconds: float = 60.0
    backoff_base_seconds: float = 0.5
    image_field: str = "image_url"
    max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH
    model: str | None = None
    download_read_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be blank (use None for the sandbox)")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http or https URL, got {self.base_url!r}")
        if self.dialect is not None and self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be 'seed' or 'native', got {self.dialect!r}")
        positive = (
            ("timeout_seconds", self.timeout_seconds),
            ("status_rate_per_second", self.status_rate_per_second),
            ("status_burst", self.status_burst),
            ("max_prompt_length", self.max_prompt_length),
            ("download_read_timeout_seconds", self.download_read_timeout_seconds),
        )
        for name, value in positive:
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be greater than 0, got {value}")
        for name, value in (
            ("max_retries", self.max_retries),
            ("retry_cap_seconds", self.retry_cap_seconds),
            ("backoff_base_seconds", self.backoff_base_seconds),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if not self.image_field.strip():
            raise ValueError("image_field must not be blank")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must not be blank")

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "api_key" and value is not None:
                shown.append("api_key='***'")
            else:
                shown.append(f"{f.name}={value!r}")
        return f"ClientSettings({', '.join(shown)})"

    @property
    def resolved_dialect(self) -> DialectName:
        """The dialect in use: the configured one, or chosen from the base URL's host."""
        if self.dialect is not None:
            return self.dialect
        host = (urlsplit(self.base_url).hostname or "").lower().rstrip(".")
        if host == NATIVE_HOST or host.endswith("." + NATIVE_HOST):
            return "native"
        return "seed"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientSettings:
        """Read the settings from an environment mapping; raise ValueError on bad values.

        Unset or empty variables take the defaults.
        """
        reader = _EnvReader(env)
        dialect_raw = reader.text("HAPPYHORSE_API_DIALECT")
        dialect: DialectName | None = None
        if dialect_raw is not None:
            lowered = dialect_raw.lower()
            if lowered == "seed":
                dialect = "seed"
            elif lowered == "native":
                dialect = "native"
            else:
                raise ValueError(
                    f"HAPPYHORSE_API_DIALECT must be 'seed' or 'native', got {dialect_raw!r}"
                )
        try:
            return cls(
                api_key=reader.text("HAPPYHORSE_API_KEY"),
                base_url=reader.text("HAPPYHORSE_BASE_URL") or DEFAULT_BASE_URL,
                dialect=dialect,
                timeout_seconds=reader.number("HAPPYHORSE_TIMEOUT_SECONDS", 30.0, positive=True),
                status_rate_per_second=reader.number("HAPPYHORSE_STATUS_RATE", 5.0, positive=True),
                status_burst=reader.integer("HAPPYHORSE_STATUS_BURST", 2, positive=True),
                max_retries=reader.integer("HAPPYHORSE_MAX_RETRIES", 4),
                retry_cap_seconds=reader.number("HAPPYHORSE_RETRY_CAP_SECONDS", 60.0),
                backoff_base_seconds=reader.number("HAPPYHORSE_BACKOFF_BASE_SECONDS", 0.5),
                image_field=reader.text("HAPPYHORSE_IMAGE_FIELD") or "image_url",
                max_prompt_length=reader.integer(
                    "HAPPYHORSE_MAX_PROMPT_LENGTH", DEFAULT_MAX_PROMPT_LENGTH, positive=True
                ),
                model=reader.text("HAPPYHORSE_MODEL"),
                download_read_timeout_seconds=reader.number(
                    "HAPPYHORSE_DOWNLOAD_READ_TIMEOUT_SECONDS", 30.0, positive=True
                ),
            )
        except ValueError as exc:
            raise ValueError(f"HappyHorse settings: {exc}") from None


class _EnvReader:
    """Typed reads of environment variables; errors name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        raw = self._env.get(name, "").strip()
        return raw or None

    def number(self, name: str, default: float, *, positive: bool = False) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            bound = "greater than 0" if positive else "0 or more"
            raise ValueError(f"{name} must be a number {bound}, got {raw!r}")
        return value

    def integer(self, name: str, default: int, *, positive: bool = False) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 0 or (positive and value == 0):
            bound = "greater than 0" if positive else "0 or more"
            raise ValueError(f"{name} must be a whole number {bound}, got {raw!r}")
        return value

