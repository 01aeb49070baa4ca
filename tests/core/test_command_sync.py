"""SYNC_COMMANDS values and the command payload's fingerprint."""

from __future__ import annotations

import pytest

from core.command_sync import SyncMode, parse_sync_mode, payload_hash, sync_target
from core.settings import BotSettings, SettingsError


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("", SyncMode.AUTO),
        ("auto", SyncMode.AUTO),
        ("always", SyncMode.ALWAYS),
        ("true", SyncMode.ALWAYS),
        ("1", SyncMode.ALWAYS),
        ("never", SyncMode.NEVER),
        ("false", SyncMode.NEVER),
        (" Off ", SyncMode.NEVER),
        ("sometimes", None),
    ],
)
def test_sync_modes_keep_the_old_true_and_false(raw: str, mode: SyncMode | None) -> None:
    """auto is the default; true/false still mean always/never."""
    assert parse_sync_mode(raw) is mode


def test_settings_default_to_auto_and_refuse_nonsense() -> None:
    """BotSettings reads SYNC_COMMANDS; an unknown value names the allowed ones."""
    env = {"DISCORD_TOKEN": "x" * 20}
    assert BotSettings.from_env(env).sync_commands is SyncMode.AUTO
    assert BotSettings.from_env({**env, "SYNC_COMMANDS": "false"}).sync_commands is SyncMode.NEVER
    with pytest.raises(SettingsError, match="auto, always or never"):
        BotSettings.from_env({**env, "SYNC_COMMANDS": "maybe"})


def test_payload_hash_ignores_order_but_not_content() -> None:
    """Reordered commands or keys: same hash; a changed description: another."""
    video = {"name": "video", "type": 1, "description": "Make a video", "options": []}
    quota = {"type": 1, "name": "quota", "description": "Your credits"}
    menu = {"name": "Animate image", "type": 3}
    base = payload_hash([video, quota, menu])
    assert payload_hash([menu, quota, dict(reversed(video.items()))]) == base
    assert payload_hash([{**video, "description": "Make a clip"}, quota, menu]) != base
    localized = {**quota, "description_localizations": {"de": "Deine Credits"}}
    assert payload_hash([video, localized, menu]) != base


def test_targets_name_application_and_guild() -> None:
    """Another application or another guild is another target."""
    assert sync_target(1, None) == "app:1:global"
    assert sync_target(1, 5) == "app:1:guild:5"
    assert sync_target(2, 5) != sync_target(1, 5)
