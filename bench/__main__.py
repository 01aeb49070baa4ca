"""`python -m bench [--json FILE] [--quick] [--scale F] [--only scale|history|video|i18n]`:
measure.

Runs the real bot (`bot.py`, real discord.py) as a subprocess against the project's
Discord fake and the sandbox over loopback, plus a storage micro-benchmark, the
acknowledgement and sweep cost with 1,000,000 settled jobs in the store against an empty
store (`bench.settled_history`), a scale-out step on a throw-away PostgreSQL cluster
(1, 2 and 4 bot processes; skipped when PostgreSQL is not installed), and the big-video
figures (re-encoding against Debian's `ffmpeg`, the event loop beside re-encodes, memory
over re-encodes; see `bench/video.py`), the acknowledgement with a non-English locale
against English (`bench/locale_acks.py`), and prints one table. Every API completion time
(and with it every timing setting of the bot and every time target) is multiplied by the scale
factor, 0.1 by default, so the run fits in a few minutes; rates grow by the inverse factor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.credits import CreditRun, crowd_and_racer
from bench.figures import Figure, render_markdown, render_table, write_json
from bench.harness import TIME_SETTINGS, Stage
from bench.locale_acks import LocaleAcks, locale_bursts, locale_figures
from bench.report import figures, history_figures
from bench.scale import ScalePlan, ScaleResults, scale_out
from bench.scale_report import scale_figures
from bench.scenarios import (
    MIB,
    Measurements,
    Plan,
    cold_burst,
    many_pending,
    minimal_burst,
    warm_run,
)
from bench.settled_history import HistoryRun, measure_history
from bench.video import (
    VideoMeasurements,
    VideoPlan,
    reencode_speed,
    rss_over_reencodes,
    stall_beside_burst,
    video_figures,
)
from tests.fake_discord import FakeDiscord

log = logging.getLogger("bench")

DEFAULT_SCALE = 0.1
OVERALL_TIMEOUT_SECONDS = 1200.0
"""The whole run's limit (writing the 1,000,000-job history alone takes a few minutes)."""
QUICK_SETTLED = 20_000
"""The settled history of a quick smoke run (the full run writes 1,000,000 jobs)."""


def plan_for(quick: bool, scale: float | None) -> Plan:
    """The full plan, or a tiny smoke plan that only proves every path still runs."""
    if not quick:
        return Plan(scale=scale or DEFAULT_SCALE)
    return Plan(
        scale=scale or 0.05,
        burst=6,
        learn=3,
        measured=3,
        quick_jobs=2,
        big_results=2,
        big_size=MIB,
        many=12,
    )


async def _step(name: str, out: Measurements, work: Callable[[], Awaitable[None]]) -> None:
    started = time.monotonic()
    try:
        await work()
    except Exception as exc:  # one broken run must not hide the others' figures
        log.exception("bench step %s failed", name)
        out.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    log.info("bench step %s took %.1f s", name, time.monotonic() - started)


async def run_scale_only(
    plan: Plan, workdir: Path, scale_plan: ScalePlan
) -> tuple[list[Figure], Measurements]:
    """Only the scale-out step on PostgreSQL; return its figures and any errors."""
    out = Measurements()
    scaled = ScaleResults()
    async with FakeDiscord(token="bench-token") as fake:
        stage = Stage.build(fake, members=max(plan.burst, 50))
        await _step(
            "scale-out on PostgreSQL",
            out,
            lambda: scale_out(stage, workdir, scale_plan, plan.scale, scaled),
        )
        out.errors.extend(scaled.errors)
    return scale_figures(scale_plan, scaled), out


async def _history(
    quick: bool, workdir: Path, out: Measurements, settled: int | None = None
) -> HistoryRun | None:
    """The settled-history step (see ``bench.settled_history``); None if it broke."""
    result: HistoryRun | None = None

    async def work() -> None:
        nonlocal result
        if quick:
            result = await measure_history(
                workdir,
                settled=settled or QUICK_SETTLED,
                admissions=200,
                concurrency=20,
                sweeps=20,
                rounds=2,
            )
        else:
            result = await measure_history(workdir, settled=settled or 1_000_000)

    await _step("settled history", out, work)
    return result


