"""Settings for running at scale: shards, the operators' endpoint and the log format."""

from __future__ import annotations

import pytest

from core.settings import BotSettings, SettingsError

TOKEN = "discord-token-for-settings-tests"


def settings(**env: str) -> BotSettings:
    return BotSettings.from_env({"DISCORD_TOKEN": TOKEN, **env})


def test_unset_means_automatic_sharding_in_one_process() -> None:
    """No shard settings: discord.py picks the count and this process runs every shard."""
    plain = settings()
    assert (plain.shard_count, plain.shard_ids, plain.gateway_free) == (None, None, False)
    # `.env.example` lists SHARD_COUNT empty; an empty SHARD_IDS without a count is unset too.
    blank = settings(SHARD_COUNT="", SHARD_IDS="")
    assert (blank.shard_count, blank.shard_ids, blank.gateway_free) == (None, None, False)


def test_shard_ids_pick_this_process_shards() -> None:
    """SHARD_IDS lists the shards this process connects, in the order given."""
    chosen = settings(SHARD_COUNT="4", SHARD_IDS=" 3, 1 ")
    assert (chosen.shard_count, chosen.shard_ids, chosen.gateway_free) == (4, (3, 1), False)


def test_count_without_ids_runs_every_shard_here() -> None:
    """SHARD_COUNT alone: this one process connects all of them."""
    assert settings(SHARD_COUNT="2").shard_ids is None


def test_present_but_empty_ids_mean_background_work_only() -> None:
    """SHARD_IDS= with a count: no gateway shard, only the background work."""
    background = settings(SHARD_COUNT="2", SHARD_IDS="")
    assert background.shard_ids == ()
    assert background.gateway_free


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be at least 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT must be a whole number"),
        ({"SHARD_IDS": "0,1"}, "SHARD_IDS=0,1 needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, r"shard 2 does not exist .* 0 to 1"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "-1"}, "shard -1 does not exist"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0;1"}, "separated by commas"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,,1"}, "separated by commas"),
        ({"SHARD_COUNT": "3", "SHARD_IDS": "1,1"}, "lists shard 1 twice"),
        ({"METRICS_PORT": "http"}, "METRICS_PORT must be a whole number"),
        ({"METRICS_PORT": "0"}, "between 1 and 65535"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT must be at most 65535"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be text or json"),
    ],
)
def test_bad_scale_settings_say_what_is_allowed(env: dict[str, str], message: str) -> None:
    """Each malformed value is refused with a message naming the setting and the rule."""
    with pytest.raises(SettingsError, match=message):
        settings(**env)


def test_metrics_endpoint_is_off_by_default_and_local_when_on() -> None:
    """No METRICS_PORT, no endpoint; with one, it binds to loopback unless told otherwise."""
    assert settings().metrics_port is None
    on = settings(METRICS_PORT="9464")
    assert (on.metrics_port, on.metrics_host) == (9464, "127.0.0.1")
    assert settings(METRICS_PORT="9464", METRICS_HOST="0.0.0.0").metrics_host == "0.0.0.0"


def test_log_format_defaults_to_text() -> None:
    """LOG_FORMAT is text unless json is asked for (in any case)."""
    assert settings().log_format == "text"
    assert settings(LOG_FORMAT="JSON").log_format == "json"
