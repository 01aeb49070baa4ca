"""What the monitoring files ask of the bot: promtool, and the series the rules and panels read."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "tests"
DASHBOARD = REPO / "deploy" / "grafana" / "happyhorse.json"

_SELECTOR = re.compile(r"\b(happyhorse_[a-z_]+|process_[a-z_]+)\b(\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')
# Labels Prometheus adds at scrape time: the bot never exports them.
TARGET_LABELS = {"job", "instance"}


def promtool() -> str:
    """promtool's path; skipped when missing, failed under CI=true (CI installs it)."""
    found = shutil.which("promtool")
    if found is None:
        reason = (
            "promtool is not installed (Debian: apt-get install prometheus); install it to "
            "test the alert rules"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return found


def alert_rules() -> list[dict[str, object]]:
    """Every rule in alerts.yml."""
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every query in the Grafana dashboard."""
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in data["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def selectors(expr: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The bot's series an expression selects: (metric name, {label: exact value})."""
    for found in _SELECTOR.finditer(expr):
        labels = {
            name: value
            for name, op, value in _MATCHER.findall(found[2] or "")
            if op == "=" and name not in TARGET_LABELS
        }
        yield found[1], labels
