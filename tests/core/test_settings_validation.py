"""Every setting is checked at start-up: a malformed one stops the bot with one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import BotSettings, SettingsError
from happyhorse.settings import ClientSettings
from tests.e2e.process import REPO, setting_names

TOKEN = "discord-token-for-validation-tests"

# (variable, value): each must be refused with a message that names the variable.
BAD_VALUES = [
    # nan and inf parse as floats; a NaN lease was stored NULL on SQLite and NaN on
    # PostgreSQL, and POLL_INTERVAL_SECONDS=inf stopped housekeeping.
    *[
        (name, value)
        for name in (
            "POLL_INTERVAL_SECONDS",
            "POLL_FIRST_DELAY_SECONDS",
            "DELIVERY_LEASE_SECONDS",
            "JOB_DEADLINE_SECONDS",
            "QUEUE_MAX_WAIT_SECONDS",
            "STATUS_EDIT_INTERVAL_SECONDS",
            "PROCESS_HEARTBEAT_SECONDS",
            "PROCESS_LIVENESS_SECONDS",
            "POLL_SKIP_PROBABILITY",
            "SANDBOX_COMPLETE_AFTER_SECONDS",
            "HAPPYHORSE_TIMEOUT_SECONDS",
            "HAPPYHORSE_RETRY_CAP_SECONDS",
            "RESULT_URL_TTL_HOURS",
        )
        for value in ("nan", "inf", "-inf", "NaN", "Infinity")
    ],
    # Out of the range the store accepts (0 to 1,000,000 credits): a traceback before.
    ("DEFAULT_DAILY_CREDITS", "1000001"),
    ("DEFAULT_DAILY_CREDITS", "99999999999999999999"),
    ("DEFAULT_DAILY_CREDITS", "-1"),
    ("COST_BASE", "0"),
    ("COST_BASE", "2000000"),
    ("COST_PRO_MULTIPLIER", "400000"),
    # Finite but absurd: a lease of 1e300 s overflows every timestamp.
    ("DELIVERY_LEASE_SECONDS", "1e300"),
    ("RETENTION_DAYS", "10000000"),
    ("POLL_BATCH_SIZE", "0"),
    ("POLL_MIN_HISTORY", "201"),
    ("SERVICE_PRICE_PRO", "-5"),
    # The media pool: at least one worker, not a fork bomb; a URL lifetime of 0 or more.
    ("TRANSCODE_CONCURRENCY", "0"),
    ("TRANSCODE_CONCURRENCY", "65"),
    ("TRANSCODE_CONCURRENCY", "two"),
    ("RESULT_URL_TTL_HOURS", "-1"),
    ("RESULT_URL_TTL_HOURS", "1e300"),
    # Garbage.
    ("POLL_INTERVAL_SECONDS", "5s"),
    ("POLL_BATCH_SIZE", "8.5"),
    ("DELIVERY_CONCURRENCY", "four"),
    ("MAX_IMAGE_BYTES", "10MB"),
    ("SYNC_COMMANDS", "maybe"),
    ("REQUIRE_API_KEY", "2"),
    ("CREDIT_PERIOD", "fortnightly"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "yaml"),
    ("DEV_GUILD_ID", "0"),
    ("SHARD_COUNT", "-2"),
    ("METRICS_PORT", "65536"),
    ("DATABASE_URL", "sqlite:///x.db"),
    ("HAPPYHORSE_STATUS_BURST", "lots"),
    ("HAPPYHORSE_API_DIALECT", "yaml"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(name: str, value: str) -> None:
    """nan, inf, out-of-range credits and garbage: refused, and the message names the
    variable, on one line."""
    with pytest.raises(SettingsError) as caught:
        BotSettings.from_env({"DISCORD_TOKEN": TOKEN, name: value})
    message = str(caught.value)
    assert re.search(rf"\b{name}\b", message), message
    assert "\n" not in message


def test_the_message_says_what_is_allowed_and_what_was_given() -> None:
    """The operator reads the rule and their own value, not a pydantic dump."""
    with pytest.raises(SettingsError) as caught:
        BotSettings.from_env({"DISCORD_TOKEN": TOKEN, "POLL_INTERVAL_SECONDS": "inf"})
    assert str(caught.value) == (
        "POLL_INTERVAL_SECONDS must be a finite number, at least 0.05, got 'inf'"
    )
    with pytest.raises(SettingsError) as caught:
        BotSettings.from_env({"DISCORD_TOKEN": TOKEN, "DEFAULT_DAILY_CREDITS": "1000001"})
    assert str(caught.value) == "DEFAULT_DAILY_CREDITS must be at most 1000000, got '1000001'"


def test_settings_built_in_code_are_checked_too() -> None:
    """`BotSettings(...)` runs the same checks, so no caller can hand the bot a NaN."""
    with pytest.raises(ValueError, match="poll_interval_seconds"):
        BotSettings(discord_token=TOKEN, poll_interval_seconds=float("nan"))


def example_env() -> dict[str, str]:
    """The values `.env.example` writes out, as an operator who copies it gets them."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE))


def test_every_documented_default_loads_and_matches_the_code() -> None:
    """`.env.example` copied as it is loads, and gives exactly the built-in defaults."""
    documented = BotSettings.from_env({**example_env(), "DISCORD_TOKEN": TOKEN})
    assert documented == BotSettings.from_env({"DISCORD_TOKEN": TOKEN})
    assert documented == BotSettings(discord_token=TOKEN, client=ClientSettings())
    # Every setting empty (as the end-to-end runs pass them) means the defaults as well.
    blank = dict.fromkeys(setting_names(), "")
    assert BotSettings.from_env({**blank, "DISCORD_TOKEN": TOKEN}) == documented


def test_edge_values_inside_the_ranges_load() -> None:
    """The boundaries themselves are allowed: 0 and 1,000,000 credits, zero delays."""
    settings = BotSettings.from_env(
        {
            "DISCORD_TOKEN": TOKEN,
            "DEFAULT_DAILY_CREDITS": "1000000",
            "POLL_FIRST_DELAY_SECONDS": "0",
            "STATUS_EDIT_INTERVAL_SECONDS": "0",
            "RETENTION_DAYS": "0",
            "POLL_SKIP_PROBABILITY": "0",
            "SERVICE_PRICE_STD": "0",
            "METRICS_PORT": "65535",
            "LOG_LEVEL": " debug ",
            "TRANSCODE_CONCURRENCY": "64",
            "RESULT_URL_TTL_HOURS": "0",
        }
    )
    assert (settings.transcode_concurrency, settings.result_url_ttl_hours) == (64, 0.0)
    assert settings.default_daily_credits == 1_000_000
    assert (settings.poll_first_delay_seconds, settings.retention_days) == (0.0, 0)
    assert (settings.metrics_port, settings.log_level) == (65535, "DEBUG")
    assert BotSettings.from_env({"DISCORD_TOKEN": TOKEN, "DEFAULT_DAILY_CREDITS": "0"})


def test_bot_exits_with_code_2_and_one_line_on_a_bad_setting(tmp_path: Path) -> None:
    """`python bot.py` with an out-of-range credit allowance: exit code 2 and one line on
    stderr naming the variable (it was a traceback from the store, exit code 1)."""
    env = {k: v for k, v in os.environ.items() if k not in setting_names()}
    env.update(dict.fromkeys(setting_names(), ""))
    env.update(
        DISCORD_TOKEN=TOKEN,
        DEFAULT_DAILY_CREDITS="2000000",
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "bot.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: DEFAULT_DAILY_CREDITS ")
