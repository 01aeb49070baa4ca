"""Durations and the last frame per dialect: request bodies and validation."""

from __future__ import annotations

import pytest

from happyhorse.dialects import NATIVE, SEED
from happyhorse.errors import ValidationError
from happyhorse.models import GenerationRequest, Mode

FIRST = "https://cdn.example/first.png"
LAST = "https://cdn.example/last.png"


def image_request(**changes: object) -> GenerationRequest:
    values: dict[str, object] = {
        "prompt": "turn around",
        "mode": Mode.IMAGE_TO_VIDEO,
        "image_url": FIRST,
        "last_frame_url": LAST,
        "duration": 12,
    }
    values.update(changes)
    return GenerationRequest(**values)  # type: ignore[arg-type]


def test_native_sends_first_then_last_frame() -> None:
    """image_urls is [first frame, last frame] in the native body."""
    request = image_request()
    request.validate(durations=NATIVE.durations, last_frame=NATIVE.supports_last_frame)
    body = NATIVE.generate_body(request, image_field="image_url")
    assert body["image_urls"] == [FIRST, LAST]
    assert body["duration"] == 12


@pytest.mark.parametrize("duration", [3, 15])
def test_native_accepts_3_to_15_seconds(duration: int) -> None:
    """Both ends of the native range are valid."""
    GenerationRequest(prompt="x", duration=duration).validate(durations=NATIVE.durations)


@pytest.mark.parametrize(
    ("request_", "field", "text"),
    [
        (GenerationRequest(prompt="x", duration=7), "duration", "5 or 10"),
        (image_request(duration=5), "last_frame_url", "not supported"),
    ],
)
def test_seed_refuses_what_it_does_not_support(
    request_: GenerationRequest, field: str, text: str
) -> None:
    """The seed dialect keeps 5 and 10 s and has no last frame."""
    with pytest.raises(ValidationError) as caught:
        request_.validate(durations=SEED.durations, last_frame=SEED.supports_last_frame)
    assert caught.value.field == field and text in caught.value.message


def test_native_refuses_16_seconds_and_a_last_frame_without_an_image() -> None:
    """Out of range, or a last frame on text-to-video, names the field."""
    with pytest.raises(ValidationError, match="3 to 15"):
        GenerationRequest(prompt="x", duration=16).validate(durations=NATIVE.durations)
    with pytest.raises(ValidationError) as caught:
        GenerationRequest(prompt="x", last_frame_url=LAST).validate(
            durations=NATIVE.durations, last_frame=True
        )
    assert caught.value.field == "last_frame_url"