async def run_history_only(
    quick: bool, workdir: Path, settled: int | None = None
) -> tuple[list[Figure], Measurements]:
    """Only the settled-history step; return its figures and any errors."""
    out = Measurements()
    return history_figures(await _history(quick, workdir, out, settled)), out


async def video_steps(
    stage: Stage, plan: Plan, workdir: Path, vplan: VideoPlan, out: Measurements
) -> list[Figure]:
    """The big-video runs on `stage`; return their figures (errors go to `out`)."""
    video = VideoMeasurements()
    await _step("re-encode vs ffmpeg", out, lambda: reencode_speed(workdir, vplan, video))
    await _step(
        "re-encodes beside a burst",
        out,
        lambda: stall_beside_burst(stage, workdir, plan, vplan, video),
    )
    await _step(
        "memory over re-encodes",
        out,
        lambda: rss_over_reencodes(stage, workdir, plan, vplan, video),
    )
    out.errors.extend(video.errors)
    return video_figures(vplan, video)


async def run_video_only(
    plan: Plan, workdir: Path, vplan: VideoPlan
) -> tuple[list[Figure], Measurements]:
    """Only the big-video runs; return their figures and any errors."""
    out = Measurements()
    async with FakeDiscord(token="bench-token") as fake:
        stage = Stage.build(fake, members=max(plan.burst, 50))
        return await video_steps(stage, plan, workdir, vplan, out), out


async def locale_step(stage: Stage, plan: Plan, workdir: Path, out: Measurements) -> list[Figure]:
    """The /video bursts in English and in a non-English locale; return their figure."""
    acks = LocaleAcks()
    await _step("locale bursts", out, lambda: locale_bursts(stage, workdir, plan, acks))
    out.errors.extend(acks.errors)
    return locale_figures(plan, acks)


async def run_locale_only(plan: Plan, workdir: Path) -> tuple[list[Figure], Measurements]:
    """Only the locale bursts; return their figure and any errors."""
    out = Measurements()
    async with FakeDiscord(token="bench-token") as fake:
        stage = Stage.build(fake, members=max(plan.burst, 50))
        return await locale_step(stage, plan, workdir, out), out


