"""The event-loop stall monitor: what it records and the report it writes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.loopwatch import LoopWatch, read_report, write_report


def test_keeps_the_worst_stall_and_counts_those_over_the_threshold() -> None:
    """Only the worst stall is kept; each stall over the threshold is counted."""
    watch = LoopWatch(log_threshold_seconds=0.25, wall_clock=lambda: 1234.0)
    for stall in (0.01, 0.3, -0.002, 0.9, 0.1, 0.25):
        watch.record(stall)
    report = watch.report()
    assert report.worst_stall_seconds == 0.9
    assert report.worst_stall_at == 1234.0
    assert report.stalls_over_threshold == 3
    assert report.samples == 6


async def test_a_blocking_call_on_the_loop_is_seen() -> None:
    """A synchronous sleep on the loop shows up as a stall at least that long."""
    watch = LoopWatch(interval_seconds=0.01)
    watch.start()
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # the kind of call the watch exists to catch
    await asyncio.sleep(0.05)
    report = await watch.stop()
    assert report.worst_stall_seconds >= 0.29
    assert report.stalls_over_threshold >= 1


async def test_report_round_trips_through_its_file(tmp_path: Path) -> None:
    """write_report and read_report agree; the folder is created."""
    watch = LoopWatch()
    watch.record(0.5)
    path = tmp_path / "reports" / "loop.json"
    write_report(watch.report(), path)
    assert read_report(path) == watch.report()
