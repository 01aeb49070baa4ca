"""Checks for the image a user wants animated, and the aspect ratio that best fits it."""

from __future__ import annotations

import math
import time
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlsplit

from core.errors import Refusal
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


def _mib(size: int, *, up: bool = False) -> str:
    # A size over the cap is rounded up and the cap down, so "10.0 MiB; at most 10.0 MiB"
    # never appears for a file a few bytes too large.
    tenths = size * 10 / (1024 * 1024)
    return f"{(math.ceil(tenths) if up else math.floor(tenths)) / 10:,.1f} MiB"


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
            f"{code(filename, 80)} is named like a {suffix} file but its type is {declared}, "
            "so I can't tell what it really is. Attach a PNG, JPEG or WEBP image whose "
            "name ends in the matching extension (.png, .jpg or .webp)."
        )
    if kind not in ACCEPTED_TYPES:
        shown = declared or PurePosixPath(filename).suffix or "unknown"
        raise Refusal(
            f"{code(filename, 80)} is not an image I can animate ({shown}). "
            "Attach a PNG, JPEG or WEBP image."
        )
    if size <= 0:
        raise Refusal(f"{code(filename, 80)} is empty. Attach a PNG, JPEG or WEBP image.")
    if size > max_bytes:
        raise Refusal(
            f"{code(filename, 80)} is {_mib(size, up=True)}; images can be at most "
            f"{_mib(max_bytes)}. "
            "Attach a smaller image."
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
