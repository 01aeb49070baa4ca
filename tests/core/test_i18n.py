"""The catalogs and the language rules, without Discord: complete catalogs, the same
placeholders as the source, nothing left unextracted, locale fallback, plural forms,
the pseudo-locale and the locale's number, size and duration formats."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from core.i18n import (
    ENGLISH,
    EXTRACT_KEYWORDS,
    LOCALE_DIR,
    PSEUDO_LOCALE,
    SOURCE_LOCALE,
    Message,
    Number,
    catalog_folders,
    for_locale,
    locales,
    placeholders,
    pseudo,
    resolve,
)
from core.limits import cooldown_refusal, queue_full_refusal
from core.wording import credits_text

REPO = Path(__file__).resolve().parents[2]
EXPECTED_LOCALES = {"de", "es-ES", "fr", "it", "ja", "pl", "pt-BR", "ru"}


def _read(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def _ids(message_id: str | tuple[str, ...]) -> tuple[str, ...]:
    return (message_id,) if isinstance(message_id, str) else tuple(message_id)


def _strings(string: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if string is None:
        return ()
    return (string,) if isinstance(string, str) else tuple(string)


def _key(message_id: str | tuple[str, ...], context: str | None) -> tuple[str | None, str]:
    return context, _ids(message_id)[0]


def test_the_bot_ships_the_eight_promised_locales() -> None:
    """English plus de, es-ES, fr, it, ja, pl, pt-BR and ru, found from the folders."""
    assert set(catalog_folders()) == EXPECTED_LOCALES
    assert locales()[0] == SOURCE_LOCALE


@pytest.mark.parametrize("locale", sorted(EXPECTED_LOCALES))
def test_every_catalog_translates_every_message_with_the_same_placeholders(locale: str) -> None:
    """No message missing, none fuzzy or empty, every placeholder kept, none invented;
    plural messages have as many forms as the locale's Plural-Forms header says."""
    template = _read(LOCALE_DIR / "messages.pot")
    catalog = _read(catalog_folders()[locale])
    wanted = {_key(m.id, m.context): m for m in template if m.id}
    have = {_key(m.id, m.context): m for m in catalog if m.id}
    assert sorted(set(wanted) - set(have), key=str) == [], "untranslated messages"
    assert sorted(set(have) - set(wanted), key=str) == [], "messages the code no longer has"
    problems = []
    for key, source in wanted.items():
        message = have[key]
        if message.fuzzy:
            problems.append(f"fuzzy: {key}")
        forms = _strings(message.string)
        if not forms or not all(forms):
            problems.append(f"empty: {key}")
        source_names = set().union(*(placeholders(text) for text in _ids(source.id)))
        for form in forms:
            if placeholders(form) != source_names:
                problems.append(f"placeholders {sorted(placeholders(form))} in {form!r}")
        if isinstance(source.id, tuple | list) and len(forms) != catalog.num_plurals:
            problems.append(f"{len(forms)} forms for {key}, header: {catalog.num_plurals}")
    assert problems == []


def test_polish_and_russian_have_three_plural_forms() -> None:
    """One, few, many: 1 kredyt, 2 kredyty, 5 kredytów; 1 кредит, 2 кредита, 5 кредитов."""
    for locale in ("pl", "ru"):
        assert _read(catalog_folders()[locale]).num_plurals == 3
    polish, russian = for_locale("pl"), for_locale("ru")
    assert [polish(credits_text(n)) for n in (1, 2, 5, 22, 25)] == [
        "1 kredyt", "2 kredyty", "5 kredytów", "22 kredyty", "25 kredytów",
    ]  # fmt: skip
    assert [russian(credits_text(n)) for n in (1, 3, 11, 21)] == [
        "1 кредит", "3 кредита", "11 кредитов", "21 кредит",
    ]  # fmt: skip


