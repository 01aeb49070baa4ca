"""The bench's arithmetic: draws, the computed baselines, and how `met` is decided."""

from __future__ import annotations

import math

import pytest

from bench.draws import Spread, budget_floor, fixed_poller, percentile
from bench.figures import at_least, at_most


def test_draws_are_seeded_clipped_and_scaled() -> None:
    """The same seed gives the same draws, all inside the scaled clip range."""
    spread = Spread(scale=0.1)
    draws = spread.draw(500, seed=3)
    assert draws == spread.draw(500, seed=3)
    assert draws != spread.draw(500, seed=4)
    assert all(1.5 <= d <= 12.0 for d in draws)
    assert 3.0 < percentile(draws, 50) < 5.0


def test_fixed_poller_sees_a_job_at_the_first_poll_after_it_completes() -> None:
    """Polls every 5 s: 12 s takes 3 polls and waits 3 s; 15 s exactly takes 3 and 0 s."""
    result = fixed_poller([12.0, 15.0, 1.0], 5.0)
    assert result.lags == pytest.approx([3.0, 0.0, 4.0])
    assert result.requests == 7


def test_budget_floor_delivers_everything_and_spends_nothing_too_early() -> None:
    """Every job is delivered, none before it completed, and no poll precedes the clip."""
    spread = Spread(scale=1.0)
    draws = spread.draw(30, seed=1)
    result = budget_floor(draws, spread, rate=16.0)
    assert len(result.lags) == 30
    assert all(lag >= 0 for lag in result.lags)
    # Nothing can complete before 15 s, so no request is spent before then.
    assert result.requests <= 16 * (max(draws) + 10)


def test_percentile_interpolates() -> None:
    """Linear interpolation between ranks; no values gives 0."""
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 95) == 0.0


def test_met_follows_the_measurement_and_every_condition() -> None:
    """A figure is met only when its value (or ratio) passes and every condition holds."""
    ok = at_most("lag", 4.0, "s", baseline=8.0, limit=0.75, by_ratio=True, target="x")
    assert ok.met and ok.ratio == 0.5
    over = at_most("lag", 7.0, "s", baseline=8.0, limit=0.75, by_ratio=True, target="x")
    assert not over.met
    blocked = at_most(
        "lag", 1.0, "s", baseline=None, limit=2.0, target="x", conditions=[(False, "0 429s")]
    )
    assert not blocked.met and "0 429s" in blocked.note
    missing = at_least("pairs", math.nan, "pairs/s", baseline=10.0, limit=0.4, target="x")
    assert not missing.met


def test_every_timing_setting_of_the_bot_is_scaled_from_its_default() -> None:
    """The bench scales every `*_SECONDS` setting documented in `.env.example` (but the
    named exceptions), starting from the bot's own default, so no timing of the bot runs
    at full size in a scaled run."""
    from bench.harness import NOT_SCALED, TIME_SETTINGS
    from core.settings import BotSettings
    from tests.e2e.process import setting_names

    timings = {n for n in setting_names() if n.endswith("_SECONDS")}
    assert timings - set(NOT_SCALED) == set(TIME_SETTINGS)
    assert {"POLL_MIN_INTERVAL_SECONDS", "DELIVERY_LEASE_SECONDS"} <= set(TIME_SETTINGS)
    defaults = BotSettings.from_env({"DISCORD_TOKEN": "t"})
    assert TIME_SETTINGS["POLL_TARGET_LAG_SECONDS"] == defaults.poll_target_lag_seconds
    assert TIME_SETTINGS["HAPPYHORSE_RETRY_CAP_SECONDS"] == defaults.client.retry_cap_seconds
    scaled = {name: f"{seconds * 0.1:g}" for name, seconds in TIME_SETTINGS.items()}
    settings = BotSettings.from_env({"DISCORD_TOKEN": "t", **scaled})  # still consistent
    assert settings.delivery_lease_seconds == pytest.approx(defaults.delivery_lease_seconds / 10)
