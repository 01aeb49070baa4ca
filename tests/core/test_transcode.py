"""The media worker pool: re-encodes in worker processes, deadlines, a stuck worker replaced."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.transcode import Transcoder, TranscoderClosedError, default_concurrency
from happyhorse import media
from happyhorse.sandbox.video import write_detailed_clip


def stuck(*, deadline: float) -> None:
    """A task that never looks at its deadline, like a codec call that hangs."""
    time.sleep(120)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "src.mp4"
    write_detailed_clip(path, width=640, height=360, seconds=2, fps=24, bitrate=3_000_000)
    return path


def test_default_concurrency_leaves_room_for_the_bot() -> None:
    """Half the CPUs, never none."""
    assert [default_concurrency(n) for n in (1, 2, 3, 8)] == [1, 1, 1, 4]


async def test_fit_and_last_frame_run_in_a_worker(clip: Path, tmp_path: Path) -> None:
    """The re-encode and the frame grab run in a worker process and return their results."""
    transcoder = Transcoder(1)
    try:
        result = await transcoder.fit(
            clip, tmp_path / "out.mp4", clip.stat().st_size // 3, deadline_seconds=60
        )
        assert result.reencoded and result.output.size <= clip.stat().st_size // 3
        assert transcoder.worker_pids()
        png = await transcoder.last_frame(clip, deadline_seconds=60)
        assert png.startswith(b"\x89PNG")
        with pytest.raises(media.CannotReencodeError):
            await transcoder.last_frame(tmp_path / "out.mp4.missing", deadline_seconds=60)
    finally:
        await transcoder.close()
    assert transcoder.worker_pids() == []
    with pytest.raises(TranscoderClosedError):
        await transcoder.last_frame(clip, deadline_seconds=60)


async def test_a_stuck_worker_is_killed_and_the_pool_replaced(clip: Path, tmp_path: Path) -> None:
    """Past its deadline and the grace, the worker is killed; the next task gets a new pool."""
    transcoder = Transcoder(1, kill_grace_seconds=0.2)
    try:
        with pytest.raises(media.DeadlineExceededError):
            await transcoder._run(stuck, deadline_seconds=0.5)
        assert transcoder.replacements == 1
        result = await transcoder.fit(
            clip, tmp_path / "out.mp4", clip.stat().st_size // 2, deadline_seconds=60
        )
        assert result.output.size <= clip.stat().st_size // 2
    finally:
        await transcoder.close()
