"""What a finished video is posted as: the file itself, the file re-encoded to fit the
server's upload limit, or (last resort) a link.

The rules, Discord-free: the result is downloaded (up to ``MAX_SOURCE_BYTES``, far above
any upload limit); a file within the limit is uploaded as it is; a larger one is
re-encoded in the media pool (``core.transcode``) to fit, and the post says so. When
Discord still refuses the upload as too large (its limit was lower than the one the bot
knew), ``smaller_limit`` picks the next target and the source is re-encoded again. A link
is posted only when re-encoding is impossible: the file cannot be decoded, cannot fit
even at 360p, or is too large to fetch. A re-encode that ran out of time (the pool was
busy) is marked ``retryable``: the delivery tries again later with a fresh time budget,
and posts the link only if that keeps happening.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from core.i18n import SOURCE_LOCALE, Message, Size, Tr, _
from core.transcode import Transcoder
from happyhorse import media
from happyhorse.client import HappyHorseClient
from happyhorse.errors import DownloadTooLargeError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: The largest result fetched for re-encoding (a 15 s clip is far below this).
MAX_SOURCE_BYTES = 512 * MIB
#: Discord's upload limits by boost level, largest first (10 MiB without boosts).
DISCORD_LIMITS: tuple[int, ...] = (100 * MIB, 50 * MIB, 10 * MIB)
#: Under the smallest known limit, each refusal aims this fraction of the refused size.
SHRINK_FACTOR = 0.6
#: How many times a refused upload is re-encoded smaller before a link is posted.
MAX_SHRINKS = 2
#: A re-encode is not started with less time than this left.
MIN_TRANSCODE_SECONDS = 1.0


def smaller_limit(limit: int, refused_size: int) -> int:
    """The next size to aim for after Discord refused ``refused_size`` bytes as too large.

    The largest Discord limit below both the limit the bot used and the refused size (a
    server that lost its boosts); below 10 MiB, a fraction of the refused size.
    """
    ceiling = min(limit, refused_size)
    for known in DISCORD_LIMITS:
        if known < ceiling:
            return known
    return int(refused_size * SHRINK_FACTOR)


@dataclass(frozen=True)
class Mib(Size):
    """A size as the post says it: ``23.4 MiB`` in English (binary units, as Discord's
    limits are), the locale's own units and decimal sign elsewhere (``23,4 Mo``)."""

    def localize(self, tr: Tr) -> str:
        """The size in ``tr``'s locale."""
        return str(self) if tr.locale == SOURCE_LOCALE else tr.size(self.bytes)

    def __str__(self) -> str:
        return media.format_mib(self.bytes)


TOO_LARGE = _("the file is too large to re-encode")
REFUSED_EVERY_SIZE = _("Discord refused every smaller size")
NO_TIME = _("no time was left to re-encode it")
RAN_OUT_OF_TIME = _("re-encoding ran out of time")
CANNOT_FIT = _("it cannot fit even at 360p")
UNREADABLE = _("the file is not a readable video")


def media_why(exc: media.MediaError) -> Message:
    """Why a re-encode failed, in words a member can read (the details go to the log)."""
    if isinstance(exc, media.DeadlineExceededError):
        return RAN_OUT_OF_TIME
    if isinstance(exc, media.CannotFitError):
        return CANNOT_FIT
    return UNREADABLE


@dataclass(frozen=True)
class PreparedVideo:
    """A result ready to post: ``path`` to upload, or ``None`` for a link (``reason`` why)."""

    source: Path | None
    path: Path | None
    limit: int
    fit: media.FitResult | None = None
    reason: str | None = None
    shrinks: int = 0
    retryable: bool = False
    """The re-encode ran out of time rather than being impossible: worth another attempt."""
    why: Message | None = None
    """``reason`` as the post says it (in the server's language; ``reason`` is for logs)."""

    @property
    def reencoded(self) -> bool:
        """Whether ``path`` is a re-encode rather than the result as delivered."""
        return self.fit is not None and self.fit.reencoded

    def note(self) -> Message | None:
        """The line the post carries about a re-encode (``None`` when the file is as made):
        a `Message`, said in the server's language with ``tr(note)``."""
        if self.fit is None or not self.fit.reencoded:
            return None
        original = Mib(self.fit.source.size)
        before, after = self.fit.source.label, self.fit.output.label
        changed = self.fit.resolution_changed
        # After a refusal the target is a guess below the real limit, not the limit.
        if self.shrinks:
            if changed:
                return _(
                    "Re-encoded to fit this server's upload limit (original {original}, "
                    "{before} → {after}).",
                    original=original,
                    before=before,
                    after=after,
                )
            return _(
                "Re-encoded to fit this server's upload limit (original {original}).",
                original=original,
            )
        if changed:
            return _(
                "Re-encoded to fit this server's {limit} limit (original {original}, "
                "{before} → {after}).",
                limit=Mib(self.limit),
                original=original,
                before=before,
                after=after,
            )
        return _(
            "Re-encoded to fit this server's {limit} limit (original {original}).",
            limit=Mib(self.limit),
            original=original,
        )

    def cleanup(self) -> None:
        """Delete the files this preparation made."""
        for path in {self.source, self.path}:
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)


