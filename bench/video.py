"""The big-video figures (`python -m bench --only video`).

1. Re-encode speed: a 15 s 1080p clip with sound (about 25 MiB, busy detail in every
   frame) fitted into 10 MiB by the bot's own path (`core.transcode.Transcoder.fit`, a
   warm worker process), against Debian's `ffmpeg` command line given the very settings
   the bot chose (size, scaler, preset, bitrates, VBV, AAC, +faststart, and the workers'
   CPU priority), in the same run, alternating, best of `runs` each. `ffmpeg` is
   installed with apt-get only when missing (and only by a full run; a quick run skips
   the comparison without it).
2. The real `bot.py` on a server without boosts (10 MiB): `reencodes` videos over the
   limit (the sandbox's BIGCLIP clips) and a `burst`-command burst at once; the figure is
   the bot's worst event-loop stall (its LoopWatch report) while the re-encodes run in
   its media pool.
3. The real `bot.py` re-encoding `rss_reencodes` results of about 25 MiB: the growth of
   the resident memory of the bot and every process it started (its media workers)
   together, from before the first re-encode to after the last, and the peak.

Re-encoding is CPU work, not API time: the delivery deadlines are left at their
defaults here (the bench's time scale would cut them to a tenth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.figures import Figure, at_most
from bench.harness import (
    BOOST_TIER_50_MIB,
    Stage,
    bot_environment,
    lift_limits,
    new_tasks,
    sandbox_config,
    wait_delivered,
)
from bench.process import Subprocess
from bench.scenarios import ACK_WAIT_SECONDS, Plan
from core.loopwatch import LoopReport, read_report
from core.transcode import WORKER_NICENESS, Transcoder, available_cpus
from happyhorse import media
from happyhorse.sandbox import SandboxServer
from happyhorse.sandbox.app import VIDEOS_KEY
from happyhorse.sandbox.video import write_detailed_clip

log = logging.getLogger("bench")

MIB = 1024 * 1024
UNSCALED = {
    "DOWNLOAD_DEADLINE_SECONDS": "90",
    "UPLOAD_DEADLINE_SECONDS": "90",
    "DELIVERY_LEASE_SECONDS": "300",
}


@dataclass(frozen=True)
class VideoPlan:
    """Sizes of the video runs."""

    width: int = 1920
    height: int = 1080
    seconds: float = 15.0
    bitrate: int = 14_000_000
    limit: int = 10 * MIB
    runs: int = 2
    burst: int = 200
    reencodes: int = 4
    rss_reencodes: int = 10
    big_seconds: int = 10
    big_bitrate: int = 20_000_000
    install_ffmpeg: bool = True

    @classmethod
    def quick(cls) -> VideoPlan:
        """A smoke run: every path, small clips, no figures worth quoting."""
        return cls(
            width=640,
            height=360,
            seconds=3.0,
            bitrate=3_000_000,
            limit=MIB // 4,
            runs=1,
            burst=12,
            reencodes=1,
            rss_reencodes=1,
            big_seconds=5,
            install_ffmpeg=False,
        )


@dataclass
class VideoMeasurements:
    """What the video runs measured."""

    source: media.ClipInfo | None = None
    output: media.ClipInfo | None = None
    ours: list[float] = field(default_factory=list)
    ffmpeg: list[float] = field(default_factory=list)
    ffmpeg_size: int | None = None
    ffmpeg_version: str | None = None
    ffmpeg_missing: str | None = None
    loop: LoopReport | None = None
    loop_baseline: LoopReport | None = None
    stall_delivered: int = 0
    stall_reencoded: int = 0
    rss_before: int = 0
    rss_after: int = 0
    rss_peak: int = 0
    rss_delivered: int = 0
    rss_reencoded: int = 0
    errors: list[str] = field(default_factory=list)


def machine() -> str:
    """The machine the figures were taken on, in one line."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    return f"{available_cpus()} CPUs available ({model}){memory}, Python {sys.version.split()[0]}"


