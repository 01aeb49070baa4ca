"""Guild settings: allowed channels and blocked words, each change audited."""

from __future__ import annotations

import pytest

from storage import AuditAction, GuildSettings, SQLiteStore
from tests.storage.helpers import CHANNEL, GUILD, MODERATOR, OTHER_GUILD


async def test_unconfigured_guild_allows_everywhere(store: SQLiteStore) -> None:
    """A guild that never configured anything gets the defaults."""
    settings = await store.guilds.get(GUILD)
    assert settings == GuildSettings(guild_id=GUILD)
    assert settings.channel_allowed(CHANNEL)


async def test_allowed_channels(store: SQLiteStore) -> None:
    """Once a channel is allowed, only listed channels are; duplicates change nothing."""
    assert await store.guilds.add_allowed_channel(GUILD, CHANNEL, MODERATOR)
    assert not await store.guilds.add_allowed_channel(GUILD, CHANNEL, MODERATOR)
    assert await store.guilds.add_allowed_channel(GUILD, CHANNEL + 1, MODERATOR)
    settings = await store.guilds.get(GUILD)
    assert settings.allowed_channel_ids == {CHANNEL, CHANNEL + 1}
    assert settings.channel_allowed(CHANNEL) and not settings.channel_allowed(CHANNEL + 2)
    assert (await store.guilds.get(OTHER_GUILD)).allowed_channel_ids == frozenset()

    assert await store.guilds.remove_allowed_channel(GUILD, CHANNEL, MODERATOR)
    assert not await store.guilds.remove_allowed_channel(GUILD, CHANNEL, MODERATOR)
    assert (await store.guilds.get(GUILD)).allowed_channel_ids == {CHANNEL + 1}


async def test_blocked_words_are_normalised(store: SQLiteStore) -> None:
    """Words are stored stripped, single-spaced and lower-case, so case never duplicates."""
    assert await store.guilds.add_blocked_word(GUILD, "  Gore ", MODERATOR)
    assert not await store.guilds.add_blocked_word(GUILD, "GORE", MODERATOR)
    assert await store.guilds.add_blocked_word(GUILD, "Bad   Phrase", MODERATOR)
    assert (await store.guilds.get(GUILD)).blocked_words == ("bad phrase", "gore")
    assert await store.guilds.remove_blocked_word(GUILD, "gORe", MODERATOR)
    assert not await store.guilds.remove_blocked_word(GUILD, "gore", MODERATOR)
    assert (await store.guilds.get(GUILD)).blocked_words == ("bad phrase",)


@pytest.mark.parametrize("word", ["", "   ", "x" * 101])
async def test_bad_blocked_words_are_refused(store: SQLiteStore, word: str) -> None:
    """Empty or overlong words are refused before anything is written."""
    with pytest.raises(ValueError, match="blocked word"):
        await store.guilds.add_blocked_word(GUILD, word, MODERATOR)
    assert await store.credits.list_audit(GUILD) == []


async def test_clear(store: SQLiteStore) -> None:
    """Clear drops channels and words but keeps the credit default."""
    await store.credits.set_guild_default(GUILD, 4, MODERATOR)
    assert not await store.guilds.clear(GUILD, MODERATOR)
    await store.guilds.add_allowed_channel(GUILD, CHANNEL, MODERATOR)
    await store.guilds.add_blocked_word(GUILD, "gore", MODERATOR)
    assert await store.guilds.clear(GUILD, MODERATOR)
    assert await store.guilds.get(GUILD) == GuildSettings(guild_id=GUILD, default_credits=4)


async def test_settings_changes_are_audited(store: SQLiteStore) -> None:
    """Every effective change writes one audit row; no-op changes write none."""
    await store.guilds.add_allowed_channel(GUILD, CHANNEL, MODERATOR)
    await store.guilds.add_allowed_channel(GUILD, CHANNEL, MODERATOR)  # no-op
    await store.guilds.add_blocked_word(GUILD, "Gore", MODERATOR + 1)
    await store.guilds.remove_blocked_word(GUILD, "gore", MODERATOR)
    await store.guilds.remove_allowed_channel(GUILD, CHANNEL + 9, MODERATOR)  # no-op
    await store.guilds.add_blocked_word(GUILD, "blood", MODERATOR)
    await store.guilds.clear(GUILD, MODERATOR)
    log = await store.credits.list_audit(GUILD)
    assert [(e.action, e.moderator_id, e.old_value, e.new_value) for e in log] == [
        (AuditAction.CLEAR_SETTINGS, MODERATOR, f"channels: {CHANNEL}; words: blood", None),
        (AuditAction.ADD_BLOCKED_WORD, MODERATOR, None, "blood"),
        (AuditAction.REMOVE_BLOCKED_WORD, MODERATOR, "gore", None),
        (AuditAction.ADD_BLOCKED_WORD, MODERATOR + 1, None, "gore"),
        (AuditAction.ADD_ALLOWED_CHANNEL, MODERATOR, None, str(CHANNEL)),
    ]
    assert all(e.target_user_id is None for e in log)
