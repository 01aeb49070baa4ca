"""The locale acknowledgement figure: A B B A bursts, and the ratio against English."""

from __future__ import annotations

from bench.locale_acks import LOCALE_LIMIT, LocaleAcks, burst_order, locale_figures
from bench.scenarios import Plan


def test_bursts_alternate_so_drift_hits_both_locales_alike() -> None:
    """Each round is English, the locale, the locale, English."""
    assert burst_order(2, "de") == ["en-US", "de", "de", "en-US"] * 2


def test_the_figure_is_the_localised_p99_against_the_english_one() -> None:
    """Met within 1.05x of the same run's English p99, not beyond; no English, no ratio."""
    plan = Plan(scale=0.1, burst=4)
    within = LocaleAcks(english=[0.010] * 100, localised=[0.0104] * 100, bursts=4)
    [figure] = locale_figures(plan, within)
    assert figure.met and figure.ratio is not None and figure.ratio <= LOCALE_LIMIT
    assert figure.baseline is not None and round(figure.baseline, 3) == 10.0
    beyond = LocaleAcks(english=[0.010] * 100, localised=[0.012] * 100, bursts=4)
    assert not locale_figures(plan, beyond)[0].met
    assert not locale_figures(plan, LocaleAcks(localised=[0.01]))[0].met
