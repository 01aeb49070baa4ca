"""Prompt checks: one place that decides whether a prompt may be sent to the API.

A prompt is normalised (Unicode NFC, invisible characters removed, whitespace folded)
before it is measured, checked against the guild's blocked words and stored, so what the
user is charged for is exactly what the API receives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from core.i18n import Message, _

# Zero-width and other invisible format characters that users paste (often by accident)
# and that can hide a blocked word: ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen,
# invisible separators, bidi controls.
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_WHITESPACE = re.compile(r"\s+")


class PromptError(ValueError):
    """The prompt was refused; the message says why and what to do, fit to show the user."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message
        """The reason, said in any locale with ``tr(message)``."""


def normalise_prompt(raw: str) -> str:
    """Return the prompt as it will be sent: NFC, invisible characters dropped, spaces folded.

    Raise PromptError when it contains control characters other than line breaks and tabs
    (which are folded into spaces).
    """
    text = unicodedata.normalize("NFC", raw)
    text = _INVISIBLE.sub("", text)
    for char in text:
        if char in "\n\r\t":
            continue
        if unicodedata.category(char) == "Cc":
            raise PromptError(
                _(
                    "Your prompt contains a control character ({character}). "
                    "Remove it and try again.",
                    character=f"U+{ord(char):04X}",
                )
            )
    return _WHITESPACE.sub(" ", text).strip()


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text.casefold()).casefold()


def find_blocked_word(prompt: str, blocked_words: Iterable[str]) -> str | None:
    """Return the first blocked word that occurs in the prompt as a whole word, else None.

    Matching is case-insensitive (casefold) on the normalised prompt, and compatibility
    forms count as their plain letters (NFKC: fullwidth or math-bold letters cannot hide
    a word); a blocked entry of several words matches that phrase.
    """
    haystack = _fold(prompt)
    for word in blocked_words:
        needle = _fold(normalise_prompt(word))
        if needle and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack):
            return word
    return None


def check_prompt(
    raw: str | None,
    *,
    max_length: int,
    blocked_words: Iterable[str] = (),
    required: bool = True,
) -> str:
    """Normalise and check a prompt; return the text to send, or raise PromptError."""
    prompt = normalise_prompt(raw or "")
    if not prompt:
        if required:
            raise PromptError(
                _(
                    "Your prompt is empty. Describe the scene you want, e.g. "
                    "'a silver horse running through neon rain'."
                )
            )
        return ""
    if len(prompt) > max_length:
        raise PromptError(
            _(
                "Your prompt is {length} characters long; the limit is {limit}. "
                "Shorten it and try again.",
                length=len(prompt),
                limit=max_length,
            )
        )
    blocked = find_blocked_word(prompt, blocked_words)
    if blocked is not None:
        raise PromptError(
            _(
                "Your prompt contains a word this server does not allow ({word}). "
                "Rephrase it and try again.",
                word=repr(blocked),
            )
        )
    return prompt
