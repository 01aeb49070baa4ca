"""Request validation, answer models, error types and client settings."""

from __future__ import annotations

from typing import Any

import pytest

from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    DownloadTooLargeError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
    error_for_status,
    is_transient,
    truncate,
)
from happyhorse.models import (
    DEFAULT_MODEL,
    AspectRatio,
    GenerationRequest,
    Mode,
    Quality,
    TaskState,
    TaskStatus,
)
from happyhorse.settings import USER_AGENT, ClientSettings

# --- GenerationRequest ----------------------------------------------------------------------


def test_defaults_are_a_valid_text_request() -> None:
    """A prompt alone makes a valid 5 s, 16:9, std, silent text-to-video request."""
    request = GenerationRequest(prompt="a horse")
    request.validate()
    assert request.model == DEFAULT_MODEL == "happyhorse-1.0/video"
    assert (request.mode, request.duration, request.aspect_ratio, request.quality) == (
        Mode.TEXT_TO_VIDEO,
        5,
        AspectRatio.LANDSCAPE,
        Quality.STD,
    )


def test_plain_strings_become_enums() -> None:
    """String values for mode, aspect ratio and quality are converted to the enums."""
    request = GenerationRequest(
        prompt="x",
        mode="image-to-video",  # type: ignore[arg-type]
        aspect_ratio="9:16",  # type: ignore[arg-type]
        quality="pro",  # type: ignore[arg-type]
        image_url="https://img.example/a.png",
    )
    request.validate()
    assert request.mode is Mode.IMAGE_TO_VIDEO
    assert request.aspect_ratio is AspectRatio.PORTRAIT
    assert request.quality is Quality.PRO


def test_image_to_video_needs_no_prompt() -> None:
    """An image-to-video request may leave the prompt empty."""
    GenerationRequest(
        prompt="", mode=Mode.IMAGE_TO_VIDEO, image_url="http://img.example/a.png"
    ).validate()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"mode": "video"}, "mode"),
        ({"duration": 7}, "duration"),
        ({"duration": 0}, "duration"),
        ({"duration": True}, "duration"),
        ({"duration": "5"}, "duration"),
        ({"duration": 5.0}, "duration"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"quality": "ultra"}, "quality"),
        ({"sound": "yes"}, "sound"),
        ({"sound": 1}, "sound"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": " \n\t "}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"image_url": "https://img.example/a.png"}, "image_url"),
        ({"mode": Mode.IMAGE_TO_VIDEO}, "image_url"),
        ({"mode": Mode.IMAGE_TO_VIDEO, "image_url": "  "}, "image_url"),
        ({"mode": Mode.IMAGE_TO_VIDEO, "image_url": "ftp://img.example/a.png"}, "image_url"),
        ({"mode": Mode.IMAGE_TO_VIDEO, "image_url": "file:///etc/passwd"}, "image_url"),
        ({"mode": Mode.IMAGE_TO_VIDEO, "image_url": "https:///nohost"}, "image_url"),
        ({"mode": Mode.IMAGE_TO_VIDEO, "image_url": "https://a/" + "x" * 2100}, "image_url"),
    ],
)
def test_invalid_field_is_named(kwargs: dict[str, Any], field: str) -> None:
    """Each invalid value raises ValidationError naming its field."""
    values: dict[str, Any] = {"prompt": "a horse", **kwargs}
    request = GenerationRequest(**values)
    with pytest.raises(ValidationError) as info:
        request.validate()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")
    assert isinstance(info.value, ValueError)


def test_prompt_limit_is_a_parameter() -> None:
    """validate(max_prompt_length=n) allows exactly n characters."""
    GenerationRequest(prompt="x" * 10).validate(max_prompt_length=10)
    with pytest.raises(ValidationError, match="11 characters"):
        GenerationRequest(prompt="x" * 11).validate(max_prompt_length=10)


def test_duration_ten_is_valid() -> None:
    """10 seconds is the other allowed duration."""
    GenerationRequest(prompt="x", duration=10).validate()


# --- task models ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (TaskState.QUEUED, False),
        (TaskState.PROCESSING, False),
        (TaskState.COMPLETED, True),
        (TaskState.FAILED, True),
    ],
)
def test_terminal_states(state: TaskState, terminal: bool) -> None:
    """Only completed and failed are terminal."""
    assert state.is_terminal is terminal


def test_video_url_is_the_first_result() -> None:
    """video_url is the first result URL, or None without results."""
    urls = ("https://a/1.mp4", "https://a/2.mp4")
    assert TaskStatus("t", TaskState.COMPLETED, None, urls).video_url == "https://a/1.mp4"
    assert TaskStatus("t", TaskState.PROCESSING).video_url is None


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (404, APIStatusError),
        (418, APIStatusError),
        (1001, APIStatusError),
    ],
)
def test_error_for_status(status: int, cls: type[APIStatusError]) -> None:
    """Each status maps to its exception class and keeps status and message."""
    exc = error_for_status(status, "the API's words")
    assert type(exc) is cls
    assert exc.status == status
    assert exc.message == "the API's words"
    assert "the API's words" in str(exc)


def test_rate_limit_error_keeps_retry_after() -> None:
    """A 429 carries the Retry-After seconds."""
    exc = error_for_status(429, "slow down", retry_after=7.5)
    assert isinstance(exc, RateLimitError)
    assert exc.retry_after == 7.5


def test_long_messages_are_truncated() -> None:
    """The API's message is flattened to one line and cut to a sane length."""
    exc = error_for_status(500, "boom\n" + "x" * 5000)
    assert len(exc.message) <= 300
    assert "\n" not in exc.message
    assert exc.message.endswith("…")
    assert truncate("short") == "short"


