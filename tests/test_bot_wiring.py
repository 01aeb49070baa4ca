"""Start-up wiring: settings, secret redaction, and the command surface the cogs declare."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

import bot as bot_module
from botkit.bot import HappyHorseBot
from core.settings import BotSettings, SettingsError
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxConfig, SandboxServer
from storage.sqlite import open_store

TOKEN = "MTIzNDU2Nzg5.discord-secret-token"
API_KEY = "hh-live-secret-key-0123456789"


def test_missing_token_says_where_to_get_one() -> None:
    """Without DISCORD_TOKEN the error names the Developer Portal and the README section."""
    with pytest.raises(SettingsError, match=r"discord\.com/developers/applications"):
        BotSettings.from_env({})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_INTERVAL_SECONDS", "soon"),
        ("DEFAULT_DAILY_CREDITS", "-1"),
        ("DEV_GUILD_ID", "my-guild"),
        ("CREDIT_PERIOD", "hourly"),
        ("HAPPYHORSE_API_DIALECT", "klingon"),
        ("QUEUE_MAX_WAIT_SECONDS", "0"),
        ("QUEUE_PAUSE_BACKOFF_SECONDS", "later"),
        ("POLL_TARGET_LAG_SECONDS", "0"),
        ("POLL_SKIP_PROBABILITY", "0.7"),
        ("POLL_TAIL_SKIP_PROBABILITY", "-0.1"),
        ("DOWNLOAD_DEADLINE_SECONDS", "500"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    """A malformed setting is refused with its name in the message."""
    with pytest.raises(SettingsError, match=name):
        BotSettings.from_env({"DISCORD_TOKEN": TOKEN, name: value})


def test_queue_settings_defaults_and_overrides() -> None:
    """The queue settings default to the documented values and read the environment."""
    defaults = BotSettings.from_env({"DISCORD_TOKEN": TOKEN})
    assert (
        defaults.queue_max_wait_seconds,
        defaults.queue_pause_backoff_seconds,
        defaults.queue_pause_max_backoff_seconds,
        defaults.queue_check_interval_seconds,
    ) == (1800.0, 30.0, 600.0, 5.0)
    changed = BotSettings.from_env(
        {
            "DISCORD_TOKEN": TOKEN,
            "QUEUE_MAX_WAIT_SECONDS": "600",
            "QUEUE_PAUSE_BACKOFF_SECONDS": "5",
        }
    )
    assert (changed.queue_max_wait_seconds, changed.queue_pause_backoff_seconds) == (600.0, 5.0)


def test_every_pipeline_time_is_a_setting() -> None:
    """The poll and delivery times come from the environment, so all can be scaled down."""
    env = {
        "DISCORD_TOKEN": TOKEN,
        "POLL_TARGET_LAG_SECONDS": "0.4",
        "POLL_MIN_INTERVAL_SECONDS": "0.05",
        "POLL_SKIP_PROBABILITY": "0.06",
        "POLL_TAIL_SKIP_PROBABILITY": "0.01",
        "DELIVERY_LEASE_SECONDS": "30",
        "DOWNLOAD_DEADLINE_SECONDS": "9",
        "UPLOAD_DEADLINE_SECONDS": "9",
        "STALE_SWEEP_INTERVAL_SECONDS": "6",
        "FAILURE_NOTICE_WINDOW_SECONDS": "8640",
    }
    settings = BotSettings.from_env(env)
    assert settings.poll_target_lag_seconds == 0.4
    assert settings.poll_min_interval_seconds == 0.05
    assert settings.poll_skip_probability == 0.06
    assert settings.poll_tail_skip_probability == 0.01
    defaults = BotSettings.from_env({"DISCORD_TOKEN": TOKEN})
    assert (defaults.poll_target_lag_seconds, defaults.poll_skip_probability) == (3.0, 0.05)
    assert defaults.poll_tail_skip_probability == 0.02
    assert settings.delivery_time_limit_seconds == 22.5 < settings.delivery_lease_seconds
    assert settings.stale_sweep_interval_seconds == 6
    assert settings.failure_notice_window_seconds == 8640


def test_settings_repr_hides_secrets() -> None:
    """Neither the Discord token nor the API key shows in the settings' repr."""
    settings = BotSettings.from_env({"DISCORD_TOKEN": TOKEN, "HAPPYHORSE_API_KEY": API_KEY})
    assert TOKEN not in repr(settings) and API_KEY not in repr(settings)
    assert not settings.uses_sandbox