async def run(
    plan: Plan,
    workdir: Path,
    scale_plan: ScalePlan | None = None,
    vplan: VideoPlan | None = None,
    *,
    quick: bool = False,
) -> tuple[list[Figure], Measurements]:
    """Every scenario in turn; return the figures and the raw measurements."""
    out = Measurements()
    scale_plan = scale_plan or ScalePlan()
    scaled = ScaleResults()
    crowd: CreditRun | None = None
    racer: CreditRun | None = None
    videos: list[Figure] = []
    localised: list[Figure] = []
    async with FakeDiscord(token="bench-token") as fake:
        stage = Stage.build(fake, members=max(plan.burst, 50))
        # The baseline bursts bracket the bot's, so drifting machine load hits both alike.
        await _step("minimal bot", out, lambda: minimal_burst(stage, workdir, plan, out))
        await _step("cold burst", out, lambda: cold_burst(stage, workdir, plan, out))
        await _step("minimal bot", out, lambda: minimal_burst(stage, workdir, plan, out))
        await _step("warm run", out, lambda: warm_run(stage, workdir, plan, out))
        await _step("many pending", out, lambda: many_pending(stage, workdir, plan, out))
        localised = await locale_step(stage, plan, workdir, out)
        await _step(
            "scale-out on PostgreSQL",
            out,
            lambda: scale_out(stage, workdir, scale_plan, plan.scale, scaled),
        )
        out.errors.extend(scaled.errors)
        videos = await video_steps(stage, plan, workdir, vplan or VideoPlan(), out)

    async def credit_runs() -> None:
        nonlocal crowd, racer
        small = plan.burst < 50
        crowd, racer = await crowd_and_racer(
            workdir / "credits.sqlite3",
            members=50,
            rounds=3 if small else 10,
            allowance=10 if small else 40,
            attempts=15 if small else 60,
        )

    await _step("credits", out, credit_runs)
    history = await _history(quick, workdir, out)
    return (
        figures(plan, out, crowd, racer)
        + localised
        + history_figures(history)
        + scale_figures(scale_plan, scaled)
        + videos,
        out,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the bench, print the table; exit 1 if a run broke."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (no real figures)")
    parser.add_argument("--scale", type=float, help=f"time scale (default {DEFAULT_SCALE})")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and databases here")
    parser.add_argument(
        "--only",
        choices=["scale", "history", "video", "i18n"],
        help="run only this step (scale: the scale-out runs on PostgreSQL; history: ack "
        "and sweep cost with 1,000,000 settled jobs against an empty store; video: "
        "re-encoding against ffmpeg, the event loop beside re-encodes, memory over re-encodes; "
        "i18n: the /video acknowledgement p99 with a non-English locale against English)",
    )
    parser.add_argument(
        "--settled",
        type=int,
        metavar="N",
        help="settled jobs in the history step's store (default 1,000,000; quick 20,000)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    args = parser.parse_args(argv)
    if args.scale is not None and not 0.01 <= args.scale <= 1.0:
        parser.error("--scale must be between 0.01 and 1")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    plan = plan_for(args.quick, args.scale)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hh-bench-")))

        async def bounded() -> tuple[list[Figure], Measurements]:
            async with asyncio.timeout(OVERALL_TIMEOUT_SECONDS):
                scale_plan = ScalePlan.quick() if args.quick else ScalePlan()
                vplan = VideoPlan.quick() if args.quick else VideoPlan()
                if args.only == "scale":
                    return await run_scale_only(plan, workdir, scale_plan)
                if args.only == "history":
                    return await run_history_only(args.quick, workdir, args.settled)
                if args.only == "video":
                    return await run_video_only(plan, workdir, vplan)
                if args.only == "i18n":
                    return await run_locale_only(plan, workdir)
                return await run(plan, workdir, scale_plan, vplan, quick=args.quick)

        results, out = asyncio.run(bounded())
    elapsed = time.monotonic() - started
    header = (
        f"HappyHorse bench{' (quick smoke run)' if args.quick else ''}: real bot.py vs the "
        f"Discord fake and the sandbox over loopback, {elapsed:.0f} s.\n"
        f"Time scale x{plan.scale:g}: API completion times (median {40 * plan.scale:g} s, "
        f"{15 * plan.scale:g}-{120 * plan.scale:g} s), every timing setting of the bot "
        f"({len(TIME_SETTINGS)} *_SECONDS settings, all but the network timeouts) and the "
        f"time targets are multiplied by {plan.scale:g}; status rate limits by "
        f"{1 / plan.scale:g} (20 req/s -> {20 / plan.scale:g}, bot told "
        f"{16 / plan.scale:g}).\n"
        "Queue limits: the bench guild is set to no running or queued limit and no "
        "cool-down before each run (the fair queue's defaults, 2 running per member and "
        "10 per server, would hold the bursts back; these figures are the delivery "
        "pipeline's)."
    )
    if args.only == "history":
        header = (
            "HappyHorse bench, settled-history step only: the acknowledgement's admission "
            "and one timer sweep on a SQLite store with the settled history, against an "
            f"empty store, interleaved in the same run ({elapsed:.0f} s)."
        )
    print(render_table(results, header))
    if args.markdown:
        print("\n" + render_markdown(results))
    if out.errors:
        print("\nErrors:\n" + "\n".join(f"- {e}" for e in out.errors))
    if args.json is not None:
        write_json(results, args.json)
    return 1 if out.errors else 0


if __name__ == "__main__":
    sys.exit(main())