def link_expires_at(completed_at: datetime | None, ttl_hours: float) -> datetime | None:
    """When the service's result URL is expected to stop working (``None``: unknown)."""
    if completed_at is None or ttl_hours <= 0:
        return None
    return completed_at + timedelta(hours=ttl_hours)


def original_link_alive(completed_at: datetime | None, ttl_hours: float, now: datetime) -> bool:
    """Whether an "Original" link to the service's result URL is still worth showing."""
    expires = link_expires_at(completed_at, ttl_hours)
    return expires is not None and now < expires


class VideoPreparer:
    """Downloads a result and makes it fit an upload limit; see the module docstring."""

    def __init__(self, client: HappyHorseClient, transcoder: Transcoder, workdir: Path) -> None:
        """Files go to ``workdir``; re-encodes to ``transcoder``'s pool."""
        self.client = client
        self.transcoder = transcoder
        self.workdir = workdir

    async def prepare(
        self,
        url: str,
        stem: str,
        limit: int,
        *,
        download_deadline: float,
        transcode_until: float,
    ) -> PreparedVideo:
        """Download ``url`` and fit it into ``limit`` bytes.

        ``transcode_until`` is a ``time.monotonic()`` value a re-encode must end by.
        Download failures (``HappyHorseError``) propagate: the delivery retries them.
        """
        source = self.workdir / f"{stem}.source.mp4"
        try:
            size = await self.client.download(
                url, source, MAX_SOURCE_BYTES, deadline_seconds=download_deadline
            )
        except DownloadTooLargeError as exc:
            return PreparedVideo(
                None,
                None,
                limit,
                reason=f"the file is too large to re-encode ({exc.message})",
                why=TOO_LARGE,
            )
        if size <= limit:
            return PreparedVideo(source, source, limit)
        return await self._fit(PreparedVideo(source, None, limit), limit, stem, transcode_until)

    async def shrink(
        self, prepared: PreparedVideo, refused_size: int, stem: str, *, transcode_until: float
    ) -> PreparedVideo:
        """Discord refused ``prepared``'s file as too large: re-encode the source smaller.

        Returns a link preparation when the source is gone or the shrinks are used up.
        """
        if prepared.source is None or prepared.shrinks >= MAX_SHRINKS:
            if prepared.path is not None and prepared.path != prepared.source:
                prepared.path.unlink(missing_ok=True)
            return replace(
                prepared, path=None, reason=str(REFUSED_EVERY_SIZE), why=REFUSED_EVERY_SIZE
            )
        target = smaller_limit(prepared.limit, refused_size)
        log.info("Upload of %d bytes refused as too large; re-encoding to %d", refused_size, target)
        if prepared.path is not None and prepared.path != prepared.source:
            prepared.path.unlink(missing_ok=True)
        shrunk = replace(prepared, path=None, shrinks=prepared.shrinks + 1)
        return await self._fit(shrunk, target, f"{stem}.{shrunk.shrinks}", transcode_until)

    async def _fit(
        self, prepared: PreparedVideo, limit: int, stem: str, transcode_until: float
    ) -> PreparedVideo:
        assert prepared.source is not None
        left = transcode_until - time.monotonic()
        if left < MIN_TRANSCODE_SECONDS:
            return replace(
                prepared, limit=limit, reason=str(NO_TIME), why=NO_TIME, retryable=True
            )
        output = self.workdir / f"{stem}.fit.mp4"
        try:
            fit = await self.transcoder.fit(prepared.source, output, limit, deadline_seconds=left)
        except media.DeadlineExceededError as exc:
            log.warning("Re-encoding to %d bytes ran out of time: %s", limit, exc)
            return replace(
                prepared, limit=limit, reason=str(exc), why=media_why(exc), retryable=True
            )
        except media.MediaError as exc:
            log.warning("Re-encoding to %d bytes is impossible: %s", limit, exc)
            return replace(prepared, limit=limit, reason=str(exc), why=media_why(exc))
        return replace(prepared, path=output, limit=limit, fit=fit)