def test_pybabel_extract_finds_no_message_missing_from_the_catalogs(tmp_path: Path) -> None:
    """Extracting the source now gives exactly the shipped template: no string was added
    to the code without reaching the catalogs (which the test above checks against it)."""
    out = tmp_path / "messages.pot"
    keywords = [arg for keyword in EXTRACT_KEYWORDS for arg in ("-k", keyword)]
    subprocess.run(
        [
            sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
            "--no-default-keywords", *keywords, "-o", str(out), ".",
        ],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    extracted = {_key(m.id, m.context) for m in _read(out) if m.id}
    shipped = {_key(m.id, m.context) for m in _read(LOCALE_DIR / "messages.pot") if m.id}
    assert sorted(extracted - shipped, key=str) == [], "run the pybabel update in the README"
    assert sorted(shipped - extracted, key=str) == [], "the template has stale messages"
    assert len(extracted) > 200


@pytest.mark.parametrize(
    ("discord_locale", "ours"),
    [
        ("de", "de"),
        ("es-ES", "es-ES"),
        ("es-419", "es-ES"),
        ("pt-BR", "pt-BR"),
        ("pt-PT", "pt-BR"),
        ("en-GB", SOURCE_LOCALE),
        ("zh-CN", SOURCE_LOCALE),
        ("ko", SOURCE_LOCALE),
        (None, SOURCE_LOCALE),
        ("", SOURCE_LOCALE),
    ],
)
def test_a_discord_locale_falls_back_to_its_language_then_english(
    discord_locale: str | None, ours: str
) -> None:
    """Our catalog for the locale, else one of its language, else English."""
    assert resolve(discord_locale) == ours


def test_a_deferred_message_is_english_until_said_in_a_locale() -> None:
    """Core's messages are plain English strings that any reader's Tr re-says."""
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    refusal = cooldown_refusal(start, 90, start + datetime.timedelta(seconds=30))
    assert refusal is not None and isinstance(refusal.message, Message)
    assert refusal.message.startswith("This server has a cool-down of 90 s between")
    german = for_locale("de")(refusal.message)
    assert german.startswith("Auf diesem Server gilt eine Wartezeit von 90 s zwischen Videos.")
    assert "<t:1767225691:R>" in german
    japanese = for_locale("ja")(refusal.message)
    assert "90秒の待ち時間" in japanese and "<t:1767225691:R>" in japanese


def test_plural_refusals_pick_each_locales_form() -> None:
    """The queue-full refusal: 'video'/'videos' in English, 'filmy'/'filmów' in Polish."""
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    one = queue_full_refusal(1, 1, now, now).message
    five = queue_full_refusal(5, 5, now, now).message
    assert "You already have 1 video waiting" in one
    assert "You already have 5 videos waiting" in five
    polish = for_locale("pl")
    assert "Masz już 5 filmów w kolejce" in polish(five)
    assert "Masz już 1 film w kolejce" in polish(one)


def test_numbers_sizes_and_durations_follow_the_locale() -> None:
    """Grouping and decimal signs, unit names, from Babel's CLDR data."""
    assert ENGLISH.number(1234567) == "1,234,567"
    assert for_locale("de").number(1234567) == "1.234.567"
    assert for_locale("fr").number(1234567) == "1\u202f234\u202f567"
    assert ENGLISH.size(10 * 1024 * 1024) == "10 MB"
    assert for_locale("de").size(int(9.5 * 1024 * 1024)) == "9,5 MB"
    assert for_locale("fr").size(int(9.5 * 1024 * 1024)) == "9,5\u202fMo"
    assert ENGLISH.duration(3690) == "1 hr 1 min 30 sec"
    assert for_locale("ru").duration(45) == "45 с"
    assert for_locale("de")(credits_text(1000)) == "1.000 Credits"
    assert str(Number(1000)) == "1,000"


def test_the_pseudo_locale_accents_letters_and_keeps_what_discord_reads() -> None:
    """Every letter accented, wrapped in ⟦ ⟧; placeholders, mentions, timestamps, code and
    link targets untouched, so the pseudo-locale still renders."""
    text = pseudo("Hi {name}, see <t:5:R>, `/jobs` and [here](https://x.test/a)")
    assert text.startswith("⟦") and text.endswith("⟧")
    assert "{name}" in text and "<t:5:R>" in text and "`/jobs`" in text
    assert "(https://x.test/a)" in text
    outside = text
    for kept in ("{name}", "<t:5:R>", "`/jobs`", "(https://x.test/a)"):
        outside = outside.replace(kept, "")
    assert not any(char.isascii() and char.isalpha() for char in outside)
    assert for_locale(PSEUDO_LOCALE)(credits_text(2)) == "⟦2 ƈřḗḓīŧş⟧"


def test_the_chart_is_labelled_in_the_readers_language_or_english_never_boxes() -> None:
    """French labels change the drawing; a script no installed font draws (Japanese without
    a CJK font) falls back to the English labels rather than empty boxes."""
    from core.chart import _font_for, outcome_chart
    from storage.models import DayOutcomes

    days = [
        DayOutcomes(day=datetime.date(2026, 1, d), made=d, failed=1, pending=0) for d in (1, 2)
    ]
    english = outcome_chart(days)
    assert outcome_chart(days, tr=for_locale("fr")) != english
    if _font_for(["動画"], 13) is None:
        assert outcome_chart(days, tr=for_locale("ja")) == english
    else:
        assert outcome_chart(days, tr=for_locale("ja")) != english
