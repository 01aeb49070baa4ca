"""The bot's languages on the Discord side: who reads a message, and the command menus.

* `tr_for(interaction)`: private replies (ephemeral answers, errors, refusals, forms,
  button labels) in the member's own Discord language (``interaction.locale``).
* `tr_for_guild(bot, guild_id)` / `public_tr(bot, interaction)`: public messages (cards,
  posts, notices, the moderator log, /stats) in the server's language (see
  ``core.languages`` for the rule).
* `CatalogTranslator`: command, option and choice names and descriptions for Discord's
  menus, from the same catalogs (``tree.set_translator`` in ``botkit.bot``).

Marking the decorator strings: ``locale_str("...")`` (an extraction keyword in
``babel.cfg``) so ``pybabel extract`` finds them; English names stay the canonical ones.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from typing import Protocol

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation, TranslationContextTypes, locale_str

from core.i18n import ENGLISH, SOURCE_LOCALE, Tr, for_locale, load_catalogs, resolve
from core.languages import GuildLanguages

log = logging.getLogger(__name__)

__all__ = [
    "CatalogTranslator",
    "locale_str",
    "locale_text",
    "public_tr",
    "tr_for",
    "tr_for_guild",
    "valid_command_name",
    "valid_description",
    "valid_menu_name",
]

NAME_LOCATIONS = frozenset(
    {
        TranslationContextLocation.command_name,
        TranslationContextLocation.group_name,
        TranslationContextLocation.parameter_name,
    }
)
MAX_NAME = 32
MAX_DESCRIPTION = 100


class HasLanguages(Protocol):
    """The bot, as far as languages go (``HappyHorseBot.languages``)."""

    @property
    def languages(self) -> GuildLanguages:
        """Each server's language for public messages."""
        ...


def _locale_code(locale: discord.Locale | str | None) -> str | None:
    if locale is None:
        return None
    return str(getattr(locale, "value", locale))


def tr_for(interaction: discord.Interaction) -> Tr:
    """The member's language, for what only they see."""
    return for_locale(_locale_code(interaction.locale))


async def tr_for_guild(
    bot: HasLanguages, guild_id: int | None, guild_locale: str | None = None
) -> Tr:
    """The server's language, for what everyone there sees (background work included)."""
    return await bot.languages.tr(guild_id, guild_locale)


async def public_tr(bot: HasLanguages, interaction: discord.Interaction) -> Tr:
    """The server's language for a public message answering ``interaction``.

    Also records the server's Discord language (one write when it is new or changed), so
    the posts that follow from this interaction later, from any process (the video, a
    refund notice), are in the same language. Only interactions that lead to public text
    record it: a refused request changes nothing.
    """
    guild_locale = _locale_code(interaction.guild_locale)
    if interaction.guild_id is not None:
        await bot.languages.observe(interaction.guild_id, guild_locale)
    return await bot.languages.tr(interaction.guild_id, guild_locale)


def _name_character(char: str) -> bool:
    if char in "-_":
        return True
    if unicodedata.category(char)[0] in "LN":
        return True
    # Devanagari and Thai combining marks are allowed too (\p{sc=Deva}, \p{sc=Thai}).
    return "\u0900" <= char <= "\u097f" or "\u0e00" <= char <= "\u0e7f"


def valid_command_name(name: str) -> bool:
    """Discord's rule for command and option names: 1-32 characters, lower case where the
    script has case, letters, numbers, ``-`` and ``_`` (plus Devanagari and Thai marks)."""
    return (
        1 <= len(name) <= MAX_NAME
        and name == name.lower()
        and all(_name_character(char) for char in name)
    )


def valid_menu_name(name: str) -> bool:
    """Discord's rule for context-menu names ("Animate image"): 1-32 characters that "may
    be mixed case and can include spaces"; otherwise the command names' characters."""
    return (
        1 <= len(name) <= MAX_NAME
        and name.strip() == name
        and all(char == " " or _name_character(char) for char in name)
    )


def valid_description(text: str) -> bool:
    """Discord's rule for descriptions and choice names: 1-100 characters."""
    return 1 <= len(text) <= MAX_DESCRIPTION


def locale_text(msgid: str, /, **params: object) -> locale_str:
    """A command string with named placeholders (``{max}``): filled in English now, and in
    each locale when the translator runs (numbers in that locale's convention)."""
    return locale_str(ENGLISH.gettext(msgid, **params), msgid=msgid, params=params)


class CatalogTranslator(app_commands.Translator):
    """Command names and descriptions in every locale the catalogs cover.

    A locale Discord has but we lack gets its language's catalog (``es-419`` reads
    ``es-ES``); English ones, and strings no catalog translates, keep the canonical text.
    A translation breaking Discord's limits is left out (and logged): one bad field would
    make Discord refuse the whole sync. The catalog tests keep that from happening.
    """

    async def load(self) -> None:
        """Read the catalogs once, at start-up, in a worker thread: parsing every ``.po``
        file takes about 0.2 s, which would stall the event loop (the gateway's
        heartbeat, other shards) if done on it."""
        await asyncio.to_thread(load_catalogs)

    async def translate(
        self, string: locale_str, locale: discord.Locale, context: TranslationContextTypes
    ) -> str | None:
        """The string for ``locale``, or None to keep the English one."""
        ours = resolve(locale.value)
        if ours == SOURCE_LOCALE:
            return None
        msgid = string.extras.get("msgid", string.message)
        params = string.extras.get("params") or {}
        tr = for_locale(ours)
        if not tr.has(msgid):
            return None
        text = tr.gettext(msgid, **params)
        if isinstance(context.data, app_commands.ContextMenu):
            if not valid_menu_name(text):
                log.warning("Dropped invalid %s menu name %r for %s", ours, text, msgid)
                return None
        elif context.location in NAME_LOCATIONS:
            if not valid_command_name(text):
                log.warning("Dropped invalid %s name %r for %s", ours, text, msgid)
                return None
        elif not valid_description(text):
            log.warning("Dropped over-long %s text for %r", ours, msgid)
            return None
        return text
