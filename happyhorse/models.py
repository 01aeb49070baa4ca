"""Typed request and answer models for the HappyHorse API.

`GenerationRequest.validate()` checks every field before anything is sent and names the
bad one. The enum fields also accept their plain string values ("16:9", "pro"), which are
converted to the enum when the request is built.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from happyhorse.errors import ValidationError

DEFAULT_MODEL = "happyhorse-1.0/video"
DEFAULT_MAX_PROMPT_LENGTH = 2000
DURATIONS: tuple[int, ...] = (5, 10)
"""Clip lengths the seed contract accepts, in seconds."""
NATIVE_DURATIONS: tuple[int, ...] = tuple(range(3, 16))
"""Clip lengths the live (native) service accepts: 3 to 15 seconds."""
MAX_IMAGE_URL_LENGTH = 2048


class Mode(StrEnum):
    """Whether a clip is generated from text alone or from a starting image."""

    TEXT_TO_VIDEO = "text-to-video"
    IMAGE_TO_VIDEO = "image-to-video"


class AspectRatio(StrEnum):
    """Frame shape of the clip."""

    LANDSCAPE = "16:9"
    PORTRAIT = "9:16"
    SQUARE = "1:1"


class Quality(StrEnum):
    """Quality tier: `std` is faster and cheaper, `pro` more polished."""

    STD = "std"
    PRO = "pro"


class TaskState(StrEnum):
    """Normalised state of a generation task."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """True when the task will not change any more (completed or failed)."""
        return self in (TaskState.COMPLETED, TaskState.FAILED)


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(repr(member.value) for member in enum)


def is_http_url(value: str) -> bool:
    """True when `value` is an absolute http or https URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class GenerationRequest:
    """One video generation request. Call `validate()` (the client always does) before use."""

    prompt: str
    mode: Mode = Mode.TEXT_TO_VIDEO
    duration: int = 5
    aspect_ratio: AspectRatio = AspectRatio.LANDSCAPE
    quality: Quality = Quality.STD
    sound: bool = False
    image_url: str | None = None
    model: str = DEFAULT_MODEL
    last_frame_url: str | None = None
    """Image-to-video only, native dialect only: the frame the clip should end on."""

    def __post_init__(self) -> None:
        # Accept the plain string values; anything unknown stays as given so that
        # validate() can name the field instead of failing here with a bare ValueError.
        for name, enum in (("mode", Mode), ("aspect_ratio", AspectRatio), ("quality", Quality)):
            value: object = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, enum):
                with contextlib.suppress(ValueError):
                    object.__setattr__(self, name, enum(value))

    def validate(
        self,
        max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH,
        *,
        durations: tuple[int, ...] = DURATIONS,
        last_frame: bool = False,
    ) -> None:
        """Raise ValidationError naming the first invalid field; return None when valid.

        ``durations`` and ``last_frame`` say what the dialect in use accepts (the seed
        contract: 5 or 10 s and no last frame; the native service: 3-15 s and a last frame).
        """
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValidationError("model", "must be a non-empty string")
        if not isinstance(self.mode, Mode):
            raise ValidationError("mode", f"must be one of {_choices(Mode)}, got {self.mode!r}")
        # bool is a subclass of int: True must not pass as a duration of 1.
        if not isinstance(self.duration, int) or isinstance(self.duration, bool):
            raise ValidationError("duration", f"must be an integer, got {self.duration!r}")
        if self.duration not in durations:
            allowed = (
                f"{durations[0]} to {durations[-1]}"
                if len(durations) > 2
                else " or ".join(str(d) for d in durations)
            )
            raise ValidationError("duration", f"must be {allowed} seconds, got {self.duration}")
        if not isinstance(self.aspect_ratio, AspectRatio):
            raise ValidationError(
                "aspect_ratio",
                f"must be one of {_choices(AspectRatio)}, got {self.aspect_ratio!r}",
            )
        if not isinstance(self.quality, Quality):
            raise ValidationError(
                "quality", f"must be one of {_choices(Quality)}, got {self.quality!r}"
            )
        if not isinstance(self.sound, bool):
            raise ValidationError("sound", f"must be true or false, got {self.sound!r}")
        self._validate_prompt(max_prompt_length)
        self._validate_image_url()
        self._validate_last_frame(last_frame)

    def _validate_last_frame(self, supported: bool) -> None:
        if self.last_frame_url is None:
            return
        if not supported:
            raise ValidationError(
                "last_frame_url", "is not supported by this API (only the native dialect)"
            )
        if self.mode is not Mode.IMAGE_TO_VIDEO:
            raise ValidationError("last_frame_url", "is only allowed for image-to-video")
        if len(self.last_frame_url) > MAX_IMAGE_URL_LENGTH:
            raise ValidationError(
                "last_frame_url", f"is longer than {MAX_IMAGE_URL_LENGTH} characters"
            )
        if not is_http_url(self.last_frame_url):
            raise ValidationError("last_frame_url", "must be an http or https URL")

    def _validate_prompt(self, max_prompt_length: int) -> None:
        if not isinstance(self.prompt, str):
            raise ValidationError("prompt", f"must be a string, got {type(self.prompt).__name__}")
        if self.mode is Mode.TEXT_TO_VIDEO and not self.prompt.strip():
            raise ValidationError("prompt", "is required for text-to-video and must not be blank")
        if len(self.prompt) > max_prompt_length:
            raise ValidationError(
                "prompt",
                f"is {len(self.prompt)} characters long; the limit is {max_prompt_length}",
            )

    def _validate_image_url(self) -> None:
        if self.mode is Mode.TEXT_TO_VIDEO:
            if self.image_url is not None:
                raise ValidationError("image_url", "is only allowed for image-to-video")
            return
        if not isinstance(self.image_url, str) or not self.image_url.strip():
            raise ValidationError("image_url", "is required for image-to-video")
        if len(self.image_url) > MAX_IMAGE_URL_LENGTH:
            raise ValidationError(
                "image_url", f"is longer than {MAX_IMAGE_URL_LENGTH} characters"
            )
        if not is_http_url(self.image_url):
            raise ValidationError("image_url", "must be an http or https URL")


@dataclass(frozen=True)
class Task:
    """The API's answer to a generation request: the task id and its first state."""

    task_id: str
    state: TaskState
    message: str | None = None


@dataclass(frozen=True)
class TaskStatus:
    """A task's current state; `result_urls` is filled once it is completed."""

    task_id: str
    state: TaskState
    message: str | None = None
    result_urls: tuple[str, ...] = ()

    @property
    def video_url(self) -> str | None:
        """The first result URL, or None when there is none."""
        return self.result_urls[0] if self.result_urls else None
