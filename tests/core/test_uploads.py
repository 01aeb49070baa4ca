"""The rules of what a finished video is posted as (Discord-free parts)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botkit.posting import link_notice
from core.i18n import ENGLISH, for_locale
from core.transcode import Transcoder
from core.uploads import (
    MIB,
    UNREADABLE,
    PreparedVideo,
    VideoPreparer,
    original_link_alive,
    smaller_limit,
)
from happyhorse import media
from happyhorse.client import HappyHorseClient
from happyhorse.settings import ClientSettings
from tests.test_i18n_cards import JOB


def test_smaller_limit_after_a_refusal() -> None:
    """A lost boost drops to the next Discord limit; below 10 MiB, 60 % of what was refused."""
    assert smaller_limit(100 * MIB, 80 * MIB) == 50 * MIB
    assert smaller_limit(50 * MIB, 40 * MIB) == 10 * MIB
    assert smaller_limit(10 * MIB, 9 * MIB) == int(9 * MIB * 0.6)


def _fit(source_size: int, short_side: tuple[int, int]) -> media.FitResult:
    source = media.ClipInfo(source_size, 15.0, 1920, 1080, 30.0, "h264", "aac")
    width, height = short_side
    output = media.ClipInfo(9 * MIB, 15.0, width, height, 30.0, "h264", "aac")
    return media.FitResult(source, output, 10 * MIB, True, 1, 5_000_000, 128_000)


def test_the_note_says_what_happened() -> None:
    """The limit, the original size and the resolution change; a guess after a 413 is not
    called the server's limit."""
    fit = _fit(int(23.4 * MIB), (1280, 720))
    prepared = PreparedVideo(Path("s"), Path("o"), 10 * MIB, fit=fit)
    assert prepared.note() == (
        "Re-encoded to fit this server's 10 MiB limit (original 23.4 MiB, 1080p → 720p)."
    )
    same = PreparedVideo(Path("s"), Path("o"), 10 * MIB, fit=_fit(12 * MIB, (1920, 1080)))
    assert same.note() == "Re-encoded to fit this server's 10 MiB limit (original 12 MiB)."
    shrunk = PreparedVideo(Path("s"), Path("o"), 6 * MIB, fit=fit, shrinks=1)
    assert shrunk.note() is not None and "this server's upload limit" in shrunk.note()
    assert PreparedVideo(Path("s"), Path("s"), 10 * MIB).note() is None


def test_original_link_lives_for_the_ttl() -> None:
    """The Original button shows while the result URL should still work, never with TTL 0."""
    done = datetime(2026, 1, 1, tzinfo=UTC)
    assert original_link_alive(done, 24, done + timedelta(hours=23))
    assert not original_link_alive(done, 24, done + timedelta(hours=25))
    assert not original_link_alive(done, 0, done)
    assert not original_link_alive(None, 24, done)


async def test_no_time_left_means_a_link_with_the_reason(tmp_path: Path) -> None:
    """A re-encode that could not finish in the attempt's time is not started; the delivery
    may try again later (retryable)."""
    transcoder = Transcoder(1)
    async with HappyHorseClient(ClientSettings(api_key="k")) as client:
        preparer = VideoPreparer(client, transcoder, tmp_path)
        source = tmp_path / "s.mp4"
        source.write_bytes(b"x" * 100)
        prepared = await preparer.shrink(
            PreparedVideo(source, source, 200), 100, "job-1", transcode_until=0.0
        )
    assert prepared.path is None
    assert prepared.reason == "no time was left to re-encode it"
    assert prepared.retryable
    assert transcoder.worker_pids() == []
    await transcoder.close()



def test_the_note_and_the_link_notice_speak_the_servers_language() -> None:
    """The re-encode note and the link fallback are said in the reader's language, sizes
    in its units and decimal sign; English keeps binary MiB as before."""
    fit = _fit(int(23.4 * MIB), (1280, 720))
    note = PreparedVideo(Path("s"), Path("o"), 10 * MIB, fit=fit).note()
    assert note is not None
    assert ENGLISH(note) == note
    assert for_locale("fr")(note) == (
        "Réencodée pour tenir dans la limite de 10\u202fMo de ce serveur "
        "(original : 23,4\u202fMo, 1080p → 720p)."  # Babel: a narrow no-break space
    )
    assert "23,4 МБ" in for_locale("ru")(note)

    completed = datetime(2026, 1, 1, tzinfo=UTC)
    job = dataclasses.replace(JOB, completed_at=completed)
    unreadable = PreparedVideo(
        Path("s"), None, 10 * MIB, reason="cannot re-encode: junk", why=UNREADABLE
    )
    expires = int((completed + timedelta(hours=24)).timestamp())
    assert link_notice(job, unreadable, 24.0, for_locale("fr")) == (
        "La vidéo dépasse la limite d’envoi de ce serveur et n’a pas pu être réencodée pour "
        f"y tenir (le fichier n’est pas une vidéo lisible) ; ce lien expire <t:{expires}:R>."
    )
    assert link_notice(job, None, 0, for_locale("ja")) == (
        "ここには動画を添付できませんでした。このリンクは1日以内に期限切れになります。"
    )
