"""Re-encoding to fit an upload limit and grabbing the last frame, with real encodes.

Every source clip is made by PyAV in the test (`write_detailed_clip`: panning detail, a
stereo AAC tone), small and short so the encodes take a fraction of a second each.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops

from happyhorse import media
from happyhorse.sandbox.video import encode_mp4, write_detailed_clip


def _clip(
    path: Path, width: int, height: int, *, seconds: float = 2.0, sound: bool = True,
    bitrate: int = 3_000_000,
) -> Path:
    write_detailed_clip(
        path, width=width, height=height, seconds=seconds, fps=24, sound=sound, bitrate=bitrate
    )
    return path


def _decode_all(path: Path) -> tuple[int, int]:
    """Decode every frame of every stream; return (video frames, audio frames)."""
    video = audio = 0
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                video += 1
            else:
                audio += 1
    return video, audio


def test_fit_output_fits_decodes_and_keeps_aac_sound(tmp_path: Path) -> None:
    """Over the limit: H.264 + AAC, within the limit, fully decodable, same duration."""
    src = _clip(tmp_path / "src.mp4", 640, 360)
    source = media.probe(src)
    limit = source.size // 3
    result = media.fit_to_limit(src, tmp_path / "out.mp4", limit)
    out = media.probe(tmp_path / "out.mp4")
    assert result.reencoded
    assert out.size <= limit
    assert (out.video_codec, out.audio_codec) == ("h264", "aac")
    assert abs(out.duration - source.duration) <= 0.2
    frames, sounds = _decode_all(tmp_path / "out.mp4")
    assert frames == 48
    assert sounds > 0
    with open(tmp_path / "out.mp4", "rb") as handle:
        head = handle.read(64 * 1024)
    assert head.find(b"moov") < head.find(b"mdat")  # +faststart: the index comes first


def test_fit_without_sound_adds_none(tmp_path: Path) -> None:
    """A silent source stays silent."""
    src = _clip(tmp_path / "src.mp4", 640, 360, sound=False)
    result = media.fit_to_limit(src, tmp_path / "out.mp4", media.probe(src).size // 2)
    assert result.output.audio_codec is None
    assert result.output.size <= result.max_bytes
    assert result.audio_bitrate is None


def test_resolution_steps_down_only_when_needed(tmp_path: Path) -> None:
    """540p keeps its size under a roomy limit and drops to 360p (16:9 kept) under a tight one."""
    src = _clip(tmp_path / "src.mp4", 960, 540, bitrate=4_000_000)
    roomy = media.fit_to_limit(src, tmp_path / "roomy.mp4", 600_000)
    assert (roomy.output.width, roomy.output.height) == (960, 540)
    assert not roomy.resolution_changed
    tight = media.fit_to_limit(src, tmp_path / "tight.mp4", 250_000)
    assert (tight.output.width, tight.output.height) == (640, 360)
    assert tight.output.size <= 250_000
    assert media.describe_fit(tight).endswith("540p → 360p")


def test_plan_for_real_sizes() -> None:
    """A 15 s 1080p clip into 10 MiB goes to 720p; 10 s keeps 1080p; portrait stays portrait."""
    limit = 10 * 1024 * 1024

    def clip(width: int, height: int, seconds: float) -> media.ClipInfo:
        return media.ClipInfo(30 * 1024 * 1024, seconds, width, height, 30.0, "h264", "aac")

    def size(source: media.ClipInfo, max_bytes: int) -> tuple[int, int]:
        plan = media.plan_encode(source, max_bytes)
        return plan.width, plan.height

    assert size(clip(1920, 1080, 15), limit) == (1280, 720)
    assert size(clip(1920, 1080, 10), limit) == (1920, 1080)
    assert size(clip(1080, 1920, 15), limit) == (720, 1280)
    assert size(clip(1920, 1080, 15), 3 * 1024 * 1024) == (640, 360)
    with pytest.raises(media.CannotFitError, match="even at 360p"):
        media.plan_encode(clip(1920, 1080, 15), 150 * 1024)


def test_source_that_fits_is_copied(tmp_path: Path) -> None:
    """Nothing to do: the file is copied byte for byte."""
    src = _clip(tmp_path / "src.mp4", 320, 180, bitrate=500_000)
    result = media.fit_to_limit(src, tmp_path / "out.mp4", src.stat().st_size)
    assert not result.reencoded
    assert (tmp_path / "out.mp4").read_bytes() == src.read_bytes()


def test_undecodable_file_cannot_be_reencoded(tmp_path: Path) -> None:
    """Not a video: CannotReencodeError, and no output is left behind."""
    src = tmp_path / "junk.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 5000)
    with pytest.raises(media.CannotReencodeError, match="cannot re-encode"):
        media.fit_to_limit(src, tmp_path / "out.mp4", 1000)
    assert not (tmp_path / "out.mp4").exists()


def test_damaged_file_is_not_passed_off_as_whole(tmp_path: Path) -> None:
    """A clip cut short decodes only in part: refused rather than posted a second long."""
    src = _clip(tmp_path / "src.mp4", 640, 360, seconds=3)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(media.CannotReencodeError, match="could be decoded"):
        media.fit_to_limit(cut, tmp_path / "out.mp4", src.stat().st_size // 10)
    assert not (tmp_path / "out.mp4").exists()


def test_cannot_fit_even_at_360p(tmp_path: Path) -> None:
    """A limit too small for any watchable bitrate: CannotFitError."""
    src = _clip(tmp_path / "src.mp4", 640, 360)
    with pytest.raises(media.CannotFitError):
        media.fit_to_limit(src, tmp_path / "out.mp4", 20_000)
    assert not (tmp_path / "out.mp4").exists()


def _full_decode_last(path: Path) -> Image.Image:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert frames[0].to_image().tobytes() != frames[-1].to_image().tobytes()
    return frames[-1].to_image()


@pytest.mark.parametrize("seconds", [1, 5])
def test_last_frame_is_the_last_frames_pixels(tmp_path: Path, seconds: int) -> None:
    """The PNG holds exactly the pixels of the clip's last frame (short clip and seeking one)."""
    src = tmp_path / "clip.mp4"
    src.write_bytes(encode_mp4("9:16", seconds, True, seed="last"))
    png = media.last_frame(src)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    expected = _full_decode_last(src)
    assert image.size == expected.size == (180, 320)
    assert ImageChops.difference(image.convert("RGB"), expected).getbbox() is None


def test_last_frame_of_junk_raises(tmp_path: Path) -> None:
    """No frame to take: CannotReencodeError."""
    src = tmp_path / "junk.mp4"
    src.write_bytes(b"junk" * 100)
    with pytest.raises(media.CannotReencodeError):
        media.last_frame(src)


def test_deadline_stops_an_encode(tmp_path: Path) -> None:
    """A deadline already passed stops the encode at its first frame."""
    src = _clip(tmp_path / "src.mp4", 640, 360)
    with pytest.raises(media.DeadlineExceededError):
        media.fit_to_limit(src, tmp_path / "out.mp4", src.stat().st_size // 2, deadline=0.0)
    assert not (tmp_path / "out.mp4").exists()