def test_empty_message_falls_back_to_status() -> None:
    """An empty message is replaced by the status."""
    assert error_for_status(503, "").message == "HTTP 503"


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (RateLimitError("x"), True),
        (ServerError("x", status=503), True),
        (APITimeoutError("x"), True),
        (APIConnectionError("x"), True),
        (BadRequestError("x", status=400), False),
        (AuthenticationError("x", status=401), False),
        (InsufficientCreditsError("x", status=402), False),
        (APIStatusError("x", status=404), False),
        (InvalidResponseError("x"), False),
        (DownloadError("x"), False),
        (ValidationError("prompt", "x"), False),
        (ValueError("x"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    """429, 5xx, timeouts and connection errors are transient; nothing else is."""
    assert is_transient(exc) is transient


def test_download_too_large_is_a_download_error() -> None:
    """DownloadTooLargeError carries limit and size and is a DownloadError."""
    exc = DownloadTooLargeError(limit=10, size=11)
    assert isinstance(exc, DownloadError)
    assert (exc.limit, exc.size) == (10, 11)


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults_from_empty_env() -> None:
    """An empty environment gives the documented defaults."""
    settings = ClientSettings.from_env({})
    assert settings.api_key is None
    assert settings.base_url == "https://api.happyhorse.ai"
    assert settings.dialect is None
    assert settings.resolved_dialect == "seed"
    assert settings.timeout_seconds == 30
    assert settings.status_rate_per_second == 5
    assert settings.max_retries == 4
    assert settings.retry_cap_seconds == 60
    assert settings.image_field == "image_url"
    assert settings.max_prompt_length == 2000
    assert settings.model is None


def test_settings_read_every_variable() -> None:
    """Each HAPPYHORSE_* variable sets its field."""
    settings = ClientSettings.from_env(
        {
            "HAPPYHORSE_API_KEY": " k-123 ",
            "HAPPYHORSE_BASE_URL": "https://proxy.example/happyhorse",
            "HAPPYHORSE_API_DIALECT": "NATIVE",
            "HAPPYHORSE_TIMEOUT_SECONDS": "12.5",
            "HAPPYHORSE_STATUS_RATE": "2",
            "HAPPYHORSE_MAX_RETRIES": "0",
            "HAPPYHORSE_RETRY_CAP_SECONDS": "9",
            "HAPPYHORSE_IMAGE_FIELD": "input_reference",
            "HAPPYHORSE_MAX_PROMPT_LENGTH": "2500",
            "HAPPYHORSE_MODEL": "happyhorse-1.0-t2v",
        }
    )
    assert settings.api_key == "k-123"
    assert settings.base_url == "https://proxy.example/happyhorse"
    assert settings.resolved_dialect == "native"
    assert settings.timeout_seconds == 12.5
    assert settings.status_rate_per_second == 2
    assert settings.max_retries == 0
    assert settings.retry_cap_seconds == 9
    assert settings.image_field == "input_reference"
    assert settings.max_prompt_length == 2500
    assert settings.model == "happyhorse-1.0-t2v"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HAPPYHORSE_API_DIALECT", "klingon"),
        ("HAPPYHORSE_BASE_URL", "ftp://x"),
        ("HAPPYHORSE_BASE_URL", "not a url"),
        ("HAPPYHORSE_TIMEOUT_SECONDS", "soon"),
        ("HAPPYHORSE_TIMEOUT_SECONDS", "0"),
        ("HAPPYHORSE_TIMEOUT_SECONDS", "nan"),
        ("HAPPYHORSE_STATUS_RATE", "-1"),
        ("HAPPYHORSE_MAX_RETRIES", "2.5"),
        ("HAPPYHORSE_MAX_RETRIES", "-1"),
        ("HAPPYHORSE_MAX_PROMPT_LENGTH", "0"),
    ],
)
def test_bad_setting_is_named(name: str, value: str) -> None:
    """A malformed variable raises ValueError naming it."""
    with pytest.raises(ValueError, match=name.removeprefix("HAPPYHORSE_").lower() + "|" + name):
        ClientSettings.from_env({name: value})


@pytest.mark.parametrize(
    ("base_url", "dialect"),
    [
        ("https://happyhorse.app", "native"),
        ("https://api.happyhorse.app/v1", "native"),
        ("https://API.HappyHorse.App", "native"),
        ("https://nothappyhorse.app", "seed"),
        ("https://happyhorse.app.evil.example", "seed"),
        ("https://api.happyhorse.ai", "seed"),
        ("http://127.0.0.1:8080", "seed"),
    ],
)
def test_dialect_chosen_by_host(base_url: str, dialect: str) -> None:
    """Unset dialect: native for happyhorse.app and its subdomains, seed elsewhere."""
    assert ClientSettings(base_url=base_url).resolved_dialect == dialect


def test_explicit_dialect_wins_over_host() -> None:
    """HAPPYHORSE_API_DIALECT overrides the host rule."""
    env = {"HAPPYHORSE_BASE_URL": "https://happyhorse.app", "HAPPYHORSE_API_DIALECT": "seed"}
    assert ClientSettings.from_env(env).resolved_dialect == "seed"


def test_settings_repr_masks_the_key() -> None:
    """repr() shows *** instead of the API key, and None when there is none."""
    settings = ClientSettings(api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(settings)
    assert "api_key='***'" in repr(settings)
    assert "sk-very-secret" not in str(settings)
    assert "api_key=None" in repr(ClientSettings())


def test_user_agent_names_the_bot() -> None:
    """The User-Agent is happyhorse-bot/<version>."""
    assert USER_AGENT.startswith("happyhorse-bot/")
    assert len(USER_AGENT) > len("happyhorse-bot/")
