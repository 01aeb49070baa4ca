"""Checks for the image a user wants animated, and the aspect ratio that best fits it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlsplit

from babel.numbers import format_decimal

from core.errors import Refusal
from core.i18n import ENGLISH, Tr, _
from core.wording import code

ACCEPTED_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jfif": "image/jpeg",
    ".webp": "image/webp",
}
ASPECT_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


@dataclass(frozen=True)
class _MiB:
    """An image size in MiB with one decimal, in the reader's number convention."""

    tenths: int

    def localize(self, tr: Tr) -> str:
        value = format_decimal(self.tenths / 10, format="#,##0.0", locale=tr.babel_locale)
        return f"{value} MiB"

    def __str__(self) -> str:
        return self.localize(ENGLISH)


def _mib(size: int, *, up: bool = False) -> _MiB:
    # A size over the cap is rounded up and the cap down, so "10.0 MiB; at most 10.0 MiB"
    # never appears for a file a few bytes too large.
    tenths = size * 10 / (1024 * 1024)
    return _MiB(math.ceil(tenths) if up else math.floor(tenths))


def check_image(*, filename: str, content_type: str | None, size: int, max_bytes: int) -> str:
    """Refuse anything that is not a PNG, JPEG or WEBP within the size cap.

    Discord's attachment option has no type filter, so the declared content type is
    checked, and the file name's extension must agree with it. Returns the content type.
    """
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    suffix = PurePosixPath(filename.lower()).suffix
    by_name = _EXTENSIONS.get(suffix)
    kind = declared or by_name or ""
    if kind in ACCEPTED_TYPES and declared and suffix and declared != by_name:
        raise Refusal(
            _(
                "{file} is named like a {suffix} file but its type is {type}, so I can't "
                "tell what it really is. Attach a PNG, JPEG or WEBP image whose name ends "
                "in the matching extension (.png, .jpg or .webp).",
                file=code(filename, 80),
                suffix=suffix,
                type=declared,
            )
        )
    if kind not in ACCEPTED_TYPES:
        shown = declared or PurePosixPath(filename).suffix
        if shown:
            raise Refusal(
                _(
                    "{file} is not an image I can animate ({type}). "
                    "Attach a PNG, JPEG or WEBP image.",
                    file=code(filename, 80),
                    type=shown,
                )
            )
        raise Refusal(
            _(
                "{file} is not an image I can animate (unknown type). "
                "Attach a PNG, JPEG or WEBP image.",
                file=code(filename, 80),
            )
        )
    if size <= 0:
        raise Refusal(
            _("{file} is empty. Attach a PNG, JPEG or WEBP image.", file=code(filename, 80))
        )
    if size > max_bytes:
        raise Refusal(
            _(
                "{file} is {size}; images can be at most {limit}. Attach a smaller image.",
                file=code(filename, 80),
                size=_mib(size, up=True),
                limit=_mib(max_bytes),
            )
        )
    return kind


def closest_aspect_ratio(width: int | None, height: int | None, default: str = "16:9") -> str:
    """The supported aspect ratio nearest to an image's own shape."""
    if not width or not height:
        return default
    ratio = width / height
    return min(ASPECT_RATIOS, key=lambda name: abs(ASPECT_RATIOS[name] - ratio))


def signed_url_expired(url: str, *, now: float | None = None, margin: float = 300.0) -> bool:
    """True when a Discord CDN URL's signed `ex` expiry (hex seconds) has passed or nearly."""
    values = parse_qs(urlsplit(url).query).get("ex")
    if not values:
        return False
    try:
        expires = int(values[0], 16)
    except ValueError:
        return False
    return (now if now is not None else time.time()) + margin >= expires
