"""Prompt normalisation, blocked words and image checks: the fast refusals."""

from __future__ import annotations

import pytest

from core.errors import Refusal
from core.images import check_image, closest_aspect_ratio, signed_url_expired
from core.prompts import PromptError, check_prompt, find_blocked_word, normalise_prompt

MIB = 1024 * 1024


def test_invisible_characters_are_removed_and_spaces_folded() -> None:
    """Zero-width characters vanish; runs of whitespace and newlines fold to one space."""
    assert normalise_prompt("  a\u200b horse\n\n in\t the\ufeff rain  ") == "a horse in the rain"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f"])
def test_control_characters_are_refused(char: str) -> None:
    """Control characters other than line breaks and tabs are refused, by code point."""
    with pytest.raises(PromptError, match=f"U\\+{ord(char):04X}"):
        normalise_prompt(f"horse{char}rain")


def test_length_is_measured_after_normalisation() -> None:
    """Invisible padding does not count towards the limit."""
    assert check_prompt("a" * 10 + "\u200b" * 50, max_length=10) == "a" * 10
    with pytest.raises(PromptError, match="11 characters"):
        check_prompt("a" * 11, max_length=10)


def test_blocked_words_match_whole_words_case_insensitively() -> None:
    """'Gore' blocks 'GORE' and 'gore.' but not 'gorect' or 'Gregory'."""
    assert find_blocked_word("so much GORE.", ["gore"]) == "gore"
    assert find_blocked_word("gorect words", ["gore"]) is None
    assert find_blocked_word("blood bath time", ["blood bath"]) == "blood bath"


def test_optional_prompt_may_be_empty() -> None:
    """Image-to-video prompts are optional."""
    assert check_prompt(None, max_length=10, required=False) == ""
    with pytest.raises(PromptError, match="empty"):
        check_prompt(" \u200b ", max_length=10)


@pytest.mark.parametrize(
    ("filename", "content_type", "size", "needle"),
    [
        ("clip.mp4", "video/mp4", 1000, "not an image"),
        ("doc.pdf", "application/pdf", 1000, "not an image"),
        ("anim.gif", "image/gif", 1000, "not an image"),
        ("pic.svg", "image/svg+xml", 1000, "not an image"),
        ("fake.png", "text/plain", 1000, "not an image"),
        ("pic.png", "image/jpeg", 1000, "matching extension"),
        ("pic.exe", "image/png", 1000, "matching extension"),
        ("noext", None, 1000, "not an image"),
        ("empty.png", "image/png", 0, "empty"),
        ("huge.jpg", "image/jpeg", 11 * MIB, "at most 10.0 MiB"),
    ],
)
def test_wrong_images_are_refused(
    filename: str, content_type: str | None, size: int, needle: str
) -> None:
    """Every wrong kind and size of attachment gets a message saying what is accepted."""
    with pytest.raises(Refusal, match=needle):
        check_image(filename=filename, content_type=content_type, size=size, max_bytes=10 * MIB)


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("a.png", "image/png"), ("a.JPG", "image/jpeg"), ("a.webp", "image/webp"), ("a.jpeg", None)],
)
def test_good_images_pass(filename: str, content_type: str | None) -> None:
    """PNG, JPEG and WEBP within the cap are accepted."""
    assert check_image(filename=filename, content_type=content_type, size=5, max_bytes=10)


def test_aspect_ratio_follows_the_image() -> None:
    """The nearest supported aspect ratio is chosen from the image's size."""
    assert closest_aspect_ratio(1920, 1080) == "16:9"
    assert closest_aspect_ratio(1080, 1920) == "9:16"
    assert closest_aspect_ratio(1000, 1100) == "1:1"
    assert closest_aspect_ratio(None, None) == "16:9"


def test_signed_cdn_url_expiry() -> None:
    """Discord's hex `ex` parameter says when an attachment URL stops working."""
    url = "https://cdn.example/a.png?ex=65f00000&is=1&hm=abc"
    assert signed_url_expired(url, now=0x65F00000 + 1)
    assert not signed_url_expired(url, now=0x65F00000 - 3600)
    assert not signed_url_expired("https://cdn.example/a.png")
