"""Video files: probe a clip, re-encode it to fit an upload limit, take its last frame.

Everything here is blocking, CPU-bound PyAV work (FFmpeg's libraries, bundled in PyAV's
wheels): run it in a worker process (``core.transcode``), never on an event loop.

How :func:`fit_to_limit` sizes its output (the ffmpeg two-pass rule, done in one pass and
checked): the bits available are the limit minus headroom for the MP4 container, spread
over the clip's duration; the audio's share (AAC, kept when the source has sound) comes off
first and the rest is the video bitrate. The source resolution is kept while that bitrate
gives at least ``KEEP_BITS_PER_PIXEL`` bits per pixel per frame; otherwise the clip steps
down through 1080p, 720p, 540p and 360p (the short side; aspect ratio kept, even
dimensions). A single-pass encode can overshoot its average bitrate, so the output's size
is checked, and an encode that came out too large is redone with the bitrate scaled down
by the overshoot (which may step the resolution down too).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

VIDEO_CODEC = "libx264"
AUDIO_CODEC = "aac"
#: x264 speed preset: "veryfast" keeps a 15 s 1080p re-encode to seconds on a small machine.
DEFAULT_PRESET = "veryfast"
#: The scaler (``ffmpeg -vf scale=...:flags=bilinear`` is the same one).
SCALER = "BILINEAR"
#: Short sides the re-encode may step down to, largest first.
STEPS: tuple[int, ...] = (1080, 720, 540, 360)
#: Keep a resolution while the video bitrate gives at least this many bits per pixel per
#: frame (a 30 fps 1080p clip: 6.2 Mbit/s, 720p: 2.8, 540p: 1.6, 360p: 0.7).
KEEP_BITS_PER_PIXEL = 0.1
#: Below this video bitrate even 360p is not worth watching: the clip "cannot fit".
MIN_VIDEO_BITRATE = 100_000
#: The MP4 container's share: moov index, sample tables, boxes. A fraction plus a constant.
CONTAINER_FRACTION = 0.04
CONTAINER_BYTES = 8 * 1024
#: AAC bitrate by how tight the budget is (total bits per second available).
AUDIO_BITRATES: tuple[tuple[int, int], ...] = ((2_000_000, 128_000), (600_000, 96_000))
LOW_AUDIO_BITRATE = 64_000
MAX_ATTEMPTS = 4
#: An output this much shorter than its source means the source is damaged.
MAX_DURATION_LOSS = 0.5
#: Each retry aims this much below what the overshoot alone would ask for.
RETRY_MARGIN = 0.92
#: Frames per second assumed for the bits-per-pixel rule when the source does not say.
DEFAULT_FPS = 30.0
#: How far before the end :func:`last_frame` seeks (to the keyframe before it).
LAST_FRAME_SEEK_SECONDS = 2.0


class MediaError(Exception):
    """A clip could not be handled; the message says why, for logs and notices."""


class CannotReencodeError(MediaError):
    """The file is not a video PyAV can decode (no video stream, corrupt, not media)."""


class CannotFitError(MediaError):
    """The clip cannot be brought under the limit, even at 360p."""


class DeadlineExceededError(MediaError):
    """The work ran past its deadline and stopped."""


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`probe` learnt about a clip."""

    size: int
    duration: float
    width: int
    height: int
    fps: float | None
    video_codec: str
    audio_codec: str | None

    @property
    def has_audio(self) -> bool:
        """Whether the clip has a sound track."""
        return self.audio_codec is not None

    @property
    def label(self) -> str:
        """The resolution as people say it: the short side, ``"1080p"``."""
        return f"{min(self.width, self.height)}p"


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_to_limit` did: the source, the output, and how it got there."""

    source: ClipInfo
    output: ClipInfo
    max_bytes: int
    reencoded: bool
    attempts: int
    video_bitrate: int
    audio_bitrate: int | None

    @property
    def resolution_changed(self) -> bool:
        """Whether the output is smaller than the source in pixels."""
        return (self.output.width, self.output.height) != (self.source.width, self.source.height)


def probe(path: str | os.PathLike[str]) -> ClipInfo:
    """Size, duration, resolution, frame rate and codecs of the clip at ``path``.

    ``CannotReencodeError`` when it is not media PyAV can open or has no video stream.
    """
    size = os.path.getsize(path)
    try:
        with av.open(os.fspath(path)) as container:
            return _describe(container, size)
    except av.FFmpegError as exc:
        raise CannotReencodeError(
            f"cannot re-encode: the file is not a readable video ({_why(exc)})"
        ) from exc


def _why(exc: Exception) -> str:
    """FFmpeg's reason without the file name (messages may reach users and logs)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def _describe(container: Any, size: int) -> ClipInfo:
    if not container.streams.video:
        raise CannotReencodeError("cannot re-encode: the file has no video stream")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    width, height = int(video.codec_context.width), int(video.codec_context.height)
    if width <= 0 or height <= 0:
        raise CannotReencodeError("cannot re-encode: the video stream has no frame size")
    rate = video.average_rate or video.guessed_rate
    return ClipInfo(
        size=size,
        duration=_duration(container),
        width=width,
        height=height,
        fps=float(rate) if rate else None,
        video_codec=str(video.codec_context.name),
        audio_codec=str(audio.codec_context.name) if audio is not None else None,
    )


def _duration(container: Any) -> float:
    """The longest stream's duration, else the container's, in seconds (0.0 if unknown)."""
    longest = 0.0
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            longest = max(longest, float(stream.duration * stream.time_base))
    if longest > 0:
        return longest
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return 0.0


@dataclass(frozen=True)
class Plan:
    """One encode's settings."""

    width: int
    height: int
    video_bitrate: int
    audio_bitrate: int | None


def audio_bitrate_for(total_bits_per_second: float) -> int:
    """The AAC bitrate for a budget of ``total_bits_per_second`` (audio and video)."""
    for floor, bitrate in AUDIO_BITRATES:
        if total_bits_per_second >= floor:
            return bitrate
    return LOW_AUDIO_BITRATE


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled so its short side is ``short_side``; even dimensions."""
    factor = short_side / min(width, height)
    return _even(width * factor), _even(height * factor)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_encode(source: ClipInfo, max_bytes: int, *, budget_scale: float = 1.0) -> Plan:
    """The resolution and bitrates that should bring ``source`` under ``max_bytes``.

    ``budget_scale`` shrinks the bits available (a retry after an overshoot).
    ``CannotFitError`` when even 360p would get less than ``MIN_VIDEO_BITRATE``.
    """
    duration = max(source.duration, 0.1)
    usable = (max_bytes * (1 - CONTAINER_FRACTION) - CONTAINER_BYTES) * budget_scale
    total = usable * 8 / duration
    audio = audio_bitrate_for(total) if source.has_audio else None
    video = int(total - (audio or 0))
    fps = min(source.fps or DEFAULT_FPS, 60.0)
    source_short = min(source.width, source.height)
    candidates = [(source.width, source.height)]
    candidates += [scaled_size(source.width, source.height, s) for s in STEPS if s < source_short]
    for width, height in candidates:
        if video >= KEEP_BITS_PER_PIXEL * width * height * fps:
            return Plan(width, height, video, audio)
    if video < MIN_VIDEO_BITRATE:
        smallest = candidates[-1]
        raise CannotFitError(
            f"cannot fit {source.duration:.1f} s into {format_mib(max_bytes)} even at "
            f"{min(smallest)}p: only {video / 1000:.0f} kbit/s would be left for the video"
        )
    width, height = candidates[-1]
    return Plan(width, height, video, audio)


def format_mib(size: int) -> str:
    """``size`` bytes as ``"23.4 MiB"`` (one decimal; whole numbers without it; KiB below 1 MiB)."""
    mib = size / (1024 * 1024)
    if mib < 1:
        return f"{size / 1024:.0f} KiB"
    return f"{mib:.0f} MiB" if mib >= 1 and mib == int(mib) else f"{mib:.1f} MiB"


def fit_to_limit(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    max_bytes: int,
    *,
    deadline: float | None = None,
    preset: str = DEFAULT_PRESET,
) -> FitResult:
    """Write ``src`` to ``dst`` as an H.264 + AAC faststart MP4 of at most ``max_bytes``.

    A source that already fits is copied unchanged. ``deadline`` is a ``time.time()``
    value: past it the encode stops with ``DeadlineExceededError``. Raises
    ``CannotReencodeError`` when the source cannot be decoded and ``CannotFitError`` when
    it cannot fit even at 360p; ``dst`` is removed on every failure.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    source = probe(src)
    if source.size <= max_bytes:
        shutil.copyfile(src, dst)
        return FitResult(source, source, max_bytes, False, 0, 0, None)
    scale = 1.0
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            plan = plan_encode(source, max_bytes, budget_scale=scale)
            _encode(src, dst, plan, preset=preset, deadline=deadline)
            size = os.path.getsize(dst)
            output = probe(dst)
            if output.duration < source.duration - MAX_DURATION_LOSS:
                raise CannotReencodeError(
                    f"cannot re-encode: only {output.duration:.1f} s of "
                    f"{source.duration:.1f} s could be decoded (the file is damaged)"
                )
            if size <= max_bytes:
                return FitResult(
                    source,
                    output,
                    max_bytes,
                    True,
                    attempt,
                    plan.video_bitrate,
                    plan.audio_bitrate,
                )
            scale *= max_bytes / size * RETRY_MARGIN
        raise CannotFitError(
            f"cannot fit {source.duration:.1f} s into {format_mib(max_bytes)}: the encoder "
            f"overshot {MAX_ATTEMPTS} times (last {format_mib(size)})"
        )
    except BaseException:
        Path(dst).unlink(missing_ok=True)
        raise


def _check(deadline: float | None) -> None:
    if deadline is not None and time.time() > deadline:
        raise DeadlineExceededError("the re-encode ran past its deadline")


def _encode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    plan: Plan,
    *,
    preset: str,
    deadline: float | None,
) -> None:
    """One encode of ``src`` into ``dst`` with ``plan``'s size and bitrates."""
    try:
        with av.open(os.fspath(src)) as source:
            in_video = source.streams.video[0]
            in_audio = (
                source.streams.audio[0]
                if plan.audio_bitrate and source.streams.audio
                else None
            )
            in_video.thread_type = "AUTO"
            with av.open(
                os.fspath(dst), "w", format="mp4", options={"movflags": "+faststart"}
            ) as out:
                rate = in_video.average_rate or in_video.guessed_rate or Fraction(30)
                video: Any = out.add_stream(
                    VIDEO_CODEC,
                    rate=rate,
                    options={
                        "preset": preset,
                        "maxrate": str(int(plan.video_bitrate * 1.5)),
                        "bufsize": str(int(plan.video_bitrate * 2)),
                    },
                )
                video.width = plan.width
                video.height = plan.height
                video.pix_fmt = "yuv420p"
                video.bit_rate = plan.video_bitrate
                video.codec_context.time_base = in_video.time_base or Fraction(1, 90_000)
                audio: Any = None
                resampler = None
                if in_audio is not None:
                    sample_rate = min(int(in_audio.codec_context.sample_rate or 48_000), 48_000)
                    channels = in_audio.codec_context.channels or 2
                    layout = "mono" if channels == 1 else "stereo"
                    audio = out.add_stream(AUDIO_CODEC, rate=sample_rate)
                    audio.layout = layout
                    audio.bit_rate = plan.audio_bitrate
                    resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
                streams = [in_video] + ([in_audio] if in_audio is not None else [])
                for frame in _decoded(source, streams):
                    _check(deadline)
                    if isinstance(frame, av.VideoFrame):
                        scaled = frame.reformat(
                            width=plan.width,
                            height=plan.height,
                            format="yuv420p",
                            interpolation=SCALER,
                        )
                        scaled.pts = frame.pts
                        scaled.time_base = frame.time_base
                        out.mux(video.encode(scaled))
                    elif audio is not None and resampler is not None:
                        for chunk in resampler.resample(frame):
                            out.mux(audio.encode(chunk))
                out.mux(video.encode(None))
                if audio is not None and resampler is not None:
                    for chunk in resampler.resample(None):
                        out.mux(audio.encode(chunk))
                    out.mux(audio.encode(None))
    except av.FFmpegError as exc:
        raise CannotReencodeError(
            f"cannot re-encode: decoding or encoding failed ({_why(exc)})"
        ) from exc


def _decoded(container: Any, streams: list[Any]) -> Iterator[Any]:
    """Every frame of ``streams``, in file order; frames without a timestamp are skipped."""
    for packet in container.demux(*streams):
        for frame in packet.decode():
            if frame.pts is not None:
                yield frame


def last_frame(src: str | os.PathLike[str], *, deadline: float | None = None) -> bytes:
    """The clip's last video frame as PNG bytes (full resolution, RGB).

    Seeks to the keyframe before the last ``LAST_FRAME_SEEK_SECONDS`` and decodes from
    there; decodes the whole clip when seeking finds nothing. ``CannotReencodeError``
    when no frame can be decoded.
    """
    try:
        with av.open(os.fspath(src)) as container:
            if not container.streams.video:
                raise CannotReencodeError("cannot read a frame: the file has no video stream")
            stream = container.streams.video[0]
            frame = None
            duration = _duration(container)
            if duration > LAST_FRAME_SEEK_SECONDS and stream.time_base is not None:
                target = duration - LAST_FRAME_SEEK_SECONDS + float(
                    (stream.start_time or 0) * stream.time_base
                )
                try:
                    container.seek(
                        int(target / stream.time_base), stream=stream, backward=True
                    )
                    frame = _last_decoded(container, stream, deadline)
                except av.FFmpegError:
                    frame = None
                if frame is None:
                    container.seek(0)
            if frame is None:
                frame = _last_decoded(container, stream, deadline)
            if frame is None:
                raise CannotReencodeError("cannot read a frame: the video has no frames")
            return _png(frame)
    except av.FFmpegError as exc:
        raise CannotReencodeError(
            f"cannot read a frame: the file is not a readable video ({_why(exc)})"
        ) from exc


def _last_decoded(container: Any, stream: Any, deadline: float | None) -> Any:
    last = None
    for packet in container.demux(stream):
        _check(deadline)
        for frame in packet.decode():
            last = frame
    return last


def _png(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="PNG")
    return buffer.getvalue()


def describe_fit(result: FitResult) -> str:
    """``"original 23.4 MiB, 1080p → 720p"`` (the resolution part only when it changed)."""
    text = f"original {format_mib(result.source.size)}"
    if result.resolution_changed:
        text += f", {result.source.label} → {result.output.label}"
    return text

