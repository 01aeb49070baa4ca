"""The scale-out figures' arithmetic: rates, ratios to one process, duplicates, skipping."""

from __future__ import annotations

import math

import pytest

from bench.scale import (
    SKIP_NO_POSTGRES,
    ScalePlan,
    ScaleResults,
    ScaleRun,
    progress,
    summarize,
)
from bench.scale_report import scale_figures
from bench.store_throughput import Result

PLAN = ScalePlan(jobs=100, processes=(1, 2, 4))


def run(processes: int, seconds: float | None, *, delivered: int = 100, dupes: int = 0) -> ScaleRun:
    return ScaleRun(processes, 100, delivered, seconds, dupes, 100 * processes, 0)


def test_summary_times_the_last_first_post_and_counts_every_extra_post() -> None:
    """A job posted twice is delivered once and counted as one duplicate; the clock stops
    at the last job's first post, not at a late duplicate."""
    posts = {1: [10.0, 14.0], 2: [11.0], 3: [12.5, 13.0, 13.5]}
    assert summarize(posts, completed_at=9.5) == (3, 3.0, 3)
    assert summarize({}, completed_at=9.5) == (0, None, 0)


def test_progress_gives_the_first_post_and_the_half_way_mark() -> None:
    """First posts at +0.5, +1.5, +3 s of 4 jobs: the first at 0.5 s, half (2 of 4) at
    1.5 s; with fewer than half delivered there is no half-way mark."""
    posts = {1: [10.0, 14.0], 2: [11.0], 3: [12.5]}
    assert progress(posts, completed_at=9.5, jobs=4) == (0.5, 1.5)
    assert progress({1: [10.0]}, completed_at=9.5, jobs=4) == (0.5, None)
    assert progress({}, completed_at=9.5, jobs=4) == (None, None)


def test_rates_are_reported_as_ratios_to_one_process() -> None:
    """100 jobs in 2 s, 1 s and 0.8 s: 50, 100 and 125 jobs/s, 2x and 2.5x one process."""
    results = ScaleResults(
        runs=[run(1, 2.0), run(2, 1.0), run(4, 0.8)],
        sqlite_pairs=Result("sqlite", 16, 1000, 0.5),
        postgres_pairs=Result("postgres", 16, 1000, 2.0),
    )
    figures = scale_figures(PLAN, results)
    assert len(figures) == 5
    one, two, four, dupes, pairs = figures
    assert one.value == 50.0 and one.ratio is None and one.met
    assert two.value == 100.0 and two.baseline == 50.0 and two.ratio == 2.0 and two.met
    assert four.ratio == pytest.approx(2.5) and four.met
    assert dupes.value == 0 and dupes.met
    assert pairs.value == 500.0 and pairs.baseline == 2000.0 and pairs.ratio == 0.25
    assert all(f.to_json()["value"] is not None for f in figures)


def test_rounds_of_one_count_are_pooled() -> None:
    """100 jobs in 2 s and 100 in 3 s make 40 jobs/s, whatever the rounds' own rates; a
    duplicate in either round counts."""
    results = ScaleResults(runs=[run(1, 2.0), run(2, 1.0), run(1, 3.0, dupes=1), run(2, 1.0)])
    one, two, dupes, _ = scale_figures(ScalePlan(jobs=100, processes=(1, 2)), results)
    assert one.value == 40.0 and not one.met
    assert one.detail["rounds_per_second"] == [50.0, pytest.approx(100 / 3)]
    assert two.value == 100.0 and two.ratio == 2.5
    assert dupes.value == 1 and dupes.detail == {"1": 1, "2": 0}


def test_a_duplicate_or_a_missing_delivery_fails_its_figure() -> None:
    """Scaling that posts a job twice, or loses one, is not met, and the note says why."""
    results = ScaleResults(
        runs=[run(1, 2.0), run(2, 1.0, dupes=2), run(4, 1.0, delivered=99)],
        sqlite_pairs=Result("sqlite", 16, 1000, 1.0),
        postgres_pairs=Result("postgres", 16, 1000, 1.0),
    )
    one, two, four, dupes, _ = scale_figures(PLAN, results)
    assert one.met
    assert not two.met and "0 duplicate posts (2)" in two.note
    assert not four.met and "1 missing" in four.note
    assert dupes.value == 2 and not dupes.met and dupes.detail == {"1": 0, "2": 2, "4": 0}


def test_a_run_that_never_finished_has_no_rate() -> None:
    """No post at all: the rate is not a number and the figure is not met."""
    plan = ScalePlan(processes=(1,))
    figures = scale_figures(plan, ScaleResults(runs=[run(1, None, delivered=0)]))
    assert len(figures) == 3
    assert math.isnan(figures[0].value) and not figures[0].met


def test_without_postgres_every_figure_is_skipped_with_the_reason() -> None:
    """Missing PostgreSQL binaries skip the figures (not met, value null), never crash."""
    figures = scale_figures(PLAN, ScaleResults(skipped=SKIP_NO_POSTGRES))
    assert len(figures) == 5
    for figure in figures:
        assert not figure.met
        assert figure.note == SKIP_NO_POSTGRES and figure.note.startswith("skipped")
        assert figure.to_json()["value"] is None


def test_a_failed_run_is_reported_as_not_measured() -> None:
    """A step that broke after the 1-process run still reports that run and names the rest."""
    figures = scale_figures(PLAN, ScaleResults(runs=[run(1, 2.0)]))
    assert figures[0].met
    assert all("not measured" in f.note for f in figures[1:])
