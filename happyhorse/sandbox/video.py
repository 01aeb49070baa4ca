"""Real, playable H.264 MP4 clips for the sandbox's result URLs.

Each clip is a small yuv420p H.264 video at 12 fps whose frame shape follows the aspect
ratio and whose length is exactly the requested number of seconds: a light bar sweeps
across a two-tone background while a band moves down it, so players show motion. With
sound, a quiet AAC tone track is added. ``+faststart`` puts the index first so the file
streams. Encoding is CPU work: :class:`VideoCache` runs it in a worker thread and keeps
the results, so each (aspect ratio, duration, sound) is encoded once.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import av

FPS = 12
AUDIO_RATE = 24_000
FRAME_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (320, 180),
    "9:16": (180, 320),
    "1:1": (240, 240),
}


def frame_size(aspect_ratio: str) -> tuple[int, int]:
    """Width and height of clips for ``aspect_ratio``; ``ValueError`` if unsupported."""
    try:
        return FRAME_SIZES[aspect_ratio]
    except KeyError:
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}") from None


def _palette(seed: str) -> tuple[int, int, int, int, int, int]:
    """Background and bar colours (Y, U, V each) derived from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    bg_y = 40 + digest[0] % 60
    bar_y = 180 + digest[1] % 60
    return bg_y, 64 + digest[2] % 128, 64 + digest[3] % 128, bar_y, digest[4], digest[5]


def _plane_bytes(rows: Iterator[bytes], line_size: int, width: int) -> bytes:
    """Join plane rows, padding each to the plane's line size."""
    pad = bytes(line_size - width)
    return b"".join(row + pad for row in rows)


