"""The bot's languages, free of Discord: gettext catalogs read with Babel, locale
resolution, deferred messages and the locale's number, size and duration formats.

Two ways to say something, both extracted by ``pybabel extract`` (keywords ``_`` and
``ngettext``; see ``babel.cfg``):

* ``tr._("Hello {name}", name=...)`` / ``tr.ngettext(...)`` on a `Tr` (one locale) give
  the text in that locale, now. The cogs get their `Tr` from ``botkit.i18n``.
* the module functions `_` and `ngettext` give a `Message`: a ``str`` holding the English
  text (so logs, tests and code that only wants English keep working) that remembers its
  source and placeholders, so ``tr(message)`` says it again in any locale later. Core
  code and module-level constants use these: core does not know who will read the text.

Placeholders are named (``{credits}``) and filled with ``str.format``; a placeholder's
value may itself be a `Message`, `Number`, `Size` or `Duration`, each said in the reader's
locale. Times are not formatted here: Discord timestamps (``<t:…:R>``) already show in
each member's language.

Catalogs are ``core/locales/<locale>/LC_MESSAGES/messages.po``, read with Babel at start-up
(`load_catalogs`), no compile step; ``core/locales/messages.pot`` is the English template.
A locale is added by copying the template there: the list of locales is the folders.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.units import format_unit

LOCALE_DIR = Path(__file__).with_name("locales")
DOMAIN = "messages"
SOURCE_LOCALE = "en-US"
"""The language the code is written in; the canonical one for command names."""
PSEUDO_LOCALE = "x-pseudo"
"""A test locale made from the source: every letter accented, every text in ⟦ ⟧."""

EXTRACT_KEYWORDS: tuple[str, ...] = (
    "_",
    "ngettext:1,2",
    "pgettext:1c,2",
    "locale_str",
    "locale_text",
)
"""pybabel's keywords for our markers (``-k`` each, with ``--no-default-keywords``)."""

DISCORD_LOCALES: tuple[str, ...] = (
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu",
    "nl", "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru",
    "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
)  # fmt: skip
"""Every locale Discord sends (its developer docs, "Locales")."""


class Localizable(Protocol):
    """Anything that can say itself in a locale (a placeholder's value, a message)."""

    def localize(self, tr: Tr) -> str:
        """The text in ``tr``'s locale."""
        ...


def discord_code(folder: str) -> str:
    """A catalog folder's name (gettext style, ``pt_BR``) as Discord's code (``pt-BR``)."""
    return folder.replace("_", "-")


def babel_code(locale: str) -> str:
    """Our locale code as Babel's identifier (``pt-BR`` -> ``pt_BR``)."""
    return "en_US" if locale == PSEUDO_LOCALE else locale.replace("-", "_")


@dataclass(frozen=True)
class Catalog:
    """One locale's translations: a gettext table built from its ``.po`` file."""

    locale: str
    translations: gettext.NullTranslations
    translated: frozenset[str] = frozenset()
    """The message ids this catalog translates (fuzzy and empty entries excluded)."""

    def has(self, msgid: str) -> bool:
        """Whether this catalog translates ``msgid``."""
        return msgid in self.translated


