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
SCALING_TARGET = (
    "reported (ratio to 1 process); all delivered, 0 duplicate posts, status budget kept"
)


def _skipped(name: str, unit: str, target: str, reason: str) -> Figure:
    return Figure(
        name=name, value=NAN, unit=unit, baseline=None, target=target, met=False, note=reason
    )


def pool(runs: list[ScaleRun]) -> ScaleRun:
    """Several rounds of one process count as one run: jobs, time and posts added up."""
    timed = [run.seconds for run in runs if run.seconds is not None]
    return ScaleRun(
        processes=runs[0].processes,
        jobs=sum(run.jobs for run in runs),
        delivered=sum(run.delivered for run in runs),
        seconds=sum(timed) if timed else None,
        duplicates=sum(run.duplicates for run in runs),
        status_requests=sum(run.status_requests for run in runs),
        rate_limited=sum(run.rate_limited for run in runs),
        harness_cpu_seconds=sum(run.harness_cpu_seconds for run in runs),
        bots_cpu_seconds=sum(run.bots_cpu_seconds for run in runs),
        max_status_per_second=max(run.max_status_per_second for run in runs),
        status_budget=min(run.status_budget for run in runs),
    )


def _detail(pooled: ScaleRun, rounds: list[ScaleRun]) -> dict[str, object]:
    return {
        "processes": pooled.processes,
        "jobs": pooled.jobs,
        "delivered": pooled.delivered,
        "seconds": pooled.seconds,
        "rounds_per_second": [run.per_second for run in rounds],
        "rounds_first_post_s": [run.first_seconds for run in rounds],
        "rounds_half_posted_s": [run.half_seconds for run in rounds],
        "duplicate_posts": pooled.duplicates,
        "status_requests_per_job": pooled.status_requests / pooled.jobs if pooled.jobs else None,
        "rate_limited": pooled.rate_limited,
        "max_status_per_second": pooled.max_status_per_second,
        "status_budget_per_second": pooled.status_budget,
        "harness_cpu_s": round(pooled.harness_cpu_seconds, 2),
        "bots_cpu_s": round(pooled.bots_cpu_seconds, 2),
    }


def scale_figures(plan: ScalePlan, results: ScaleResults) -> list[Figure]:
    """The figures of the scale-out step, in the issue's order; rounds of a count pooled."""
    rounds: dict[int, list[ScaleRun]] = {}
    for one in results.runs:
        rounds.setdefault(one.processes, []).append(one)
    runs = {processes: pool(each) for processes, each in rounds.items()}
    single = runs.get(1)
    base_rate = single.per_second if single is not None else None
    out: list[Figure] = []
    for processes in plan.processes:
        noun = "process" if processes == 1 else "processes"
        name = (
            f"deliveries/s, {plan.rounds} x {plan.jobs} jobs completing together, "
            f"{processes} {noun} on PostgreSQL"
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
                    (
                        run.max_status_per_second <= run.status_budget,
                        f"status calls within the budget (at most {run.status_budget:g}/s; "
                        f"busiest second {run.max_status_per_second})",
                    ),
                ],
                detail=_detail(run, rounds[processes]),
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
                float(sum(run.duplicates for run in runs.values())),
                "posts",
                baseline=None,
                limit=0.0,
                target="0",
                detail={str(n): run.duplicates for n, run in runs.items()},
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