def _video_frames(width: int, height: int, frames: int, seed: str) -> Iterator[av.VideoFrame]:
    """The clip's frames: a bar sweeping right and a band sweeping down, on a gradient."""
    bg_y, bg_u, bg_v, bar_y, bar_u, bar_v = _palette(seed)
    gradient = bytes(min(255, bg_y + (40 * x) // max(1, width - 1)) for x in range(width))
    cw, ch = width // 2, height // 2
    bar_w = max(2, width // 8) & ~1
    band_h = max(2, height // 10) & ~1
    for index in range(frames):
        progress = index / max(1, frames - 1)
        x0 = (int(progress * (width - bar_w)) // 2) * 2
        y0 = (int(progress * (height - band_h)) // 2) * 2
        row = gradient[:x0] + bytes([bar_y]) * bar_w + gradient[x0 + bar_w :]
        band_row = bytes([min(255, bar_y - 30)]) * width
        frame = av.VideoFrame(width, height, "yuv420p")
        luma, cb, cr = frame.planes
        luma.update(
            _plane_bytes(
                (band_row if y0 <= y < y0 + band_h else row for y in range(height)),
                luma.line_size,
                width,
            )
        )
        cx0, cbw = x0 // 2, bar_w // 2
        for plane, bg, bar in ((cb, bg_u, bar_u), (cr, bg_v, bar_v)):
            chroma_row = bytes([bg]) * cx0 + bytes([bar]) * cbw + bytes([bg]) * (cw - cx0 - cbw)
            plane.update(_plane_bytes((chroma_row for _ in range(ch)), plane.line_size, cw))
        frame.pts = index
        yield frame


def _audio_frames(duration: int) -> Iterator[av.AudioFrame]:
    """A quiet 440 Hz mono tone lasting exactly ``duration`` seconds, in 1024-sample frames."""
    total = AUDIO_RATE * duration
    step = 2 * math.pi * 440 / AUDIO_RATE
    done = 0
    while done < total:
        samples = min(1024, total - done)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
        frame.sample_rate = AUDIO_RATE
        data = array.array("f", (0.1 * math.sin(step * (done + i)) for i in range(samples)))
        plane = frame.planes[0]
        plane.update(data.tobytes().ljust(plane.buffer_size, b"\0"))
        frame.pts = done
        done += samples
        yield frame


def encode_mp4(aspect_ratio: str, duration: int, sound: bool, *, seed: str = "") -> bytes:
    """Encode a playable H.264 (+AAC when ``sound``) MP4 and return its bytes.

    Blocking and CPU-bound: call it through ``asyncio.to_thread`` from async code.
    ``seed`` picks the colours. ``ValueError`` for an unsupported aspect or duration < 1.
    """
    width, height = frame_size(aspect_ratio)
    if duration < 1:
        raise ValueError("duration must be at least 1 second")
    # The mp4 muxer's +faststart rewrites the finished file in place, which needs a
    # real, re-openable path rather than a Python file object.
    fd, name = tempfile.mkstemp(prefix="happyhorse-sandbox-", suffix=".mp4")
    os.close(fd)
    path = Path(name)
    try:
        with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
            video.width = width
            video.height = height
            video.pix_fmt = "yuv420p"
            audio = None
            if sound:
                audio = out.add_stream("aac", rate=AUDIO_RATE)
                audio.layout = "mono"
            for frame in _video_frames(width, height, FPS * duration, seed or aspect_ratio):
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
            if audio is not None:
                for chunk in _audio_frames(duration):
                    out.mux(audio.encode(chunk))
                out.mux(audio.encode(None))
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def pad_mp4(data: bytes, size: int) -> Iterator[bytes]:
    """Yield ``data`` resized to exactly ``size`` bytes, in chunks.

    Growing appends an MP4 ``free`` box (so the file stays playable) and streams the
    padding without holding it in memory; shrinking simply cuts the file.
    """
    if size <= len(data):
        yield data[:size]
        return
    yield data
    extra = size - len(data)
    if extra >= 8 and extra < 2**32:
        yield extra.to_bytes(4, "big") + b"free"
        extra -= 8
    chunk = bytes(min(extra, 1 << 16))
    while extra > 0:
        piece = chunk if extra >= len(chunk) else chunk[:extra]
        extra -= len(piece)
        yield piece


def encode_big_mp4(aspect_ratio: str, duration: int, sound: bool, bitrate: int) -> bytes:
    """A large clip (twice the usual frame size, 24 fps, busy detail) at ``bitrate`` bits/s.

    Blocking and CPU-bound, like :func:`encode_mp4`.
    """
    width, height = frame_size(aspect_ratio)
    fd, name = tempfile.mkstemp(prefix="happyhorse-sandbox-big-", suffix=".mp4")
    os.close(fd)
    path = Path(name)
    try:
        write_detailed_clip(
            path,
            width=2 * width,
            height=2 * height,
            seconds=duration,
            fps=24,
            sound=sound,
            bitrate=bitrate,
            seed=duration,
        )
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


class VideoCache:
    """Encoded clips by (aspect ratio, duration, sound, big bitrate); least recently used
    dropped first."""

    def __init__(self, max_entries: int = 64) -> None:
        """Keep at most ``max_entries`` clips in memory."""
        self.max_entries = max_entries
        self._clips: OrderedDict[tuple[str, int, bool, int | None], bytes] = OrderedDict()
        self._locks: dict[tuple[str, int, bool, int | None], asyncio.Lock] = {}
        self.encodes = 0

    async def get(
        self, aspect_ratio: str, duration: int, sound: bool, big_bitrate: int | None = None
    ) -> bytes:
        """The clip's bytes, encoding it off the event loop the first time it is asked for.

        ``big_bitrate`` asks for the large clip (:func:`encode_big_mp4`) at that bitrate.
        """
        key = (aspect_ratio, duration, sound, big_bitrate)
        cached = self._clips.get(key)
        if cached is not None:
            self._clips.move_to_end(key)
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._clips.get(key)
            if cached is not None:
                return cached
            if big_bitrate is not None:
                data = await asyncio.to_thread(
                    encode_big_mp4, aspect_ratio, duration, sound, big_bitrate
                )
            else:
                seed = f"{aspect_ratio}/{duration}/{sound}"
                data = await asyncio.to_thread(
                    encode_mp4, aspect_ratio, duration, sound, seed=seed
                )
            self.encodes += 1
            self._clips[key] = data
            while len(self._clips) > self.max_entries:
                self._clips.popitem(last=False)
        self._locks.pop(key, None)
        return data


def write_detailed_clip(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: float,
    fps: int = 30,
    sound: bool = True,
    bitrate: int | None = None,
    seed: int = 0,
) -> None:
    """Write a clip an encoder cannot squeeze: fresh detail in every frame, like heavy grain.

    Each frame is new random texture (soft blobs a few pixels wide), so no frame predicts
    the next and the encoder spends bits the way it does on the busiest footage:
    ``bitrate`` (bits/s) makes the file as large as wanted (a 15 s 1080p clip at 14 Mbit/s
    is about 25 MiB), and a re-encode to a lower bitrate has real work to do: the worst
    case for its speed and its size control. With ``sound``, a stereo 48 kHz AAC tone.
    Blocking and CPU-bound; for tests, the bench and the sandbox's large results.
    """
    import random

    rng = random.Random(seed)
    small_w, small_h = max(2, width // 4), max(2, height // 4)
    frames = max(1, round(seconds * fps))
    options = {"preset": "ultrafast"}
    if bitrate is None:
        options["crf"] = "18"
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps, options=options)
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        if bitrate is not None:
            video.bit_rate = bitrate
        audio = None
        if sound:
            audio = out.add_stream("aac", rate=48_000)
            audio.layout = "stereo"
        for index in range(frames):
            small = av.VideoFrame(small_w, small_h, "gray")
            plane = small.planes[0]
            texture = rng.randbytes(small_w * small_h)
            rows = (texture[y * small_w : (y + 1) * small_w] for y in range(small_h))
            plane.update(_plane_bytes(rows, plane.line_size, small_w))
            frame = small.reformat(width, height, "yuv420p", interpolation="BICUBIC")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            total = round(48_000 * frames / fps)
            step = 2 * math.pi * 330 / 48_000
            done = 0
            while done < total:
                samples = min(1024, total - done)
                chunk = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
                chunk.sample_rate = 48_000
                data = array.array("f", (0.2 * math.sin(step * (done + i)) for i in range(samples)))
                for channel in chunk.planes:
                    channel.update(data.tobytes().ljust(channel.buffer_size, b"\0"))
                chunk.pts = done
                done += samples
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))
