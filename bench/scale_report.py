"""The scale-out step's figures: deliveries/s per process count as a ratio to one process,
duplicate posts, and reserve/commit pairs/s on PostgreSQL as a ratio to SQLite.

None of them has a target in the issue ("reported"); a deliveries figure is met when the
batch was delivered completely and no job was posted twice. Without PostgreSQL every
figure is reported as skipped, with the reason, and not met.
"""

from __future__ import annotations

import math

from bench.figures import Figure, at_least, at_most
from bench.scale import ScalePlan, ScaleResults, ScaleRun

NAN = float("nan")
SCALING_TARGET = "reported (ratio to 1 process); all delivered, 0 duplicate posts"


def _skipped(name: str, unit: str, target: str, reason: str) -> Figure:
    return Figure(
        name=name, value=NAN, unit=unit, baseline=None, target=target, met=False, note=reason
    )


def _run_detail(run: ScaleRun) -> dict[str, float | int | None]:
    return {
        "processes": run.processes,
        "jobs": run.jobs,
        "delivered": run.delivered,
        "seconds": run.seconds,
        "first_post_s": run.first_seconds,
        "half_posted_s": run.half_seconds,
        "duplicate_posts": run.duplicates,
        "status_requests_per_job": run.status_requests / run.jobs if run.jobs else None,
        "rate_limited": run.rate_limited,
        "harness_cpu_s": round(run.harness_cpu_seconds, 2),
        "bots_cpu_s": round(run.bots_cpu_seconds, 2),
    }


def scale_figures(plan: ScalePlan, results: ScaleResults) -> list[Figure]:
    """The figures of the scale-out step, in the issue's order."""
    runs = {run.processes: run for run in results.runs}
    single = runs.get(1)
    base_rate = single.per_second if single is not None else None
    out: list[Figure] = []
    for processes in plan.processes:
        noun = "process" if processes == 1 else "processes"
        name = (
            f"deliveries/s, {plan.jobs} jobs completing together, {processes} {noun} on PostgreSQL"
        )
        if results.skipped:
            out.append(_skipped(name, "jobs/s", SCALING_TARGET, results.skipped))
            continue
        run = runs.get(processes)
        if run is None:
            out.append(_skipped(name, "jobs/s", SCALING_TARGET, "not measured (see errors)"))
            continue
        out.append(
            at_least(
                name,
                run.per_second,
                "jobs/s",
                baseline=base_rate if processes != 1 else None,
                limit=0.0,
                target=SCALING_TARGET,
                conditions=[
                    (
                        run.delivered == run.jobs,
                        f"all delivered ({run.jobs - run.delivered} missing)",
                    ),
                    (run.duplicates == 0, f"0 duplicate posts ({run.duplicates})"),
                ],
                detail=_run_detail(run),
            )
        )

    name = f"duplicate video posts, {' + '.join(map(str, plan.processes))} processes"
    if results.skipped:
        out.append(_skipped(name, "posts", "0", results.skipped))
    elif len(runs) != len(plan.processes):
        out.append(_skipped(name, "posts", "0", "not measured (see errors)"))
    else:
        out.append(
            at_most(
                name,
                float(sum(run.duplicates for run in results.runs)),
                "posts",
                baseline=None,
                limit=0.0,
                target="0",
                detail={str(run.processes): run.duplicates for run in results.runs},
            )
        )

    name = (
        f"reserve+submit pairs/s, PostgreSQL vs SQLite ({plan.pairs_in_flight} in flight, "
        "durable commits)"
    )
    target = "reported (ratio to SQLite)"
    pg, lite = results.postgres_pairs, results.sqlite_pairs
    if results.skipped:
        out.append(_skipped(name, "pairs/s", target, results.skipped))
    elif pg is None or lite is None:
        out.append(_skipped(name, "pairs/s", target, "not measured (see errors)"))
    else:
        out.append(
            at_least(
                name,
                pg.per_second,
                "pairs/s",
                baseline=lite.per_second if math.isfinite(lite.per_second) else None,
                limit=0.0,
                target=target,
                detail={"pairs": pg.pairs, "sqlite_pairs_per_s": lite.per_second},
            )
        )
    return out