async def ensure_ffmpeg(allow_install: bool) -> tuple[str | None, str | None]:
    """The ffmpeg binary (installing Debian's package when missing and allowed), or why not."""
    found = shutil.which("ffmpeg")
    if found or not allow_install:
        return found, None if found else "ffmpeg is not installed (quick runs do not install it)"
    if os.geteuid() != 0 and shutil.which("sudo") is None:
        return None, "ffmpeg is missing and apt-get needs root"
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("Installing ffmpeg (apt-get) for the re-encode comparison")
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", "ffmpeg"]):
        process = await asyncio.create_subprocess_exec(
            *prefix, *args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if await process.wait() != 0:
            return None, f"{' '.join(args)} failed"
    found = shutil.which("ffmpeg")
    return found, None if found else "apt-get did not install ffmpeg"


def ffmpeg_command(
    binary: str, src: Path, dst: Path, source: media.ClipInfo, plan: media.Plan
) -> list[str]:
    """The ffmpeg command line with the settings the bot's re-encode chose."""
    # At the bot's workers' CPU priority, so both compete alike with the rest of the machine.
    command = [
        *(["nice", "-n", str(WORKER_NICENESS)] if shutil.which("nice") else []),
        binary, "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
    ]  # fmt: skip
    if (plan.width, plan.height) != (source.width, source.height):
        command += ["-vf", f"scale={plan.width}:{plan.height}:flags=bilinear"]
    vb = plan.video_bitrate
    command += [
        "-c:v", media.VIDEO_CODEC, "-preset", media.DEFAULT_PRESET, "-pix_fmt", "yuv420p",
        "-b:v", str(vb), "-maxrate", str(int(vb * 1.5)), "-bufsize", str(int(vb * 2)),
    ]  # fmt: skip
    if plan.audio_bitrate is None:
        command += ["-an"]
    else:
        command += ["-c:a", media.AUDIO_CODEC, "-b:a", str(plan.audio_bitrate), "-ac", "2"]
    return [*command, "-movflags", "+faststart", str(dst)]


async def reencode_speed(workdir: Path, vplan: VideoPlan, out: VideoMeasurements) -> None:
    """Figure 1: the bot's re-encode against ffmpeg's command line, same settings."""
    src = workdir / "video-source.mp4"
    await asyncio.to_thread(
        write_detailed_clip,
        src,
        width=vplan.width,
        height=vplan.height,
        seconds=vplan.seconds,
        fps=30,
        sound=True,
        bitrate=vplan.bitrate,
    )
    out.source = await asyncio.to_thread(media.probe, src)
    plan = media.plan_encode(out.source, vplan.limit)
    binary, out.ffmpeg_missing = await ensure_ffmpeg(vplan.install_ffmpeg)
    if binary is not None:
        version = await asyncio.to_thread(
            subprocess.run, [binary, "-version"], capture_output=True, text=True, check=False
        )
        out.ffmpeg_version = version.stdout.splitlines()[0] if version.stdout else None
    transcoder = Transcoder(1)
    try:
        # Start the worker first: the bot's pool is warm after its first re-encode.
        await transcoder.last_frame(src, deadline_seconds=120)
        for run in range(vplan.runs):
            ours = workdir / f"video-ours-{run}.mp4"
            started = time.monotonic()
            result = await transcoder.fit(src, ours, vplan.limit, deadline_seconds=600)
            out.ours.append(time.monotonic() - started)
            out.output = result.output
            if binary is not None:
                theirs = workdir / f"video-ffmpeg-{run}.mp4"
                command = ffmpeg_command(binary, src, theirs, out.source, plan)
                started = time.monotonic()
                done = await asyncio.to_thread(subprocess.run, command, check=False)
                if done.returncode != 0:
                    out.errors.append(f"ffmpeg exited with {done.returncode}")
                    break
                out.ffmpeg.append(time.monotonic() - started)
                out.ffmpeg_size = theirs.stat().st_size
    finally:
        await transcoder.close()


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every process descended from it (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    family = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    total = 0
    for pid in family:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@contextlib.asynccontextmanager
async def _unboosted(stage: Stage) -> AsyncIterator[None]:
    """The bench guild without boosts (10 MiB uploads) for the block."""
    stage.fake.set_premium_tier(stage.guild, 0)
    try:
        yield
    finally:
        stage.fake.set_premium_tier(stage.guild, BOOST_TIER_50_MIB)


@contextlib.asynccontextmanager
async def _bot(
    stage: Stage, sandbox: SandboxServer, workdir: Path, name: str, plan: Plan
) -> AsyncIterator[tuple[Subprocess, Path]]:
    database = workdir / f"{name}.sqlite3"
    await lift_limits(database, stage.guild.id)
    env = bot_environment(
        stage,
        sandbox,
        database,
        scale=plan.scale,
        status_rate=plan.status_rate,
        loop_report=workdir / f"{name}-loop.json",
    )
    env.update(UNSCALED)
    async with Subprocess(["bot.py"], env, workdir / f"{name}.log") as bot:
        await bot.start(stage.fake)
        yield bot, database


async def _order_big(stage: Stage, count: int, duration: int) -> None:
    for i in range(count):
        member = stage.members[i % len(stage.members)]
        await stage.fake.invoke_slash(
            stage.guild,
            stage.channel,
            member,
            "video",
            {"prompt": f"bench BIGCLIP horse {i}", "duration": duration},
        )


def _reencoded_posts(stage: Stage, before: int) -> int:
    posts = stage.fake.find_requests("POST", r"^/channels/\d+/messages$", status=200)
    bodies = [r.json for r in posts[before:] if isinstance(r.json, dict)]
    return sum(1 for body in bodies if "Re-encoded to fit" in str(body.get("content")))


def _posts(stage: Stage) -> int:
    return len(stage.fake.find_requests("POST", r"^/channels/\d+/messages$", status=200))


async def stall_beside_burst(
    stage: Stage, workdir: Path, plan: Plan, vplan: VideoPlan, out: VideoMeasurements
) -> None:
    """Figure 2: the bot's worst loop stall with re-encodes running beside a command burst,
    and (the baseline) the same burst on a fresh bot without them."""
    config = replace(sandbox_config(plan.status_limit, plan.scale), big_bitrate=vplan.big_bitrate)
    async with _unboosted(stage), SandboxServer(config) as sandbox:
        # The big clip is encoded once and cached: make it before the bot starts, so the
        # sandbox's own encoding is not part of the measurement.
        await _warm_sandbox(sandbox, 5, vplan)
        for name, big in (("video-burst-only", 0), ("video-stall", vplan.reencodes)):
            async with _bot(stage, sandbox, workdir, name, plan) as (bot, database):
                before = _posts(stage)
                tasks_before = len(sandbox.state.tasks)
                if big:
                    sandbox.state.completion_times.extend([0.5] * big)
                    await _order_big(stage, big, 5)
                    # The burst arrives while the media worker is busy re-encoding.
                    await _wait_for_worker(bot.pid, 120.0)
                draws = plan.spread.draw(vplan.burst, plan.seed + 7)
                sandbox.state.completion_times.extend(draws)
                await stage.order(vplan.burst)
                count = big + vplan.burst
                # Under re-encodes on a small machine the burst takes a while to reach the API.
                tasks = await new_tasks(sandbox, tasks_before, count, 120.0)
                timeout = plan.delivery_timeout(vplan.burst, plan.status_rate) + 60 * big
                delivered = await wait_delivered(database, [t.task_id for t in tasks], timeout)
                if big:
                    out.stall_delivered = len(delivered)
                    out.stall_reencoded = _reencoded_posts(stage, before)
            report = workdir / f"{name}-loop.json"
            if not report.exists():
                out.errors.append(f"the bot ({name}) wrote no event-loop report")
            elif big:
                out.loop = read_report(report)
            else:
                out.loop_baseline = read_report(report)
            stage.drop_uploaded_bytes()


def _worker_running(root: int) -> bool:
    """Whether `root` has a multiprocessing worker child (the media pool has started)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == root and b"spawn_main" in (entry / "cmdline").read_bytes():
                return True
    return False


async def _wait_for_worker(root: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(_worker_running, root):
        if time.monotonic() > deadline:
            raise TimeoutError("the bot never started a media worker")
        await asyncio.sleep(0.1)


async def _warm_sandbox(sandbox: SandboxServer, duration: int, vplan: VideoPlan) -> None:
    """Encode the sandbox's big clip now (it is cached), outside the measurement."""
    await sandbox.app[VIDEOS_KEY].get("16:9", duration, False, vplan.big_bitrate)


async def rss_over_reencodes(
    stage: Stage, workdir: Path, plan: Plan, vplan: VideoPlan, out: VideoMeasurements
) -> None:
    """Figure 3: resident memory of the bot and its workers over many re-encodes."""
    config = replace(sandbox_config(plan.status_limit, plan.scale), big_bitrate=vplan.big_bitrate)
    async with _unboosted(stage), SandboxServer(config) as sandbox:
        await _warm_sandbox(sandbox, vplan.big_seconds, vplan)
        async with _bot(stage, sandbox, workdir, "video-rss", plan) as (bot, database):
            await asyncio.sleep(1.0)
            out.rss_before = _tree_rss(bot.pid)
            peak = out.rss_before
            stop = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, await asyncio.to_thread(_tree_rss, bot.pid))
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            before = _posts(stage)
            tasks_before = len(sandbox.state.tasks)
            sandbox.state.completion_times.extend([0.5] * vplan.rss_reencodes)
            try:
                await _order_big(stage, vplan.rss_reencodes, vplan.big_seconds)
                tasks = await new_tasks(
                    sandbox, tasks_before, vplan.rss_reencodes, ACK_WAIT_SECONDS
                )
                delivered = await wait_delivered(
                    database, [t.task_id for t in tasks], 90.0 * vplan.rss_reencodes
                )
            finally:
                stop.set()
                await sampler
            out.rss_after = _tree_rss(bot.pid)
            out.rss_peak = max(peak, out.rss_after)
            out.rss_delivered = len(delivered)
            out.rss_reencoded = _reencoded_posts(stage, before)
    stage.drop_uploaded_bytes()


def video_figures(vplan: VideoPlan, out: VideoMeasurements) -> list[Figure]:
    """The three figures (a figure whose run broke shows no value and is not met)."""
    figures: list[Figure] = []
    ours = min(out.ours, default=math.nan)
    theirs = min(out.ffmpeg, default=None)
    source = out.source
    what = (
        f"{source.duration:.0f} s {source.label} clip with sound, "
        f"{media.format_mib(source.size)} -> {media.format_mib(vplan.limit)}"
        if source is not None
        else "clip"
    )
    figures.append(
        at_most(
            f"re-encode time of a {what}, vs ffmpeg CLI (same settings)",
            ours,
            "s",
            baseline=theirs,
            limit=1.3,
            by_ratio=True,
            target="<= 1.3x Debian's ffmpeg",
            note=out.ffmpeg_missing or (out.ffmpeg_version or ""),
            detail={
                "ours_s": out.ours,
                "ffmpeg_s": out.ffmpeg,
                "output": None if out.output is None else asdict(out.output),
                "ffmpeg_output_bytes": out.ffmpeg_size,
                "machine": machine(),
            },
        )
    )
    stall_ms = out.loop.worst_stall_seconds * 1000 if out.loop else math.inf
    baseline_ms = out.loop_baseline.worst_stall_seconds * 1000 if out.loop_baseline else None
    jobs = vplan.reencodes + vplan.burst
    figures.append(
        at_most(
            f"event-loop worst stall, {vplan.reencodes} re-encodes beside a "
            f"{vplan.burst}-command burst (baseline: the burst alone)",
            stall_ms,
            "ms",
            baseline=baseline_ms,
            limit=250.0,
            target="< 250 ms; all delivered, every big one re-encoded",
            conditions=[
                (out.stall_delivered == jobs, f"{out.stall_delivered}/{jobs} delivered"),
                (
                    out.stall_reencoded == vplan.reencodes,
                    f"{out.stall_reencoded}/{vplan.reencodes} re-encoded",
                ),
            ],
            detail={"machine": machine()},
        )
    )
    growth = (out.rss_after - out.rss_before) / MIB if out.rss_before else math.inf
    figures.append(
        at_most(
            f"RSS growth of bot + media workers over {vplan.rss_reencodes} re-encodes of "
            f"{vplan.big_seconds} s ~{vplan.big_bitrate * vplan.big_seconds / 8 / MIB:.0f} "
            "MiB clips",
            growth,
            "MiB",
            baseline=None,
            limit=150.0,
            target="< 150 MiB; every one re-encoded",
            conditions=[
                (
                    out.rss_reencoded == vplan.rss_reencodes,
                    f"{out.rss_reencoded}/{vplan.rss_reencodes} re-encoded",
                )
            ],
            detail={
                "before_mib": out.rss_before / MIB,
                "after_mib": out.rss_after / MIB,
                "peak_mib": out.rss_peak / MIB,
                "machine": machine(),
            },
        )
    )
    return figures
