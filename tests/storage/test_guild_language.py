"""A guild's language: a moderator's choice (audited) and its Discord language as last
seen; and the rule that picks between them (``core.languages``), on both engines."""

from __future__ import annotations

from core.languages import GuildLanguages
from storage import AuditAction, SQLStore
from tests.storage.helpers import GUILD, MODERATOR, OTHER_GUILD


async def test_language_choice_is_stored_and_audited(store: SQLStore) -> None:
    """Set, change and clear: each an audit row with the old and new value."""
    first = await store.guilds.set_language(GUILD, "fr", MODERATOR)
    assert (first.action, first.old_value, first.new_value) == (
        AuditAction.SET_LANGUAGE,
        None,
        "fr",
    )
    second = await store.guilds.set_language(GUILD, "ja", MODERATOR)
    assert (second.old_value, second.new_value) == ("fr", "ja")
    assert (await store.guilds.get(GUILD)).language == "ja"
    cleared = await store.guilds.set_language(GUILD, None, MODERATOR)
    assert (cleared.old_value, cleared.new_value) == ("ja", None)
    assert (await store.guilds.get(GUILD)).language is None
    assert (await store.guilds.get(OTHER_GUILD)).language is None
    audit = await store.credits.list_audit(GUILD, 10)
    assert [e.action for e in audit].count(AuditAction.SET_LANGUAGE) == 3


async def test_discord_locale_is_written_only_when_it_changes(store: SQLStore) -> None:
    """The first sighting and a change write; seeing the same locale again does not."""
    assert await store.guilds.remember_discord_locale(GUILD, "de")
    assert not await store.guilds.remember_discord_locale(GUILD, "de")
    assert await store.guilds.remember_discord_locale(GUILD, "pt-BR")
    settings = await store.guilds.get(GUILD)
    assert settings.discord_locale == "pt-BR" and settings.language is None


async def test_the_choice_beats_the_discord_language_which_beats_english(
    store: SQLStore,
) -> None:
    """chosen > the server's Discord language (resolved to our catalogs) > English."""
    languages = GuildLanguages(store.guilds)
    assert await languages.locale(GUILD) == "en-US"
    await languages.observe(GUILD, "es-419")
    assert await languages.locale(GUILD) == "es-ES"
    assert (await store.guilds.get(GUILD)).discord_locale == "es-419"
    await languages.choose(GUILD, "ru", MODERATOR)
    assert await languages.locale(GUILD) == "ru"
    await languages.choose(GUILD, None, MODERATOR)
    assert await languages.locale(GUILD) == "es-ES"
    fresh = GuildLanguages(store.guilds)  # another process: reads what was stored
    assert await fresh.locale(GUILD) == "es-ES"
    assert await fresh.locale(OTHER_GUILD, "ko") == "en-US"