def test_log_records_are_scrubbed_of_secrets() -> None:
    """Secrets in messages, arguments and tracebacks are replaced before any handler writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(bot_module.RedactSecrets([TOKEN, API_KEY]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token=%s key=%s", TOKEN, API_KEY)
        try:
            raise RuntimeError(f"boom with {API_KEY}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "boom with ***" in output and "token=***" in output
    assert TOKEN not in output and API_KEY not in output


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[HappyHorseBot]:
    async with SandboxServer(SandboxConfig()) as sandbox:
        settings = BotSettings.from_env(
            {"DISCORD_TOKEN": TOKEN, "HAPPYHORSE_API_KEY": API_KEY, "SYNC_COMMANDS": "false"}
        )
        settings = settings.model_copy(
            update={"client": dataclasses.replace(settings.client, base_url=sandbox.base_url)}
        )
        store = await open_store(tmp_path / "db.sqlite3", default_daily_credits=3)
        async with HappyHorseClient(settings.client) as client:
            instance = HappyHorseBot(settings, store, client)
            try:
                async with instance:  # initialises the client without logging in
                    await instance.setup_hook()
                    yield instance
            finally:
                await store.close()


async def test_command_surface(bot: HappyHorseBot) -> None:
    """Exactly the documented commands exist, with the documented options and choices."""
    tree = bot.tree
    names = {c.name for c in tree.get_commands(type=discord.AppCommandType.chat_input)}
    assert names == {
        "video", "animate", "quota", "quotas", "jobs", "config", "stats", "job", "privacy",
    }  # fmt: skip
    menus = tree.get_commands(type=discord.AppCommandType.message)
    assert [m.name for m in menus] == ["Animate image"]
    video = tree.get_command("video")
    assert isinstance(video, discord.app_commands.Command)
    params = {p.name: p for p in video.parameters}
    assert list(params) == ["prompt", "aspect_ratio", "duration", "quality", "sound"]
    assert params["prompt"].required
    assert [c.value for c in params["aspect_ratio"].choices] == ["16:9", "9:16", "1:1"]
    assert [c.value for c in params["duration"].choices] == [5, 10]
    assert [c.value for c in params["quality"].choices] == ["std", "pro"]
    animate = tree.get_command("animate")
    assert isinstance(animate, discord.app_commands.Command)
    assert [p.name for p in animate.parameters][:2] == ["image", "prompt"]
    assert animate.parameters[0].type is discord.AppCommandOptionType.attachment
    quotas = tree.get_command("quotas")
    assert isinstance(quotas, discord.app_commands.Group)
    role_set = quotas.get_command("role-set")
    assert isinstance(role_set, discord.app_commands.Command)
    assert [p.name for p in role_set.parameters] == ["role", "credits"]
    privacy = tree.get_command("privacy")
    assert isinstance(privacy, discord.app_commands.Group)
    assert [c.name for c in privacy.commands] == ["export", "delete", "delete-member"]
    config = tree.get_command("config")
    assert isinstance(config, discord.app_commands.Group)
    limits = config.get_command("limits")
    assert isinstance(limits, discord.app_commands.Command)
    assert [(p.name, p.required) for p in limits.parameters] == [
        ("member_running", False),
        ("member_queued", False),
        ("server_running", False),
        ("cooldown_seconds", False),
    ]


async def test_moderator_groups_default_to_manage_server(bot: HappyHorseBot) -> None:
    """/quotas and /config are hidden from members by default (and checked at run time)."""
    for name, subcommands in {
        "quotas": {"set", "default", "reset", "show", "role-set", "role-remove"},
        "config": {
            "show",
            "allow-channel",
            "remove-channel",
            "block-word",
            "unblock-word",
            "log-channel",
            "limits",
            "language",
        },
    }.items():
        group = bot.tree.get_command(name)
        assert isinstance(group, discord.app_commands.Group)
        assert group.default_permissions == discord.Permissions(manage_guild=True)
        assert {c.name for c in group.commands} == subcommands


async def test_allowed_mentions_default_is_none(bot: HappyHorseBot) -> None:
    """The client-wide default pings nobody; messages opt in to the requester only."""
    mentions = bot.allowed_mentions
    assert mentions is not None
    assert mentions.to_dict() == {"parse": []} or mentions.to_dict()["parse"] == []


def test_python_bot_py_without_token_exits_with_help(tmp_path: Path) -> None:
    """`python bot.py` with no DISCORD_TOKEN exits 2 and says where to get one."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    # Run from an empty folder so no .env is picked up; bot.py is addressed by path.
    result = subprocess.run(
        [sys.executable, str(repo / "bot.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "discord.com/developers/applications" in result.stderr
    assert "Traceback" not in result.stderr


def test_python_bot_py_with_unreachable_database_exits_with_reason(tmp_path: Path) -> None:
    """An unreachable DATABASE_URL: exit 1, one line naming the server, never the password."""
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repo = Path(__file__).resolve().parents[1]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DISCORD_TOKEN": TOKEN,
        "DATABASE_URL": f"postgresql://bot:db-pass-0123456789@127.0.0.1:{port}/hh",
    }
    result = subprocess.run(
        [sys.executable, str(repo / "bot.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"Could not open the database: cannot connect to postgresql://127.0.0.1:{port}/hh" in (
        result.stderr
    )
    assert "db-pass-0123456789" not in result.stderr
    assert "Traceback" not in result.stderr