def read_catalog(locale: str, path: Path) -> Catalog:
    """Parse one ``.po`` file with Babel and build its gettext table in memory.

    Babel writes the ``.mo`` form into a buffer and the standard library reads it, so the
    plural rule comes from the file's ``Plural-Forms`` header, exactly as gettext would
    use it; fuzzy entries are left out, as ``msgfmt`` would.
    """
    with path.open("rb") as file:
        catalog = read_po(file, locale=babel_code(locale), domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    translated = frozenset(
        _key(message.context, message.id if isinstance(message.id, str) else message.id[0])
        for message in catalog
        if message.id and not message.fuzzy and _complete(message.string)
    )
    return Catalog(locale, gettext.GNUTranslations(buffer), translated)


def _key(context: str | None, msgid: str) -> str:
    """gettext's key for a message with a context (``context\x04msgid``)."""
    return msgid if context is None else f"{context}\x04{msgid}"


def _complete(string: object) -> bool:
    if isinstance(string, str):
        return bool(string)
    return isinstance(string, tuple | list) and all(string)


def catalog_folders(directory: Path = LOCALE_DIR) -> dict[str, Path]:
    """Every shipped catalog: our locale code -> its ``messages.po``."""
    return {
        discord_code(entry.name): entry / "LC_MESSAGES" / f"{DOMAIN}.po"
        for entry in sorted(directory.iterdir())
        if (entry / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    }


@functools.cache
def load_catalogs(directory: Path = LOCALE_DIR) -> Mapping[str, Catalog]:
    """Read every catalog once (at start-up; later calls return the same tables)."""
    folders = catalog_folders(directory)
    return {locale: read_catalog(locale, path) for locale, path in folders.items()}


@functools.cache
def locales(directory: Path = LOCALE_DIR) -> tuple[str, ...]:
    """The locales the bot speaks: English first, then every catalog folder (listed, not
    parsed: cogs build their language choices from this when imported)."""
    return (SOURCE_LOCALE, *catalog_folders(directory))


def resolve(discord_locale: str | None) -> str:
    """The locale we answer a Discord locale in: the same one, else one of its language
    (``es-419`` -> ``es-ES``, ``pt-PT`` -> ``pt-BR``), else English."""
    if not discord_locale:
        return SOURCE_LOCALE
    if discord_locale == PSEUDO_LOCALE:
        return PSEUDO_LOCALE
    ours = locales()
    if discord_locale in ours:
        return discord_locale
    language = discord_locale.split("-")[0].split("_")[0].lower()
    for locale in ours:
        if locale.split("-")[0].lower() == language:
            return locale
    return SOURCE_LOCALE


def native_name(locale: str) -> str:
    """The locale's own name for itself ('Deutsch', '日本語', 'Português (Brasil)')."""
    name = Locale.parse(babel_code(locale)).get_display_name() or locale
    return name[:1].upper() + name[1:]


# -- messages ------------------------------------------------------------------------------


class Message(str):
    """A user-facing message: its English text, and what it takes to say it in any locale.

    A ``str`` (English) everywhere a string is expected; ``tr(message)`` renders it in
    ``tr``'s locale. Built with `_` or `ngettext`, never directly.
    """

    msgid: str
    plural: str | None
    n: int | None
    params: Mapping[str, object]

    def __new__(
        cls,
        msgid: str,
        plural: str | None = None,
        count: int | None = None,
        params: Mapping[str, object] | None = None,
    ) -> Message:
        """Render the English text once; keep the source for other locales."""
        values = dict(params or {})
        if plural is None:
            text = ENGLISH.gettext(msgid, **values)
        else:
            text = ENGLISH.ngettext(msgid, plural, count or 0, **values)
        message = super().__new__(cls, text)
        message.msgid = msgid
        message.plural = plural
        message.n = count
        message.params = values
        return message

    def localize(self, tr: Tr) -> str:
        """This message in ``tr``'s locale."""
        if self.plural is None:
            return tr.gettext(self.msgid, **self.params)
        return tr.ngettext(self.msgid, self.plural, self.n or 0, **self.params)


def _(msgid: str, /, **params: object) -> Message:
    """Mark a message for translation; say it later in the reader's locale (``tr(m)``)."""
    return Message(msgid, None, None, params)


def ngettext(singular: str, plural: str, count: int, /, **params: object) -> Message:
    """Like `_` with a plural form chosen by ``count`` in each locale's own rules."""
    return Message(singular, plural, count, params)


lazy_gettext = _
"""For module-level constants: the same deferred `Message` (English until rendered)."""


@dataclass(frozen=True)
class Number:
    """An integer or decimal placeholder, written in the reader's convention (1,000 / 1.000)."""

    value: int | float

    def localize(self, tr: Tr) -> str:
        """The number in ``tr``'s locale."""
        return tr.number(self.value)

    def __str__(self) -> str:
        return ENGLISH.number(self.value)


@dataclass(frozen=True)
class Size:
    """A size in bytes, written in the reader's units and decimal separator."""

    bytes: int

    def localize(self, tr: Tr) -> str:
        """The size in ``tr``'s locale."""
        return tr.size(self.bytes)

    def __str__(self) -> str:
        return ENGLISH.size(self.bytes)


@dataclass(frozen=True)
class Duration:
    """A length of time in seconds, written as the reader's units ('1 min 30 s')."""

    seconds: float

    def localize(self, tr: Tr) -> str:
        """The duration in ``tr``'s locale."""
        return tr.duration(self.seconds)

    def __str__(self) -> str:
        return ENGLISH.duration(self.seconds)


# -- one locale ----------------------------------------------------------------------------

_PROTECTED = re.compile(r"\{[^{}]*\}|<[^<>]*>|`[^`]*`|\]\([^)]*\)|https?://\S+")
_ACCENTED = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "ȧƀƈḓḗƒɠħīĵķŀḿƞǿƥɋřşŧŭṽẇẋẏẑȦƁƇḒḖƑƓĦĪĴĶĿḾȠǾƤɊŘŞŦŬṼẆẊẎẐ",
)
PSEUDO_OPEN, PSEUDO_CLOSE = "⟦", "⟧"


def pseudo(text: str) -> str:
    """The pseudo-locale's form of a source text: letters accented outside placeholders,
    mentions, code and links, the whole wrapped in ⟦ ⟧ so untranslated text stands out."""
    parts: list[str] = []
    last = 0
    for match in _PROTECTED.finditer(text):
        parts.append(text[last : match.start()].translate(_ACCENTED))
        parts.append(match.group())
        last = match.end()
    parts.append(text[last:].translate(_ACCENTED))
    return f"{PSEUDO_OPEN}{''.join(parts)}{PSEUDO_CLOSE}"


@dataclass(frozen=True)
class Tr:
    """Everything said in one locale: messages, plurals, numbers, sizes and durations."""

    locale: str
    catalog: Catalog | None = field(default=None, repr=False, compare=False)

    @property
    def babel_locale(self) -> str:
        """The locale as Babel names it (for its number and unit formats)."""
        return babel_code(self.locale)

    def has(self, msgid: str) -> bool:
        """Whether this locale's catalog translates ``msgid`` (English has everything)."""
        if self.locale == SOURCE_LOCALE or self.locale == PSEUDO_LOCALE:
            return True
        return self.catalog is not None and self.catalog.has(msgid)

    def lookup(self, msgid: str) -> str | None:
        """The catalog's translation of ``msgid``, or None (English and missing ones)."""
        if self.catalog is None or not self.catalog.has(msgid):
            return None
        return self.catalog.translations.gettext(msgid)

    def _fill(self, template: str, params: Mapping[str, object]) -> str:
        if not params:
            return template
        return template.format(**{name: self.value(value) for name, value in params.items()})

    def value(self, value: object) -> str:
        """A placeholder's value as text in this locale."""
        localize = getattr(value, "localize", None)
        if callable(localize):
            return str(localize(self))
        return str(value)

    def gettext(self, msgid: str, /, **params: object) -> str:
        """``msgid`` in this locale (English where the catalog lacks it), filled in."""
        if self.locale == PSEUDO_LOCALE:
            return self._fill(pseudo(msgid), params)
        if self.catalog is None:
            return self._fill(msgid, params)
        return self._fill(self.catalog.translations.gettext(msgid), params)

    _ = gettext

    def pgettext(self, context: str, msgid: str, /, **params: object) -> str:
        """``msgid`` in this locale where the same English words need a different
        translation (``context`` tells translators which)."""
        if self.locale == PSEUDO_LOCALE:
            return self._fill(pseudo(msgid), params)
        if self.catalog is None or not self.catalog.has(_key(context, msgid)):
            return self._fill(msgid, params)
        return self._fill(self.catalog.translations.pgettext(context, msgid), params)

    def ngettext(self, singular: str, plural: str, count: int, /, **params: object) -> str:
        """The form of a message for ``count`` in this locale's plural rule, filled in."""
        if self.locale == PSEUDO_LOCALE:
            return self._fill(pseudo(singular if count == 1 else plural), params)
        if self.catalog is None:
            return self._fill(singular if count == 1 else plural, params)
        return self._fill(self.catalog.translations.ngettext(singular, plural, count), params)

    def __call__(self, text: str) -> str:
        """A `Message` (or anything `Localizable`) said in this locale; other text as is."""
        localize = getattr(text, "localize", None)
        if callable(localize):
            return str(localize(self))
        return text

    def number(self, value: int | float) -> str:
        """A number with this locale's grouping and decimal signs."""
        if isinstance(value, int):
            return _integer(self.babel_locale, value)
        return format_decimal(value, locale=self.babel_locale)

    def size(self, size_bytes: int) -> str:
        """A file size ('9.5 MB', '9,5 Mo'); binary multiples, as Discord's limits are."""
        units = (
            (1024**3, "digital-gigabyte"),
            (1024**2, "digital-megabyte"),
            (1024, "digital-kilobyte"),
        )
        for factor, unit in units:
            if size_bytes >= factor:
                value = round(size_bytes / factor, 1)
                return format_unit(
                    value, unit, length="short", locale=self.babel_locale, format="#,##0.#"
                )
        return format_unit(size_bytes, "digital-byte", length="short", locale=self.babel_locale)

    def duration(self, seconds: float) -> str:
        """A duration in whole seconds as this locale's short units ('1 h 5 min', '90 s' is
        written '1 min 30 s')."""
        total = max(0, round(seconds))
        parts: list[tuple[int, str]] = []
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        for amount, unit in (
            (days, "duration-day"),
            (hours, "duration-hour"),
            (minutes, "duration-minute"),
            (secs, "duration-second"),
        ):
            if amount:
                parts.append((amount, unit))
        if not parts:
            parts = [(0, "duration-second")]
        return " ".join(
            format_unit(amount, unit, length="short", locale=self.babel_locale)
            for amount, unit in parts
        )

    def timedelta(self, delta: timedelta) -> str:
        """`duration` for a ``timedelta``."""
        return self.duration(delta.total_seconds())


@functools.lru_cache(maxsize=8192)
def _integer(babel_locale: str, value: int) -> str:
    """An integer in the locale's convention. Cached: Babel's formatting goes through
    ``Decimal`` (about 60 µs a number), and replies show the same few counts over and over."""
    return format_decimal(value, locale=babel_locale)


ENGLISH = Tr(SOURCE_LOCALE)
"""The source language: every message as written in the code."""


@functools.cache
def for_locale(locale: str | None) -> Tr:
    """The `Tr` for a Discord locale (resolved: its own, its language's, else English)."""
    ours = resolve(locale)
    if ours in (SOURCE_LOCALE, PSEUDO_LOCALE):
        return ENGLISH if ours == SOURCE_LOCALE else Tr(PSEUDO_LOCALE)
    return Tr(ours, load_catalogs()[ours])


def placeholders(text: str) -> frozenset[str]:
    """The named placeholders of a message (``{credits}`` -> ``credits``)."""
    return frozenset(re.findall(r"\{([^{}:!]*)[^{}]*\}", text))


def all_strings(value: Any) -> list[str]:
    """Every string in a (JSON-like) structure: for tests that look for untranslated text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in all_strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in all_strings(item)]
    return []
