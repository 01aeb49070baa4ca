"""The alert rules and the dashboard: valid, unit-tested with promtool, covering each signal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.deploy.monitoring import (
    ALERTS,
    DASHBOARD,
    RULE_TESTS,
    alert_rules,
    dashboard_exprs,
    promtool,
    selectors,
)

EXPECTED_ALERTS = {
    "HappyHorseBotDown",
    "HappyHorseBotUnhealthy",
    "HappyHorsePollsLate",
    "HappyHorseDeliveryLagHigh",
    "HappyHorseVideoServiceRateLimited",
    "HappyHorseVideoServiceErrors",
    "HappyHorseOutOfCredits",
    "HappyHorseRefundsRising",
    "HappyHorseNoGatewayShard",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def rule_test_files() -> list[Path]:
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files, "deploy/prometheus/tests holds the rules' unit tests"
    return files


def test_the_alerts_are_the_signals_operators_need() -> None:
    """Down or unhealthy, late polls, delivery lag, 429, 5xx, 402, refunds, no gateway shard."""
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule  # type: ignore[index]
        assert rule["annotations"]["summary"], rule  # type: ignore[index]


def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` finds every rule valid."""
    done = run(promtool(), "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(EXPECTED_ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules deploy/prometheus/tests/*.yml` passes."""
    done = run(promtool(), "test", "rules", *map(str, rule_test_files()))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_has_a_test_that_sees_it_fire(tmp_path: Path) -> None:
    """Break one rule at a time (it can never fire): the unit tests must then fail.

    So no rule is merely present in the tests: each has a case expecting it to fire.
    """
    tested = set()
    for test_file in rule_test_files():
        data = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        for case in data["tests"]:
            for check in case["alert_rule_test"]:
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    assert tested == EXPECTED_ALERTS

    original = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for broken in sorted(EXPECTED_ALERTS):
        data = json.loads(json.dumps(original))
        for group in data["groups"]:
            for rule in group["rules"]:
                if rule["alert"] == broken:
                    rule["expr"] = "vector(1) == 0"
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
        tests_dir = tmp_path / "tests"
        tests_dir.mkdir(exist_ok=True)
        for test_file in rule_test_files():
            (tests_dir / test_file.name).write_text(test_file.read_text(), encoding="utf-8")
        done = run(promtool(), "test", "rules", *map(str, sorted(tests_dir.glob("*.yml"))))
        assert done.returncode != 0, f"the unit tests pass even with {broken} never firing"
        assert broken in done.stdout + done.stderr


def test_dashboard_shows_every_alerted_signal() -> None:
    """Each metric an alert reads has a panel; every panel queries the provisioned source."""
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert data["uid"] == "happyhorse"
    for panel in data["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert panel["targets"] and panel["title"] and panel["description"]
    on_dashboard = {name for expr in dashboard_exprs() for name, _ in selectors(expr)}
    alerted = {name for rule in alert_rules() for name, _ in selectors(str(rule["expr"]))}
    assert alerted <= on_dashboard, alerted - on_dashboard
    assert any("up{" in expr for expr in dashboard_exprs()), "a panel shows the scrape targets"


def test_promtool_accepts_the_scrape_configuration(tmp_path: Path) -> None:
    """`promtool check config` on the compose profile's prometheus.yml (rules path local)."""
    config = yaml.safe_load((ALERTS.parent / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(ALERTS)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = run(promtool(), "check", "config", str(local))
    assert done.returncode == 0, done.stdout + done.stderr
